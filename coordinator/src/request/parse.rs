//! How user input is read and refused: [`UsageError`] (CLI: one line and exit 2; RPC:
//! invalid params) and the parsers every entry point shares (durations, hex, nBits), so a
//! flag, a config key and a JSON-RPC field accept the same text.

use std::time::Duration;

/// A problem with what the user asked for. CLI: one line, exit 2. RPC: invalid params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses hex bytes, with or without `0x`; `flag` names the input in the error.
pub fn parse_hex(flag: &str, text: &str) -> Result<Vec<u8>, UsageError> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    if !t.len().is_multiple_of(2) {
        return Err(UsageError(format!("{flag}: odd number of hex digits ({})", t.len())));
    }
    hex::decode(t).map_err(|e| UsageError(format!("{flag}: not hex ({e})")))
}

/// Parses a compact nBits target (8 hex digits, e.g. `1d00ffff`).
pub fn parse_nbits(text: &str) -> Result<u32, UsageError> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    u32::from_str_radix(t, 16)
        .map_err(|_| UsageError(format!("--target-bits: {text:?} is not 8 hex digits of nBits")))
}

/// Parses `90`, `90s`, `1.5m`, `2h`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let t = text.trim();
    let bad = || UsageError(format!("{text:?} is not a duration (e.g. 30s, 5m, 1h)"));
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v.is_finite() && v > 0.0 && v * scale < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}
