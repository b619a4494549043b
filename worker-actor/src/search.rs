//! A cancellable, shrinkable search of one shard on dedicated OS threads.
//!
//! Threads claim chunks from a shared cursor; the *watermark* is the lowest nonce not yet
//! known checked (the start of the lowest in-flight chunk, or the cursor). `shrink` never
//! gives away a nonce already claimed, which is what makes work stealing race-free.

use nonce_kernel::{Backend, Kernel};
use protocol::{verify, Best, Mode, NonceRange, Puzzle};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Golden nonces a shard reports at most beyond its lowest ones (see `report_limit`).
pub const REPORT_LIMIT: usize = 100;
/// Shares a shard holds unreported before its threads wait for heartbeats to take them: with
/// share bits far below what the job should have chosen (`--share-bits` set low), shares
/// come faster than segments of `MAX_SHARES_PER_SEGMENT` carry them, and the proof's
/// bandwidth, not the hashing, bounds the search (in memory too: 64 segments, ~3 MB).
const SHARE_BACKLOG_MAX: usize = 64 * protocol::MAX_SHARES_PER_SEGMENT;

/// What a running search tells its owner, from the hashing threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchEvent {
    /// A verified golden nonce among the shard's lowest `REPORT_LIMIT` so far.
    Golden(u64),
    /// Every nonce of the shard up to `end` (its possibly shrunk end) has been checked;
    /// `shares` are those of `from..end`, the part no heartbeat has reported.
    Finished {
        /// The lowest hash of the shard.
        best: Option<Best>,
        /// Where the unreported part starts.
        from: u128,
        /// The shard's end as it finished (after any shrink).
        end: u128,
        /// Every golden nonce of the shard kept (the lowest `REPORT_LIMIT`).
        found: Vec<u64>,
        /// The shares of `from..end`.
        shares: Vec<u64>,
    },
}

/// A stretch of searched nonces with every share in it: what a heartbeat reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First nonce of the segment.
    pub from: u128,
    /// One past its last nonce.
    pub to: u128,
    /// The shares found in it (nonces whose hash meets the share target), ascending.
    pub shares: Vec<u64>,
}

type Report = dyn Fn(SearchEvent) + Send + Sync;

/// What a worker hashes on, in words: its backend, a GPU's adapter, and whether CPU threads
/// hash beside the GPU (`threads - 1` of them: one thread feeds the GPU).
pub fn hashing_on(backend: Backend, threads: usize) -> String {
    if backend != Backend::Gpu {
        return format!("hashing on {threads} CPU thread(s) with {}", backend.name());
    }
    #[cfg(feature = "gpu")]
    let adapter = match nonce_kernel::gpu::adapter() {
        Ok(a) => a.to_string(),
        Err(e) => e.to_string(),
    };
    #[cfg(not(feature = "gpu"))]
    let adapter = String::from("not built");
    let beside = match threads.saturating_sub(1) {
        0 => "no CPU thread hashes beside it".to_string(),
        n => format!("{n} CPU thread(s) hash beside it with {}", Backend::fastest_cpu().name()),
    };
    format!("hashing on the GPU {adapter}; {beside}")
}

struct Cursor {
    next: u128,
    end: u128,
    in_flight: BTreeSet<u128>,
    live_threads: usize,
    best: Option<(Best, [u8; 32])>,
    reported: BTreeSet<u64>,
    /// Shares found and not yet reported in a segment.
    shares: BTreeSet<u64>,
    /// Everything below this has been reported in a segment.
    reported_to: u128,
    /// Hashing is over but more shares are left than one message carries: the `ShardDone`
    /// waits until heartbeats have taken them down to one segment (`finish_drained`).
    draining: bool,
}

