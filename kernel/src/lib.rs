//! The hashing kernel: double SHA-256 of `prefix || nonce` for a run of nonces, reporting
//! only the nonces whose hash might be golden.
//!
//! A [`Template`] is built once per puzzle: the midstate of every 64-byte block before the
//! nonce and the variable tail (one or two blocks, padding in place). Backends hash only the
//! tail and the fixed-shape second block per nonce, and test the first word of the hash
//! against [`protocol::Puzzle::key_threshold`] before anything else. Candidates are re-checked
//! with [`protocol::verify`] by the caller: a kernel proposes, `verify` decides.
//!
//! Backends, fastest first: a GPU through wgpu (the `gpu` feature; auto-detected only on GPU
//! hardware), AVX-512 sixteen-way (on Zen 5 it beats SHA-NI, whose `sha256rnds2` issues only
//! every other cycle there), SHA-NI with interleaved lanes, AVX2 eight-way, portable Rust. All
//! give identical answers (property-tested); [`Backend::choose`] takes a program's forced one
//! (`NONCE_KERNEL=gpu|avx512|shani|avx2|portable`, read by the programs, never here).

#![warn(missing_docs)]

pub mod bench;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod sha256;
mod template;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
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
    /// x86-64 AVX-512 (F, BW), sixteen nonces per instruction stream.
    Avx512,
    /// x86-64 SHA extensions, several nonces interleaved.
    ShaNi,
    /// A GPU (or, when forced, a software Vulkan adapter) through wgpu: the `gpu` feature.
    Gpu,
}

/// Why a named backend cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The name is none of the backends.
    #[error("{0:?}: expected gpu, avx512, shani, avx2 or portable")]
    Unknown(String),
    /// This CPU lacks the instructions it needs.
    #[error("{}: this CPU does not support it", .0.name())]
    Unsupported(Backend),
    /// The GPU backend was asked for in a build without the `gpu` feature.
    #[error("gpu: this build has no GPU backend (build with `--features nonce-kernel/gpu`)")]
    NotBuilt,
    /// The GPU backend was asked for and no adapter opened.
    #[cfg(feature = "gpu")]
    #[error("gpu: {0}")]
    NoGpu(gpu::GpuError),
}

impl Backend {
    /// The fastest backend this CPU supports.
    ///
    /// Never the GPU: opening Vulkan costs start-up time and Mesa writes to stderr when it
    /// loads, so `noncectl` and `nonced` use the GPU only when forced (`NONCE_KERNEL=gpu`,
    /// `--backend gpu`); `nonce-worker` asks [`Backend::detect_with_gpu`].
    pub fn detect() -> Backend {
        Backend::fastest_cpu()
    }

    /// `detect`, but a hardware GPU first: `Gpu` when an adapter that is a real GPU opens
    /// (lavapipe, a CPU, does not count). It opens Vulkan (its loader and drivers, which may
    /// write to stderr): for the worker, whose stderr is its log, not for `noncectl`'s
    /// one-line errors.
    pub fn detect_with_gpu() -> Backend {
        #[cfg(feature = "gpu")]
        if gpu::adapter().is_ok_and(|a| a.hardware) {
            return Backend::Gpu;
        }
        Backend::detect()
    }

    /// The backend a program was told to use (`NONCE_KERNEL`, a `--backend` flag): the
    /// fastest supported when `name` is `None` or blank, else the one named, if this CPU
    /// runs it. The error says which and why; the caller names where it came from.
    pub fn choose(name: Option<&str>) -> Result<Backend, BackendError> {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else { return Ok(Backend::detect()) };
        let b = Backend::from_name(name).ok_or_else(|| BackendError::Unknown(name.to_string()))?;
        if b == Backend::Gpu {
            #[cfg(not(feature = "gpu"))]
            return Err(BackendError::NotBuilt);
            #[cfg(feature = "gpu")]
            return gpu::adapter().map(|_| b).map_err(BackendError::NoGpu);
        }
        if !b.is_supported() {
            return Err(BackendError::Unsupported(b));
        }
        Ok(b)
    }

    /// Every backend this machine runs, fastest first: the GPU first when it is hardware,
    /// last when it is a software adapter (lavapipe: slower than any CPU backend).
    pub fn available() -> Vec<Backend> {
        let cpu = [Backend::Avx512, Backend::ShaNi, Backend::Avx2, Backend::Portable];
        let all: Vec<Backend> = cpu.into_iter().filter(|b| b.is_supported()).collect();
        #[cfg(feature = "gpu")]
        if let Ok(adapter) = gpu::adapter() {
            let at = if adapter.hardware { 0 } else { all.len() };
            return [&all[..at], &[Backend::Gpu], &all[at..]].concat();
        }
        all
    }

