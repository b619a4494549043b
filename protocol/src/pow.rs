//! The golden-nonce puzzle: what is hashed, what counts as golden, and the one `verify`.
//!
//! Message = prefix bytes followed by the nonce encoding; digest = SHA-256(SHA-256(message)).
//! A Bitcoin header is the same shape (76 prefix bytes, the nonce as `le32`) whose *hash* is
//! the digest byte-reversed, as block explorers print it. Difficulty and targets are always
//! judged on the hash, so one code path serves both.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Largest block a puzzle may carry. Keeps every wire message far below the SQS body limit.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024;
/// Length of a Bitcoin block header.
pub const HEADER_BYTES: usize = 80;
/// Largest difficulty: every bit of a 256-bit hash.
pub const MAX_DIFFICULTY: u32 = 256;

/// How a nonce is written after the block bytes. Also fixes the size of the nonce space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Encoding {
    /// 4 bytes, big-endian: a 2^32 space (the coursework's).
    #[default]
    Be32,
    /// 4 bytes, little-endian: a 2^32 space.
    Le32,
    /// 8 bytes, big-endian: a 2^64 space.
    Be64,
    /// 8 bytes, little-endian: a 2^64 space.
    Le64,
}

impl Encoding {
    /// Bytes the nonce occupies in the message.
    pub fn width(self) -> usize {
        match self {
            Encoding::Be32 | Encoding::Le32 => 4,
            Encoding::Be64 | Encoding::Le64 => 8,
        }
    }

    /// One past the largest nonce: 2^32 or 2^64.
    pub fn space_end(self) -> u128 {
        1u128 << (8 * self.width())
    }

    /// Writes `nonce` into `out[..self.width()]`. Nonces wider than the encoding are truncated,
    /// which callers prevent by keeping nonces inside [`Encoding::space_end`].
    pub fn write(self, nonce: u64, out: &mut [u8]) {
        match self {
            Encoding::Be32 => out[..4].copy_from_slice(&(nonce as u32).to_be_bytes()),
            Encoding::Le32 => out[..4].copy_from_slice(&(nonce as u32).to_le_bytes()),
            Encoding::Be64 => out[..8].copy_from_slice(&nonce.to_be_bytes()),
            Encoding::Le64 => out[..8].copy_from_slice(&nonce.to_le_bytes()),
        }
    }

    /// The name `--encoding` takes.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Be32 => "be32",
            Encoding::Le32 => "le32",
            Encoding::Be64 => "be64",
            Encoding::Le64 => "le64",
        }
    }
}

impl FromStr for Encoding {
    type Err = PuzzleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "be32" => Ok(Encoding::Be32),
            "le32" => Ok(Encoding::Le32),
            "be64" => Ok(Encoding::Be64),
            "le64" => Ok(Encoding::Le64),
            other => Err(PuzzleError::BadEncoding(other.to_string())),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What bytes are hashed for a nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Arbitrary block bytes followed by the nonce.
    Append {
        /// The bytes before the nonce.
        block: Vec<u8>,
        /// How the nonce is written after them.
        encoding: Encoding,
    },
    /// A Bitcoin block header: 80 bytes, nonce little-endian at 76..80, hash byte-reversed.
    Header {
        /// The 80 bytes (its nonce field is overwritten by each nonce).
        header: Vec<u8>,
    },
}

/// When a hash is golden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// At least this many leading zero bits (0..=256).
    LeadingZeros(u32),
    /// Bitcoin compact nBits: the hash as a 256-bit number must be <= the expanded target.
    Compact(u32),
}

/// Why a puzzle, encoding or range was refused. Each message names the problem for a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PuzzleError {
    /// An encoding name that is none of ours.
    #[error("unknown encoding {0:?} (expected be32, le32, be64 or le64)")]
    BadEncoding(String),
    /// A block over the size limit.
    #[error("block is {0} bytes; the limit is {MAX_BLOCK_BYTES}")]
    BlockTooLarge(usize),
    /// A header that is not 80 bytes.
    #[error("header is {0} bytes; a Bitcoin header is exactly 80")]
    HeaderLength(usize),
    /// More than 256 bits.
    #[error("difficulty {0} is over the maximum of 256 bits")]
    DifficultyTooHigh(u32),
    /// An nBits that expands to no target.
    #[error("nBits {0:#010x} is not a valid compact target (negative, zero or overflowing)")]
    BadCompact(u32),
    /// A range outside the puzzle's space, or empty.
    #[error("range {0}")]
    BadRange(String),
}

