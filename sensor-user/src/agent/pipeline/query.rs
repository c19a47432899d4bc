//! Lookups as they leave the host: a lookalike of a `block` entry is put in the kernel's
//! name map here, racing its answer.

use sensor_common::domain_hash;

use super::{DnsIn, Pipeline, ledger::Put, registrable};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{LookalikeLookedUp, Outcome},
    },
    detect::Action,
    dns::Message,
    kernel::maps::name_hash,
    output::clock::since_kernel,
};

impl<E: Enforcer> Pipeline<E> {
    /// A query leaving the host.
    pub(super) fn on_query(&mut self, msg: &Message, d: &DnsIn) {
        let Some(f) = self.lookalike(&msg.qname) else {
            return;
        };
        let mut put = Put::Failed;
        if f.action == Action::Block {
            // Block the registrable domain with every name under it when that domain is
            // itself a lookalike (army.ml for mx.army.ml, or army.ml asked directly; only
            // 2- and 3-label domains have a domain hash): the mail-host lookups that follow
            // an MX answer are then dropped with no race against this agent, and a flood of
            // random names under one lookalike takes one map entry, not one each.
            let domain = registrable(&msg.qname);
            let whole = if self.blocks_name(domain) {
                domain_hash(domain)
            } else {
                None
            };
            put = match (whole, name_hash(&msg.qname)) {
                (Some(h), _) => self.blocks.put_name(h, domain, true),
                (None, Some(h)) => self.blocks.put_name(h, &msg.qname, false),
                (None, None) => Put::Failed,
            };
        }
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
}
