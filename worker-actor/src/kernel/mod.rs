//! The hashing kernel: double SHA-256 of `prefix || nonce` for a run of nonces, reporting
//! only the nonces whose hash might be golden.
//!
//! A [`Template`] is built once per puzzle: the midstate of every 64-byte block before the
//! nonce, and the variable tail (one or two blocks, nonce bytes blank, padding in place).
//! Backends then only hash the tail and the fixed-shape second block per nonce, and test the
//! first word of the hash against [`protocol::Puzzle::key_threshold`] before anything else.
//! Candidates are re-checked with [`protocol::verify`] by the caller: a kernel proposes,
//! `verify` decides.

pub mod sha256;

use protocol::{Encoding, Puzzle};
use sha256::{compress, load_block, IV};

/// The precomputed, nonce-independent part of a puzzle.
#[derive(Clone, Debug)]
pub struct Template {
    encoding: Encoding,
    reversed: bool,
    midstate: [u32; 8],
    /// Message tail with padding; the nonce bytes at `nonce_at` are zero.
    tail: [u8; 128],
    tail_blocks: usize,
    nonce_at: usize,
}

impl Template {
    pub fn new(puzzle: &Puzzle) -> Self {
        let (prefix, encoding) = puzzle.prefix();
        let first_var = prefix.len() / 64;
        let mut midstate = IV;
        for block in prefix[..first_var * 64].chunks_exact(64) {
            compress(&mut midstate, &load_block(block));
        }
        let rest = &prefix[first_var * 64..];
        let total_bits = ((prefix.len() + encoding.width()) as u64) * 8;
        let used = rest.len() + encoding.width();
        // 0x80 plus the 8-byte length must fit after the message bytes.
        let tail_blocks = if used + 9 <= 64 { 1 } else { 2 };
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[used] = 0x80;
        let len_at = tail_blocks * 64 - 8;
        tail[len_at..len_at + 8].copy_from_slice(&total_bits.to_be_bytes());
        Template { encoding, reversed: puzzle.reversed(), midstate, tail, tail_blocks, nonce_at: rest.len() }
    }

    /// The first hash word in display order for `nonce`, by the portable path.
    fn key_portable(&self, buf: &mut [u8; 128], nonce: u64) -> u32 {
        self.encoding.write(nonce, &mut buf[self.nonce_at..]);
        let mut state = self.midstate;
        compress(&mut state, &load_block(&buf[..64]));
        if self.tail_blocks == 2 {
            compress(&mut state, &load_block(&buf[64..]));
        }
        let mut second = [0u32; 16];
        second[..8].copy_from_slice(&state);
        second[8] = 0x8000_0000;
        second[15] = 256;
        let mut out = IV;
        compress(&mut out, &second);
        if self.reversed {
            out[7].swap_bytes()
        } else {
            out[0]
        }
    }
}

/// Which implementation hashes. All give identical answers; they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Plain Rust, any CPU.
    Portable,
}

impl Backend {
    /// The fastest backend this CPU supports (or `NONCE_KERNEL` when set to a supported name).
    pub fn detect() -> Backend {
        Backend::Portable
    }

    /// Every backend usable on this CPU.
    pub fn available() -> Vec<Backend> {
        vec![Backend::Portable]
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
        }
    }
}

/// A template bound to a backend: the object the search threads drive.
#[derive(Clone, Debug)]
pub struct Kernel {
    template: Template,
    backend: Backend,
    threshold: u32,
}

impl Kernel {
    pub fn new(puzzle: &Puzzle, backend: Backend) -> Self {
        Kernel { template: Template::new(puzzle), backend, threshold: puzzle.key_threshold() }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The golden pre-test threshold of the puzzle.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Hashes nonces `start..start + count` and calls `on_candidate(nonce)` for each whose key is
    /// at most `threshold`; the callback returns the threshold to use from then on (so callers
    /// can also track the best hash). Nonces must lie inside the puzzle's space.
    pub fn scan(&self, start: u64, count: u64, mut threshold: u32, on_candidate: &mut dyn FnMut(u64) -> u32) {
        match self.backend {
            Backend::Portable => {
                let mut buf = self.template.tail;
                // Counted, not `start..start + count`: a range may end exactly at 2^64.
                for nonce in (0..count).map(|i| start.wrapping_add(i)) {
                    if self.template.key_portable(&mut buf, nonce) <= threshold {
                        threshold = on_candidate(nonce);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{verify, Layout, Target};

    fn key_of(p: &Puzzle, n: u64) -> u32 {
        let h = verify(p, n).hash;
        u32::from_be_bytes([h[0], h[1], h[2], h[3]])
    }

    #[test]
    fn every_length_and_encoding_matches_verify() {
        for len in 0..200usize {
            let block: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for enc in [Encoding::Be32, Encoding::Le32, Encoding::Be64, Encoding::Le64] {
                let p = Puzzle::append(block.clone(), enc, 0).expect("valid");
                let t = Template::new(&p);
                let mut buf = t.tail;
                for n in [0u64, 1, 0xdead_beef, u64::from(u32::MAX)] {
                    assert_eq!(t.key_portable(&mut buf, n), key_of(&p, n), "len {len} {enc}");
                }
            }
        }
    }

    #[test]
    fn header_key_is_the_reversed_hash() {
        let p = Puzzle::new(Layout::Header { header: (0..80).collect() }, Target::Compact(0x1d00ffff))
            .expect("valid");
        let t = Template::new(&p);
        let mut buf = t.tail;
        for n in 0..50 {
            assert_eq!(t.key_portable(&mut buf, n), key_of(&p, n));
        }
    }
}
