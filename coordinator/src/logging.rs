//! Logging set-up shared by `noncectl` and `nonced`: `NONCE_LOG` filters; a person at a
//! terminal reads text on stderr; a service (journald, CloudWatch) gets one JSON object per
//! line on stdout.

use std::io::IsTerminal;

/// Who reads the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A command-line user: text on stderr (stdout is for results).
    Terminal,
    /// A daemon: text on a terminal, JSON lines on stdout otherwise.
    Service,
}

/// The AWS SDK's own chatter (its providers probing IMDS, profiles, ...) is kept to errors
/// unless `NONCE_LOG` asks for it: the failure that matters is reported by us anyway.
pub const QUIET_SDK: &str = "aws_config=error,aws_smithy_runtime=error";

/// Installs the global subscriber. `env` is the process environment (the program reads it):
/// `NONCE_LOG` is the filter (`default` when unset or unreadable), `NO_COLOR` turns colour off.
pub fn init(audience: Audience, default: &str, env: impl Fn(&str) -> Option<String>) {
    let filter = env("NONCE_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(format!("{default},{QUIET_SDK}")));
    let no_color = env("NO_COLOR").map(std::ffi::OsString::from);
    if audience == Audience::Service && !std::io::stderr().is_terminal() {
        let _ =
            tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stdout).try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(colour(std::io::stderr().is_terminal(), no_color.as_deref()))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Colour only for a person at a terminal, and not even then with `NO_COLOR` set to anything
/// but the empty string (no-color.org): a pipe or a file gets plain text.
pub fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset (no-color.org)");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "a pipe gets no escape codes");
    }
}
