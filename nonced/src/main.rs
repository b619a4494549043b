//! `nonced`: the nonce-cloud coordinator daemon.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    nonced::main()
}
