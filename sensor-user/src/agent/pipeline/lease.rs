//! The blocks the running agent vouches for with a lease, so they lapse without it: the
//! policy's entries (each `block` domain's stem and its likeliest slips), renewed every
//! `RENEW_EVERY` for `POLICY_LEASE`, and the heartbeat in `AGENT_STATE` that lets the
//! programs hold an MX answer for the agent's verdict only while it is alive.

use std::collections::HashSet;

use sensor_common::{
    BlockEntry, domain_hash,
    maps::{AGENT_ALIVE_UNTIL, AGENT_POLICY, BLOCK_POLICY, BLOCK_PREFIX, BLOCK_SUBTREE, target_id},
    stem_hash,
};

use super::{
    super::enforcer::Enforcer,
    ledger::{ALIVE_FOR, BlockLedger, HEARTBEAT_EVERY, NameBlock, POLICY_LEASE, PRELOAD_MAX, ns},
    registrable,
};
use crate::detect::{Action, Name, Policy, candidates::candidates};

impl<E: Enforcer> BlockLedger<E> {
    /// Writes the heartbeat if it is due: the programs hold answers for the agent's
    /// verdict only while it is fresh (and never when the policy blocks nothing).
    pub fn heartbeat(&mut self, now_ns: u64) {
        self.last_now_ns = Some(now_ns);
        if self.heartbeat_ns != 0 && now_ns < self.heartbeat_ns.saturating_add(ns(HEARTBEAT_EVERY))
        {
            return;
        }
        self.heartbeat_ns = now_ns;
        let until = if self.holds {
            now_ns.saturating_add(ns(ALIVE_FOR))
        } else {
            0
        };
        if let Err(e) = self.enforcer.set_agent_slot(AGENT_ALIVE_UNTIL, until) {
            self.map_error("writing the heartbeat", e);
        }
    }

    /// The agent stops: nothing is held for its verdict any more.
    pub fn stop(&mut self) {
        if let Err(e) = self.enforcer.set_agent_slot(AGENT_ALIVE_UNTIL, 0) {
            self.map_error("clearing the heartbeat", e);
        }
    }

    /// Rewrites every policy entry with a fresh lease.
    pub(super) fn renew(&mut self, now_ns: u64) {
        self.renewed_ns = now_ns;
        let expires = now_ns.saturating_add(ns(POLICY_LEASE));
        let policy: Vec<u64> = self.policy.iter().copied().collect();
        for h in policy {
            let Some(n) = self.names.get_mut(&h) else {
                continue;
            };
            n.expires_ns = expires;
            let entry = BlockEntry::new(n.flags, n.target, expires);
            if let Err(e) = self.enforcer.put_name(h, entry) {
                self.map_error("renewing a policy block", e);
            }
        }
    }

    /// Starts judging questions under a policy with this fingerprint: verdicts given under
    /// another policy (or build) are forgotten, those of the same one kept (a restart);
    /// with `holds`, answers are held for the agent's verdict (pointless when the policy
    /// blocks nothing).
    pub fn judge_under(&mut self, fingerprint: u64, holds: bool) {
        match self.enforcer.agent_slot(AGENT_POLICY) {
            Ok(fp) if fp == fingerprint => self.adopt_clean_tags(),
            _ => {
                self.forget_clean_tags();
                match self.enforcer.forget_judgements() {
                    Ok(n) if n > 0 => log::info!("forgot {n} verdicts of another policy"),
                    Ok(_) => {}
                    Err(e) => self.map_error("forgetting earlier verdicts", e),
                }
                if let Err(e) = self.enforcer.set_agent_slot(AGENT_POLICY, fingerprint) {
                    self.map_error("writing the policy fingerprint", e);
                }
            }
        }
        self.holds = holds;
        // Written now (or cleared) rather than at the next tick.
        self.heartbeat_ns = 0;
        if let Some(now) = self.last_now_ns {
            self.heartbeat(now);
        }
    }

    /// Puts the policy's entries with a fresh lease, before any query: each `block`
    /// domain's stem (`BLOCK_PREFIX`: that domain with labels appended) and its likeliest
    /// lookalikes that `blocks` confirms, as whole domains (`BLOCK_SUBTREE`). At most
    /// `PRELOAD_MAX` entries; policy entries no longer wanted are lifted.
    pub fn preload(&mut self, policy: &Policy, blocks: impl Fn(&str) -> bool, now_ns: u64) {
        let wanted = wanted(policy, blocks);
        let expires = now_ns.saturating_add(ns(POLICY_LEASE));
        let mut fresh = HashSet::new();
        for (h, name, target, flags) in &wanted {
            if fresh.contains(h) {
                continue;
            }
            let entry = BlockEntry::new(flags | BLOCK_POLICY, *target, expires);
            match self.enforcer.put_name(*h, entry) {
                Ok(()) => {
                    // A learned block of the same domain becomes policy: never evicted.
                    self.learned_names.remove(h);
                    fresh.insert(*h);
                    let block = NameBlock {
                        name: Some(name.clone()),
                        target: *target,
                        flags: entry.flags,
                        expires_ns: expires,
                        provisional: false,
                        tag: None,
                    };
                    self.names.insert(*h, block);
                }
                Err(e) => self.map_error("preloading a block", e),
            }
        }
        let old: Vec<u64> = self.policy.difference(&fresh).copied().collect();
        for h in old {
            self.remove_name(h);
        }
        self.policy = fresh;
        self.renewed_ns = now_ns;
        let slips = wanted.iter().filter(|w| w.3 & BLOCK_SUBTREE != 0).count();
        self.preloaded_gauge.set(slips as i64);
        if slips > 0 {
            log::info!("preloaded {slips} likely lookalike domains into BLOCKED_NAMES");
        }
    }
}

/// The policy entries a policy wants: (hash, name, target id, flags), prefixes first.
fn wanted(policy: &Policy, blocks: impl Fn(&str) -> bool) -> Vec<(u64, String, u32, u32)> {
    let entries: Vec<String> = policy
        .protect
        .iter()
        .filter(|e| e.action.unwrap_or(policy.default_action) == Action::Block)
        // The wire's form (A-labels), whatever form the policy was built with.
        .filter_map(|e| Name::parse(&e.entry).ok().map(|n| n.ascii))
        // A public-suffix entry (`mil`) has no spelling to vary and no stem of its own.
        .filter(|e| registrable(e) == e)
        .collect();
    let mut out = Vec::new();
    for e in &entries {
        if let Some(h) = stem_hash(e) {
            out.push((h, e.clone(), target_id(e.as_bytes()), BLOCK_PREFIX));
        }
    }
    'entries: for e in &entries {
        for c in candidates(e) {
            if out.len() >= PRELOAD_MAX {
                break 'entries;
            }
            if blocks(&c)
                && let Some(h) = domain_hash(&c)
            {
                out.push((h, c, target_id(e.as_bytes()), BLOCK_SUBTREE));
            }
        }
    }
    out.truncate(PRELOAD_MAX);
    out
}
