//! `noncectl`: the nonce-cloud command-line client.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    noncectl::main()
}