struct Shared {
    kernel: Kernel,
    /// Beside a GPU kernel (thread 0's), the CPU kernel the other threads hash with.
    beside: Option<Kernel>,
    puzzle: Puzzle,
    share_bits: u32,
    cursor: Mutex<Cursor>,
    cancelled: AtomicBool,
    /// A hashing thread panicked: the shard can never finish here.
    failed: AtomicBool,
    hashed: Arc<AtomicU64>,
    report: Box<Report>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Cursor> {
        // A panicking hash thread cannot leave the cursor half-updated (every update is a
        // single assignment), so a poisoned lock is still consistent.
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One shard under search. Dropping it cancels the search and joins its threads.
pub struct ShardSearch {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ShardSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSearch").field("watermark", &self.watermark()).finish()
    }
}

impl ShardSearch {
    /// Starts `threads` hashing threads over `range`, collecting as shares every nonce with at
    /// least `share_bits` leading zero bits. `hashed` accumulates nonces checked, for rate
    /// reporting; `report` is called from the hashing threads. With the GPU backend, thread 0
    /// feeds the GPU and the others hash on the fastest CPU backend.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        puzzle: &Puzzle,
        range: NonceRange,
        _mode: Mode,
        share_bits: u32,
        threads: usize,
        backend: Backend,
        hashed: Arc<AtomicU64>,
        report: Box<Report>,
    ) -> Result<Self, String> {
        let threads = threads.max(1);
        let end = range.end.min(puzzle.space().end);
        let kernel = Kernel::new(puzzle, backend);
        let beside = (kernel.backend() == Backend::Gpu).then(|| Kernel::new(puzzle, Backend::fastest_cpu()));
        let shared = Arc::new(Shared {
            kernel,
            beside,
            puzzle: puzzle.clone(),
            share_bits,
            cursor: Mutex::new(Cursor {
                next: range.start,
                end,
                in_flight: BTreeSet::new(),
                live_threads: threads,
                best: None,
                reported: BTreeSet::new(),
                shares: BTreeSet::new(),
                reported_to: range.start,
                draining: false,
            }),
            cancelled: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            hashed,
            report,
        });
        // Small enough that every thread gets several; the GPU's chunk is its dispatch size.
        let chunk = (range.len() / (threads as u128 * 8)).max(1);
        let mut search = ShardSearch { shared, threads: Vec::with_capacity(threads) };
        for i in 0..threads {
            let shared = Arc::clone(&search.shared);
            let spawned = std::thread::Builder::new().name(format!("hash-{i}")).spawn(move || {
                let caught =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&shared, i, chunk)));
                if caught.is_err() {
                    shared.failed.store(true, Ordering::Relaxed);
                    shared.cancelled.store(true, Ordering::Relaxed);
                }
            });
            match spawned {
                Ok(handle) => search.threads.push(handle),
                Err(e) => {
                    // The threads already started count themselves out; none reports Finished.
                    search.shared.lock().live_threads -= threads - i;
                    search.join();
                    return Err(format!("cannot start a hashing thread: {e}"));
                }
            }
        }
        Ok(search)
    }

    /// Every nonce of the shard below this has been checked.
    pub fn watermark(&self) -> u128 {
        let c = self.shared.lock();
        c.in_flight.first().copied().unwrap_or(c.next).min(c.end)
    }

    /// The segment searched since the last one taken, with its shares (at most
    /// [`protocol::MAX_SHARES_PER_SEGMENT`]: with more, the segment ends at the first left
    /// out, which the next segment then starts with).
    pub fn take_segment(&self) -> Segment {
        let mut c = self.shared.lock();
        let watermark = c.in_flight.first().copied().unwrap_or(c.next).min(c.end);
        take_segment(&mut c, watermark)
    }

    /// The shard's current end.
    pub fn end(&self) -> u128 {
        self.shared.lock().end
    }

    /// Gives up the nonces at and above `new_end`, except those already claimed. Returns the
    /// shard's end afterwards.
    pub fn shrink(&self, new_end: u128) -> u128 {
        let mut c = self.shared.lock();
        c.end = new_end.max(c.next).min(c.end);
        c.end
    }

    /// Asks the threads to stop after their current chunk.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether a hashing thread died: the shard cannot complete in this process.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Whether every hashing thread has exited and the end was reported (or never will be).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished()) && !self.shared.lock().draining
    }

    /// Reports the shard's end once the shares a finished search still holds fit in one
    /// message. Call after each `take_segment` has been sent, so the end comes after them.
    pub fn finish_drained(&self) {
        let event = {
            let mut c = self.shared.lock();
            if !c.draining || unreported_shares(&c) > protocol::MAX_SHARES_PER_SEGMENT {
                return;
            }
            c.draining = false;
            finish(&mut c)
        };
        if !self.shared.cancelled.load(Ordering::Relaxed) {
            (self.shared.report)(event);
        }
    }

    /// The golden nonces found so far (the shard's lowest). Read after `watermark` to have
    /// every golden nonce below that watermark.
    pub fn found(&self) -> Vec<u64> {
        self.shared.lock().reported.iter().copied().collect()
    }

    /// The best hash seen so far.
    pub fn best(&self) -> Option<Best> {
        self.shared.lock().best.map(|(b, _)| b)
    }

    /// Cancels and waits for the threads.
    pub fn join(mut self) {
        self.halt();
    }

    /// Cancels and waits for the threads, keeping what they searched for a last
    /// [`ShardSearch::take_segment`].
    pub fn halt(&mut self) {
        self.cancel();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ShardSearch {
    fn drop(&mut self) {
        self.cancel();
    }
}

fn run(shared: &Shared, thread: usize, chunk: u128) {
    let kernel = match &shared.beside {
        Some(cpu) if thread > 0 => cpu,
        _ => &shared.kernel,
    };
    let golden_threshold = kernel.threshold().max(Puzzle::share_key_threshold(shared.share_bits));
    let mut threshold = golden_threshold.max(best_key(&shared.lock()));
    let mut on_gpu = kernel.backend() == Backend::Gpu;
    loop {
        if shared.cancelled.load(Ordering::Relaxed) {
            break;
        }
        if shared.lock().shares.len() >= SHARE_BACKLOG_MAX {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        let (start, end) = {
            let mut c = shared.lock();
            if c.next >= c.end {
                break;
            }
            let start = c.next;
            // At most the kernel's hint (2^16 on a CPU, one dispatch on the GPU): the cancel
            // and shrink latency.
            let end = (start + chunk.min(u128::from(kernel.chunk_hint().max(1)))).min(c.end);
            c.next = end;
            c.in_flight.insert(start);
            (start, end)
        };
        // Ranges never exceed the puzzle's space, so every nonce fits in u64.
        let count = (end - start) as u64;
        kernel.scan(start as u64, count, threshold, &mut |nonce| {
            on_candidate(shared, nonce);
            golden_threshold.max(best_key(&shared.lock()))
        });
        if on_gpu && kernel.backend() != Backend::Gpu {
            // Said once a shard: the kernel gave its device up and hashes on the CPU since.
            on_gpu = false;
            tracing::warn!(
                now = kernel.backend().name(),
                "the GPU failed mid-scan: the rest of this shard is hashed on the CPU (no nonce lost)"
            );
        }
        threshold = golden_threshold.max(best_key(&shared.lock()));
        shared.hashed.fetch_add(count, Ordering::Relaxed);
        shared.lock().in_flight.remove(&start);
    }
    let finished = {
        let mut c = shared.lock();
        c.live_threads -= 1;
        let done = c.live_threads == 0 && c.in_flight.is_empty() && c.next >= c.end;
        // The end goes with every remaining share if one message holds them; otherwise the
        // heartbeats take them first (`finish_drained`).
        if done && unreported_shares(&c) > protocol::MAX_SHARES_PER_SEGMENT {
            c.draining = true;
            None
        } else {
            done.then(|| finish(&mut c))
        }
    };
    if let (Some(event), false) = (finished, shared.cancelled.load(Ordering::Relaxed)) {
        (shared.report)(event);
    }
}

/// Shares found below the shard's end and not yet reported.
fn unreported_shares(c: &Cursor) -> usize {
    c.shares.iter().take_while(|&&n| u128::from(n) < c.end).take(protocol::MAX_SHARES_PER_SEGMENT + 1).count()
}

/// The shard's end, with every share not yet reported.
fn finish(c: &mut Cursor) -> SearchEvent {
    let from = c.reported_to;
    let end = c.end;
    let shares: Vec<u64> =
        std::mem::take(&mut c.shares).into_iter().filter(|&n| u128::from(n) < end).collect();
    c.reported_to = end;
    SearchEvent::Finished {
        best: c.best.map(|(b, _)| b),
        from,
        end,
        found: c.reported.iter().copied().collect(),
        shares,
    }
}

/// Takes the shares below `watermark` into a segment from `reported_to`, bounded in size.
fn take_segment(c: &mut Cursor, watermark: u128) -> Segment {
    let from = c.reported_to;
    let mut to = watermark.max(from);
    let mut shares = Vec::new();
    while let Some(&n) = c.shares.first() {
        if u128::from(n) >= to {
            break;
        }
        if shares.len() == protocol::MAX_SHARES_PER_SEGMENT {
            to = u128::from(n);
            break;
        }
        c.shares.pop_first();
        shares.push(n);
    }
    c.reported_to = to;
    Segment { from, to, shares }
}

/// The key (first hash word) of the best hash so far: candidates must beat it.
fn best_key(c: &Cursor) -> u32 {
    c.best.map_or(u32::MAX, |(_, h)| u32::from_be_bytes([h[0], h[1], h[2], h[3]]))
}

fn on_candidate(shared: &Shared, nonce: u64) {
    let v = verify(&shared.puzzle, nonce);
    let report = {
        let mut c = shared.lock();
        if c.best.is_none_or(|(_, h)| v.hash < h) {
            c.best = Some((Best { nonce, leading_zeros: v.leading_zeros }, v.hash));
        }
        if v.leading_zeros >= shared.share_bits && u128::from(nonce) >= c.reported_to {
            c.shares.insert(nonce);
        }
        // Report the lowest REPORT_LIMIT golden nonces of the shard: enough for every mode,
        // and bounded even when every nonce is golden.
        let enters = v.golden
            && (c.reported.len() < REPORT_LIMIT || c.reported.last().is_some_and(|&max| nonce < max));
        if enters && c.reported.insert(nonce) && c.reported.len() > REPORT_LIMIT {
            c.reported.pop_last();
        }
        enters
    };
    if report {
        (shared.report)(SearchEvent::Golden(nonce));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Encoding;
    use std::sync::mpsc;
    use std::time::Duration;

    fn search(p: &Puzzle, range: NonceRange, threads: usize) -> (Vec<u64>, Option<Best>) {
        search_on(p, range, threads, Backend::Portable)
    }

    fn search_on(
        p: &Puzzle,
        range: NonceRange,
        threads: usize,
        backend: Backend,
    ) -> (Vec<u64>, Option<Best>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let s = ShardSearch::start(
            p,
            range,
            Mode::Exhaustive,
            6,
            threads,
            backend,
            Arc::new(AtomicU64::new(0)),
            Box::new(move |e| {
                let _ = tx.lock().map(|t| t.send(e));
            }),
        )
        .expect("threads start");
        let mut found = vec![];
        loop {
            match rx.recv_timeout(Duration::from_secs(60)).expect("search finishes") {
                SearchEvent::Golden(n) => found.push(n),
                SearchEvent::Finished { best, found: all, from, end, shares } => {
                    assert_eq!((from, end), (range.start, range.end));
                    let expect: Vec<u64> = (range.start as u64..range.end as u64)
                        .filter(|&n| verify(p, n).leading_zeros >= 6)
                        .collect();
                    assert_eq!(shares, expect, "every share, none other");
                    assert_eq!(
                        all,
                        found.iter().copied().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>()
                    );
                    assert_eq!(s.watermark(), range.end);
                    found.sort_unstable();
                    return (found, best);
                }
            }
        }
    }

    #[test]
    fn finds_exactly_the_golden_nonces() {
        let p = Puzzle::append(b"hello".to_vec(), Encoding::Be32, 8).expect("valid");
        let range = NonceRange::new(1000, 9000);
        let expect: Vec<u64> = (1000..9000).filter(|&n| verify(&p, n).golden).collect();
        for threads in [1, 3] {
            let (found, best) = search(&p, range, threads);
            assert_eq!(found, expect);
            let best = best.expect("a best hash");
            let max_lz = (1000..9000).map(|n| verify(&p, n).leading_zeros).max();
            assert_eq!(Some(best.leading_zeros), max_lz);
        }
    }

    /// The GPU alone, and the GPU with CPU threads beside it, find every golden nonce and
    /// every share, and the best hash, exactly as the brute force does.
    #[cfg(feature = "gpu")]
    #[test]
    fn the_gpu_and_cpu_threads_beside_it_find_exactly_the_golden_nonces() {
        // 50,000 nonces across 2^32: about 780 shares of 6 bits, what one message holds.
        let p = Puzzle::append(b"gpu shard".to_vec(), Encoding::Be64, 10).expect("valid");
        let range = NonceRange::new((1 << 32) - 25_000, (1 << 32) + 25_000);
        let all: Vec<_> = (range.start as u64..range.end as u64).map(|n| (n, verify(&p, n))).collect();
        let expect: Vec<u64> = all.iter().filter(|(_, v)| v.golden).map(|&(n, _)| n).collect();
        assert!(expect.len() > 20, "{expect:?}");
        let max_lz = all.iter().map(|(_, v)| v.leading_zeros).max();
        for threads in [1, 3] {
            let (found, best) = search_on(&p, range, threads, Backend::Gpu);
            assert_eq!(found, expect, "{threads} thread(s)");
            assert_eq!(best.map(|b| b.leading_zeros), max_lz);
        }
    }

    #[test]
    fn shrink_never_gives_away_claimed_work() {
        let p = Puzzle::append(b"x".to_vec(), Encoding::Be32, 64).expect("valid");
        let s = ShardSearch::start(
            &p,
            NonceRange::new(0, 1 << 22),
            Mode::Lowest,
            20,
            2,
            Backend::Portable,
            Arc::new(AtomicU64::new(0)),
            Box::new(|_| {}),
        )
        .expect("threads start");
        std::thread::sleep(Duration::from_millis(20));
        let end = s.shrink(10);
        assert!(end >= 10);
        assert!(s.watermark() <= end);
        let end2 = s.shrink(1 << 21);
        assert_eq!(end2, end, "shrink never grows a shard");
        s.join();
    }
    #[test]
    fn more_shares_than_one_message_holds_go_in_heartbeat_segments_before_the_end() {
        // Share bits 1: about half of all nonces are shares, 8 times what a message carries.
        let p = Puzzle::append(b"many".to_vec(), Encoding::Be32, 64).expect("valid");
        let range = NonceRange::new(0, 1 << 14);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let s = ShardSearch::start(
            &p,
            range,
            Mode::Exhaustive,
            1,
            2,
            Backend::Portable,
            Arc::new(AtomicU64::new(0)),
            Box::new(move |e| {
                let _ = tx.lock().map(|t| t.send(e));
            }),
        )
        .expect("threads start");
        while s.watermark() < range.end {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(rx.try_recv().is_err(), "no end before the shares are out");
        assert!(!s.is_finished(), "a shard with shares left is not finished");
        let (mut shares, mut at) = (vec![], range.start);
        let end = loop {
            let seg = s.take_segment();
            assert_eq!(seg.from, at, "segments follow each other");
            assert!(seg.shares.len() <= protocol::MAX_SHARES_PER_SEGMENT);
            at = seg.to;
            shares.extend(seg.shares);
            s.finish_drained();
            if let Ok(SearchEvent::Finished { from, end, shares: last, .. }) = rx.try_recv() {
                assert_eq!(from, at, "the end starts where the last segment stopped");
                assert!(last.len() <= protocol::MAX_SHARES_PER_SEGMENT);
                shares.extend(last);
                break end;
            }
        };
        assert_eq!(end, range.end);
        let expect: Vec<u64> = (0..1u64 << 14).filter(|&n| verify(&p, n).leading_zeros >= 1).collect();
        assert!(expect.len() > 4 * protocol::MAX_SHARES_PER_SEGMENT);
        assert_eq!(shares, expect, "every share exactly once, in order");
        std::thread::sleep(Duration::from_millis(20));
        assert!(s.is_finished());
    }
}
