//! WebSocket tickets: a browser cannot put `Authorization` on a WebSocket handshake, and a
//! token in the URL would end up in logs. So the page buys a ticket with its token
//! (`POST /ticket`, bearer), then opens `/ws?ticket=T`: a ticket is random, works once, and
//! expires in 30 seconds, so one that leaks into a log is worthless.

use crate::users::Caller;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(30);
/// Tickets outstanding at most; the oldest go first.
const MAX_OUTSTANDING: usize = 10_000;

/// Outstanding tickets and whom they stand for.
#[derive(Debug, Default)]
pub struct Tickets {
    open: Mutex<HashMap<String, (Caller, u64, Instant)>>,
}

impl Tickets {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Caller, u64, Instant)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh ticket for `caller`, authenticated in users' `generation`.
    pub fn issue(&self, caller: Caller, generation: u64, now: Instant) -> String {
        let (ticket, _) = crate::users::new_token();
        let mut open = self.open();
        open.retain(|_, (_, _, at)| now.duration_since(*at) < TTL);
        if open.len() >= MAX_OUTSTANDING {
            if let Some(oldest) = open.iter().min_by_key(|(_, (_, _, at))| *at).map(|(k, _)| k.clone()) {
                open.remove(&oldest);
            }
        }
        open.insert(ticket.clone(), (caller, generation, now));
        ticket
    }

    /// The caller a ticket stands for and the generation it was bought in, once, if it has
    /// not expired.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<(Caller, u64)> {
        let (caller, generation, at) = self.open().remove(ticket)?;
        (now.duration_since(at) < TTL).then_some((caller, generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_and_not_after_it_expires() {
        let t = Tickets::default();
        let now = Instant::now();
        let a = t.issue(Caller::daemon(), 0, now);
        assert_eq!(t.redeem(&a, now), Some((Caller::daemon(), 0)));
        assert_eq!(t.redeem(&a, now), None, "used");
        let b = t.issue(Caller::daemon(), 0, now);
        assert_eq!(t.redeem(&b, now + TTL), None, "expired");
        assert_eq!(t.redeem("made-up", now), None);
    }
}
