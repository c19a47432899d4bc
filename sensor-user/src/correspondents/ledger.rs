//! The correspondents ledger: which registrable domains this host delivers mail to, how
//! often and on how many distinct days. Domains only — never an address or a local part.
//! Bounded: past its capacity the least valuable domains (fewest days, then fewest
//! deliveries, then the longest unseen) are evicted first, and counted.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Seconds in a day.
const DAY: u64 = 86_400;
/// Distinct days remembered one by one; older ones only as a count.
const DAY_BITS: u32 = 64;

/// What the ledger knows about one domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Delivery attempts (attributed SMTP connects, or sent lines of an MTA log).
    pub attempts: u64,
    /// First seen (Unix seconds).
    pub first_seen: u64,
    /// Last seen (Unix seconds).
    pub last_seen: u64,
    /// Day (days since 1970-01-01, UTC) of the latest delivery.
    pub last_day: u32,
    /// Bit `i` set: a delivery on `last_day - i`.
    pub day_bits: u64,
    /// Distinct days with a delivery older than the bitmap's window.
    pub older_days: u32,
}

impl Entry {
    /// Distinct days with at least one delivery.
    pub fn days(&self) -> u32 {
        self.day_bits.count_ones() + self.older_days
    }

    /// Counts a delivery at `now` (Unix seconds), `n` times.
    fn add(&mut self, now: u64, n: u64) {
        let day = (now / DAY) as u32;
        if self.attempts == 0 {
            *self = Entry {
                first_seen: now,
                last_seen: now,
                last_day: day,
                ..Entry::default()
            };
        }
        self.attempts = self.attempts.saturating_add(n);
        self.first_seen = self.first_seen.min(now);
        self.last_seen = self.last_seen.max(now);
        self.mark_day(day);
    }

    /// Marks `day` as seen. A day older than the window that is not already counted
    /// cannot be told apart from one that is, so it is not counted (under-counting is
    /// the safe side: it only delays "established").
    fn mark_day(&mut self, day: u32) {
        if day > self.last_day {
            let shift = day - self.last_day;
            let gone = if shift >= DAY_BITS {
                self.day_bits
            } else {
                self.day_bits & !(u64::MAX >> shift)
            };
            self.older_days += gone.count_ones();
            self.day_bits = if shift >= DAY_BITS {
                0
            } else {
                self.day_bits << shift
            };
            self.last_day = day;
            self.day_bits |= 1;
        } else if self.last_day - day < DAY_BITS {
            self.day_bits |= 1 << (self.last_day - day);
        }
    }

    /// Folds `other` (the same domain, from another ledger) into this one.
    fn merge(&mut self, other: &Entry) {
        if other.attempts == 0 {
            return;
        }
        if self.attempts == 0 {
            *self = *other;
            return;
        }
        // Align both bitmaps on the later last day, then take the union; older counts
        // are not comparable, so the larger one is kept (never double-counted).
        let mut a = *self;
        let mut b = *other;
        let last = a.last_day.max(b.last_day);
        a.mark_aligned(last);
        b.mark_aligned(last);
        *self = Entry {
            attempts: a.attempts.saturating_add(b.attempts),
            first_seen: a.first_seen.min(b.first_seen),
            last_seen: a.last_seen.max(b.last_seen),
            last_day: last,
            day_bits: a.day_bits | b.day_bits,
            older_days: a.older_days.max(b.older_days),
        };
    }

    /// Shifts the bitmap so that bit 0 is `day` (not marking `day` itself).
    fn mark_aligned(&mut self, day: u32) {
        let had = self.day_bits;
        if day > self.last_day {
            let shift = day - self.last_day;
            let gone = if shift >= DAY_BITS {
                had
            } else {
                had & !(u64::MAX >> shift)
            };
            self.older_days += gone.count_ones();
            self.day_bits = if shift >= DAY_BITS { 0 } else { had << shift };
            self.last_day = day;
        }
    }
}

/// When a correspondent counts as established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Established {
    /// Distinct days with a delivery, at least.
    pub min_days: u32,
    /// Delivery attempts, at least.
    pub min_attempts: u64,
}

impl Established {
    /// Whether `e` meets the bar.
    pub fn holds(&self, e: &Entry) -> bool {
        e.days() >= self.min_days && e.attempts >= self.min_attempts
    }
}

/// The bounded ledger.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    domains: HashMap<String, Entry>,
    max: usize,
    evictions: u64,
}

/// Most domains a ledger holds unless told otherwise.
pub const DEFAULT_MAX: usize = 100_000;

impl Ledger {
    /// An empty ledger holding at most `max` domains.
    pub fn new(max: usize) -> Self {
        Self {
            domains: HashMap::new(),
            max: max.max(1),
            evictions: 0,
        }
    }

