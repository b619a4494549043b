//! The range ledger: which nonces are free, assigned to which shard, or known searched.
//!
//! An interval map over the job's range. Invariants, checked by [`Ledger::check`] in tests:
//! intervals are disjoint, cover the range, and neighbours differ in state (so a Done prefix
//! is one interval and "is everything below n searched?" is one lookup); Done shrinks only by
//! [`Ledger::reopen`], when the worker that claimed it is caught lying or miscomputing. Every operation is O(log n) plus the
//! intervals it touches. Pure data: no I/O, no clock.

use protocol::{NonceRange, ShardId};
use std::collections::BTreeMap;

/// The state of an interval of nonces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// Nobody's.
    Free,
    /// Held by this shard.
    Assigned(ShardId),
    /// Searched.
    Done,
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct Ledger {
    range: NonceRange,
    /// start -> (end, state)
    map: BTreeMap<u128, (u128, Span)>,
    /// start -> end of every Free interval: the index `lowest_free` reads.
    free: BTreeMap<u128, u128>,
    done: u128,
}

impl Ledger {
    /// `range`, all free.
    pub fn new(range: NonceRange) -> Self {
        let mut map = BTreeMap::new();
        let mut free = BTreeMap::new();
        if !range.is_empty() {
            map.insert(range.start, (range.end, Span::Free));
            free.insert(range.start, range.end);
        }
        Ledger { range, map, free, done: 0 }
    }

    /// The range it covers.
    pub fn range(&self) -> NonceRange {
        self.range
    }

    /// Nonces known searched.
    pub fn done_len(&self) -> u128 {
        self.done
    }

    /// Every nonce of the range is searched.
    pub fn is_complete(&self) -> bool {
        self.done == self.range.len()
    }

    /// Every nonce in `range.start..n` is searched.
    pub fn done_below(&self, n: u128) -> bool {
        if n <= self.range.start {
            return true;
        }
        // Neighbours differ in state, so a Done prefix is a single interval.
        matches!(self.map.get(&self.range.start), Some(&(end, Span::Done)) if end >= n)
    }

    /// The state of nonce `n`.
    pub fn state_at(&self, n: u128) -> Option<Span> {
        let (_, &(end, span)) = self.map.range(..=n).next_back()?;
        (n < end).then_some(span)
    }

    /// The lowest Free interval starting below `below`, cut to end by `below` and to at most
    /// `max_len` nonces.
    pub fn lowest_free(&self, below: u128, max_len: u128) -> Option<NonceRange> {
        let (&start, &end) = self.free.iter().next()?;
        let end = end.min(below).min(start.saturating_add(max_len.max(1)));
        (start < end).then_some(NonceRange::new(start, end))
    }

    /// Marks `r` searched. Returns how many nonces became Done.
    pub fn mark_done(&mut self, r: NonceRange) -> u128 {
        self.update(r, Span::Done, |old| old != Span::Done)
    }

    /// Assigns the Free parts of `r` to `shard`. Returns how many nonces were assigned.
    pub fn assign(&mut self, r: NonceRange, shard: ShardId) -> u128 {
        self.update(r, Span::Assigned(shard), |old| old == Span::Free)
    }

    /// Frees the parts of `r` still assigned to `shard`. Returns how many nonces were freed.
    pub fn release(&mut self, r: NonceRange, shard: ShardId) -> u128 {
        self.update(r, Span::Free, |old| old == Span::Assigned(shard))
    }

    /// Puts the Done parts of `r` back to Free: claimed work that can no longer be believed.
    /// Returns how many nonces were reopened.
    pub fn reopen(&mut self, r: NonceRange) -> u128 {
        self.update(r, Span::Free, |old| old == Span::Done)
    }

    /// Sets the parts of `r` whose state passes `pred` to `new`.
    fn update(&mut self, r: NonceRange, new: Span, pred: impl Fn(Span) -> bool) -> u128 {
        let r = NonceRange::new(r.start.max(self.range.start), r.end.min(self.range.end));
        if r.is_empty() {
            return 0;
        }
        self.split_at(r.start);
        self.split_at(r.end);
        let pieces: Vec<(u128, u128, Span)> =
            self.map.range(r.start..r.end).map(|(&s, &(e, st))| (s, e, st)).collect();
        let mut changed = 0;
        for (s, e, old) in pieces {
            if old == new || !pred(old) {
                continue;
            }
            self.put(s, e, new);
            changed += e - s;
        }
        self.merge_window(r.start, r.end);
        changed
    }

    /// Replaces the interval starting at `s` (which must exist and end at `e`) by `new`.
    fn put(&mut self, s: u128, e: u128, new: Span) {
        if let Some((_, old)) = self.map.insert(s, (e, new)) {
            match old {
                Span::Done => self.done -= e - s,
                Span::Free => {
                    self.free.remove(&s);
                }
                Span::Assigned(_) => {}
            }
        }
        match new {
            Span::Done => self.done += e - s,
            Span::Free => {
                self.free.insert(s, e);
            }
            Span::Assigned(_) => {}
        }
    }

    /// Makes an interval start at `at`, splitting the one that covers it.
    fn split_at(&mut self, at: u128) {
        if at <= self.range.start || at >= self.range.end {
            return;
        }
        let Some((&s, &(e, st))) = self.map.range(..=at).next_back() else { return };
        if s == at || at >= e {
            return;
        }
        self.map.insert(s, (at, st));
        self.map.insert(at, (e, st));
        if st == Span::Free {
            self.free.insert(s, at);
            self.free.insert(at, e);
        }
    }

