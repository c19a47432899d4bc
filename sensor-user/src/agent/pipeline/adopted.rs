//! Learned name blocks taken over from a previous agent, whose names it did not say.
//!
//! Blocks outlive their agent by design (`--keep-attached`, which every shipped unit
//! uses), but the kernel keeps only their keys. A question that meets one tells the
//! agent a name it stands for: when the current policy still blocks that name, the block
//! takes the name; when it does not (the name was allowed, declared the entry's own,
//! became an established correspondent, or was a false positive the operator fixed), the
//! block is lifted. Before, such a block was extended by every answer that met it, the
//! real correspondent's own included, so it never lapsed and the operator's fix lifted
//! nothing.

use sensor_common::QnameHashes;

use super::{Pipeline, collide::last_labels, ledger::BlockLedger};
use crate::agent::{
    enforcer::Enforcer,
    outcomes::{AdoptedBlockLifted, Outcome},
};

impl<E: Enforcer> BlockLedger<E> {
    /// The nameless learned blocks the question of `qname` (hashes `hashes`) meets, each
    /// with the name it stands for if it is this question's: the whole name, or the
    /// domain of a domain block.
    fn adopted_met(&self, qname: &str, hashes: &QnameHashes) -> Vec<(u64, Option<String>)> {
        let qname = qname.trim_end_matches('.');
        [
            (hashes.full, Some(qname.to_string()), false),
            (hashes.last2, last_labels(qname, 2), true),
            (hashes.last3, last_labels(qname, 3), true),
        ]
        .into_iter()
        .filter(|(key, _, subtree)| {
            *key != 0
                && self
                    .names
                    .get(key)
                    .is_some_and(|n| n.name.is_none() && n.learned_and_met(*subtree))
        })
        .map(|(key, own, _)| (key, own))
        .collect()
    }
}

impl<E: Enforcer> Pipeline<E> {
    /// A question of `qname` (hashes `hashes`) the agent judged: `blocked` when the
    /// current policy blocks it. The nameless learned blocks it meets take its name, or
    /// are lifted (reported, counted); whether any was lifted (an answer must then not
    /// extend what remains).
    pub(super) fn settle_adopted(
        &mut self,
        qname: &str,
        hashes: &QnameHashes,
        blocked: bool,
    ) -> bool {
        let met = self.blocks.adopted_met(qname, hashes);
        let mut lifted = false;
        for (key, own) in met {
            if blocked {
                if let Some(n) = self.blocks.names.get_mut(&key) {
                    n.name = own;
                }
                continue;
            }
            if self.blocks.remove_name(key) {
                lifted = true;
                AdoptedBlockLifted {
                    name: own.unwrap_or_else(|| format!("{key:016x}")),
                }
                .emit(&mut self.sink);
            }
        }
        lifted
    }
}
