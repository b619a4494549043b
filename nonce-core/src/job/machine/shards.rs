//! Work placement: handing free ranges to idle workers, stealing the upper half of a busy
//! worker's shard for an idle one, and keeping the ledger in step as shards advance, shrink
//! and end.

use super::{Health, Job, Shard};
use crate::job::Output;
use protocol::{Command, Mode, NonceRange, ShardId, WorkerId};
use std::time::Duration;

impl Job {
    /// Records that every nonce of `shard` below `watermark` is searched.
    pub(super) fn advance(&mut self, shard: ShardId, watermark: u128) {
        let Some(s) = self.shards.get_mut(&shard) else { return };
        let w = watermark.min(s.end);
        if w > s.watermark {
            self.ledger.mark_done(NonceRange::new(s.watermark, w));
            s.watermark = w;
        }
    }

    pub(super) fn drop_shard(&mut self, shard: ShardId) {
        if let Some(s) = self.shards.remove(&shard) {
            self.idle_dirty = true;
            // Whatever was not searched goes back to Free.
            self.ledger.release(NonceRange::new(s.watermark, s.end), shard);
            if let Some(w) = self.workers.get_mut(&s.worker) {
                w.shards.remove(&shard);
            }
            self.end_steal_wait(s.thief);
        }
    }

    pub(super) fn shrunk(&mut self, shard: ShardId, end: u128) {
        let Some(s) = self.shards.get_mut(&shard) else { return };
        self.idle_dirty = true;
        s.shrinking = false;
        let thief = s.thief.take();
        if end >= s.end {
            s.claimed_to_end = true;
        }
        if end < s.end {
            let freed = NonceRange::new(end.max(s.watermark), s.end);
            s.end = end.max(s.watermark);
            tracing::debug!(%shard, %freed, "shard shrunk");
            self.ledger.release(freed, shard);
        }
        self.end_steal_wait(thief);
    }

    /// A steal was answered (or became moot): its thief may look for work again.
    pub(super) fn end_steal_wait(&mut self, thief: Option<WorkerId>) {
        if let Some(w) = thief.and_then(|t| self.workers.get_mut(&t)) {
            w.waiting_steal = false;
            self.idle_dirty = true;
        }
    }

    /// Gives work to every live worker without any: free ranges first, then a steal.
    pub(super) fn assign_idle(&mut self, now: Duration, out: &mut Vec<Output>) {
        if !std::mem::take(&mut self.idle_dirty) {
            return;
        }
        self.place_checks(out);
        let idle: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.health == Health::Live && w.shards.is_empty() && !w.waiting_steal)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in idle {
            if let Some(range) = self.ledger.lowest_free(self.cutoff(), self.shard_len) {
                self.assign(now, &worker, range, out);
            } else if !self.steal_for(now, &worker, out) {
                break;
            }
        }
    }

    /// In `lowest` mode nothing at or above the lowest verified nonce is worth searching.
    pub(super) fn cutoff(&self) -> u128 {
        match (self.cfg.mode, self.found.first()) {
            (Mode::Lowest, Some(&n)) => u128::from(n),
            _ => u128::MAX,
        }
    }

    pub(super) fn assign(
        &mut self,
        now: Duration,
        worker: &WorkerId,
        range: NonceRange,
        out: &mut Vec<Output>,
    ) {
        let shard = ShardId(self.next_shard);
        self.next_shard += 1;
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.ledger.assign(range, shard);
        self.shards.insert(
            shard,
            Shard {
                worker: worker.clone(),
                epoch,
                start: range.start,
                end: range.end,
                watermark: range.start,
                shrinking: false,
                thief: None,
                claimed_to_end: false,
                assigned_at: now,
                shrink_sent_at: Duration::ZERO,
            },
        );
        if let Some(w) = self.workers.get_mut(worker) {
            w.shards.insert(shard);
        }
        tracing::debug!(%worker, %shard, %range, "assigned");
        let cmd = Command::Assign {
            job: self.cfg.job,
            shard,
            epoch,
            puzzle: self.cfg.puzzle.clone(),
            range,
            mode: self.cfg.mode,
            share_bits: self.cfg.share_bits,
        };
        self.send(worker, cmd, out);
    }

    /// Asks the owner of the largest remaining shard to give up its upper half.
    pub(super) fn steal_for(&mut self, now: Duration, thief: &WorkerId, out: &mut Vec<Output>) -> bool {
        let cutoff = self.cutoff();
        let victim = self
            .shards
            .iter()
            .filter(|(_, s)| !s.shrinking && !s.claimed_to_end && &s.worker != thief)
            .map(|(&id, s)| (s.end.min(cutoff).saturating_sub(s.watermark), id))
            .filter(|&(left, _)| left >= 2 * self.cfg.min_steal)
            .max();
        let Some((left, shard)) = victim else { return false };
        let Some(s) = self.shards.get_mut(&shard) else { return false };
        s.shrinking = true;
        s.shrink_sent_at = now;
        s.thief = Some(thief.clone());
        let new_end = s.watermark + left / 2;
        let (owner, epoch) = (s.worker.clone(), s.epoch);
        self.stats.steals += 1;
        if let Some(w) = self.workers.get_mut(thief) {
            w.waiting_steal = true;
        }
        tracing::debug!(%shard, %owner, %thief, new_end, "stealing work");
        self.send(&owner, Command::Shrink { job: self.cfg.job, shard, epoch, new_end }, out);
        true
    }
}
