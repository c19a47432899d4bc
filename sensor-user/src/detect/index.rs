//! One hash table from 64-bit keys to the ids they point at.

use std::collections::HashMap;

use super::keys::BuildPreHashed;

/// Ids under one key; almost always one, so that case does not allocate.
#[derive(Debug, Clone)]
enum Posting {
    One(u32),
    Many(Vec<u32>),
}

/// Keys (see [`super::keys`]) to target, word or allow-list ids.
#[derive(Debug, Default, Clone)]
pub struct Index {
    map: HashMap<u64, Posting, BuildPreHashed>,
}

impl Index {
    /// Records that `key` leads to `id`.
    pub fn add(&mut self, key: u64, id: u32) {
        match self.map.get_mut(&key) {
            None => {
                self.map.insert(key, Posting::One(id));
            }
            Some(Posting::One(v)) if *v == id => {}
            Some(Posting::One(v)) => {
                let first = *v;
                self.map.insert(key, Posting::Many(vec![first, id]));
            }
            Some(Posting::Many(v)) => {
                if !v.contains(&id) {
                    v.push(id);
                }
            }
        }
    }

    /// The ids under `key` (empty when none).
    pub fn get(&self, key: u64) -> &[u32] {
        match self.map.get(&key) {
            None => &[],
            Some(Posting::One(v)) => std::slice::from_ref(v),
            Some(Posting::Many(v)) => v,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Trims spare capacity after building.
    pub fn shrink(&mut self) {
        self.map.shrink_to_fit();
    }
}
