//! Learned name blocks taken over from a previous agent, whose names it did not say:
//! adopted at start (`adopt`: lapsed and contested ones removed, the rest kept until their
//! expiry), then settled by the questions that meet them.
//!
//! Blocks outlive their agent by design (`--keep-attached`, which every shipped unit
//! uses), but the kernel keeps only their keys (and a whole-name block's keyed tag). A
//! question that meets one says a name it may stand for. While the current policy blocks
//! that name, the block takes it. When it does not (the name was allowed, declared the
//! entry's own, became an established correspondent, or was a false positive the
//! operator fixed), the block is no longer extended by that question's answers, so it
//! lapses at the TTL it was learned with; and a whole-name block whose keyed tag is the
//! question's own (the very name) is lifted at once. Before, every answer that met such a
//! block extended it, the real correspondent's own included, so it never lapsed while
//! the MTA retried. A hash match alone lifts nothing: whoever computes a name sharing the
//! key of his own lookalike's block must not get it lifted (`collide.rs`).

use std::collections::HashMap;

use sensor_common::{
    BlockEntry, QnameHashes, domain_hash,
    maps::{BLOCK_LEARNED, BLOCK_POLICY, BLOCK_PREFIX, BLOCK_SUBTREE},
};

use super::{
    Pipeline,
    ledger::{BlockLedger, NameBlock},
};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{AdoptedBlockLifted, Outcome},
    },
    detect::Policy,
    kernel::maps::name_hash,
};

/// A nameless learned block a question meets.
struct Met {
    key: u64,
    /// What it stands for if it is this question's: the whole name, or a domain above it.
    own: Option<String>,
    /// The question's keyed tag is the whole-name block's own (the same name, for sure).
    same_name: bool,
    /// A tagged whole-name block whose tag is another name's: not the question's block.
    other_name: bool,
}

impl<E: Enforcer> BlockLedger<E> {
    /// Takes over what a previous agent left pinned: expired or contested learned entries
    /// are removed at once, live ones kept until their expiry (their names unknown), policy
    /// entries kept until `preload` renews or lifts them (`judge_under` decides whether
    /// earlier verdicts on questions still stand).
    pub fn adopt(&mut self, now_ns: u64) {
        let (mut kept, mut dropped) = (0usize, 0usize);
        // The whole-name blocks' keyed tags, so their names can be told apart later.
        let tags: HashMap<u64, u64> = match self.enforcer.name_tags() {
            Ok(t) => t.into_iter().collect(),
            Err(e) => {
                self.map_error("reading pinned name tags", e);
                HashMap::new()
            }
        };
        match self.enforcer.name_entries() {
            Ok(entries) => {
                for (h, e) in entries {
                    let learned = e.flags & BLOCK_LEARNED != 0;
                    if e.flags & (BLOCK_LEARNED | BLOCK_POLICY) == 0 {
                        continue; // an operator's
                    }
                    if learned && !e.in_force(now_ns) {
                        self.remove_name(h);
                        dropped += 1;
                        continue;
                    }
                    if learned {
                        self.learned_names.insert(h, e.target);
                    } else {
                        self.policy.insert(h);
                    }
                    let whole = e.flags & (BLOCK_SUBTREE | BLOCK_PREFIX) == 0;
                    let tag = tags.get(&h).copied().filter(|_| learned && whole);
                    self.names.insert(h, adopted(e, tag));
                    kept += 1;
                }
            }
            Err(e) => self.map_error("reading pinned name blocks", e),
        }
        let (a_kept, a_dropped) = self.adopt_addrs(now_ns);
        if kept + dropped + a_kept + a_dropped > 0 {
            log::info!(
                "pinned blocks adopted: {kept} names and {a_kept} addresses kept, \
                 {dropped} names and {a_dropped} addresses expired and removed"
            );
        }
    }

    /// The nameless learned blocks the question of `qname` (hashes `hashes`, keyed tag
    /// `tag`) meets.
    fn adopted_met(&self, qname: &str, hashes: &QnameHashes, tag: Option<u64>) -> Vec<Met> {
        self.learned_met(hashes)
            .filter(|m| m.block.name.is_none())
            .map(|m| {
                let kept = m.block.tag.filter(|_| !m.subtree);
                Met {
                    key: m.key,
                    own: m.own(qname),
                    same_name: kept.is_some() && kept == tag,
                    other_name: kept.is_some() && kept != tag,
                }
            })
            .collect()
    }
}

impl<E: Enforcer> Pipeline<E> {
    /// Lifts the nameless learned blocks under the keys of the names the operator allows
    /// or declares an entry's own (`policy`): those names are the operator's choice, not
    /// the attacker's, so a key match is theirs. (A question meeting such a block would
    /// only stop extending it: it held for up to the TTL ceiling after the fix.)
    pub(super) fn lift_adopted_of(&mut self, policy: &Policy) {
        let named = policy
            .allow
            .iter()
            .chain(policy.protect.iter().flat_map(|e| e.also.iter()));
        let mut keys = Vec::new();
        for name in named {
            keys.extend(domain_hash(name).map(|k| (k, name.clone())));
            keys.extend(name_hash(name).map(|k| (k, name.clone())));
        }
        for (key, name) in keys {
            let nameless = self
                .blocks
                .names
                .get(&key)
                .is_some_and(|n| n.name.is_none() && n.flags & BLOCK_LEARNED != 0);
            if nameless && self.blocks.remove_name(key) {
                AdoptedBlockLifted { name }.emit(&mut self.sink);
            }
        }
    }

    /// A question of `qname` (hashes `hashes`, keyed tag `tag`) the agent judged:
    /// `blocked` when the current policy blocks it. The nameless learned blocks it meets
    /// take its name, or are lifted when they are surely its own; returns whether it met
    /// any that the policy no longer upholds for it (its answers must not extend them).
    pub(super) fn settle_adopted(
        &mut self,
        qname: &str,
        hashes: &QnameHashes,
        tag: Option<u64>,
        blocked: bool,
    ) -> bool {
        let mut unheld = false;
        for m in self.blocks.adopted_met(qname, hashes, tag) {
            if blocked {
                if !m.other_name
                    && let Some(n) = self.blocks.names.get_mut(&m.key)
                {
                    n.name = m.own;
                }
                continue;
            }
            unheld = true;
            if m.same_name && self.blocks.remove_name(m.key) {
                AdoptedBlockLifted {
                    name: m.own.unwrap_or_else(|| format!("{:016x}", m.key)),
                }
                .emit(&mut self.sink);
            }
        }
        unheld
    }
}

/// A pinned block as adopted: its name unknown, a whole-name block's keyed `tag` kept.
fn adopted(e: BlockEntry, tag: Option<u64>) -> NameBlock {
    NameBlock {
        name: None,
        target: e.target,
        flags: e.flags,
        expires_ns: e.expires_ns,
        provisional: false,
        tag,
    }
}