    /// Merges equal neighbours from the interval before `lo` to the one at `hi`.
    fn merge_window(&mut self, lo: u128, hi: u128) {
        let first = self.map.range(..lo).next_back().map_or(lo, |(&s, _)| s);
        let starts: Vec<u128> = self.map.range(first..=hi).map(|(&s, _)| s).collect();
        let mut cur = None::<u128>;
        for s in starts {
            let Some(&(e, st)) = self.map.get(&s) else { continue };
            match cur.and_then(|c| self.map.get(&c).map(|&(ce, cst)| (c, ce, cst))) {
                Some((c, ce, cst)) if cst == st && ce == s => {
                    self.map.remove(&s);
                    self.map.insert(c, (e, st));
                    if st == Span::Free {
                        self.free.remove(&s);
                        self.free.insert(c, e);
                    }
                }
                _ => cur = Some(s),
            }
        }
    }

    /// All intervals in order: (range, state).
    pub fn intervals(&self) -> impl Iterator<Item = (NonceRange, Span)> + '_ {
        self.map.iter().map(|(&s, &(e, st))| (NonceRange::new(s, e), st))
    }

    /// Number of intervals (for load figures).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it covers no nonce.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Checks every invariant; returns what is wrong. For tests and simulations.
    pub fn check(&self) -> Result<(), String> {
        let mut at = self.range.start;
        let mut prev: Option<Span> = None;
        let mut done = 0;
        let mut free = 0;
        for (r, st) in self.intervals() {
            if r.start != at {
                return Err(format!("gap or overlap at {at}: next interval is {r}"));
            }
            if r.is_empty() {
                return Err(format!("empty interval {r}"));
            }
            if prev == Some(st) {
                return Err(format!("unmerged neighbours at {}", r.start));
            }
            if st == Span::Done {
                done += r.len();
            }
            if st == Span::Free {
                free += 1;
                if self.free.get(&r.start) != Some(&r.end) {
                    return Err(format!("free index misses {r}"));
                }
            }
            prev = Some(st);
            at = r.end;
        }
        if at != self.range.end && !self.range.is_empty() {
            return Err(format!("coverage ends at {at}, range ends at {}", self.range.end));
        }
        if done != self.done {
            return Err(format!("done count {} but intervals hold {done}", self.done));
        }
        if free != self.free.len() {
            return Err(format!("free index has {} entries, {free} free intervals", self.free.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Done(u128, u128),
        Assign(u128, u128, u64),
        Release(u128, u128, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let r = (0u128..1000, 0u128..1000).prop_map(|(a, b)| (a.min(b), a.max(b)));
        prop_oneof![
            r.clone().prop_map(|(a, b)| Op::Done(a, b)),
            (r.clone(), 0u64..4).prop_map(|((a, b), s)| Op::Assign(a, b, s)),
            (r, 0u64..4).prop_map(|((a, b), s)| Op::Release(a, b, s)),
        ]
    }

    proptest! {
        /// Against a plain per-nonce model: same states, invariants hold, Done never shrinks.
        #[test]
        fn matches_a_per_nonce_model(base in 0u128..5, ops in proptest::collection::vec(op(), 1..60)) {
            let range = NonceRange::new(base * 100, 1000);
            let mut l = Ledger::new(range);
            let mut model = vec![Span::Free; 1000];
            for op in ops {
                let before = l.done_len();
                match op {
                    Op::Done(a, b) => { l.mark_done(NonceRange::new(a, b)); for m in &mut model[a as usize..b as usize] { *m = Span::Done; } }
                    Op::Assign(a, b, s) => { l.assign(NonceRange::new(a, b), ShardId(s)); for m in &mut model[a as usize..b as usize] { if *m == Span::Free { *m = Span::Assigned(ShardId(s)); } } }
                    Op::Release(a, b, s) => { l.release(NonceRange::new(a, b), ShardId(s)); for m in &mut model[a as usize..b as usize] { if *m == Span::Assigned(ShardId(s)) { *m = Span::Free; } } }
                }
                prop_assert!(l.check().is_ok(), "{:?}", l.check());
                prop_assert!(l.done_len() >= before);
                for n in range.start..range.end {
                    prop_assert_eq!(l.state_at(n), Some(model[n as usize]));
                }
                let done_prefix = (range.start..range.end).take_while(|&n| model[n as usize] == Span::Done).count() as u128;
                prop_assert!(l.done_below(range.start + done_prefix));
                if range.start + done_prefix < range.end {
                    prop_assert!(!l.done_below(range.start + done_prefix + 1));
                }
                let lowest = (range.start..range.end).find(|&n| model[n as usize] == Span::Free);
                prop_assert_eq!(l.lowest_free(u128::MAX, u128::MAX).map(|r| r.start), lowest);
            }
        }
    }

    #[test]
    fn full_64_bit_space() {
        let end = 1u128 << 64;
        let mut l = Ledger::new(NonceRange::new(0, end));
        l.assign(NonceRange::new(end - 10, end), ShardId(1));
        l.mark_done(NonceRange::new(end - 10, end));
        l.mark_done(NonceRange::new(0, end - 10));
        assert!(l.is_complete());
        assert_eq!(l.len(), 1);
        l.check().expect("invariants");
    }
}
