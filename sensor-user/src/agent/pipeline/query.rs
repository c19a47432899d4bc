//! Lookups as they leave the host: a lookalike of a `block` entry is put in the kernel's
//! name map here, racing its answer; every MX question gets its verdict written, so an
//! answer the kernel holds for it is released (clean) or dropped (lookalike) on the
//! resolver's retry at the latest.

use sensor_common::{
    QnameHashes, domain_hash, maps::target_id, qname_hashes, tag::question_tag_of,
};

use super::{DnsIn, Pipeline, blocks, ledger::Put};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{LookalikeLookedUp, Outcome},
    },
    detect::{Action, Finding},
    dns::{Message, QType},
    kernel::maps::name_hash,
    output::clock::since_kernel,
};

impl<E: Enforcer> Pipeline<E> {
    /// A query leaving the host.
    pub(super) fn on_query(&mut self, msg: &Message, d: &DnsIn) {
        if !d.resolver {
            self.askers.note(std::time::Instant::now());
        }
        let finding = self.lookalike(&msg.qname);
        let (put, hashes, tag) = self.judge_question(msg, d, finding.as_ref());
        if let Some(h) = &hashes {
            let block = finding.as_ref().is_some_and(|f| f.action == Action::Block);
            self.settle_adopted(&msg.qname, h, tag, block);
        }
        let Some(f) = finding else {
            if let Some(h) = &hashes {
                self.report_collisions(&msg.qname, h, tag);
            }
            return;
        };
        let block_latency = (put == Put::Added).then(|| since_kernel(d.ts_ns));
        LookalikeLookedUp {
            qtype: msg.qtype.name(),
            lookalike: self.detection(&msg.qname, &f),
            name_blocked: put != Put::Failed,
            block_latency,
            resolver_upstream: d.resolver,
            socket: self.who.socket(d.cgroup_id),
        }
        .emit(&mut self.sink);
    }

    /// Writes what the kernel needs to decide the answers to `msg`'s question (`finding`
    /// is the engine's word on it): a `block` lookalike's name block, and the verdict an
    /// MX answer (or a name the prefix rule covers) is held for. Run for each query, and
    /// again for an answer held or dropped at its asker: a query record lost to a full
    /// ring left the hold unjudged, and the retry after it unheld. Returns what the block
    /// did, the question's hashes and its keyed tag.
    pub(super) fn judge_question(
        &mut self,
        msg: &Message,
        d: &DnsIn,
        finding: Option<&Finding>,
    ) -> (Put, Option<QnameHashes>, Option<u64>) {
        let hashes = qname_hashes(d.payload);
        let full = hashes.map(|h| h.full).or_else(|| name_hash(&msg.qname));
        let tag = hashes.and_then(|h| question_tag_of(self.blocks.name_key(), d.payload, &h));
        let prefixed = hashes.is_some_and(|h| self.blocks.prefix_covers(&h));
        let block = finding.is_some_and(|f| f.action == Action::Block);
        let mut put = Put::Failed;
        if let Some(f) = finding.filter(|_| block) {
            let target = target_id(f.target.as_bytes());
            put = if prefixed {
                // The kernel's prefix rule drops its answers already.
                Put::Present
            } else {
                self.block_name(&msg.qname, full.map(|h| (h, tag)), target)
            };
        }
        // The verdict, for a held answer: written after the block, so no answer slips
        // between the two. A clean verdict also lifts the prefix rule for this name.
        if let Some(h) = full
            && (msg.qtype == QType::Mx || prefixed)
            && !d.resolver
        {
            // A verdict stands as long as the policy (a new one forgets them all); the
            // TTL ceiling only bounds how long the map remembers a name.
            let clean = (!block).then(|| self.settings.ceiling_ns());
            // The name's tag keeps the verdict its own where it lifts the prefix rule.
            self.blocks.judged(h, clean, tag.filter(|_| prefixed));
        }
        (put, hashes, tag)
    }

    /// Blocks `qname`'s answers: as a whole domain when the shortest 2- or 3-label domain
    /// above it (or it) that is itself a lookalike exists (army.ml for mx.army.ml) — the
    /// mail-host lookups that follow an MX answer are then dropped with no race, and a
    /// flood of names under one lookalike takes one entry — else as the name alone, under
    /// `full`, the hash the kernel computed from the question's wire form (the decoder's
    /// text escapes bytes no host name carries, and a hash of that text is another key).
    /// `full` carries the question's keyed tag, when the kernel can compute one.
    fn block_name(&mut self, qname: &str, full: Option<(u64, Option<u64>)>, target: u32) -> Put {
        let ceiling = self.settings.ceiling_ns();
        let labels: Vec<&str> = qname.split('.').collect();
        for n in 2..=3.min(labels.len()) {
            let domain = labels[labels.len() - n..].join(".");
            // An escaped byte: the text's hash is not the kernel's key (the name is).
            if domain.contains('\\') {
                break;
            }
            if blocks(&self.engine, &self.learning, &domain)
                && let Some(h) = domain_hash(&domain)
            {
                return self
                    .blocks
                    .learn_name(h, &domain, target, (true, None), ceiling);
            }
        }
        match full {
            Some((h, tag)) => self
                .blocks
                .learn_name(h, qname, target, (false, tag), ceiling),
            None => Put::Failed,
        }
    }
}
