//! `Alarm`: the one timer an actor keeps for the sans-IO machine inside it (the coordinator's
//! `Job`, the worker's `WorkerMachine`). After every input the actor sets it to the machine's
//! `poll_timeout`; it is moved only when that moves, so the many inputs that leave the time
//! where it was (most heartbeats) cost nothing.

use actix::prelude::*;
use std::time::Duration;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Alarm {
    /// When it rings (in the machine's time) and its handle.
    armed: Option<(Duration, SpawnHandle)>,
}

impl Alarm {
    /// Rings `ring` at `wanted` (machine time; `now` is the time now), or never if `None`.
    /// An alarm already set there and not yet due is left alone; one that is due or past has
    /// rung (or is about to), so it is set again.
    pub fn set<A, F>(&mut self, ctx: &mut Context<A>, wanted: Option<Duration>, now: Duration, ring: F)
    where
        A: Actor<Context = Context<A>>,
        F: FnOnce(&mut A, &mut Context<A>) + 'static,
    {
        if let Some((at, _)) = &self.armed {
            if Some(*at) == wanted && now < *at {
                return;
            }
        }
        if let Some((_, handle)) = self.armed.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = wanted {
            let handle = ctx.run_later(at.saturating_sub(now), ring);
            self.armed = Some((at, handle));
        }
    }
}
