//! `noncectl verify`: the one-nonce check, straight from `protocol::verify`.

use super::{exit, PuzzleArgs, UsageError};
use clap::Args;
use protocol::{verify, Layout, Target};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    puzzle: PuzzleArgs,
    /// The nonce to check (decimal or 0x hex).
    #[arg(long)]
    nonce: String,
}

pub fn run(args: VerifyArgs, json: bool) -> Result<u8, UsageError> {
    let puzzle = args.puzzle.request().puzzle()?;
    let nonce = parse_nonce(&args.nonce)?;
    if u128::from(nonce) >= puzzle.encoding().space_end() {
        return Err(UsageError(format!("--nonce {nonce} is outside the {} nonce space", puzzle.encoding())));
    }
    let v = verify(&puzzle, nonce);
    let header = matches!(puzzle.layout(), Layout::Header { .. });
    let need = match puzzle.target() {
        Target::LeadingZeros(d) => format!("{d} leading zero bits"),
        Target::Compact(bits) => format!("hash <= target of nBits {bits:08x}"),
    };
    if json {
        let obj = serde_json::json!({
            "nonce": nonce,
            "digest": hex::encode(v.digest),
            "hash": hex::encode(v.hash),
            "leading_zeros": v.leading_zeros,
            "golden": v.golden,
            "requirement": need,
        });
        coordinator::outln!("{obj}");
    } else {
        coordinator::outln!("nonce          {nonce} ({nonce:#x})");
        coordinator::outln!("digest         {}", hex::encode(v.digest));
        if header {
            coordinator::outln!("block hash     {}", hex::encode(v.hash));
        }
        coordinator::outln!("leading zeros  {}", v.leading_zeros);
        coordinator::outln!("requirement    {need}");
        coordinator::outln!("verdict        {}", if v.golden { "GOLDEN" } else { "not golden" });
    }
    Ok(if v.golden { exit::FOUND } else { exit::NONE })
}

fn parse_nonce(text: &str) -> Result<u64, UsageError> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| UsageError(format!("--nonce {text:?} is not a 64-bit number")))
}
