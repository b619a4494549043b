//! `noncectl`: the nonce-cloud command-line client.

fn main() -> std::process::ExitCode {
    noncectl::main()
}