    /// The fastest CPU backend (what hashes beside a GPU, and where a failed GPU hands over).
    pub fn fastest_cpu() -> Backend {
        [Backend::Avx512, Backend::ShaNi, Backend::Avx2]
            .into_iter()
            .find(|b| b.is_supported())
            .unwrap_or(Backend::Portable)
    }

    /// Whether this machine can run it (for `Gpu`: an adapter opened, hardware or not).
    pub fn is_supported(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(feature = "gpu")]
            Backend::Gpu => gpu::adapter().is_ok(),
            #[cfg(not(feature = "gpu"))]
            Backend::Gpu => false,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => avx2::supported(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => avx512::supported(),
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => shani::supported(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The name `NONCE_KERNEL` and `--backend` take.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::ShaNi => "shani",
            Backend::Gpu => "gpu",
        }
    }

    /// The backend a name means (on any CPU: see [`Backend::is_supported`]).
    pub fn from_name(name: &str) -> Option<Backend> {
        match name.trim() {
            "portable" => Some(Backend::Portable),
            "avx2" => Some(Backend::Avx2),
            "avx512" => Some(Backend::Avx512),
            "shani" => Some(Backend::ShaNi),
            "gpu" => Some(Backend::Gpu),
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
    #[cfg(target_arch = "x86_64")]
    avx512: Option<avx512::Prepared>,
    /// The device's buffers for this template, and the CPU kernel that finishes a scan the
    /// device failed (a lost device never loses nonces).
    #[cfg(feature = "gpu")]
    gpu: Option<(std::sync::Arc<gpu::Prepared>, Box<Kernel>)>,
}

impl Kernel {
    /// A kernel for `puzzle`; an unsupported `backend` falls back to the portable one.
    pub fn new(puzzle: &Puzzle, backend: Backend) -> Self {
        let backend = if backend.is_supported() { backend } else { Backend::Portable };
        let template = Template::new(puzzle);
        #[cfg(feature = "gpu")]
        let gpu = match backend {
            Backend::Gpu => gpu::Prepared::new(&template)
                .ok()
                .map(|p| (std::sync::Arc::new(p), Box::new(Kernel::new(puzzle, Backend::fastest_cpu())))),
            _ => None,
        };
        #[cfg(feature = "gpu")]
        let backend = if backend == Backend::Gpu && gpu.is_none() { Backend::fastest_cpu() } else { backend };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only built when the CPU has the SHA extensions (checked just above).
        let shani = (backend == Backend::ShaNi).then(|| unsafe { shani::Prepared::new(&template) });
        #[cfg(target_arch = "x86_64")]
        let avx512 = (backend == Backend::Avx512).then(|| avx512::Prepared::new(&template));
        Kernel {
            template,
            backend,
            threshold: puzzle.key_threshold(),
            #[cfg(target_arch = "x86_64")]
            shani,
            #[cfg(target_arch = "x86_64")]
            avx512,
            #[cfg(feature = "gpu")]
            gpu,
        }
    }

    /// Nonces one `scan` call should take: about 2 ms of hashing on a CPU backend; on the
    /// GPU, one dispatch of about [`gpu::DISPATCH_TARGET`] as last measured. A GPU given up
    /// hints the CPU's size: a GPU-sized chunk would take one CPU thread seconds, and shrink,
    /// revoke and progress wait for a chunk.
    pub fn chunk_hint(&self) -> u64 {
        #[cfg(feature = "gpu")]
        if let Some((p, _)) = &self.gpu {
            if !p.lost() {
                return p.batch();
            }
        }
        1 << 16
    }

    /// The GPU adapter it hashes on, if its backend is the GPU.
    #[cfg(feature = "gpu")]
    pub fn adapter(&self) -> Option<&gpu::AdapterInfo> {
        self.gpu.as_ref().map(|(p, _)| p.adapter())
    }

    /// The backend it hashes with: a GPU kernel whose device failed says the CPU backend
    /// it hashes on since.
    pub fn backend(&self) -> Backend {
        #[cfg(feature = "gpu")]
        if let Some((p, cpu)) = &self.gpu {
            if p.lost() {
                return cpu.backend();
            }
        }
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
            Backend::Avx512 => {
                if let Some(p) = &self.avx512 {
                    // SAFETY: `avx512` is only Some when `Kernel::new` found AVX-512 F and BW.
                    unsafe { avx512::scan(&self.template, p, start, count, threshold, on_candidate) }
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::new` keeps Avx2 only when the CPU supports AVX2.
            Backend::Avx2 => unsafe { avx2::scan(&self.template, start, count, threshold, on_candidate) },
            #[cfg(feature = "gpu")]
            Backend::Gpu => {
                if let Some((p, cpu)) = &self.gpu {
                    if let Err((done, threshold)) = p.scan(start, count, threshold, on_candidate) {
                        cpu.scan(start.wrapping_add(done), count - done, threshold, on_candidate);
                    }
                }
            }
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

    /// Leading zero bits of the double SHA-256 of `message`, in display order, computed with
    /// the `sha2` crate alone (independent of the kernel, the template and `verify`).
    fn independent_zeros(message: &[u8], reversed: bool) -> u32 {
        use sha2::{Digest, Sha256};
        let mut h: [u8; 32] = Sha256::digest(Sha256::digest(message)).into();
        if reversed {
            h.reverse();
        }
        let mut zeros = 0;
        for b in h {
            zeros += b.leading_zeros();
            if b != 0 {
                break;
            }
        }
        zeros
    }

    /// Nonces near 32-bit difficulty (found with the kernel, checked with Python's hashlib):
    /// each backend's early exit and key test must keep exactly the right ones at
    /// difficulties 31..34, and the golden ones must be exactly those with enough zeros.
    #[test]
    fn early_exits_at_difficulties_around_32_bits() {
        let genesis = hex_bytes(
            "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b2\
             7ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
        );
        let coursework = b"COMSM0010cloud".to_vec();
        // (layout, nonce, leading zero bits of its hash)
        let cases: Vec<(Layout, u64, u32)> = vec![
            (Layout::Append { block: coursework.clone(), encoding: Encoding::Be32 }, 3414715023, 32),
            (Layout::Append { block: coursework.clone(), encoding: Encoding::Be32 }, 2475683680, 31),
            (Layout::Append { block: coursework.clone(), encoding: Encoding::Be32 }, 346714796, 31),
            (Layout::Append { block: coursework.clone(), encoding: Encoding::Be64 }, 1811918947, 33),
            (Layout::Append { block: coursework, encoding: Encoding::Be64 }, 1047131473, 31),
            (Layout::Header { header: genesis }, 2083236893, 43),
        ];
        for (layout, nonce, zeros) in cases {
            for difficulty in [31, 32, 33, 34, zeros, zeros + 1] {
                let p = Puzzle::new(layout.clone(), Target::LeadingZeros(difficulty)).expect("valid");
                assert_eq!(independent_zeros(&p.message(nonce), p.reversed()), zeros);
                // A window around the nonce that does not start on a lane boundary.
                let start = nonce - 37;
                let want_golden: Vec<u64> = (start..start + 100)
                    .filter(|&n| independent_zeros(&p.message(n), p.reversed()) >= difficulty)
                    .collect();
                assert_eq!(want_golden.contains(&nonce), zeros >= difficulty);
                for backend in Backend::available() {
                    let k = Kernel::new(&p, backend);
                    let threshold = k.threshold();
                    let got = candidates(&k, start, 100, threshold);
                    let want: Vec<u64> =
                        (start..start + 100).filter(|&n| key_of(&p, n) <= threshold).collect();
                    assert_eq!(got, want, "{} d{difficulty} {p:?}", backend.name());
                    assert!(got.contains(&nonce) || zeros < difficulty, "{} d{difficulty}", backend.name());
                    let golden: Vec<u64> = got.into_iter().filter(|&n| verify(&p, n).golden).collect();
                    assert_eq!(golden, want_golden, "{} d{difficulty} {p:?}", backend.name());
                }
            }
        }
    }

    /// 64-bit encodings where a group of lanes crosses a 2^32 boundary or ends at 2^64.
    #[test]
    fn sixty_four_bit_groups_cross_word_boundaries() {
        for enc in [Encoding::Be64, Encoding::Le64] {
            for len in [0usize, 3, 12, 14, 52, 60] {
                let p = Puzzle::append(vec![b'x'; len], enc, 0).expect("valid");
                for start in [(1u64 << 32) - 21, (7u64 << 32) - 5, u64::MAX - 69] {
                    let count = u64::MAX - start + 1;
                    let count = count.min(70);
                    let threshold = u32::MAX >> 3;
                    let want: Vec<u64> =
                        (0..count).map(|i| start + i).filter(|&n| key_of(&p, n) <= threshold).collect();
                    for backend in Backend::available() {
                        let k = Kernel::new(&p, backend);
                        assert_eq!(
                            candidates(&k, start, count, threshold),
                            want,
                            "{} {enc} len {len}",
                            backend.name()
                        );
                    }
                }
            }
        }
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    /// Built with the GPU backend, the tests above must have run it: no adapter is a loud
    /// failure (CI installs Mesa's lavapipe), never a silent CPU-only pass.
    #[cfg(feature = "gpu")]
    #[test]
    fn the_gpu_backend_is_among_those_tested() {
        let adapter = gpu::adapter().expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)");
        assert!(Backend::available().contains(&Backend::Gpu), "{adapter:?}");
        assert_eq!(Backend::choose(Some("gpu")), Ok(Backend::Gpu));
        let k = Kernel::new(&Puzzle::append(b"x".to_vec(), Encoding::Be32, 8).expect("valid"), Backend::Gpu);
        assert_eq!(k.backend(), Backend::Gpu, "no fallback to a CPU backend");
        assert_eq!(k.adapter(), Some(&adapter));
        // A worker's unasked choice takes a hardware GPU only: lavapipe is slower than the CPU.
        let unasked = Backend::detect_with_gpu();
        assert_eq!(unasked == Backend::Gpu, adapter.hardware, "{adapter} gave {unasked:?}");
    }

    /// A GPU scan far longer than one dispatch, with a threshold that passes every key at
    /// first and the best key after (what a search does): it hands over the same nonces, in
    /// order, as a CPU backend, however the dispatches were cut.
    #[cfg(feature = "gpu")]
    #[test]
    fn a_long_gpu_scan_tracking_the_best_key_equals_the_cpu() {
        let p = Puzzle::append(b"COMSM0010cloud".to_vec(), Encoding::Be32, 20).expect("valid");
        let run = |backend| {
            let k = Kernel::new(&p, backend);
            let mut best = u32::MAX;
            let mut seen = vec![];
            k.scan(3_000_000_000, 3_000_000, u32::MAX, &mut |n| {
                let key = key_of(&p, n);
                seen.push((n, key));
                best = best.min(key);
                best.max(k.threshold())
            });
            seen
        };
        let gpu = run(Backend::Gpu);
        assert_eq!(gpu, run(Backend::fastest_cpu()));
        assert!(gpu.len() > 10, "{gpu:?}");
    }

    /// A device that fails mid-scan (here after two dispatches, as a lost device would):
    /// the rest of the range is hashed on the CPU, every candidate handed over as a CPU
    /// backend hands it, the kernel says it hashes on the CPU now, and later scans do not
    /// wait for the dead device again.
    #[cfg(feature = "gpu")]
    #[test]
    fn a_gpu_that_fails_mid_scan_loses_no_nonce_and_is_given_up() {
        use std::sync::atomic::Ordering::Relaxed;
        let p = Puzzle::append(b"COMSM0010cloud".to_vec(), Encoding::Be32, 20).expect("valid");
        let cpu = Kernel::new(&p, Backend::fastest_cpu());
        let gpu = Kernel::new(&p, Backend::Gpu);
        let Some((prepared, _)) = &gpu.gpu else { panic!("a GPU kernel (lavapipe in CI)") };
        prepared.fail_after.store(2, Relaxed);
        let (start, count) = (3_000_000_000, 2_000_000);
        let threshold = 1 << 20;
        assert_eq!(candidates(&gpu, start, count, threshold), candidates(&cpu, start, count, threshold));
        assert_eq!(gpu.backend(), Backend::fastest_cpu(), "it says where it hashes now");
        assert_eq!(gpu.chunk_hint(), cpu.chunk_hint(), "and asks for CPU-sized chunks");
        prepared.fail_after.store(u64::MAX, Relaxed);
        assert_eq!(candidates(&gpu, 0, 100_000, threshold), candidates(&cpu, 0, 100_000, threshold));
        assert_eq!(prepared.fail_after.load(Relaxed), u64::MAX, "no dispatch after the failure");
    }

    #[test]
    fn forced_portable_is_available_everywhere() {
        assert!(Backend::available().contains(&Backend::Portable));
        assert_eq!(Backend::from_name("portable"), Some(Backend::Portable));
    }
}
