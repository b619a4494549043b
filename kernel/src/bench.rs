//! Hash-rate measurement: the kernel on N threads, and a single-stream SHA-256 reference to
//! express it as a ratio (machines are shared and noisy; ratios measured together are not).

use crate::{Backend, Kernel};
use protocol::{Encoding, Layout, Puzzle, Target};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a benchmark run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The backend measured.
    pub backend: Backend,
    /// The GPU adapter and its driver, when the backend is the GPU.
    pub adapter: Option<String>,
    /// What it hashed.
    pub puzzle: BenchPuzzle,
    /// Threads hashing at once.
    pub threads: usize,
    /// Total nonces per second.
    pub rate: f64,
    /// Nonces per second of each thread.
    pub per_thread: Vec<f64>,
    /// One dependent stream of SHA-256 compressions per second (what `openssl speed` measures).
    pub single_stream_compressions: f64,
}

impl BenchResult {
    /// Per-thread rate over the single-stream limit of two compressions per nonce.
    pub fn ratio_to_single_stream(&self) -> f64 {
        let per_thread = self.rate / self.threads as f64;
        per_thread / (self.single_stream_compressions / 2.0)
    }
}

/// What the benchmark hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchPuzzle {
    /// `COMSM0010cloud` with a big-endian 32-bit nonce (the default puzzle).
    Coursework,
    /// A Bitcoin 80-byte header (the genesis block's): nonce little-endian at bytes 76..80, key
    /// from the byte-reversed hash.
    Header,
}

impl BenchPuzzle {
    /// In words, for the bench's report.
    pub fn name(self) -> &'static str {
        match self {
            BenchPuzzle::Coursework => "COMSM0010cloud be32",
            BenchPuzzle::Header => "bitcoin header",
        }
    }

    /// The puzzle at difficulty 256: no candidates, so the bench is the pure kernel loop.
    pub fn puzzle(self) -> Puzzle {
        let p = match self {
            BenchPuzzle::Coursework => Puzzle::append(b"COMSM0010cloud".to_vec(), Encoding::Be32, 256),
            BenchPuzzle::Header => {
                Puzzle::new(Layout::Header { header: GENESIS.to_vec() }, Target::LeadingZeros(256))
            }
        };
        match p {
            Ok(p) => p,
            Err(e) => unreachable!("the bench puzzles are valid: {e}"),
        }
    }
}

/// Bitcoin's genesis block header.
const GENESIS: [u8; 80] = [
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x3b, 0xa3, 0xed, 0xfd, 0x7a, 0x7b, 0x12, 0xb2, 0x7a, 0xc7, 0x2c, 0x3e, 0x67, 0x76, 0x8f,
    0x61, 0x7f, 0xc8, 0x1b, 0xc3, 0x88, 0x8a, 0x51, 0x32, 0x3a, 0x9f, 0xb8, 0xaa, 0x4b, 0x1e, 0x5e, 0x4a,
    0x29, 0xab, 0x5f, 0x49, 0xff, 0xff, 0x00, 0x1d, 0x1d, 0xac, 0x2b, 0x7c,
];

/// Hashes the default puzzle with `threads` threads for `duration` and measures the
/// single-stream reference.
pub fn run(backend: Backend, threads: usize, duration: Duration) -> BenchResult {
    run_puzzle(BenchPuzzle::Coursework, backend, threads, duration)
}

/// Hashes `which` with `threads` threads for `duration` and measures the single-stream
/// reference. The GPU backend is fed by one thread (`threads` is ignored).
pub fn run_puzzle(which: BenchPuzzle, backend: Backend, threads: usize, duration: Duration) -> BenchResult {
    let puzzle = which.puzzle();
    let kernel = Arc::new(Kernel::new(&puzzle, backend));
    let threads = if kernel.backend() == Backend::Gpu { 1 } else { threads.max(1) };
    #[cfg(feature = "gpu")]
    let adapter = kernel.adapter().map(ToString::to_string);
    #[cfg(not(feature = "gpu"))]
    let adapter = None;
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicU64>> = (0..threads).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let start = Instant::now();
    let handles: Vec<_> = counters
        .iter()
        .enumerate()
        .map(|(i, counter)| {
            let (kernel, stop, counter) = (Arc::clone(&kernel), Arc::clone(&stop), Arc::clone(counter));
            std::thread::spawn(move || {
                let mut next = (i as u64) << 28;
                while !stop.load(Ordering::Relaxed) {
                    // One dispatch's worth on the GPU, 2^16 on a CPU; never past 2^32.
                    let step = kernel.chunk_hint().min((1 << 32) - next);
                    // Opaque threshold: the loop must not be folded around a known value.
                    kernel.scan(next, step, std::hint::black_box(0), &mut |_| 0);
                    next = (next + step) & 0xffff_ffff;
                    counter.fetch_add(step, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let per_thread: Vec<f64> = counters.iter().map(|c| c.load(Ordering::Relaxed) as f64 / secs).collect();
    BenchResult {
        backend: kernel.backend(),
        adapter,
        puzzle: which,
        threads,
        rate: per_thread.iter().sum(),
        per_thread,
        single_stream_compressions: single_stream(duration.min(Duration::from_secs(2))),
    }
}

/// Compressions per second of one dependent SHA-256 stream, by the `sha2` crate (which uses
/// the SHA extensions when present): the figure `openssl speed -evp sha256` reports in bytes.
pub fn single_stream(duration: Duration) -> f64 {
    let mut state =
        [0x6a09e667u32, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let blocks = vec![sha2::digest::generic_array::GenericArray::from([7u8; 64]); 128];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        sha2::compress256(&mut state, &blocks);
        n += blocks.len() as u64;
    }
    std::hint::black_box(state);
    n as f64 / start.elapsed().as_secs_f64()
}
