//! A bound on learned blocks that a flood cannot turn against anyone else: when full,
//! the least recently used entry of the protected target with the most entries goes.
//! A flood of lookalikes of one target evicts only that target's oldest blocks; every
//! other target keeps its own.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    hash::Hash,
};

/// Keys grouped by target, bounded, evicting fairly.
pub struct FairLru<K> {
    /// Key → (target, tick of last use).
    at: HashMap<K, (u32, u64)>,
    /// Target → its keys by last use.
    order: HashMap<u32, BTreeMap<u64, K>>,
    /// (entries, target) for every target with entries: the last is the largest.
    sizes: BTreeSet<(usize, u32)>,
    tick: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> FairLru<K> {
    /// Empty, holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            at: HashMap::new(),
            order: HashMap::new(),
            sizes: BTreeSet::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    fn resize(&mut self, target: u32, old: usize, new: usize) {
        self.sizes.remove(&(old, target));
        if new > 0 {
            self.sizes.insert((new, target));
        }
    }

    fn size(&self, target: u32) -> usize {
        self.order.get(&target).map_or(0, BTreeMap::len)
    }

    /// Adds `key` for `target` as the most recently used (or marks it used); returns the
    /// keys evicted to make room, with their targets.
    pub fn insert(&mut self, key: K, target: u32) -> Vec<(K, u32)> {
        if self.at.contains_key(&key) {
            self.touch(&key);
            return Vec::new();
        }
        let mut evicted = Vec::new();
        while self.at.len() >= self.capacity {
            match self.evict() {
                Some(e) => evicted.push(e),
                None => break,
            }
        }
        self.tick += 1;
        let n = self.size(target);
        self.order
            .entry(target)
            .or_default()
            .insert(self.tick, key.clone());
        self.at.insert(key, (target, self.tick));
        self.resize(target, n, n + 1);
        evicted
    }

    /// Marks `key` used now.
    pub fn touch(&mut self, key: &K) {
        let Some((target, tick)) = self.at.get(key).copied() else {
            return;
        };
        self.tick += 1;
        if let Some(o) = self.order.get_mut(&target) {
            o.remove(&tick);
            o.insert(self.tick, key.clone());
        }
        self.at.insert(key.clone(), (target, self.tick));
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        let Some((target, tick)) = self.at.remove(key) else {
            return;
        };
        let n = self.size(target);
        if let Some(o) = self.order.get_mut(&target) {
            o.remove(&tick);
            if o.is_empty() {
                self.order.remove(&target);
            }
        }
        self.resize(target, n, n - 1);
    }

    /// Removes and returns the least recently used key of the largest target.
    fn evict(&mut self) -> Option<(K, u32)> {
        let (_, target) = *self.sizes.last()?;
        let (_, key) = self.order.get(&target)?.first_key_value()?;
        let key = key.clone();
        self.remove(&key);
        Some((key, target))
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_for_one_target_evicts_only_its_own_oldest() {
        let mut b = FairLru::new(4);
        assert!(b.insert("b1", 2).is_empty());
        assert!(b.insert("a1", 1).is_empty());
        assert!(b.insert("a2", 1).is_empty());
        b.touch(&"a1");
        assert!(b.insert("a3", 1).is_empty());
        // Full: target 1 has the most, its least recently used (a2) goes.
        assert_eq!(b.insert("a4", 1), vec![("a2", 1)]);
        for i in 0..100 {
            let k: &'static str = Box::leak(format!("flood{i}").into_boxed_str());
            for (gone, t) in b.insert(k, 1) {
                assert_eq!(t, 1, "{gone} of another target evicted");
            }
        }
        assert_eq!(b.len(), 4);
        assert!(
            b.at.contains_key("b1"),
            "target 2's block survived the flood"
        );
        b.remove(&"b1");
        assert_eq!(b.len(), 3);
        assert!(!b.is_empty());
    }

    #[test]
    fn the_largest_target_gives_way_to_a_new_one() {
        let mut b = FairLru::new(3);
        b.insert(1u64, 7);
        b.insert(2, 7);
        b.insert(3, 7);
        assert_eq!(b.insert(4, 9), vec![(1, 7)]);
        assert_eq!(b.insert(1, 7), vec![(2, 7)]);
    }
}
