//! `nonced`: the nonce-cloud coordinator daemon.

fn main() -> std::process::ExitCode {
    nonced::main()
}