    /// Changes the bound (evicting at once if it shrank).
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        self.trim(self.max);
    }

    /// Counts a delivery to `domain` (a registrable domain, lower case) at `now`.
    pub fn record(&mut self, domain: &str, now: u64) {
        self.record_n(domain, now, 1);
    }

    /// Counts `n` deliveries to `domain` at `now`.
    pub fn record_n(&mut self, domain: &str, now: u64, n: u64) {
        match self.domains.get_mut(domain) {
            Some(e) => e.add(now, n),
            None => {
                let mut e = Entry::default();
                e.add(now, n);
                self.domains.insert(domain.to_string(), e);
                self.bound();
            }
        }
    }

    /// Folds another ledger's entry for `domain` in (an export from another node).
    pub fn merge(&mut self, domain: &str, entry: &Entry) {
        self.domains
            .entry(domain.to_string())
            .or_default()
            .merge(entry);
        self.bound();
    }

    /// Keeps the ledger within its bound: past it by a tenth, the least valuable go
    /// (in one pass, so a flood of new domains costs O(1) per domain on average).
    fn bound(&mut self) {
        if self.domains.len() > self.max + self.max / 10 {
            self.trim(self.max);
        }
    }

    /// Evicts the least valuable domains until at most `keep` remain.
    fn trim(&mut self, keep: usize) {
        if self.domains.len() <= keep {
            return;
        }
        let mut order: Vec<(u32, u64, u64, String)> = self
            .domains
            .iter()
            .map(|(d, e)| (e.days(), e.attempts, e.last_seen, d.clone()))
            .collect();
        let gone = order.len() - keep;
        order.select_nth_unstable(gone - 1);
        for (_, _, _, d) in order.into_iter().take(gone) {
            self.domains.remove(&d);
        }
        self.evictions += gone as u64;
    }

    /// Forgets domains last seen before `cutoff` (Unix seconds); returns how many.
    pub fn forget_before(&mut self, cutoff: u64) -> usize {
        let before = self.domains.len();
        self.domains.retain(|_, e| e.last_seen >= cutoff);
        before - self.domains.len()
    }

    /// What the ledger knows about `domain`.
    pub fn get(&self, domain: &str) -> Option<&Entry> {
        self.domains.get(domain)
    }

    /// Domains held.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Domains evicted by the bound since this ledger was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Every domain with its entry.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.domains.iter().map(|(d, e)| (d.as_str(), e))
    }

    /// Established correspondents, most established first (days, then deliveries,
    /// then name), at most `k`.
    pub fn top_established(&self, bar: Established, k: usize) -> Vec<(&str, &Entry)> {
        let mut v: Vec<(&str, &Entry)> = self.iter().filter(|(_, e)| bar.holds(e)).collect();
        v.sort_by(|a, b| {
            (b.1.days(), b.1.attempts)
                .cmp(&(a.1.days(), a.1.attempts))
                .then(a.0.cmp(b.0))
        });
        v.truncate(k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_790_000_000;

    #[test]
    fn counts_attempts_and_distinct_days() {
        let mut l = Ledger::new(10);
        for d in [0, 0, 1, 3, 3, 3] {
            l.record("partner.example", T0 + d * DAY);
        }
        let e = l.get("partner.example").unwrap();
        assert_eq!((e.attempts, e.days()), (6, 3));
        assert_eq!(e.first_seen, T0);
        assert_eq!(e.last_seen, T0 + 3 * DAY);
        let bar = Established {
            min_days: 3,
            min_attempts: 5,
        };
        assert!(bar.holds(e));
        assert!(!bar.holds(&Entry { attempts: 4, ..*e }));
    }

    #[test]
    fn out_of_order_days_are_counted_once() {
        let mut l = Ledger::new(10);
        for d in [5, 2, 5, 2, 9, 1] {
            l.record("a.example", T0 + d * DAY);
        }
        assert_eq!(l.get("a.example").unwrap().days(), 4);
    }

    #[test]
    fn days_beyond_the_window_are_kept_as_a_count() {
        let mut l = Ledger::new(10);
        for d in 0..200u64 {
            l.record("a.example", T0 + d * 2 * DAY);
        }
        assert_eq!(l.get("a.example").unwrap().days(), 200);
    }

    #[test]
    fn merging_two_nodes_does_not_double_count_shared_days() {
        let mut a = Ledger::new(10);
        let mut b = Ledger::new(10);
        for d in [0, 1, 2] {
            a.record("p.example", T0 + d * DAY);
        }
        for d in [2, 3] {
            b.record("p.example", T0 + d * DAY);
        }
        let be = *b.get("p.example").unwrap();
        a.merge("p.example", &be);
        let e = a.get("p.example").unwrap();
        assert_eq!((e.attempts, e.days()), (5, 4));
    }

    #[test]
    fn bounded_and_the_least_valuable_go_first() {
        let mut l = Ledger::new(100);
        for d in 0..5 {
            l.record("old-friend.example", T0 + d * DAY);
        }
        for i in 0..10_000u64 {
            l.record(&format!("junk{i}.example"), T0 + 10 * DAY + i);
        }
        assert!(l.len() <= 110, "{}", l.len());
        assert!(l.get("old-friend.example").is_some());
        assert!(l.evictions() >= 9_890);
    }

    #[test]
    fn top_established_orders_by_days_then_deliveries() {
        let mut l = Ledger::new(100);
        let bar = Established {
            min_days: 2,
            min_attempts: 2,
        };
        for d in 0..5 {
            l.record("five.example", T0 + d * DAY);
        }
        for d in 0..2 {
            l.record_n("two.example", T0 + d * DAY, 50);
        }
        l.record_n("once.example", T0, 500);
        let top: Vec<&str> = l.top_established(bar, 10).iter().map(|(d, _)| *d).collect();
        assert_eq!(top, ["five.example", "two.example"]);
        assert_eq!(l.top_established(bar, 1).len(), 1);
    }

    #[test]
    fn forgets_what_was_not_seen_for_long() {
        let mut l = Ledger::new(10);
        l.record("old.example", T0);
        l.record("new.example", T0 + 100 * DAY);
        assert_eq!(l.forget_before(T0 + 50 * DAY), 1);
        assert!(l.get("old.example").is_none());
    }
}