/// A complete, validated puzzle. Construct with [`Puzzle::new`]; the wire form re-validates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PuzzleWire", into = "PuzzleWire")]
pub struct Puzzle {
    layout: Layout,
    target: Target,
    /// The expanded target, big-endian, for `Target::Compact`; derived, never sent.
    target_bytes: Option<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct PuzzleWire {
    layout: Layout,
    target: Target,
}

impl TryFrom<PuzzleWire> for Puzzle {
    type Error = PuzzleError;
    fn try_from(w: PuzzleWire) -> Result<Self, Self::Error> {
        Puzzle::new(w.layout, w.target)
    }
}

impl From<Puzzle> for PuzzleWire {
    fn from(p: Puzzle) -> Self {
        PuzzleWire { layout: p.layout, target: p.target }
    }
}

/// The full account of one nonce: the answer `verify` gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The nonce judged.
    pub nonce: u64,
    /// SHA-256(SHA-256(message)) in the order the hash function outputs it.
    pub digest: [u8; 32],
    /// What difficulty is judged on: the digest, or in header mode the digest reversed.
    pub hash: [u8; 32],
    /// Leading zero bits of `hash`.
    pub leading_zeros: u32,
    /// Whether it meets the puzzle's target.
    pub golden: bool,
}

impl Puzzle {
    /// A puzzle, if the layout and target are valid (sizes, difficulty, nBits).
    pub fn new(layout: Layout, target: Target) -> Result<Self, PuzzleError> {
        match &layout {
            Layout::Append { block, .. } if block.len() > MAX_BLOCK_BYTES => {
                return Err(PuzzleError::BlockTooLarge(block.len()))
            }
            Layout::Header { header } if header.len() != HEADER_BYTES => {
                return Err(PuzzleError::HeaderLength(header.len()))
            }
            _ => {}
        }
        let target_bytes = match target {
            Target::LeadingZeros(d) if d > MAX_DIFFICULTY => return Err(PuzzleError::DifficultyTooHigh(d)),
            Target::LeadingZeros(_) => None,
            Target::Compact(bits) => Some(expand_compact(bits)?),
        };
        Ok(Puzzle { layout, target, target_bytes })
    }

    /// A block followed by a nonce, golden at `difficulty` leading zero bits.
    pub fn append(block: Vec<u8>, encoding: Encoding, difficulty: u32) -> Result<Self, PuzzleError> {
        Puzzle::new(Layout::Append { block, encoding }, Target::LeadingZeros(difficulty))
    }

    /// What bytes are hashed.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// When a hash is golden.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The bytes before the nonce and the nonce's encoding: what every kernel specialises on.
    pub fn prefix(&self) -> (&[u8], Encoding) {
        match &self.layout {
            Layout::Append { block, encoding } => (block, *encoding),
            Layout::Header { header } => (&header[..76], Encoding::Le32),
        }
    }

    /// Whether the hash is the digest byte-reversed (Bitcoin's display order).
    pub fn reversed(&self) -> bool {
        matches!(self.layout, Layout::Header { .. })
    }

    /// How the nonce is written (a header's: little-endian 32-bit).
    pub fn encoding(&self) -> Encoding {
        self.prefix().1
    }

    /// The whole nonce space of this puzzle: `0..2^32` or `0..2^64`.
    pub fn space(&self) -> NonceRange {
        NonceRange { start: 0, end: self.encoding().space_end() }
    }

    /// The message hashed for `nonce`.
    pub fn message(&self, nonce: u64) -> Vec<u8> {
        let (prefix, enc) = self.prefix();
        let mut m = Vec::with_capacity(prefix.len() + 8);
        m.extend_from_slice(prefix);
        let mut n = [0u8; 8];
        enc.write(nonce, &mut n);
        m.extend_from_slice(&n[..enc.width()]);
        m
    }

    /// The kernel's cheap pre-test. `key` is the first four bytes of the hash as a big-endian
    /// word; every golden nonce has `key <= key_threshold()`, so a kernel can skip the full
    /// `verify` for all other nonces.
    pub fn key_threshold(&self) -> u32 {
        match (self.target, self.target_bytes) {
            (_, Some(t)) => u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
            (Target::LeadingZeros(d), None) if d >= 32 => 0,
            (Target::LeadingZeros(d), None) => u32::MAX >> d,
            (Target::Compact(_), None) => u32::MAX,
        }
    }

    /// The kernel's pre-test for shares of `bits` leading zero bits (see
    /// [`ShardProgress`](crate::ShardProgress)): every share has `key <= share_key_threshold(bits)`.
    pub fn share_key_threshold(bits: u32) -> u32 {
        if bits >= 32 {
            0
        } else {
            u32::MAX >> bits
        }
    }

