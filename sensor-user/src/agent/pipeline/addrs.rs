//! Address blocks in the ledger. An address is refused only while it serves lookalikes
//! alone: one a legitimate name also resolves to (a shared mail host) is never blocked,
//! and a block is lifted as soon as a legitimate answer carries its address — the kernel
//! marks it contested at that answer, before the MTA that asked can connect, and the
//! agent removes it here. The lookalike's own answers are still dropped by name.

use std::{collections::HashSet, net::IpAddr};

use sensor_common::{
    BlockEntry,
    maps::{AGENT_LEARNED_ADDRS, BLOCK_CONTESTED, BLOCK_LEARNED},
};

use super::{super::enforcer::Enforcer, ledger::BlockLedger};

/// Most lookalike domains remembered per blocked address (for naming its refusals).
const DOMAINS_PER_ADDR: usize = 8;

/// A learned address block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrBlock {
    /// The lookalike domains it was learned for (empty: adopted, not said).
    pub domains: Vec<String>,
    /// `target_id` of the protected entry.
    pub target: u32,
    /// Kernel time it lapses.
    pub expires_ns: u64,
}

impl<E: Enforcer> BlockLedger<E> {
    /// Blocks connects to `ip` for lookalike `domain` of `target` until `expires_ns`, or
    /// extends the block; returns whether it is new.
    pub fn put_addr(&mut self, ip: IpAddr, domain: &str, target: u32, expires_ns: u64) -> bool {
        let flags = kernel_flags(&self.enforcer, ip);
        // An operator's entry on or over this address (`ctl block-addr`, any mode or
        // flags) is theirs to keep: a learned one written over it would replace its flags
        // and expire with the attacker's TTL. One put over ours since: ours is forgotten.
        if flags.is_some_and(|f| f & BLOCK_LEARNED == 0) {
            if self.addrs.remove(&ip).is_some() {
                self.learned_addrs.remove(&ip);
                self.write_learned_count();
            }
            return false;
        }
        if let Some(a) = self.addrs.get_mut(&ip) {
            if !a.domains.iter().any(|d| d == domain) && a.domains.len() < DOMAINS_PER_ADDR {
                a.domains.push(domain.to_string());
            }
            self.learned_addrs.touch(&ip);
            // A block the kernel marked contested (a legitimate answer carried it) is
            // lifted on the sweep; rewriting it would clear the mark.
            if expires_ns > a.expires_ns && flags.is_none_or(|f| f & BLOCK_CONTESTED == 0) {
                a.expires_ns = expires_ns;
                let entry = BlockEntry::new(BLOCK_LEARNED, a.target, expires_ns);
                if let Err(e) = self.enforcer.put_addr(ip, entry) {
                    self.map_error("extending an address block", e);
                }
            }
            return false;
        }
        for (gone, t) in self.learned_addrs.insert(ip, target) {
            if self.remove_addr(gone).is_some() {
                self.note_eviction(t, gone.to_string());
            }
        }
        let entry = BlockEntry::new(BLOCK_LEARNED, target, expires_ns);
        let added = match self.enforcer.put_addr(ip, entry) {
            Ok(()) => {
                let block = AddrBlock {
                    domains: vec![domain.to_string()],
                    target,
                    expires_ns,
                };
                self.addrs.insert(ip, block);
                true
            }
            Err(e) => {
                self.learned_addrs.remove(&ip);
                self.map_error("blocking an address", e);
                false
            }
        };
        self.write_learned_count();
        added
    }

    /// The learned block on `ip`, if any.
    pub fn addr(&self, ip: &IpAddr) -> Option<&AddrBlock> {
        self.addrs.get(ip)
    }

    /// Lifts the learned block on `ip` (a legitimate name resolves there too); an entry
    /// this ledger did not learn (an operator's) is never touched.
    pub fn lift_addr(&mut self, ip: IpAddr) -> Option<AddrBlock> {
        if !self.addrs.contains_key(&ip) {
            return None;
        }
        let gone = self.remove_addr(ip);
        self.write_learned_count();
        gone
    }

    fn remove_addr(&mut self, ip: IpAddr) -> Option<AddrBlock> {
        // An operator may have put their own entry on this address since: forget ours,
        // keep theirs.
        if kernel_flags(&self.enforcer, ip).is_some_and(|f| f & BLOCK_LEARNED == 0) {
            self.learned_addrs.remove(&ip);
            return self.addrs.remove(&ip);
        }
        match self.enforcer.remove_addr(ip) {
            Ok(()) => {
                self.learned_addrs.remove(&ip);
                self.addrs.remove(&ip)
            }
            Err(e) => {
                self.map_error("removing an address block", e);
                None
            }
        }
    }

