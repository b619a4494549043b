//! Spot checks: after a segment is credited, random windows of it are searched again by
//! another worker, and the two exact sets of shares must agree. A window is chosen only
//! after the claim arrived, by draws seeded from the job's secret, so a worker cannot know
//! which of its claims will be checked. Windows hold about four shares' worth of nonces
//! (`4 · 2^s`), so a skipped or dropped window shows as a difference with probability
//! about 1 - e^-4 = 98%. Whoever's set is missing a share the other has (each share is
//! verified) is the one at fault: it is made suspect.

use super::proof::Segment;
use super::{Health, Job};
use crate::job::Output;
use protocol::{Command, Mode, NonceRange, ShardId, WorkerId};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Largest window the coordinator searches itself when no other worker can: 2^20 nonces,
/// about a fifth of a second of double hashes on one core.
const SELF_CHECK_MAX: u128 = 1 << 20;

/// The coordinator searches at most [`SELF_CHECK_MAX`] nonces itself per this period, per
/// job: about 5% of one core. It runs on the arbiter every job shares, so a job whose lone
/// worker claims fast at a high spot-check fraction must not stall them all; its other
/// checks wait (for another worker, or the next period).
pub(super) const SELF_CHECK_PERIOD: Duration = Duration::from_secs(4);

/// Unpredictable draws: SHA-256 of the seed and a counter (a worker that sees some draws
/// learns nothing of the next).
#[derive(Clone)]
pub(super) struct Choices {
    seed: [u8; 32],
    counter: u64,
}

impl std::fmt::Debug for Choices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Choices(..)")
    }
}

impl Choices {
    pub(super) fn new(seed: [u8; 32]) -> Self {
        Choices { seed, counter: 0 }
    }

    fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        let d = Sha256::new().chain_update(self.seed).chain_update(self.counter.to_be_bytes()).finalize();
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n) (n > 0); the bias of a 128-bit modulus is negligible here.
    fn below(&mut self, n: u128) -> u128 {
        let x = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
        x % n.max(1)
    }
}

/// One window of claimed work out for re-search.
#[derive(Debug, Clone)]
pub(super) struct Check {
    pub range: NonceRange,
    /// Whose claim it checks.
    pub claimant: WorkerId,
    /// Who searches it again, at which epoch (None: waiting for a worker).
    pub checker: Option<(WorkerId, u64)>,
    /// The claimant's shares in the window.
    pub expected: BTreeSet<u64>,
    /// The checker's, so far.
    pub seen: BTreeSet<u64>,
    /// The checker has reported everything below this.
    pub covered: u128,
    /// When the checker was given it (a check never mentioned for a grace period was lost).
    pub assigned_at: Duration,
}

/// The open checks, indexed so that a heartbeat costs work for its own sender's checks
/// only: at 10,000 workers a scan of every check per heartbeat was most of the coordinator's
/// time. A check's `checker` changes only through `assign` and `release`, which keep the
/// indices.
#[derive(Debug, Default)]
pub(super) struct Checks {
    by_id: BTreeMap<ShardId, Check>,
    waiting: BTreeSet<ShardId>,
    held: HashMap<WorkerId, BTreeSet<ShardId>>,
}

impl Checks {
    fn add(&mut self, id: ShardId, check: Check) {
        debug_assert!(check.checker.is_none());
        self.waiting.insert(id);
        self.by_id.insert(id, check);
    }

    fn assign(&mut self, id: ShardId, checker: WorkerId, epoch: u64, now: Duration) -> Option<&Check> {
        let was = self.by_id.get_mut(&id)?.checker.take();
        self.release_index(id, was);
        self.waiting.remove(&id);
        self.held.entry(checker.clone()).or_default().insert(id);
        let check = self.by_id.get_mut(&id)?;
        check.checker = Some((checker, epoch));
        check.assigned_at = now;
        Some(check)
    }

    /// Back to waiting, with nothing of the last checker's search kept.
    fn release(&mut self, id: ShardId) {
        let Some(check) = self.by_id.get_mut(&id) else { return };
        let was = check.checker.take();
        check.seen.clear();
        check.covered = check.range.start;
        self.release_index(id, was);
        self.waiting.insert(id);
    }

    fn remove(&mut self, id: ShardId) -> Option<Check> {
        let check = self.by_id.remove(&id)?;
        self.waiting.remove(&id);
        self.release_index(id, check.checker.clone());
        Some(check)
    }

    fn release_index(&mut self, id: ShardId, checker: Option<(WorkerId, u64)>) {
        if let Some((w, _)) = checker {
            if let Some(ids) = self.held.get_mut(&w) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.held.remove(&w);
                }
            }
        }
    }

    fn held_by(&self, worker: &WorkerId) -> Vec<ShardId> {
        self.held.get(worker).map(|ids| ids.iter().copied().collect()).unwrap_or_default()
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn clear(&mut self) {
        *self = Checks::default();
    }
}

