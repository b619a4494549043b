//! Hash-rate measurement: the kernel on N threads, and a single-stream SHA-256 reference to
//! express it as a ratio (machines are shared and noisy; ratios measured together are not).

use crate::kernel::{Backend, Kernel};
use protocol::{Encoding, Puzzle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a benchmark run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    pub backend: Backend,
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

/// Hashes with `threads` threads for `duration` and measures the single-stream reference.
pub fn run(backend: Backend, threads: usize, duration: Duration) -> BenchResult {
    let threads = threads.max(1);
    // Difficulty 256: no candidates, so this is the pure kernel loop.
    let puzzle = match Puzzle::append(b"COMSM0010cloud".to_vec(), Encoding::Be32, 256) {
        Ok(p) => p,
        Err(e) => unreachable!("the bench puzzle is valid: {e}"),
    };
    let kernel = Arc::new(Kernel::new(&puzzle, backend));
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
                const STEP: u64 = 1 << 16;
                while !stop.load(Ordering::Relaxed) {
                    kernel.scan(next, STEP, 0, &mut |_| 0);
                    next = (next + STEP) & 0xffff_ffff;
                    counter.fetch_add(STEP, Ordering::Relaxed);
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
