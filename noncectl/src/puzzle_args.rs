//! The puzzle flags shared by `search` and `verify`.

use clap::Args;
use coordinator::request::SearchRequest;

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
    /// The request these flags describe (puzzle fields only).
    pub fn request(&self) -> SearchRequest {
        SearchRequest {
            block: self.block.clone(),
            block_hex: self.block_hex.clone(),
            header_hex: self.header_hex.clone(),
            difficulty: self.difficulty,
            target_bits: self.target_bits.clone(),
            encoding: self.encoding.clone(),
            ..SearchRequest::default()
        }
    }
}
