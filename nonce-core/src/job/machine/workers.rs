//! Messages in and liveness: routing a worker's event, hellos, heartbeats and their
//! watermarks, and what happens to a worker that goes silent (stalled) or is known gone.

use super::{Health, Job, Shard, WorkerState};
use crate::job::{OutcomeKind, Output};
use protocol::{Command, Epoch, Event, EventBody, NonceRange, ShardId, WorkerId};
use std::collections::BTreeSet;
use std::time::Duration;

impl Job {
    pub(super) fn on_event(&mut self, now: Duration, ev: Event, out: &mut Vec<Output>) {
        if ev.job != self.cfg.job {
            self.stats.ghosts += 1;
            return;
        }
        let worker = ev.worker;
        if let EventBody::Hello { inbox, .. } = &ev.body {
            self.on_hello(now, worker.clone(), inbox.clone());
            self.assign_idle(now, out);
            return;
        }
        // A Found is checked on its merits, whoever sends it and whenever.
        if let EventBody::Found { nonce, .. } = ev.body {
            self.touch(now, &worker);
            self.on_found(now, nonce, out);
            return;
        }
        if !self.workers.contains_key(&worker) {
            self.stats.stale += 1;
            return;
        }
        self.touch(now, &worker);
        match ev.body {
            EventBody::Heartbeat { shards, rate, best } => {
                let reported: Vec<ShardId> = shards.iter().map(|p| p.shard).collect();
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.rate = if rate.is_finite() && rate >= 0.0 { rate } else { 0.0 };
                }
                for p in shards {
                    // Finds first, then the watermark that covers them.
                    for &nonce in &p.found {
                        self.take_found(now, nonce, out);
                    }
                    match self.owned_shard(&worker, p.shard, p.epoch) {
                        Some(_) => self.advance(p.shard, p.watermark),
                        None => {
                            // Work we no longer want (revoked while the worker was away).
                            self.stats.stale += 1;
                            self.send(
                                &worker,
                                Command::Revoke { job: self.cfg.job, shard: p.shard, epoch: p.epoch },
                                out,
                            );
                        }
                    }
                }
                if let Some(b) = best {
                    self.offer_best(b.nonce);
                }
                self.reclaim_unreported(now, &worker, &reported);
            }
            EventBody::ShardDone { shard, epoch, best, end, found } => {
                if let Some(b) = best {
                    self.offer_best(b.nonce);
                }
                for nonce in found {
                    self.take_found(now, nonce, out);
                }
                if self.owned_shard(&worker, shard, epoch).is_some() {
                    // Only what the worker says it searched is Done; the rest (a shrink whose
                    // ack was lost) goes back to Free with the shard.
                    self.advance(shard, end);
                    self.drop_shard(shard);
                } else {
                    self.stats.stale += 1;
                }
            }
            EventBody::ShrinkAck { shard, epoch, end } => {
                if self.owned_shard(&worker, shard, epoch).is_some() {
                    self.shrunk(shard, end);
                } else {
                    self.stats.stale += 1;
                }
            }
            EventBody::Bye => self.lose_worker(&worker, Health::Dead),
            EventBody::Hello { .. } | EventBody::Found { .. } => {}
        }
        self.assign_idle(now, out);
        self.check_done(now, out);
    }

    /// Shards the worker should hold but has not mentioned for a whole grace period (an
    /// `Assign` lost on the way, or a `ShardDone` lost back) are taken back and re-sharded.
    pub(super) fn reclaim_unreported(&mut self, now: Duration, worker: &WorkerId, reported: &[ShardId]) {
        let grace = self.cfg.stall_timeout;
        let Some(w) = self.workers.get(worker) else { return };
        let lost: Vec<ShardId> = w
            .shards
            .iter()
            .copied()
            .filter(|id| !reported.contains(id))
            .filter(|id| self.shards.get(id).is_some_and(|s| now > s.assigned_at + grace))
            .collect();
        for shard in lost {
            tracing::warn!(job = %self.cfg.job, %worker, %shard, "shard not reported by its worker; re-sharding it");
            self.stats.reshards += 1;
            self.drop_shard(shard);
        }
    }

    pub(super) fn on_hello(&mut self, now: Duration, worker: WorkerId, inbox: String) {
        self.idle_dirty = true;
        match self.workers.get_mut(&worker) {
            Some(w) => {
                // A duplicate Hello, or a worker back from a stall: it keeps nothing it lost.
                w.inbox = inbox;
                w.last_seen = now;
                if w.health != Health::Live {
                    w.health = Health::Live;
                }
            }
            None => {
                let mut startup = None;
                if !self.pending.is_empty() {
                    // Launches are matched to Hellos first in, first out: exact for a fleet
                    // launched at once, and for replacements as long as they join in order.
                    let launched = self.pending.remove(0);
                    // A resumed job's first Hellos may come from workers of the previous
                    // coordinator (adopted, not launched): they are no start-up measurement.
                    if self.cfg.resume.is_none() {
                        self.startups.push(now.saturating_sub(launched));
                        startup = Some(now.saturating_sub(launched));
                    }
                }
                tracing::info!(job = %self.cfg.job, %worker, "worker joined");
                self.workers.insert(
                    worker,
                    WorkerState {
                        inbox,
                        last_seen: now,
                        shards: BTreeSet::new(),
                        rate: 0.0,
                        health: Health::Live,
                        waiting_steal: false,
                        startup,
                    },
                );
            }
        }
    }

    pub(super) fn touch(&mut self, now: Duration, worker: &WorkerId) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.last_seen = now;
            if w.health == Health::Stalled {
                tracing::info!(job = %self.cfg.job, %worker, "stalled worker is back");
                w.health = Health::Live;
                self.idle_dirty = true;
            }
        }
    }

    pub(super) fn owned_shard(&self, worker: &WorkerId, shard: ShardId, epoch: Epoch) -> Option<&Shard> {
        self.shards.get(&shard).filter(|s| &s.worker == worker && s.epoch == epoch)
    }

    pub(super) fn on_tick(&mut self, now: Duration, out: &mut Vec<Output>) {
        if self.started_at.is_none() {
            return;
        }
        // A periodic look at idle workers bounds any missed wake-up to one tick.
        self.idle_dirty = true;
        // Launches that never said Hello are written off, so they can be replaced.
        let patience = self.cfg.abandon_after.max(self.cfg.stall_timeout * 10);
        self.pending.retain(|&at| now <= at + patience);
        if self.workers.values().any(|w| w.health == Health::Live) || !self.pending.is_empty() {
            self.last_live = now;
        } else if now > self.last_live + patience && self.stats.launched >= self.cfg.max_launches {
            // No worker alive, none starting, none may be launched, and none back for long.
            self.finish(now, OutcomeKind::Failed("every worker was lost".into()), out);
            return;
        }
        if now >= self.last_keepalive + self.cfg.keepalive {
            self.last_keepalive = now;
            out.push(Output::Broadcast(Command::KeepAlive {
                job: self.cfg.job,
                incarnation: self.cfg.incarnation,
            }));
        }
        let stalled: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.health == Health::Live && now > w.last_seen + self.cfg.stall_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in &stalled {
            tracing::warn!(job = %self.cfg.job, %worker, "worker stalled");
            self.lose_worker(worker, Health::Stalled);
        }
        // Keep the planned fleet: replace the stalled, the gone, and launches that never came.
        self.replace_lost(out);
        // A Shrink or its ack lost: stop waiting for it (the owner keeps the shard as it was).
        let grace = self.cfg.stall_timeout;
        let expired: Vec<(ShardId, Option<WorkerId>)> = self
            .shards
            .iter_mut()
            .filter(|(_, s)| s.shrinking && now > s.shrink_sent_at + grace)
            .map(|(&id, s)| {
                s.shrinking = false;
                (id, s.thief.take())
            })
            .collect();
        for (_, thief) in expired {
            self.end_steal_wait(thief);
        }
        self.assign_idle(now, out);
        self.check_done(now, out);
    }

    /// Takes every shard from `worker`; what it had not searched goes back to Free.
    pub(super) fn lose_worker(&mut self, worker: &WorkerId, health: Health) {
        let Some(w) = self.workers.get_mut(worker) else { return };
        if w.health == Health::Dead {
            return;
        }
        let had_work = !w.shards.is_empty();
        if health == Health::Stalled || had_work {
            self.stats.stalls += 1;
        }
        w.health = health;
        w.waiting_steal = false;
        w.rate = 0.0;
        let shards: Vec<ShardId> = std::mem::take(&mut w.shards).into_iter().collect();
        for shard in shards {
            if let Some(s) = self.shards.get(&shard) {
                if s.watermark < s.end {
                    self.stats.reshards += 1;
                    tracing::warn!(job = %self.cfg.job, %worker, %shard,
                        range = %NonceRange::new(s.watermark, s.end), "re-sharding a lost worker's range");
                }
            }
            self.drop_shard(shard);
        }
    }
}