    /// Most share bits a job may use: every golden nonce must also be a share, so that a
    /// worker hiding one also leaves a share out.
    pub fn max_share_bits(&self) -> u32 {
        match self.target_bytes {
            Some(t) => leading_zeros(&t),
            None => match self.target {
                Target::LeadingZeros(d) => d,
                Target::Compact(_) => 0,
            },
        }
    }

    /// Whether `hash` (in display order) meets the target.
    pub fn meets(&self, hash: &[u8; 32]) -> bool {
        match (self.target, self.target_bytes) {
            (_, Some(t)) => hash[..] <= t[..],
            (Target::LeadingZeros(d), None) => leading_zeros(hash) >= d,
            (Target::Compact(_), None) => false,
        }
    }

    /// Short description for logs and status output.
    pub fn describe(&self) -> String {
        let what = match &self.layout {
            Layout::Append { block, encoding } => format!("{} block bytes + {encoding}", block.len()),
            Layout::Header { .. } => "bitcoin header".to_string(),
        };
        match self.target {
            Target::LeadingZeros(d) => format!("{what}, difficulty {d}"),
            Target::Compact(b) => format!("{what}, nBits {b:08x}"),
        }
    }
}

/// The single source of truth for whether `nonce` is golden. Everything else (kernels,
/// workers) only proposes candidates; the coordinator accepts a nonce only through here.
pub fn verify(puzzle: &Puzzle, nonce: u64) -> Verdict {
    // The message streamed into the hash (no allocation: the coordinator verifies every share).
    let (prefix, enc) = puzzle.prefix();
    let mut n = [0u8; 8];
    enc.write(nonce, &mut n);
    let first = Sha256::new().chain_update(prefix).chain_update(&n[..enc.width()]).finalize();
    let digest: [u8; 32] = Sha256::digest(first).into();
    let mut hash = digest;
    if puzzle.reversed() {
        hash.reverse();
    }
    let in_space = u128::from(nonce) < puzzle.encoding().space_end();
    Verdict {
        nonce,
        digest,
        hash,
        leading_zeros: leading_zeros(&hash),
        golden: in_space && puzzle.meets(&hash),
    }
}

