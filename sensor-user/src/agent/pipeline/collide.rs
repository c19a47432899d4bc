//! Name hash collisions: a lookalike's learned name block that a legitimate name's
//! question meets too.
//!
//! The kernel keys name blocks by the 64-bit FNV-1a hash of the name (or of its last two
//! or three labels). FNV is not a keyed hash: whoever picks a lookalike's name can
//! compute one whose hash is a legitimate name's, get it looked up (a sender domain
//! check is enough) and so have the legitimate name's answers dropped for as long as the
//! lookalike's answer says. A name the agent judges legitimate that meets a block learned
//! for another name therefore lifts that block, and the key is refused for learned blocks
//! from then on: the lookalike keeps its detections, its address blocks and the agent's
//! race, but no name block that costs legitimate mail.

use std::collections::{HashMap, VecDeque};

use sensor_common::{
    QnameHashes,
    maps::{BLOCK_LEARNED, BLOCK_PREFIX, BLOCK_SUBTREE},
};

use super::{
    super::{
        enforcer::Enforcer,
        outcomes::{NameBlockLifted, Outcome},
    },
    Pipeline,
    ledger::BlockLedger,
};

/// Most keys remembered as refused; the oldest is forgotten first.
pub const COLLIDED_MAX: usize = 4_096;

/// Keys refused for learned name blocks, each with the legitimate name that met it.
#[derive(Debug, Default)]
pub struct Collided {
    names: HashMap<u64, String>,
    order: VecDeque<u64>,
}

impl Collided {
    /// Whether `key` is refused.
    pub fn contains(&self, key: u64) -> bool {
        self.names.contains_key(&key)
    }

    /// Refuses `key`, which `legitimate` met.
    fn insert(&mut self, key: u64, legitimate: &str) {
        if self.names.insert(key, legitimate.to_string()).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > COLLIDED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.names.remove(&old);
            }
        }
    }
}

/// A learned block lifted because a legitimate name met it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    /// The name or domain the block was learned for.
    pub lookalike: String,
    /// The legitimate name whose question met it.
    pub legitimate: String,
}

/// The last `n` labels of `name`, when it has that many.
fn last_labels(name: &str, n: usize) -> Option<String> {
    let labels: Vec<&str> = name.split('.').collect();
    (labels.len() >= n).then(|| labels[labels.len() - n..].join("."))
}

impl<E: Enforcer> BlockLedger<E> {
    /// The learned blocks that the question of `qname`, a name the agent judged
    /// legitimate (with hashes `hashes`), meets in the kernel though they were learned for
    /// another name: each is lifted and its key refused from now on.
    pub fn collisions(&mut self, qname: &str, hashes: &QnameHashes) -> Vec<Collision> {
        let qname = qname.trim_end_matches('.');
        // The keys the kernel looks this question up by, each with what a block under it
        // stands for when it is no collision, and which blocks it meets (`answer_hit`).
        let keys = [
            (hashes.full, Some(qname.to_string()), false),
            (hashes.last2, last_labels(qname, 2), true),
            (hashes.last3, last_labels(qname, 3), true),
        ];
        let mut found = Vec::new();
        for (key, own, subtree) in keys {
            let Some(block) = self.names.get(&key).filter(|_| key != 0) else {
                continue;
            };
            let meets = if subtree {
                block.flags & BLOCK_SUBTREE != 0
            } else {
                block.flags & BLOCK_PREFIX == 0
            };
            // Only the ledger's own learned blocks, whose name it knows: an operator's and
            // the policy's entries are not chosen by whoever writes DNS answers.
            let Some(learned) = block
                .name
                .clone()
                .filter(|_| meets && block.flags & BLOCK_LEARNED != 0)
            else {
                continue;
            };
            if own.is_some_and(|o| o.eq_ignore_ascii_case(&learned)) {
                continue;
            }
            if self.remove_name(key) {
                self.collided.insert(key, qname);
                found.push(Collision {
                    lookalike: learned,
                    legitimate: qname.to_string(),
                });
            }
        }
        found
    }
}

impl<E: Enforcer> Pipeline<E> {
    /// A question of `qname`, judged legitimate, seen with `hashes`: lifts the learned
    /// blocks it collides with, and reports each.
    pub(super) fn lift_collisions(&mut self, qname: &str, hashes: &QnameHashes) {
        for c in self.blocks.collisions(qname, hashes) {
            NameBlockLifted {
                lookalike: c.lookalike,
                legitimate: c.legitimate,
            }
            .emit(&mut self.sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_keys_are_bounded_oldest_first() {
        let mut c = Collided::default();
        for k in 0..(COLLIDED_MAX as u64 + 2) {
            c.insert(k, "example.org");
        }
        assert!(!c.contains(0) && !c.contains(1));
        assert!(c.contains(2) && c.contains(COLLIDED_MAX as u64 + 1));
        assert_eq!(c.names.len(), COLLIDED_MAX);
    }

    #[test]
    fn the_last_labels_of_a_name() {
        assert_eq!(
            last_labels("mx.example.org", 2).as_deref(),
            Some("example.org")
        );
        assert_eq!(last_labels("example.org", 3), None);
    }
}
