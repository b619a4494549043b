//! The puzzle flags shared by `search` and `verify`, and their validation.

use super::UsageError;
use clap::Args;
use protocol::{Encoding, Layout, Puzzle, Target};

/// How the user names a puzzle.
#[derive(Args, Debug, Clone)]
pub struct PuzzleArgs {
    /// Block as text (UTF-8 bytes).
    #[arg(long, group = "source", value_name = "TEXT")]
    pub block: Option<String>,
    /// Block as hex bytes.
    #[arg(long = "block-hex", group = "source", value_name = "HEX")]
    pub block_hex: Option<String>,
    /// A Bitcoin block header: exactly 80 bytes of hex (nonce little-endian at bytes 76..80).
    #[arg(long = "header-hex", group = "source", value_name = "HEX80")]
    pub header_hex: Option<String>,
    /// Leading zero bits required of the hash (0..=256).
    #[arg(long, group = "goal", value_name = "BITS")]
    pub difficulty: Option<u32>,
    /// Compact nBits target (hex, e.g. 1d00ffff): the hash must be at most the expanded target.
    #[arg(long = "target-bits", group = "goal", value_name = "NBITS")]
    pub target_bits: Option<String>,
    /// Nonce encoding after the block: be32 (default), le32, be64, le64. Not with --header-hex.
    #[arg(long, value_name = "ENC")]
    pub encoding: Option<String>,
}

impl PuzzleArgs {
    pub fn puzzle(&self) -> Result<Puzzle, UsageError> {
        let target = match (self.difficulty, &self.target_bits) {
            (Some(d), None) => Target::LeadingZeros(d),
            (None, Some(bits)) => Target::Compact(parse_nbits(bits)?),
            _ => return Err(UsageError("give one of --difficulty or --target-bits".into())),
        };
        let layout = match (&self.block, &self.block_hex, &self.header_hex) {
            (Some(text), None, None) => {
                Layout::Append { block: text.as_bytes().to_vec(), encoding: self.encoding()? }
            }
            (None, Some(h), None) => {
                Layout::Append { block: parse_hex("--block-hex", h)?, encoding: self.encoding()? }
            }
            (None, None, Some(h)) => {
                if self.encoding.is_some() {
                    return Err(UsageError(
                        "--encoding does not apply to --header-hex (the nonce is le32 at bytes 76..80)"
                            .into(),
                    ));
                }
                Layout::Header { header: parse_hex("--header-hex", h)? }
            }
            _ => return Err(UsageError("give one of --block, --block-hex or --header-hex".into())),
        };
        Puzzle::new(layout, target).map_err(|e| UsageError(e.to_string()))
    }

    fn encoding(&self) -> Result<Encoding, UsageError> {
        match &self.encoding {
            None => Ok(Encoding::Be32),
            Some(e) => e.parse().map_err(|e: protocol::PuzzleError| UsageError(e.to_string())),
        }
    }
}

fn parse_hex(flag: &str, text: &str) -> Result<Vec<u8>, UsageError> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    if t.len() % 2 != 0 {
        return Err(UsageError(format!("{flag}: odd number of hex digits ({})", t.len())));
    }
    hex::decode(t).map_err(|e| UsageError(format!("{flag}: not hex ({e})")))
}

fn parse_nbits(text: &str) -> Result<u32, UsageError> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    u32::from_str_radix(t, 16)
        .map_err(|_| UsageError(format!("--target-bits: {text:?} is not 8 hex digits of nBits")))
}
