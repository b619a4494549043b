//! The failed-authentication throttle: each client address may fail to authenticate a few
//! times a minute; after that it gets 429 without its token being looked at, so guessing
//! tokens from one address runs at a handful a minute (tokens are 256-bit random anyway:
//! this is about log noise and CPU, not the odds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at most; the oldest windows are forgotten first when full.
const MAX_TRACKED: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// Failed authentications per client address, in fixed one-minute windows.
#[derive(Debug)]
pub struct AuthThrottle {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthThrottle {
    pub fn new(per_minute: u32) -> Self {
        AuthThrottle { per_minute, failures: Mutex::new(HashMap::new()) }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` has used up its failures for this window (the caller then answers 429).
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures()
            .get(&ip)
            .is_some_and(|(since, n)| now.duration_since(*since) < WINDOW && *n >= self.per_minute)
    }

    /// Records one failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, (since, _))| *since).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_until_the_minute_passes() {
        let t = AuthThrottle::new(3);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!t.blocked(a, t0));
            t.failed(a, t0);
        }
        assert!(t.blocked(a, t0 + Duration::from_secs(59)));
        assert!(!t.blocked(b, t0), "another address is not affected");
        assert!(!t.blocked(a, t0 + Duration::from_secs(61)), "a new window");
        t.failed(a, t0 + Duration::from_secs(61));
        assert!(!t.blocked(a, t0 + Duration::from_secs(61)), "the count restarted");
    }
}
