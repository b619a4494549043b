//! Messages in and liveness: routing a worker's event, hellos, heartbeats and their
//! watermarks, and what happens to a worker that goes silent (stalled) or is known gone.

use super::proof::Segment;
use super::{Health, Job, Shard, WorkerState};
use crate::job::{OutcomeKind, Output};
use protocol::auth::ReplayWindow;
use protocol::{ByeReason, Command, Epoch, EventBody, NonceRange, SealedEvent, ShardId, WorkerId};
use std::collections::BTreeSet;
use std::time::Duration;

impl Job {
    /// Whether `sealed` is what it says: of this job, tagged with the key of the worker it
    /// names. Does not record its sequence number (see `on_event`).
    pub(super) fn authentic(&self, sealed: &SealedEvent) -> bool {
        let ev = &sealed.event;
        if ev.job != self.cfg.job {
            return false;
        }
        match self.workers.get(&ev.worker) {
            Some(w) => w.key.opens_event(sealed),
            None => self.cfg.secret.worker_key(self.cfg.job, &ev.worker).opens_event(sealed),
        }
    }

    pub(super) fn on_event(&mut self, now: Duration, sealed: SealedEvent, out: &mut Vec<Output>) {
        if sealed.event.job != self.cfg.job {
            self.stats.ghosts += 1;
            return;
        }
        // The tag first: nothing a forger writes is acted on, nor even counted as progress.
        if !self.authentic(&sealed) {
            self.stats.forged += 1;
            tracing::warn!(worker = %sealed.event.worker, kind = sealed.event.body.kind(),
                "dropped a message whose tag does not verify");
            return;
        }
        let SealedEvent { seq, event: ev, .. } = sealed;
        let worker = ev.worker;
        if let Some(w) = self.workers.get_mut(&worker) {
            if !w.window.accept(seq) {
                self.stats.replayed += 1;
                return;
            }
            if w.health == Health::Suspect {
                self.stats.stale += 1;
                return;
            }
        }
        if let EventBody::Hello { inbox, .. } = &ev.body {
            self.on_hello(now, worker.clone(), inbox.clone(), seq);
            self.assign_idle(now, out);
            return;
        }
        if !self.workers.contains_key(&worker) {
            // Only a Hello introduces a worker; before it, nothing it says is routed.
            self.stats.stale += 1;
            return;
        }
        self.touch(now, &worker);
        match ev.body {
            EventBody::Found { nonce, .. } => self.on_found(now, nonce, out),
            EventBody::Heartbeat { shards, rate, best } => {
                let reported: Vec<ShardId> = shards.iter().map(|p| p.shard).collect();
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.rate = if rate.is_finite() && rate >= 0.0 { rate } else { 0.0 };
                }
                for p in shards {
                    if self.workers.get(&worker).is_some_and(|w| w.health == Health::Suspect) {
                        break;
                    }
                    // Finds first, then the segment that covers them: a `lowest` answer is
                    // never below a range marked done without its finds. A `first` job ends
                    // on its find, so there the segment goes first, or the work before the
                    // find would be missing from the report.
                    let first = self.cfg.mode == protocol::Mode::First;
                    if !first {
                        for &nonce in &p.found {
                            self.take_found(now, nonce, out);
                        }
                    }
                    if self.is_check_of(&worker, p.shard, p.epoch) {
                        self.check_progress(now, &worker, p.shard, p.from, p.watermark, &p.shares, None, out);
                    } else {
                        match self.owned_shard(&worker, p.shard, p.epoch) {
                            Some(_) => {
                                let segment = Segment {
                                    from: p.from,
                                    to: p.watermark,
                                    found: &p.found,
                                    shares: &p.shares,
                                };
                                self.credit(now, &worker, p.shard, segment, out);
                            }
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
                    if first {
                        for &nonce in &p.found {
                            self.take_found(now, nonce, out);
                        }
                    }
                }
                if let Some(b) = best {
                    self.offer_best(b.nonce);
                }
                self.reclaim_unreported(now, &worker, &reported);
                self.reclaim_unreported_checks(now, &worker, &reported);
            }
            EventBody::ShardDone { shard, epoch, best, from, end, found, shares } => {
                if let Some(b) = best {
                    self.offer_best(b.nonce);
                }
                for &nonce in &found {
                    self.take_found(now, nonce, out);
                }
                if self.is_check_of(&worker, shard, epoch) {
                    self.check_progress(now, &worker, shard, from, end, &shares, Some(end), out);
                } else if self.owned_shard(&worker, shard, epoch).is_some() {
                    // Only what the worker proves it searched is Done; the rest (a shrink whose
                    // ack was lost) goes back to Free with the shard.
                    let segment = Segment { from, to: end, found: &found, shares: &shares };
                    self.credit(now, &worker, shard, segment, out);
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
            EventBody::Bye { reason } => {
                // Interrupted with work in hand (Fargate Spot's SIGTERM, mostly): counted, and
                // its range re-sharded at once, from the final progress it sent before.
                let busy = self
                    .workers
                    .get(&worker)
                    .is_some_and(|w| !w.shards.is_empty() && w.health == Health::Live);
                if reason == ByeReason::Terminated && busy {
                    self.stats.interruptions += 1;
                }
                self.lose_worker(&worker, Health::Gone)
            }
            EventBody::Hello { .. } => {}
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
            tracing::warn!(%worker, %shard, "shard not reported by its worker; re-sharding it");
            self.stats.reshards += 1;
            self.drop_shard(shard);
        }
    }

    /// A worker's tag already verified; it is one this job launched (or, resumed, one a
    /// previous life launched). Its inbox must be its own.
    pub(super) fn on_hello(&mut self, now: Duration, worker: WorkerId, inbox: String, seq: u64) {
        if !self.cfg.inbox.allows(&worker, &inbox) {
            self.stats.forged += 1;
            tracing::warn!(%worker, %inbox, expected = %self.cfg.inbox.inbox_of(&worker),
                "refused a Hello naming an inbox that is not the worker's own");
            return;
        }
        self.idle_dirty = true;
        if let Some(w) = self.workers.get_mut(&worker) {
            // A duplicate Hello, or a worker back from a stall: it keeps nothing it lost.
            w.last_seen = now;
            if w.health == Health::Stalled {
                w.health = Health::Live;
            }
            return;
        }
        let startup = match self.pending.remove(&worker) {
            Some(launched) => Some(now.saturating_sub(launched)),
            // Its request's `LaunchSent` has not come yet (it is on its way): no sample.
            None if self.queued.remove(&worker) => None,
            // Not launched by this life: adopted from a previous one (only a resumed job
            // has those), or a key that leaked from somewhere it should not have.
            None if self.cfg.resume.is_some() => None,
            None => {
                self.stats.forged += 1;
                tracing::warn!(%worker, "refused a Hello from a worker this job never launched");
                return;
            }
        };
        if let Some(s) = startup {
            self.startups.push(s);
        }
        tracing::info!(%worker, "worker joined");
        let mut window = ReplayWindow::default();
        window.accept(seq);
        let key = self.cfg.secret.worker_key(self.cfg.job, &worker);
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
                key,
                window,
                credited: 0,
                shares: 0,
                claims: super::proof::Claims::default(),
            },
        );
    }

    pub(super) fn touch(&mut self, now: Duration, worker: &WorkerId) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.last_seen = now;
            if w.health == Health::Stalled {
                tracing::info!(%worker, "stalled worker is back");
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
        self.last_tick = now;
        // A periodic look at idle workers bounds any missed wake-up to one tick.
        self.idle_dirty = true;
        // Launches that never said Hello are written off, so they can be replaced.
        let patience = self.cfg.abandon_after.max(self.cfg.stall_timeout * 10);
        self.pending.retain(|_, &mut at| now <= at + patience);
        let starting = !self.pending.is_empty() || !self.queued.is_empty();
        if self.workers.values().any(|w| w.health == Health::Live) || starting {
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
            tracing::warn!(%worker, "worker stalled");
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
        if matches!(w.health, Health::Gone | Health::Suspect) {
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
                    tracing::warn!(%worker, %shard,
                        range = %NonceRange::new(s.watermark, s.end), "re-sharding a lost worker's range");
                }
            }
            self.drop_shard(shard);
        }
        self.orphan_checks(worker);
        self.idle_dirty = true;
    }
}
