//! Results: a claimed nonce counts only once `verify` agrees. Keeps the lowest verified
//! nonces, the best hash seen, and in `lowest` mode stops searching above the answer.

use super::Job;
use crate::job::{OutcomeKind, Output, MAX_FOUND};
use protocol::{verify, Best, Command, Mode, ShardId};
use std::time::Duration;

impl Job {
    /// A nonce listed with progress: taken like a `Found` unless already known (or unable to
    /// enter the kept list), so repeated lists cost a lookup, not a hash.
    pub(super) fn take_found(&mut self, now: Duration, nonce: u64, out: &mut Vec<Output>) {
        let known = self.found.contains(&nonce);
        let cannot_enter = self.found.len() >= MAX_FOUND && self.found.last().is_some_and(|&max| nonce > max);
        if !known && !cannot_enter && self.finished.is_none() {
            self.on_found(now, nonce, out);
        }
    }

    pub(super) fn on_found(&mut self, now: Duration, nonce: u64, out: &mut Vec<Output>) {
        let v = verify(&self.cfg.puzzle, nonce);
        if !v.golden || !self.cfg.range.contains(u128::from(nonce)) {
            self.stats.rejected += 1;
            tracing::warn!(nonce, "rejected a Found that does not verify");
            return;
        }
        self.offer_best(nonce);
        let new_lowest = self.found.first().is_none_or(|&low| nonce < low);
        if self.found.insert(nonce) {
            tracing::info!(nonce, hash = %hex::encode(v.hash), "golden nonce verified");
        }
        if self.found.len() > MAX_FOUND {
            self.found.pop_last();
        }
        // Kept at once only if it is kept at all: one above the kept list changes nothing, and
        // a worker resending it must not make every message rebuild the snapshot.
        if self.found.contains(&nonce) {
            self.persist_now = true;
        }
        match self.cfg.mode {
            Mode::First => self.finish(now, OutcomeKind::Found, out),
            Mode::Lowest if new_lowest => {
                self.trim_above(now, u128::from(nonce), out);
                self.check_done(now, out);
            }
            Mode::Lowest | Mode::Exhaustive => self.check_done(now, out),
        }
    }

    /// A verified nonce that arrived after the deadline: kept for the report, not as success.
    pub(super) fn on_found_late(&mut self, nonce: u64) {
        if verify(&self.cfg.puzzle, nonce).golden && self.cfg.range.contains(u128::from(nonce)) {
            self.found.insert(nonce);
            if self.found.len() > MAX_FOUND {
                self.found.pop_last();
            }
            self.offer_best(nonce);
        }
    }

    /// `lowest` mode: nothing at or above `n` is needed any more.
    pub(super) fn trim_above(&mut self, now: Duration, n: u128, out: &mut Vec<Output>) {
        let over: Vec<ShardId> = self.shards.iter().filter(|(_, s)| s.end > n).map(|(&id, _)| id).collect();
        for id in over {
            let Some(s) = self.shards.get(&id) else { continue };
            let (worker, epoch) = (s.worker.clone(), s.epoch);
            if s.watermark >= n {
                self.send(&worker, Command::Revoke { job: self.cfg.job, shard: id, epoch }, out);
                self.drop_shard(id);
            } else {
                self.send(&worker, Command::Shrink { job: self.cfg.job, shard: id, epoch, new_end: n }, out);
                if let Some(s) = self.shards.get_mut(&id) {
                    s.shrinking = true;
                    s.shrink_sent_at = now;
                }
            }
        }
        self.assign_idle(now, out);
    }

    /// Considers `nonce` for the best hash, after verifying it ourselves.
    pub(super) fn offer_best(&mut self, nonce: u64) {
        if !self.cfg.range.contains(u128::from(nonce)) {
            return;
        }
        let v = verify(&self.cfg.puzzle, nonce);
        if self.best.is_none_or(|(_, h)| v.hash < h) {
            self.best = Some((Best { nonce, leading_zeros: v.leading_zeros }, v.hash));
        }
    }
}
