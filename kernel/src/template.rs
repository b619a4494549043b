//! The nonce-independent part of a puzzle, precomputed once per job.

use super::sha256::{compress, load_block, IV};
use protocol::{Encoding, Puzzle};

/// Midstate plus the variable tail of the first hash, as big-endian words.
///
/// The nonce's bytes fall inside a *window* of four consecutive tail words starting at word
/// `window`; for nonce `n` the window's contribution is `value(n) << shift` as a 128-bit
/// big-endian number, OR'd into those words. This one formula covers every block length,
/// nonces that straddle a word or a 64-byte block boundary, and both byte orders.
#[derive(Clone, Debug)]
pub struct Template {
    pub(crate) encoding: Encoding,
    pub(crate) reversed: bool,
    pub(crate) midstate: [u32; 8],
    /// One or two 64-byte blocks of tail with padding; nonce bytes are zero.
    pub(crate) words: [u32; 32],
    pub(crate) blocks: usize,
    pub(crate) window: usize,
    pub(crate) shift: u32,
}

impl Template {
    /// The precomputation for `puzzle`: once per puzzle, shared by every scan of it.
    pub fn new(puzzle: &Puzzle) -> Self {
        let (prefix, encoding) = puzzle.prefix();
        let width = encoding.width();
        // Every whole 64-byte block before the nonce goes into the midstate.
        let first_var = prefix.len() / 64;
        let mut midstate = IV;
        for block in prefix[..first_var * 64].chunks_exact(64) {
            compress(&mut midstate, &load_block(block));
        }
        let rest = &prefix[first_var * 64..];
        let total_bits = ((prefix.len() + width) as u64) * 8;
        let used = rest.len() + width;
        let blocks = if used + 9 <= 64 { 1 } else { 2 };
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[used] = 0x80;
        let len_at = blocks * 64 - 8;
        tail[len_at..len_at + 8].copy_from_slice(&total_bits.to_be_bytes());
        let mut words = [0u32; 32];
        for (i, w) in words.iter_mut().enumerate() {
            *w = u32::from_be_bytes([tail[4 * i], tail[4 * i + 1], tail[4 * i + 2], tail[4 * i + 3]]);
        }
        let nonce_at = rest.len();
        // nonce_at + width <= 119, so the window never runs past word 31.
        let window = (nonce_at / 4).min(28);
        let shift = 8 * (16 - (nonce_at - 4 * window) - width) as u32;
        Template { encoding, reversed: puzzle.reversed(), midstate, words, blocks, window, shift }
    }

    /// The nonce as the integer whose big-endian bytes are its encoding.
    #[inline(always)]
    pub(crate) fn value(&self, nonce: u64) -> u64 {
        match self.encoding {
            Encoding::Be32 => u64::from(nonce as u32),
            Encoding::Le32 => u64::from((nonce as u32).swap_bytes()),
            Encoding::Be64 => nonce,
            Encoding::Le64 => nonce.swap_bytes(),
        }
    }

    /// The window's four words for `nonce` (nonce bits only; OR them into `words`).
    #[inline(always)]
    pub(crate) fn window_words(&self, nonce: u64) -> [u32; 4] {
        let v = u128::from(self.value(nonce)) << self.shift;
        [(v >> 96) as u32, (v >> 64) as u32, (v >> 32) as u32, v as u32]
    }

    /// The tail words with `nonce` written in.
    #[inline(always)]
    pub(crate) fn words_for(&self, nonce: u64) -> [u32; 32] {
        let mut w = self.words;
        for (i, x) in self.window_words(nonce).into_iter().enumerate() {
            w[self.window + i] |= x;
        }
        w
    }

    /// The first hash word in display order: the reference path every backend must match.
    pub fn key_portable(&self, nonce: u64) -> u32 {
        let w = self.words_for(nonce);
        let mut state = self.midstate;
        let mut block = [0u32; 16];
        block.copy_from_slice(&w[..16]);
        compress(&mut state, &block);
        if self.blocks == 2 {
            block.copy_from_slice(&w[16..]);
            compress(&mut state, &block);
        }
        let mut second = [0u32; 16];
        second[..8].copy_from_slice(&state);
        second[8] = 0x8000_0000;
        second[15] = 256;
        let mut out = IV;
        compress(&mut out, &second);
        self.key_of(&out)
    }

    /// The portable scan of `start..start+count`: the reference loop, and every fast
    /// backend's tail (the nonces that do not fill a group of lanes).
    pub(crate) fn scan_portable(
        &self,
        start: u64,
        count: u64,
        mut threshold: u32,
        on_candidate: &mut dyn FnMut(u64) -> u32,
    ) {
        // Counted, not `start..start + count`: a range may end exactly at 2^64.
        for nonce in (0..count).map(|i| start.wrapping_add(i)) {
            if self.key_portable(nonce) <= threshold {
                threshold = on_candidate(nonce);
            }
        }
    }

    /// The scan every vector backend shares: `keys(base, threshold)` hashes the `L` nonces from
    /// `base` and returns their keys, or `None` when it already knows none is at most
    /// `threshold`; whole groups go through it, the rest the portable way.
    #[inline(always)]
    pub(crate) fn scan_groups<const L: usize>(
        &self,
        start: u64,
        count: u64,
        mut threshold: u32,
        on_candidate: &mut dyn FnMut(u64) -> u32,
        mut keys: impl FnMut(u64, u32) -> Option<[u32; L]>,
    ) {
        let groups = count / L as u64;
        for g in 0..groups {
            let base = start.wrapping_add(g * L as u64);
            let Some(keys) = keys(base, threshold) else { continue };
            for (l, &key) in keys.iter().enumerate() {
                if key <= threshold {
                    threshold = on_candidate(base.wrapping_add(l as u64));
                }
            }
        }
        let done = groups * L as u64;
        self.scan_portable(start.wrapping_add(done), count - done, threshold, on_candidate);
    }

    /// The key from the second hash's output state.
    #[inline(always)]
    pub(crate) fn key_of(&self, out: &[u32; 8]) -> u32 {
        if self.reversed {
            out[7].swap_bytes()
        } else {
            out[0]
        }
    }
}
