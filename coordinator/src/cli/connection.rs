//! How `noncectl` reaches `nonced`: `--socket` on the daemon's host, or `--endpoint` with a
//! token from anywhere. Every daemon command takes these flags, and means the same with
//! either.

use super::UsageError;
use crate::daemon::client::{Remote, Target};
use clap::Args;
use std::path::PathBuf;

/// Longest token file read (tokens are 64 hex digits).
const MAX_TOKEN_FILE: u64 = 4096;

#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// The daemon's control socket (on the daemon's host).
    #[arg(long, env = "NONCE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The daemon's network address: https://HOST[:PORT] (http:// where TLS ends in front of
    /// it). Needs a token: --token-file or NONCE_TOKEN.
    #[arg(long, env = "NONCE_ENDPOINT", value_name = "URL", conflicts_with = "socket")]
    pub endpoint: Option<String>,
    /// A file holding your bearer token (from `nonced token new`).
    #[arg(long = "token-file", env = "NONCE_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// A private CA's certificate (PEM) to trust for an https endpoint.
    #[arg(long = "ca-file", env = "NONCE_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
}

impl ConnectionArgs {
    /// Where the daemon is, or `None` to run in-process.
    pub fn target(&self) -> Result<Option<Target>, UsageError> {
        if let Some(path) = &self.socket {
            if self.endpoint.is_none() {
                return Ok(Some(Target::Socket(path.clone())));
            }
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