impl Job {
    /// Draws the windows of a newly credited `range` to check, and places them.
    pub(super) fn plan_checks(
        &mut self,
        claimant: &WorkerId,
        range: NonceRange,
        seg: Segment<'_>,
        out: &mut Vec<Output>,
    ) {
        let fraction = match self.cfg.mode {
            Mode::Lowest => self.cfg.spot_check_lowest,
            Mode::First | Mode::Exhaustive => self.cfg.spot_check,
        };
        if fraction.is_nan() || fraction <= 0.0 || range.is_empty() {
            return;
        }
        let window = range.len().min(4u128 << self.cfg.share_bits.min(100));
        let expected = fraction.min(1.0) * range.len() as f64 / window as f64;
        let mut count = expected.floor() as u64;
        if self.choices.unit() < expected.fract() {
            count += 1;
        }
        for _ in 0..count {
            let start = range.start + self.choices.below(range.len() - window + 1);
            let r = NonceRange::new(start, start + window);
            let shares = seg.shares.iter().copied().filter(|&n| r.contains(u128::from(n))).collect();
            let id = ShardId(self.next_shard);
            self.next_shard += 1;
            self.checks.add(
                id,
                Check {
                    range: r,
                    claimant: claimant.clone(),
                    checker: None,
                    expected: shares,
                    seen: BTreeSet::new(),
                    covered: r.start,
                    assigned_at: self.now,
                },
            );
        }
        self.place_checks(out);
    }

    /// Gives every waiting check to a live worker other than its claimant, chosen at random.
    pub(super) fn place_checks(&mut self, out: &mut Vec<Output>) {
        if self.checks.waiting.is_empty() {
            return;
        }
        let waiting: Vec<ShardId> = self.checks.waiting.iter().copied().collect();
        for id in waiting {
            let Some(claimant) = self.checks.by_id.get(&id).map(|c| c.claimant.clone()) else { continue };
            let others: Vec<&WorkerId> = self
                .workers
                .iter()
                .filter(|(w, s)| s.health == Health::Live && **w != claimant)
                .map(|(w, _)| w)
                .collect();
            if others.is_empty() {
                self.check_here(id, out);
                continue;
            }
            let checker = others[self.choices.below(others.len() as u128) as usize].clone();
            let epoch = self.next_epoch;
            self.next_epoch += 1;
            let Some(check) = self.checks.assign(id, checker.clone(), epoch, self.now) else { continue };
            let cmd = Command::Assign {
                job: self.cfg.job,
                shard: id,
                epoch,
                puzzle: self.cfg.puzzle.clone(),
                range: check.range,
                mode: Mode::Exhaustive,
                share_bits: self.cfg.share_bits,
            };
            self.send(&checker, cmd, out);
        }
    }

    /// With no other worker to search it, a small window is searched by the coordinator
    /// itself (a double hash a nonce); a larger one waits for a worker.
    fn check_here(&mut self, id: ShardId, out: &mut Vec<Output>) {
        let Some(c) = self.checks.by_id.get(&id) else { return };
        let len = c.range.len();
        if len > SELF_CHECK_MAX {
            return;
        }
        let (since, used) = &mut self.self_checked;
        if self.now.saturating_sub(*since) >= SELF_CHECK_PERIOD {
            (*since, *used) = (self.now, 0);
        }
        if *used + len > SELF_CHECK_MAX {
            return; // waits: placed again with the next claim or idle worker
        }
        *used += len;
        let bits = self.cfg.share_bits;
        // In u128, so a window ending at 2^64 is searched to its last nonce.
        let seen: BTreeSet<u64> = (c.range.start..c.range.end)
            .map(|n| n as u64)
            .filter(|&n| protocol::verify(&self.cfg.puzzle, n).leading_zeros >= bits)
            .collect();
        if let Some(check) = self.checks.remove(id) {
            self.judge(check, &seen, None, out);
        }
    }

