//! Work proven by shares: a segment of progress is credited only with the shares that cover
//! it, each verified; the count is tested against what the credited nonces should hold
//! ([`crate::proof`]); a worker that fails is suspect: stopped, never believed again, and every
//! range it was credited with is searched again by others.

use super::{Health, Job};
use crate::job::{Output, Suspect};
use crate::proof::{catch_probability, expected_shares, is_short, suspicion_bound};
use protocol::{verify, Command, NonceRange, ShardId, WorkerId};
use std::collections::BTreeMap;
use std::time::Duration;

/// The ranges credited to one worker, as disjoint intervals merged with both neighbours: a
/// worker holding two shards credits them in turn, heartbeat after heartbeat, and a list
/// merged only with its last entry grew by one range a heartbeat for the whole job.
#[derive(Debug, Default)]
pub(super) struct Claims(BTreeMap<u128, u128>);

impl Claims {
    /// Adds `r` (disjoint from what is there: the job credits a nonce once).
    pub(super) fn add(&mut self, r: NonceRange) {
        if r.is_empty() {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        if let Some((&s, &e)) = self.0.range(..=start).next_back() {
            if e == start {
                self.0.remove(&s);
                start = s;
            }
        }
        if let Some(e) = self.0.remove(&end) {
            end = e;
        }
        self.0.insert(start, end);
    }

    pub(super) fn take(&mut self) -> Vec<NonceRange> {
        std::mem::take(&mut self.0).into_iter().map(|(s, e)| NonceRange::new(s, e)).collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One segment of progress as a worker reported it: `from..to` searched, with these shares
/// (and these golden nonces, already taken as finds).
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment<'a> {
    pub from: u128,
    pub to: u128,
    pub found: &'a [u64],
    pub shares: &'a [u64],
}

impl Job {
    /// Credits the part of `seg` the job has not credited yet to `worker`'s `shard`, after
    /// verifying its shares. A segment starting above the shard's watermark (a heartbeat lost
    /// on the way) leaves the gap Free, to be searched again, rather than believed.
    pub(super) fn credit(
        &mut self,
        now: Duration,
        worker: &WorkerId,
        shard: ShardId,
        seg: Segment<'_>,
        out: &mut Vec<Output>,
    ) {
        let Some(s) = self.shards.get(&shard) else { return };
        let (watermark, end) = (s.watermark, s.end);
        let to = seg.to.min(end);
        if seg.from > watermark && seg.from < end {
            self.ledger.release(NonceRange::new(watermark, seg.from), shard);
            if let Some(s) = self.shards.get_mut(&shard) {
                s.watermark = seg.from;
            }
            self.stats.reshards += 1;
            self.idle_dirty = true;
        }
        let start = seg.from.max(watermark);
        if to <= start {
            return;
        }
        let range = NonceRange::new(start, to);
        if let Err(why) = self.verify_shares(seg, range) {
            self.suspect(now, worker, why, out);
            return;
        }
        let count = seg.shares.iter().filter(|&&n| range.contains(u128::from(n))).count() as u64;
        self.verification.shares_verified += count;
        self.advance(shard, to);
        if let Some(w) = self.workers.get_mut(worker) {
            w.credited += range.len();
            w.shares += count;
            w.claims.add(range);
        }
        self.test_shares(now, worker, out);
        // After the claim is recorded: a check may convict at once (and reopen it).
        if self.workers.get(worker).is_some_and(|w| w.health != Health::Suspect) {
            self.plan_checks(worker, range, seg, out);
        }
    }

    /// Every share must lie in its segment and verify: a single one that does not is proof of
    /// a fault (a miscomputing core, or a lie), whatever the count says.
    fn verify_shares(&self, seg: Segment<'_>, range: NonceRange) -> Result<(), String> {
        let bits = self.cfg.share_bits;
        let mut last = None;
        for &n in seg.shares {
            if !(seg.from..seg.to.max(seg.from)).contains(&u128::from(n)) {
                return Err(format!("share {n} outside its segment {}..{}", seg.from, seg.to));
            }
            if last.is_some_and(|l| l >= n) {
                return Err(format!("shares out of order or repeated at {n}"));
            }
            last = Some(n);
            if !range.contains(u128::from(n)) {
                continue; // already credited before (a repeated segment)
            }
            if verify(&self.cfg.puzzle, n).leading_zeros < bits {
                return Err(format!("share {n} does not have {bits} leading zero bits"));
            }
        }
        // Golden nonces are shares too when the share bits allow it: one missing is a lie.
        // (The shares are in order, checked above: a binary search each.)
        if bits <= self.cfg.puzzle.max_share_bits() {
            if let Some(n) = seg
                .found
                .iter()
                .find(|&&n| range.contains(u128::from(n)) && seg.shares.binary_search(&n).is_err())
            {
                return Err(format!("golden nonce {n} missing from the shares"));
            }
        }
        Ok(())
    }

    /// The sequential share test (see [`crate::proof`]).
    fn test_shares(&mut self, now: Duration, worker: &WorkerId, out: &mut Vec<Output>) {
        let Some(w) = self.workers.get(worker) else { return };
        let lambda = expected_shares(w.credited, self.cfg.share_bits);
        let bound = suspicion_bound(self.cfg.false_alarm, self.cfg.max_launches);
        if is_short(lambda, w.shares, bound) {
            let why = format!(
                "{} shares where {lambda:.1} were expected: past the bound for a false alarm rate of {:e} per job",
                w.shares, self.cfg.false_alarm
            );
            self.suspect(now, worker, why, out);
        }
    }

    /// `worker` lied or miscomputes: it is told to stop and evicted, everything it was credited
    /// with goes back to Free, and its shards are re-sharded. The answer then never rests on it.
    pub(super) fn suspect(&mut self, now: Duration, worker: &WorkerId, why: String, out: &mut Vec<Output>) {
        let Some(w) = self.workers.get(worker) else { return };
        if w.health == Health::Suspect {
            return;
        }
        tracing::warn!(%worker, reason = %why, "worker is suspect: stopping it and searching its claims again");
        self.send(worker, Command::Stop { job: Some(self.cfg.job) }, out);
        self.lose_worker(worker, Health::Suspect);
        let claims = self.workers.get_mut(worker).map(|w| w.claims.take()).unwrap_or_default();
        let mut reopened = 0;
        for r in claims {
            reopened += self.ledger.reopen(r);
        }
        if let Some(w) = self.workers.get_mut(worker) {
            w.health = Health::Suspect;
            w.credited = 0;
            w.shares = 0;
        }
        self.idle_dirty = true;
        self.verification.suspects.push(Suspect {
            worker: worker.clone(),
            reason: why,
            reopened,
            at: now.saturating_sub(self.started_at.unwrap_or(now)),
        });
        out.push(Output::Evict { worker: worker.clone() });
        self.replace_lost(out);
        self.assign_idle(now, out);
    }

    /// The verification as it stands: the outcome's and `search.status`'s.
    pub(super) fn verification_now(&self) -> crate::job::Verification {
        let bits = self.cfg.share_bits;
        let bound = suspicion_bound(self.cfg.false_alarm, self.cfg.max_launches);
        let honest = self.workers.values().filter(|w| w.health != Health::Suspect && w.credited > 0);
        let least = honest.clone().map(|w| expected_shares(w.credited, bits)).min_by(f64::total_cmp);
        let catch_if_skipped = match least {
            Some(lambda) => {
                [0.5, 0.1, 0.01].iter().map(|&q| (q, catch_probability(lambda, q, bound))).collect()
            }
            None => Vec::new(),
        };
        crate::job::Verification {
            shares_expected: honest.map(|w| expected_shares(w.credited, bits)).sum(),
            spot_checks_pending: self.checks.len() as u64,
            catch_if_skipped,
            ..self.verification.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_shards_credited_in_turn_stay_two_claims() {
        let mut c = Claims::default();
        for k in 0..1000u128 {
            c.add(NonceRange::new(k * 10, k * 10 + 10));
            c.add(NonceRange::new((1 << 40) + k * 10, (1 << 40) + k * 10 + 10));
        }
        assert_eq!(c.len(), 2);
        c.add(NonceRange::new(20_000, 20_010)); // a gap before it: a third
        c.add(NonceRange::new(10_000, 20_000)); // fills the gap on both sides
        assert_eq!(c.len(), 2);
        let ranges = c.take();
        assert_eq!(ranges, vec![NonceRange::new(0, 20_010), NonceRange::new(1 << 40, (1 << 40) + 10_000)]);
        assert_eq!(c.len(), 0);
    }
}