    /// Tells the ingress program how many learned address blocks are in force: while
    /// none are, it does not look for addresses in legitimate answers.
    pub(super) fn write_learned_count(&mut self) {
        let n = self.addrs.len() as u64;
        if self.learned_count_written == Some(n) {
            return;
        }
        match self.enforcer.set_agent_slot(AGENT_LEARNED_ADDRS, n) {
            Ok(()) => self.learned_count_written = Some(n),
            Err(e) => self.map_error("writing the learned address count", e),
        }
    }

    /// Takes over a previous agent's learned address blocks: expired or contested ones
    /// are removed, live ones kept until they lapse. Returns (kept, removed).
    pub(super) fn adopt_addrs(&mut self, now_ns: u64) -> (usize, usize) {
        let (mut kept, mut dropped) = (0, 0);
        match self.enforcer.addr_entries() {
            Ok(entries) => {
                for (cidr, e) in entries {
                    let host = cidr.prefix == if cidr.addr.is_ipv4() { 32 } else { 128 };
                    if e.flags & BLOCK_LEARNED == 0 || !host {
                        continue; // an operator's
                    }
                    if !e.in_force(now_ns) {
                        if self.remove_addr(cidr.addr).is_none() {
                            let _ = self.enforcer.remove_addr(cidr.addr);
                        }
                        dropped += 1;
                        continue;
                    }
                    self.learned_addrs.insert(cidr.addr, e.target);
                    let block = AddrBlock {
                        domains: Vec::new(),
                        target: e.target,
                        expires_ns: e.expires_ns,
                    };
                    self.addrs.insert(cidr.addr, block);
                    kept += 1;
                }
            }
            Err(e) => self.map_error("reading pinned address blocks", e),
        }
        self.write_learned_count();
        (kept, dropped)
    }

    /// Names the domains of an adopted block (from the previous agent's saved list).
    pub fn name_addr(&mut self, ip: IpAddr, domains: Vec<String>) {
        if let Some(a) = self.addrs.get_mut(&ip)
            && a.domains.is_empty()
        {
            a.domains = domains;
            a.domains.truncate(DOMAINS_PER_ADDR);
        }
    }

    /// Every learned address block.
    pub fn addrs(&self) -> impl Iterator<Item = (&IpAddr, &AddrBlock)> {
        self.addrs.iter()
    }

    /// Removes lapsed address blocks, and lifts those the kernel marked contested.
    pub(super) fn expire_addrs(&mut self, now_ns: u64) -> Vec<(IpAddr, AddrBlock)> {
        let mut contested = Vec::new();
        let ips: Vec<(IpAddr, u64)> = self
            .addrs
            .iter()
            .map(|(ip, a)| (*ip, a.expires_ns))
            .collect();
        for (ip, expires) in ips {
            if expires <= now_ns {
                self.remove_addr(ip);
                continue;
            }
            match self.enforcer.addr_entry(ip) {
                Ok(Some(e)) if e.flags & BLOCK_CONTESTED != 0 => {
                    if let Some(a) = self.remove_addr(ip) {
                        contested.push((ip, a));
                    }
                }
                // Gone from the kernel (an operator removed it): forget it too.
                Ok(None) => {
                    self.learned_addrs.remove(&ip);
                    self.addrs.remove(&ip);
                }
                Ok(Some(_)) => {}
                Err(e) => self.map_error("reading an address block", e),
            }
        }
        self.write_learned_count();
        contested
    }

    /// After a policy change: lifts address blocks none of whose domains `blocks` still
    /// says yes to, and adopted ones whose target is no longer among `block_targets`.
    pub(super) fn rebalance_addrs(
        &mut self,
        blocks: &impl Fn(&str) -> bool,
        block_targets: &HashSet<u32>,
    ) {
        let lift: Vec<IpAddr> = self
            .addrs
            .iter()
            .filter(|(_, a)| {
                if a.domains.is_empty() {
                    !block_targets.contains(&a.target)
                } else {
                    !a.domains.iter().any(|d| blocks(d))
                }
            })
            .map(|(ip, _)| *ip)
            .collect();
        for ip in lift {
            self.remove_addr(ip);
        }
        self.write_learned_count();
    }
}

/// The flags of the kernel's entry on or over `ip` (an operator's, or one learned), if it
/// can be read.
fn kernel_flags<E: Enforcer>(enforcer: &E, ip: IpAddr) -> Option<u32> {
    enforcer.addr_entry(ip).ok().flatten().map(|e| e.flags)
}