    /// The spot-check windows still open: their claims are not yet believed enough to be
    /// kept across a restart (see `Job::snapshot`).
    pub(super) fn unchecked(&self) -> impl Iterator<Item = NonceRange> + '_ {
        self.checks.by_id.values().map(|c| c.range)
    }

    pub(super) fn is_check_of(&self, worker: &WorkerId, shard: ShardId, epoch: u64) -> bool {
        self.checks
            .by_id
            .get(&shard)
            .is_some_and(|c| c.checker.as_ref().is_some_and(|(w, e)| w == worker && *e == epoch))
    }

    /// A checker's progress on a check (`done` on its `ShardDone`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_progress(
        &mut self,
        now: Duration,
        checker: &WorkerId,
        id: ShardId,
        from: u128,
        to: u128,
        shares: &[u64],
        done: Option<u128>,
        out: &mut Vec<Output>,
    ) {
        let Some(check) = self.checks.by_id.get_mut(&id) else { return };
        let bits = self.cfg.share_bits;
        let bad = shares.iter().find(|&&n| {
            !check.range.contains(u128::from(n))
                || u128::from(n) < from
                || u128::from(n) >= to
                || protocol::verify(&self.cfg.puzzle, n).leading_zeros < bits
        });
        if let Some(&n) = bad {
            let why = format!("spot-check share {n} does not verify or lies outside its segment");
            // The checker lied, not the claimant: the window is still to be checked, by another.
            self.checks.release(id);
            self.suspect(now, checker, why, out);
            self.place_checks(out);
            return;
        }
        if from <= check.covered {
            check.covered = check.covered.max(to.min(check.range.end));
            check.seen.extend(shares.iter().copied());
        }
        if done.is_none() {
            return;
        }
        if check.covered < check.range.end {
            // A segment was lost on the way: the check proves nothing; search it again.
            self.checks.release(id);
            self.place_checks(out);
            return;
        }
        let Some(check) = self.checks.remove(id) else { return };
        let seen = check.seen.clone();
        self.judge(check, &seen, Some(checker), out);
    }

    /// Compares a finished check's share set with its claimant's: whoever lacks a verified
    /// share the other has is suspect (the claimant, or the checker; the coordinator, when
    /// `checker` is `None`, is trusted).
    fn judge(
        &mut self,
        check: Check,
        seen: &BTreeSet<u64>,
        checker: Option<&WorkerId>,
        out: &mut Vec<Output>,
    ) {
        self.verification.spot_checks += 1;
        self.verification.spot_checked_nonces += check.range.len();
        let unreported: Vec<u64> = seen.difference(&check.expected).copied().collect();
        let missed: Vec<u64> = check.expected.difference(seen).copied().collect();
        if unreported.is_empty() && missed.is_empty() {
            return;
        }
        self.verification.spot_check_mismatches += 1;
        let now = self.now;
        let by = if checker.is_some() { "" } else { " by the coordinator" };
        if let Some(&n) = unreported.first() {
            let why = format!(
                "spot check of {}{by} found {} share(s) it had not reported (e.g. {n})",
                check.range,
                unreported.len()
            );
            self.suspect(now, &check.claimant, why, out);
        }
        if let (Some(&n), Some(checker)) = (missed.first(), checker) {
            let why = format!(
                "spot check of {} missed {} share(s) its claimant had proven (e.g. {n})",
                check.range,
                missed.len()
            );
            self.suspect(now, checker, why, out);
        }
    }

    /// A worker is gone: its checks wait for others (placed by the next `assign_idle`), and
    /// checks of its own claims are moot if those claims were reopened.
    pub(super) fn orphan_checks(&mut self, worker: &WorkerId) {
        if self.workers.get(worker).is_some_and(|w| w.health == Health::Suspect) {
            let moot: Vec<ShardId> =
                self.checks.by_id.iter().filter(|(_, c)| c.claimant == *worker).map(|(&id, _)| id).collect();
            for id in moot {
                self.checks.remove(id);
            }
        }
        for id in self.checks.held_by(worker) {
            self.checks.release(id);
        }
    }

    /// Checks `worker` holds but did not mention in a heartbeat for a whole grace period (the
    /// `Assign` or the reports were lost), or has not finished in four (a window is about half a
    /// heartbeat of work: a checker that sat on one would hold the answer back forever): given
    /// out again.
    pub(super) fn reclaim_unreported_checks(
        &mut self,
        now: Duration,
        worker: &WorkerId,
        reported: &[ShardId],
    ) {
        let grace = self.cfg.stall_timeout;
        for id in self.checks.held_by(worker) {
            let Some(c) = self.checks.by_id.get(&id) else { continue };
            let lost = !reported.contains(&id) && now > c.assigned_at + grace;
            if lost || now > c.assigned_at + grace * 4 {
                self.checks.release(id);
                self.idle_dirty = true;
            }
        }
    }

    /// Checks that can still be answered: those with a live checker, or waiting while some
    /// live worker other than the claimant exists.
    pub(super) fn checks_outstanding(&self) -> bool {
        self.checks.by_id.values().any(|c| match &c.checker {
            Some((w, _)) => self.workers.get(w).is_some_and(|s| s.health == Health::Live),
            None => self.workers.iter().any(|(w, s)| *w != c.claimant && s.health == Health::Live),
        })
    }
}
