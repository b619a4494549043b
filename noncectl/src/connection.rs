//! How `noncectl` reaches `nonced`: `--socket` on the daemon's host, or `--endpoint` with a
//! token from anywhere. Every daemon command takes these flags, and means the same with
//! either.

use super::UsageError;
use crate::client::{Remote, Target};
use clap::Args;
use std::path::PathBuf;

/// Longest token file read (tokens are 64 hex digits).
const MAX_TOKEN_FILE: u64 = 4096;

/// Global: accepted before or after the subcommand (`noncectl --socket S jobs`, `noncectl
/// jobs --socket S`). A flag on the command line beats its environment variable.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// The daemon's control socket (on the daemon's host).
    #[arg(long, env = "NONCE_SOCKET", value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// The daemon's network address: https://HOST[:PORT] (http:// where TLS ends in front of
    /// it). Needs a token: --token-file or NONCE_TOKEN.
    #[arg(long, env = "NONCE_ENDPOINT", value_name = "URL", global = true)]
    pub endpoint: Option<String>,
    /// A file holding your bearer token (from `nonced token new`).
    #[arg(long = "token-file", env = "NONCE_TOKEN_FILE", value_name = "PATH", global = true)]
    pub token_file: Option<PathBuf>,
    /// A private CA's certificate (PEM) to trust for an https endpoint.
    #[arg(long = "ca-file", env = "NONCE_CA_FILE", value_name = "PATH", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Where `socket` and `endpoint` came from (set after parsing, from clap's value sources).
    #[arg(skip)]
    pub given: Given,
}

/// Which of `--socket` / `--endpoint` were typed on the command line (not taken from the
/// environment).
#[derive(Debug, Clone, Copy, Default)]
pub struct Given {
    pub socket: bool,
    pub endpoint: bool,
}

impl Given {
    /// From the parsed matches: which of the two came from the command line.
    pub fn from_matches(m: &clap::ArgMatches) -> Self {
        let typed = |id: &str| {
            // A global arg's value lands in the subcommand's matches too: look at each level.
            let mut level = Some(m);
            while let Some(l) = level {
                if l.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                    return true;
                }
                level = l.subcommand().map(|(_, sub)| sub);
            }
            false
        };
        Given { socket: typed("socket"), endpoint: typed("endpoint") }
    }
}

impl ConnectionArgs {
    /// Where the daemon is, or `None` to run in-process. A flag beats the environment: with
    /// `NONCE_ENDPOINT` set, `--socket S` on the command line means the socket.
    pub fn target(&self) -> Result<Option<Target>, UsageError> {
        let use_socket = match (&self.socket, &self.endpoint) {
            (None, None) => return Ok(None),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(_)) => match (self.given.socket, self.given.endpoint) {
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    return Err(UsageError("give --socket or --endpoint, not both".into()));
                }
                (false, false) => {
                    return Err(UsageError(
                        "NONCE_SOCKET and NONCE_ENDPOINT are both set: unset one, or say which with --socket or --endpoint"
                            .into(),
                    ));
                }
            },
        };
        if use_socket {
            return Ok(self.socket.clone().map(Target::Socket));
        }
        let Some(endpoint) = &self.endpoint else { return Ok(None) };
        let token =
            match (&self.token_file, std::env::var("NONCE_TOKEN").ok().filter(|t| !t.trim().is_empty())) {
                (Some(path), _) => read_token(path)?,
                (None, Some(t)) => t,
                (None, None) => {
                    return Err(UsageError(
                        "--endpoint needs a token: --token-file PATH, or NONCE_TOKEN in the environment"
                            .into(),
                    ))
                }
            };
        let remote = Remote::new(endpoint, token, self.ca_file.clone()).map_err(UsageError)?;
        Ok(Some(Target::Remote(remote)))
    }
}

fn read_token(path: &PathBuf) -> Result<String, UsageError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| UsageError(format!("--token-file {}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE)
        .read_to_string(&mut text)
        .map_err(|e| UsageError(format!("--token-file {}: {e}", path.display())))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(UsageError(format!("--token-file {}: the file is empty", path.display())));
    }
    Ok(token)
}
