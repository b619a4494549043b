//! The hashing kernel: double SHA-256 of `prefix || nonce` for a run of nonces, reporting
//! only the nonces whose hash might be golden.
//!
//! A [`Template`] is built once per puzzle: the midstate of every 64-byte block before the
//! nonce and the variable tail (one or two blocks, padding in place). Backends hash only the
//! tail and the fixed-shape second block per nonce, and test the first word of the hash
//! against [`protocol::Puzzle::key_threshold`] before anything else. Candidates are re-checked
//! with [`protocol::verify`] by the caller: a kernel proposes, `verify` decides.
//!
//! Backends, fastest first: SHA-NI with interleaved lanes, AVX2 eight-way, portable Rust. All
//! give identical answers (property-tested); `NONCE_KERNEL=shani|avx2|portable` forces one.

pub mod sha256;
mod template;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod shani;

use protocol::Puzzle;
pub use template::Template;

/// Nonces the SHA-NI backend hashes in lockstep (measured best on Zen: see `noncectl bench`).
#[cfg(target_arch = "x86_64")]
pub const SHANI_LANES: usize = 4;

/// Which implementation hashes. All give identical answers; they differ only in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Plain Rust, any CPU.
    Portable,
    /// x86-64 AVX2, eight nonces per instruction stream.
    Avx2,
    /// x86-64 SHA extensions, several nonces interleaved.
    ShaNi,
}

impl Backend {
    /// The fastest backend this CPU supports, unless `NONCE_KERNEL` names a supported one.
    pub fn detect() -> Backend {
        if let Some(forced) = std::env::var("NONCE_KERNEL").ok().and_then(|n| Backend::from_name(&n)) {
            if forced.is_supported() {
                return forced;
            }
        }
        Backend::available()[0]
    }

    /// Every backend this CPU supports, fastest first.
    pub fn available() -> Vec<Backend> {
        [Backend::ShaNi, Backend::Avx2, Backend::Portable].into_iter().filter(|b| b.is_supported()).collect()
    }

    pub fn is_supported(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => avx2::supported(),
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => shani::supported(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::Avx2 => "avx2",
            Backend::ShaNi => "shani",
        }
    }

    pub fn from_name(name: &str) -> Option<Backend> {
        match name.trim() {
            "portable" => Some(Backend::Portable),
            "avx2" => Some(Backend::Avx2),
            "shani" => Some(Backend::ShaNi),
            _ => None,
        }
    }
}

/// A template bound to a backend: the object the search threads drive.
#[derive(Clone, Debug)]
pub struct Kernel {
    template: Template,
    backend: Backend,
    threshold: u32,
    #[cfg(target_arch = "x86_64")]
    shani: Option<shani::Prepared>,
}

impl Kernel {
    /// A kernel for `puzzle`; an unsupported `backend` falls back to the portable one.
    pub fn new(puzzle: &Puzzle, backend: Backend) -> Self {
        let backend = if backend.is_supported() { backend } else { Backend::Portable };
        let template = Template::new(puzzle);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only built when the CPU has the SHA extensions (checked just above).
        let shani = (backend == Backend::ShaNi).then(|| unsafe { shani::Prepared::new(&template) });
        Kernel {
            template,
            backend,
            threshold: puzzle.key_threshold(),
            #[cfg(target_arch = "x86_64")]
            shani,
        }
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
    pub fn scan(&self, start: u64, count: u64, threshold: u32, on_candidate: &mut dyn FnMut(u64) -> u32) {
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => {
                if let Some(p) = &self.shani {
                    // SAFETY: `shani` is only Some when `Kernel::new` found the SHA extensions.
                    unsafe {
                        shani::scan::<SHANI_LANES>(&self.template, p, start, count, threshold, on_candidate)
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::new` keeps Avx2 only when the CPU supports AVX2.
            Backend::Avx2 => unsafe { avx2::scan(&self.template, start, count, threshold, on_candidate) },
            _ => self.template.scan_portable(start, count, threshold, on_candidate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use protocol::{verify, Encoding, Layout, Target};

    fn key_of(p: &Puzzle, n: u64) -> u32 {
        let h = verify(p, n).hash;
        u32::from_be_bytes([h[0], h[1], h[2], h[3]])
    }

    /// Every nonce whose key is at most `threshold`, by one backend.
    fn candidates(k: &Kernel, start: u64, count: u64, threshold: u32) -> Vec<u64> {
        let mut got = vec![];
        k.scan(start, count, threshold, &mut |n| {
            got.push(n);
            threshold
        });
        got
    }

    #[test]
    fn portable_matches_verify_for_every_length_and_encoding() {
        for len in 0..200usize {
            let block: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for enc in [Encoding::Be32, Encoding::Le32, Encoding::Be64, Encoding::Le64] {
                let p = Puzzle::append(block.clone(), enc, 0).expect("valid");
                let t = Template::new(&p);
                for n in [0u64, 1, 0xdead_beef, u64::from(u32::MAX)] {
                    assert_eq!(t.key_portable(n), key_of(&p, n), "len {len} {enc}");
                }
            }
        }
    }

    #[test]
    fn header_key_is_the_reversed_hash() {
        let p = Puzzle::new(Layout::Header { header: (0..80).collect() }, Target::Compact(0x1d00ffff))
            .expect("valid");
        let t = Template::new(&p);
        for n in 0..50 {
            assert_eq!(t.key_portable(n), key_of(&p, n));
        }
    }

    fn arb_puzzle() -> impl Strategy<Value = Puzzle> {
        prop_oneof![
            4 => (proptest::collection::vec(any::<u8>(), 0..300), 0usize..4).prop_map(|(block, e)| {
                let enc = [Encoding::Be32, Encoding::Le32, Encoding::Be64, Encoding::Le64][e];
                Puzzle::append(block, enc, 0).expect("valid")
            }),
            1 => proptest::collection::vec(any::<u8>(), 80).prop_map(|header| {
                Puzzle::new(Layout::Header { header }, Target::LeadingZeros(0)).expect("valid")
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Every backend proposes exactly the nonces whose verified hash passes the key test.
        #[test]
        fn every_backend_equals_verify(p in arb_puzzle(), start in any::<u64>(), count in 0u64..150, shift in 0u32..6) {
            let space = p.encoding().space_end();
            let start = (u128::from(start) % space) as u64;
            let count = count.min((space - u128::from(start)) as u64);
            // A threshold that passes about 1 in 2^shift keys, so candidates are many and varied.
            let threshold = u32::MAX >> shift;
            let want: Vec<u64> = (0..count).map(|i| start + i).filter(|&n| key_of(&p, n) <= threshold).collect();
            for backend in Backend::available() {
                let k = Kernel::new(&p, backend);
                prop_assert_eq!(&candidates(&k, start, count, threshold), &want, "{}", backend.name());
            }
        }
    }

    #[test]
    fn forced_portable_is_available_everywhere() {
        assert!(Backend::available().contains(&Backend::Portable));
        assert_eq!(Backend::from_name("portable"), Some(Backend::Portable));
    }
}
