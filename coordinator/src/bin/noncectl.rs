//! `noncectl`: the nonce-cloud command-line client.

fn main() -> std::process::ExitCode {
    coordinator::cli::main()
}
