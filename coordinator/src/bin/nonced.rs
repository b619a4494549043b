//! `nonced`: the nonce-cloud coordinator daemon.

fn main() -> std::process::ExitCode {
    coordinator::daemon::main()
}
