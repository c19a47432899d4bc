//! Name hash collisions: a lookalike's learned name block that a legitimate name's
//! question meets too.
//!
//! The kernel keys name blocks by the 64-bit FNV-1a hash of the name (or of its last two
//! or three labels). FNV is not a keyed hash: whoever picks a lookalike's name can
//! compute one whose hash is a legitimate name's, get it looked up (a sender domain
//! check is enough), and the learned block then drops that legitimate name's answers
//! for as long as the lookalike's answer says. The reverse is as cheap: a legitimate-
//! looking name that collides with the lookalike's own key. So a collision is reported,
//! never acted on by itself: lifting the block would hand whoever computes one a way to
//! unblock their own lookalike, and enforce mode fails closed for the lookalike. The
//! legitimate name's answers are not allowed to extend the block, and the operator, told
//! which names meet, decides (`mxsentry ctl`). A learned whole-name block carries the
//! name's keyed tag (`namekey.rs`), which no one without the key can make collide: only
//! untagged blocks and domain blocks (whose names a lookalike's owner can vary far less)
//! can still be met this way.

use std::collections::{HashSet, VecDeque};

use sensor_common::QnameHashes;

use super::{
    super::{
        enforcer::Enforcer,
        outcomes::{NameHashCollision, Outcome},
    },
    Pipeline,
    ledger::{BlockLedger, NameBlock},
};

/// Most (key, legitimate name) pairs remembered as reported; the oldest is forgotten
/// first (and reported again if it comes back).
pub const REPORTED_MAX: usize = 4_096;

/// Collisions already reported, so a name asked again does not repeat the event.
#[derive(Debug, Default)]
pub struct Reported {
    seen: HashSet<(u64, String)>,
    order: VecDeque<(u64, String)>,
}

impl Reported {
    /// Remembers `(key, name)`; whether it is new.
    fn first(&mut self, key: u64, name: &str) -> bool {
        let k = (key, name.to_string());
        if !self.seen.insert(k.clone()) {
            return false;
        }
        self.order.push_back(k);
        while self.order.len() > REPORTED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// A learned block that a legitimate name's question meets in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    /// The kernel key both share.
    pub key: u64,
    /// The name or domain the block was learned for.
    pub lookalike: String,
    /// The legitimate name whose question meets it.
    pub legitimate: String,
}

/// The last `n` labels of `name`, when it has that many.
fn last_labels(name: &str, n: usize) -> Option<String> {
    let labels: Vec<&str> = name.split('.').collect();
    (labels.len() >= n).then(|| labels[labels.len() - n..].join("."))
}

/// A learned name block one of a question's keys meets, as the kernel's `answer_hit`
/// looks the question up: its whole name, or a domain of its last 2 or 3 labels.
pub(super) struct KeyMet<'a> {
    /// The key.
    pub key: u64,
    /// The block under it.
    pub block: &'a NameBlock,
    /// A domain key (`BLOCK_SUBTREE` blocks only), not the whole name.
    pub subtree: bool,
    /// Labels the key covers (0: the whole name).
    labels: usize,
}

impl KeyMet<'_> {
    /// What a block under this key stands for if it is the question's own (`qname`'s
    /// whole name, or its domain); computed only for a key that met a block.
    pub fn own(&self, qname: &str) -> Option<String> {
        let qname = qname.trim_end_matches('.');
        if self.labels == 0 {
            Some(qname.to_string())
        } else {
            last_labels(qname, self.labels)
        }
    }
}

impl<E: Enforcer> BlockLedger<E> {
    /// The learned blocks a question with `hashes` meets in the kernel (a whole-name
    /// block's tag not checked).
    pub(super) fn learned_met<'a>(
        &'a self,
        hashes: &QnameHashes,
    ) -> impl Iterator<Item = KeyMet<'a>> {
        [(hashes.full, 0), (hashes.last2, 2), (hashes.last3, 3)]
            .into_iter()
            .filter_map(|(key, labels)| {
                let subtree = labels != 0;
                let block = self
                    .names
                    .get(&key)
                    .filter(|b| key != 0 && b.learned_and_met(subtree))?;
                Some(KeyMet {
                    key,
                    block,
                    subtree,
                    labels,
                })
            })
    }

    /// The learned blocks that the question of `qname`, a name the agent judged
    /// legitimate (with hashes `hashes` and keyed tag `tag`), meets in the kernel though
    /// they were learned for another name. A whole-name block with a tag other than the
    /// question's is not met: the kernel tells the two names apart.
    pub fn collisions(
        &self,
        qname: &str,
        hashes: &QnameHashes,
        tag: Option<u64>,
    ) -> Vec<Collision> {
        let mut found = Vec::new();
        for m in self.learned_met(hashes) {
            if !m.subtree && m.block.tag.is_some_and(|t| Some(t) != tag) {
                continue;
            }
            // Only the ledger's own learned blocks, whose name it knows: an operator's and
            // the policy's entries are not chosen by whoever writes DNS answers.
            let Some(learned) = m.block.name.clone() else {
                continue;
            };
            if m.own(qname)
                .is_some_and(|o| o.eq_ignore_ascii_case(&learned))
            {
                continue;
            }
            found.push(Collision {
                key: m.key,
                lookalike: learned,
                legitimate: qname.trim_end_matches('.').to_string(),
            });
        }
        found
    }
}

impl<E: Enforcer> Pipeline<E> {
    /// A question of `qname`, judged legitimate, seen with `hashes` and keyed `tag`:
    /// reports (once per key and name) each learned block it collides with; whether there
    /// was any.
    pub(super) fn report_collisions(
        &mut self,
        qname: &str,
        hashes: &QnameHashes,
        tag: Option<u64>,
    ) -> bool {
        let found = self.blocks.collisions(qname, hashes, tag);
        for c in &found {
            if self.collisions_reported.first(c.key, &c.legitimate) {
                NameHashCollision {
                    lookalike: c.lookalike.clone(),
                    legitimate: c.legitimate.clone(),
                }
                .emit(&mut self.sink);
            }
        }
        !found.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_pairs_are_bounded_oldest_first() {
        let mut r = Reported::default();
        assert!(r.first(1, "example.org"));
        assert!(!r.first(1, "example.org"));
        assert!(r.first(1, "example.net"));
        for k in 2..(REPORTED_MAX as u64 + 2) {
            r.first(k, "example.org");
        }
        assert!(r.first(1, "example.org"), "forgotten once past the bound");
        assert_eq!(r.seen.len(), REPORTED_MAX);
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
