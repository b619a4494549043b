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

/// The one duration grammar of every flag and request field: a bare number is seconds
/// (`90`, `1.5`), otherwise one or more `<number><unit>` parts, optionally spaced (`90s`,
/// `1m30s`, `1h 15m`, `1.5m`, `250ms`, `2min`, `1d`), with units ms / s, sec, secs, second(s) /
/// m, min, mins, minute(s) / h, hr, hrs, hour(s) / d, day(s). Zero and more than ~31 years
/// are refused, each with its own message.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let seconds = duration_seconds(text).map_err(|why| UsageError(format!("{text:?} {why}")))?;
    if seconds <= 0.0 {
        return Err(UsageError(format!("{text:?} is no time at all: give more than zero")));
    }
    if seconds >= 1e9 {
        return Err(UsageError(format!("{text:?} is too long (at most ~31 years)")));
    }
    // Below a nanosecond is zero once it is a Duration: refused like zero, not a deadline of 0.
    let d = Duration::from_secs_f64(seconds);
    if d.is_zero() {
        return Err(UsageError(format!("{text:?} is no time at all: give at least a nanosecond")));
    }
    Ok(d)
}

/// `parse_duration` for a flag: its errors name the flag.
pub fn parse_duration_flag(flag: &str, text: &str) -> Result<Duration, UsageError> {
    parse_duration(text).map_err(|e| UsageError(format!("--{flag}: {}", e.0)))
}

/// As [`parse_duration_flag`], for a flag where zero means "not at all" (`wait --timeout 0`:
/// do not wait; `estimate --startup 0`: workers start at once).
pub fn parse_duration_flag_or_zero(flag: &str, text: &str) -> Result<Duration, UsageError> {
    match duration_seconds(text) {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_duration_flag(flag, text),
    }
}

/// The seconds `text` says, or why it is not a duration.
fn duration_seconds(text: &str) -> Result<f64, &'static str> {
    const NOT: &str = "is not a duration (e.g. 90, 30s, 1m30s, 2min, 1h, 1d)";
    let t = text.trim();
    if t.is_empty() {
        return Err(NOT);
    }
    if let Ok(v) = t.parse::<f64>() {
        return if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(NOT) };
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, after) = rest.split_at(digits);
        let after = after.trim_start();
        let letters = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        let value: f64 = num.parse().map_err(|_| NOT)?;
        let scale = match unit {
            "ms" | "msec" | "msecs" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            _ => return Err(NOT),
        };
        total += value * scale;
        rest = after.trim_start();
    }
    if total.is_finite() {
        Ok(total)
    } else {
        Err(NOT)
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    fn secs(text: &str) -> Result<f64, String> {
        parse_duration(text).map(|d| d.as_secs_f64()).map_err(|e| e.0)
    }

    #[test]
    fn one_grammar_for_every_duration() {
        for (text, want) in [
            ("90", 90.0),
            ("1.5", 1.5),
            ("90s", 90.0),
            ("1m30s", 90.0),
            ("1m 30s", 90.0),
            ("1.5m", 90.0),
            ("2min", 120.0),
            ("2 mins", 120.0),
            ("1h", 3600.0),
            ("1h15m", 4500.0),
            ("1d", 86_400.0),
            ("2 days", 172_800.0),
            ("250ms", 0.25),
            (" 30s ", 30.0),
        ] {
            assert_eq!(secs(text), Ok(want), "{text}");
        }
        for bad in ["", "s", "1x", "1m30", "1.2.3s", "-5s", "abc", "1e400"] {
            let e = secs(bad).expect_err(bad);
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        assert!(secs("0s").expect_err("zero").contains("no time at all"));
        for tiny in ["1e-30", "0.0000000001"] {
            assert!(secs(tiny).expect_err(tiny).contains("no time at all"), "{tiny}");
        }
        assert!(secs("40000d").expect_err("long").contains("too long"));
        let e = parse_duration_flag("max-time", "soon").expect_err("bad");
        assert!(e.0.starts_with("--max-time: "), "{}", e.0);
        assert_eq!(parse_duration_flag_or_zero("timeout", "0s").map(|d| d.as_secs()), Ok(0));
        assert_eq!(parse_duration_flag_or_zero("timeout", "0").map(|d| d.as_secs()), Ok(0));
    }
}