/// Leading zero bits of a byte string, counted over its bytes in order (as its hex prints).
pub fn leading_zeros(bytes: &[u8]) -> u32 {
    let mut n = 0;
    for &b in bytes {
        if b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Expands Bitcoin's compact nBits into a 32-byte big-endian target.
pub fn expand_compact(bits: u32) -> Result<[u8; 32], PuzzleError> {
    let exponent = (bits >> 24) as usize;
    let mantissa = bits & 0x007f_ffff;
    if bits & 0x0080_0000 != 0 || mantissa == 0 {
        return Err(PuzzleError::BadCompact(bits));
    }
    let mut target = [0u8; 32];
    let m = mantissa.to_be_bytes(); // m[0] is 0; m[1..4] are the three mantissa bytes
    for (i, &byte) in m[1..].iter().enumerate() {
        // Byte i of the mantissa has weight 256^(exponent - 1 - i).
        let power = exponent as isize - 1 - i as isize;
        if power < 0 {
            continue;
        }
        if power >= 32 {
            if byte != 0 {
                return Err(PuzzleError::BadCompact(bits));
            }
            continue;
        }
        target[31 - power as usize] = byte;
    }
    if target == [0u8; 32] {
        return Err(PuzzleError::BadCompact(bits));
    }
    Ok(target)
}

/// A half-open range of nonces, `start..end`. `end` may be 2^64, hence `u128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct NonceRange {
    /// The first nonce.
    pub start: u128,
    /// One past the last.
    pub end: u128,
}

impl NonceRange {
    /// `start..end`.
    pub fn new(start: u128, end: u128) -> Self {
        NonceRange { start, end }
    }

    /// How many nonces it holds (0 when `end <= start`).
    pub fn len(&self) -> u128 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether `n` is in it.
    pub fn contains(&self, n: u128) -> bool {
        self.start <= n && n < self.end
    }

    /// Parses `START..END` or `START..` (to the end of `space_end`); numbers are decimal or
    /// `0x` hex. Refuses empty ranges and ranges outside the space.
    pub fn parse(text: &str, space_end: u128) -> Result<Self, PuzzleError> {
        let bad = |why: &str| PuzzleError::BadRange(format!("{text:?}: {why}"));
        let (a, b) = text.split_once("..").ok_or_else(|| bad("expected START..END or START.."))?;
        let start = parse_number(a.trim()).ok_or_else(|| bad("START is not a number"))?;
        let end = if b.trim().is_empty() {
            space_end
        } else {
            parse_number(b.trim()).ok_or_else(|| bad("END is not a number"))?
        };
        if end > space_end {
            return Err(bad(&format!("END is past the end of the nonce space ({space_end})")));
        }
        if start >= end {
            return Err(bad("it is empty"));
        }
        Ok(NonceRange { start, end })
    }
}

impl fmt::Display for NonceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

fn parse_number(s: &str) -> Option<u128> {
    let s = s.replace('_', "");
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u128::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// How a job searches its range, and when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Mode {
    /// Any golden nonce ends the job.
    #[default]
    First,
    /// The smallest golden nonce in the range: ends when it is verified and all below it searched.
    Lowest,
    /// The whole range: every golden nonce (bounded list) and the best hash, or "none exists".
    Exhaustive,
}

impl Mode {
    /// The name `--mode` takes.
    pub fn name(self) -> &'static str {
        match self {
            Mode::First => "first",
            Mode::Lowest => "lowest",
            Mode::Exhaustive => "exhaustive",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "first" => Ok(Mode::First),
            "lowest" => Ok(Mode::Lowest),
            "exhaustive" => Ok(Mode::Exhaustive),
            other => Err(format!("unknown mode {other:?} (expected first, lowest or exhaustive)")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitcoin's genesis block header, as serialized on the wire.
    pub const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    fn genesis() -> Puzzle {
        let header = hex::decode(GENESIS).expect("valid hex");
        Puzzle::new(Layout::Header { header }, Target::Compact(0x1d00ffff)).expect("valid")
    }

    #[test]
    fn genesis_header_meets_its_nbits() {
        let p = genesis();
        let v = verify(&p, 2_083_236_893);
        assert_eq!(hex::encode(v.hash), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
        assert!(v.golden);
        assert_eq!(v.leading_zeros, 43);
        assert!(!verify(&p, 2_083_236_892).golden);
    }

    #[test]
    fn compact_expansion() {
        let t = expand_compact(0x1d00ffff).expect("valid");
        assert_eq!(hex::encode(t), format!("00000000ffff{}", "0".repeat(52)));
        let t = expand_compact(0x03123456).expect("valid");
        assert_eq!(&t[29..], &[0x12, 0x34, 0x56]);
        let t = expand_compact(0x02123456).expect("valid");
        assert_eq!(&t[30..], &[0x12, 0x34]);
        assert!(expand_compact(0x1d80ffff).is_err());
        assert!(expand_compact(0x1d000000).is_err());
        assert!(expand_compact(0xff7fffff).is_err());
        assert!(expand_compact(0x01003456).is_err());
    }

    #[test]
    fn key_threshold_admits_every_golden_hash() {
        for d in [0u32, 1, 7, 8, 31, 32, 33, 256] {
            let p = Puzzle::append(vec![], Encoding::Be32, d).expect("valid");
            let t = p.key_threshold();
            let mut hash = [0xffu8; 32];
            // A hash with exactly d leading zeros must pass the key test.
            for bit in 0..d.min(256) {
                hash[(bit / 8) as usize] &= !(0x80 >> (bit % 8));
            }
            assert!(p.meets(&hash));
            assert!(u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]) <= t);
        }
    }

    #[test]
    fn ranges_parse_and_refuse() {
        let s = 1u128 << 32;
        assert_eq!(NonceRange::parse("0..10", s), Ok(NonceRange::new(0, 10)));
        assert_eq!(NonceRange::parse("5..", s), Ok(NonceRange::new(5, s)));
        assert_eq!(NonceRange::parse("0x10..0x20", s), Ok(NonceRange::new(16, 32)));
        assert!(NonceRange::parse("10..10", s).is_err());
        assert!(NonceRange::parse("0..4294967297", s).is_err());
        assert!(NonceRange::parse("a..b", s).is_err());
        assert!(NonceRange::parse("12", s).is_err());
        let s64 = 1u128 << 64;
        assert_eq!(
            NonceRange::parse("18446744073709551000..", s64),
            Ok(NonceRange::new(18446744073709551000, s64))
        );
    }

    #[test]
    fn bad_puzzles_are_refused() {
        assert!(Puzzle::append(vec![0; MAX_BLOCK_BYTES + 1], Encoding::Be32, 1).is_err());
        assert!(Puzzle::append(vec![], Encoding::Be32, 257).is_err());
        assert!(Puzzle::new(Layout::Header { header: vec![0; 79] }, Target::LeadingZeros(1)).is_err());
    }

    #[test]
    fn nonce_outside_space_is_never_golden() {
        let p = Puzzle::append(b"x".to_vec(), Encoding::Be32, 0).expect("valid");
        assert!(verify(&p, 7).golden);
        assert!(!verify(&p, 1 << 32).golden);
    }
}
