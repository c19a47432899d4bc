//! A bounded map whose entries expire: least recently used entries go first when full,
//! full by count or, where the map weighs its entries, by their total weight (bytes).

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
    time::Instant,
};

struct Slot<V> {
    value: V,
    expires: Instant,
    tick: u64,
}

/// Bounded, expiring, least-recently-used map.
pub struct TtlLru<K, V> {
    map: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
    tick: u64,
    capacity: usize,
    evictions: u64,
    /// What an entry weighs, the most the entries may weigh together, and what they do.
    weigh: fn(&K, &V) -> usize,
    max_weight: usize,
    weight: usize,
}

impl<K: Hash + Eq + Clone, V> TtlLru<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::weighed(capacity, usize::MAX, |_, _| 0)
    }

    /// An empty map holding at most `capacity` entries (at least one) that weigh at most
    /// `max_weight` together by `weigh` (one entry heavier than that is still held, alone).
    /// Where whoever fills the map chooses how big an entry is (names up to 253 bytes,
    /// lists of them), a count alone does not bound its memory.
    pub fn weighed(capacity: usize, max_weight: usize, weigh: fn(&K, &V) -> usize) -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
            evictions: 0,
            weigh,
            max_weight,
            weight: 0,
        }
    }

    /// Changes the bound, evicting the least recently used entries beyond it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.map.len() > self.capacity {
            self.evict_one();
        }
    }

    fn bump(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn evict_one(&mut self) {
        if let Some((_, k)) = self.order.pop_first() {
            if let Some(slot) = self.map.remove(&k) {
                self.weight -= (self.weigh)(&k, &slot.value);
            }
            self.evictions += 1;
        }
    }

    /// Inserts or replaces `key`, valid until `expires`.
    pub fn insert(&mut self, key: K, value: V, expires: Instant) {
        let tick = self.bump();
        self.weight += (self.weigh)(&key, &value);
        if let Some(old) = self.map.insert(
            key.clone(),
            Slot {
                value,
                expires,
                tick,
            },
        ) {
            self.order.remove(&old.tick);
            self.weight -= (self.weigh)(&key, &old.value);
        } else if self.map.len() > self.capacity {
            // The new key has the newest tick, so the oldest is someone else.
            self.evict_one();
        }
        self.order.insert(tick, key);
        // The new entry is the newest, so the others go first.
        while self.weight > self.max_weight && self.map.len() > 1 {
            self.evict_one();
        }
    }

    /// The live value for `key`, marking it recently used; expired entries are dropped.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<&V> {
        let expired = self.map.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        let tick = self.bump();
        let slot = self.map.get_mut(key)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, key.clone());
        self.map.get(key).map(|s| &s.value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.tick);
        self.weight -= (self.weigh)(key, &slot.value);
        Some(slot.value)
    }

    /// What the entries weigh together (0 unless `weighed`).
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Drops every expired entry; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<(K, V)> {
        let dead: Vec<K> = self
            .map
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        dead.into_iter()
            .filter_map(|k| self.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Entries held (expired ones included until touched or expired).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries pushed out by the bound since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Every live entry, oldest use first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.order
            .values()
            .filter_map(|k| self.map.get_key_value(k).map(|(k, s)| (k, &s.value)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bounded_least_recently_used_goes_first() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut c = TtlLru::new(2);
        c.insert("a", 1, later);
        c.insert("b", 2, later);
        assert_eq!(c.get(&"a", now), Some(&1)); // a is now the most recent
        c.insert("c", 3, later);
        assert_eq!(c.len(), 2);
        assert_eq!(c.evictions(), 1);
        assert_eq!(c.get(&"b", now), None);
        assert_eq!(c.get(&"a", now), Some(&1));
        c.insert("a", 10, later); // replacing is not an eviction
        assert_eq!(c.evictions(), 1);
        assert_eq!(c.get(&"a", now), Some(&10));
    }

    #[test]
    fn a_weighed_map_is_bounded_by_its_entries_weight() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut c: TtlLru<u32, String> = TtlLru::weighed(100, 1_000, |_, v| v.len());
        for k in 0..10 {
            c.insert(k, "x".repeat(300), later);
            assert!(c.weight() <= 1_000, "{}", c.weight());
        }
        assert_eq!((c.len(), c.weight()), (3, 900));
        assert_eq!(c.evictions(), 7);
        // The newest stays; replacing and removing keep the weight true.
        assert_eq!(c.get(&9, now).map(String::len), Some(300));
        c.insert(9, "y".repeat(10), later);
        assert_eq!(c.weight(), 610);
        c.remove(&8);
        assert_eq!(c.weight(), 310);
        // One entry heavier than the bound is still held, alone.
        c.insert(20, "z".repeat(5_000), later);
        assert_eq!((c.len(), c.weight()), (1, 5_000));
        assert_eq!(c.expire(later).len(), 1);
        assert_eq!(c.weight(), 0);
    }

    #[test]
    fn entries_expire() {
        let now = Instant::now();
        let mut c = TtlLru::new(10);
        c.insert(1, "short", now + Duration::from_secs(1));
        c.insert(2, "long", now + Duration::from_secs(100));
        assert_eq!(c.get(&1, now + Duration::from_secs(2)), None);
        c.insert(3, "short", now + Duration::from_secs(1));
        let gone = c.expire(now + Duration::from_secs(5));
        assert_eq!(gone, vec![(3, "short")]);
        assert_eq!(c.len(), 1);
        c.set_capacity(0);
        assert_eq!(c.len(), 1);
    }
}
