//! Where decisions land: the kernel's verdict maps, or a simulation of them for replay.

use std::{collections::HashMap, net::IpAddr};

use sensor_common::{
    BlockEntry, QnameHashes, Verdict,
    maps::{
        AGENT_ALIVE_UNTIL, AGENT_NAME_KEY, AGENT_SLOTS, BLOCK_HOLD, BLOCK_PREFIX, BLOCK_SUBTREE,
        HOLD_NS, QTYPE_MX,
    },
    qname_hashes,
    tag::question_tag_of,
    verdict_for,
};

use crate::{
    kernel::{
        KernelError, VerdictMaps,
        maps::{Cidr, Mode, canonical},
    },
    output::clock::monotonic_ns,
};

/// The map updates the pipeline makes.
pub trait Enforcer {
    /// Puts `entry` under a name, domain or stem hash in `BLOCKED_NAMES`.
    fn put_name(&mut self, hash: u64, entry: BlockEntry) -> Result<(), KernelError>;
    /// Removes a name entry.
    fn remove_name(&mut self, hash: u64) -> Result<(), KernelError>;
    /// Writes `NAME_TAGS[key] = value`: a whole-name block's hash → its name's keyed tag,
    /// or a clean verdict's tag → its name's hash.
    fn tag_name(&mut self, key: u64, value: u64) -> Result<(), KernelError>;
    /// Removes `NAME_TAGS[key]`.
    fn untag_name(&mut self, key: u64) -> Result<(), KernelError>;
    /// Every `NAME_TAGS` entry.
    fn name_tags(&self) -> Result<Vec<(u64, u64)>, KernelError>;
    /// One name entry as the kernel holds it now (an operator's `ctl` entry included).
    fn name_entry(&self, hash: u64) -> Result<Option<BlockEntry>, KernelError>;
    /// Every name entry (a restarted agent adopts what it finds).
    fn name_entries(&self) -> Result<Vec<(u64, BlockEntry)>, KernelError>;
    /// Puts `entry` for one address in `BLOCKED_V4`/`BLOCKED_V6`.
    fn put_addr(&mut self, ip: IpAddr, entry: BlockEntry) -> Result<(), KernelError>;
    /// Removes one address's entry.
    fn remove_addr(&mut self, ip: IpAddr) -> Result<(), KernelError>;
    /// One address's entry as the kernel holds it now (it marks contested ones).
    fn addr_entry(&self, ip: IpAddr) -> Result<Option<BlockEntry>, KernelError>;
    /// Every address entry.
    fn addr_entries(&self) -> Result<Vec<(Cidr, BlockEntry)>, KernelError>;
    /// The agent's verdict on a question: clean until `clean_until` (kernel time), or a
    /// lookalike (`None`, its block written first); either way no longer held.
    fn judged(&mut self, hash: u64, clean_until: Option<u64>) -> Result<(), KernelError>;
    /// Forgets every clean verdict and pending question.
    fn forget_judgements(&mut self) -> Result<usize, KernelError>;
    /// Writes one `AGENT_STATE` slot.
    fn set_agent_slot(&mut self, slot: u32, value: u64) -> Result<(), KernelError>;
    /// Reads one `AGENT_STATE` slot.
    fn agent_slot(&self, slot: u32) -> Result<u64, KernelError>;
    /// Sets the global mode.
    fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError>;
    /// The global mode the programs apply now (`ctl mode` may have changed it).
    fn mode(&self) -> Result<Mode, KernelError>;
    /// Sets the SMTP ports.
    fn set_smtp_ports(&mut self, ports: &[u16]) -> Result<(), KernelError>;
}

/// One address as a range of one.
pub fn host(ip: IpAddr) -> Cidr {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    Cidr { addr: ip, prefix }
}

impl Enforcer for VerdictMaps {
    fn put_name(&mut self, hash: u64, entry: BlockEntry) -> Result<(), KernelError> {
        self.block_name_hash(hash, entry)
    }
    fn remove_name(&mut self, hash: u64) -> Result<(), KernelError> {
        self.unblock_name_hash(hash)
    }
    fn tag_name(&mut self, hash: u64, tag: u64) -> Result<(), KernelError> {
        self.tag_name_hash(hash, tag)
    }
    fn untag_name(&mut self, hash: u64) -> Result<(), KernelError> {
        self.untag_name_hash(hash)
    }
    fn name_tags(&self) -> Result<Vec<(u64, u64)>, KernelError> {
        VerdictMaps::name_tags(self)
    }
    fn name_entry(&self, hash: u64) -> Result<Option<BlockEntry>, KernelError> {
        VerdictMaps::name_entry(self, hash)
    }
    fn name_entries(&self) -> Result<Vec<(u64, BlockEntry)>, KernelError> {
        VerdictMaps::name_entries(self)
    }
    fn put_addr(&mut self, ip: IpAddr, entry: BlockEntry) -> Result<(), KernelError> {
        self.block_addr(host(ip), entry)
    }
    fn remove_addr(&mut self, ip: IpAddr) -> Result<(), KernelError> {
        self.unblock_addr(host(ip))
    }
    fn addr_entry(&self, ip: IpAddr) -> Result<Option<BlockEntry>, KernelError> {
        VerdictMaps::addr_entry(self, host(ip))
    }
    fn addr_entries(&self) -> Result<Vec<(Cidr, BlockEntry)>, KernelError> {
        VerdictMaps::addr_entries(self)
    }
    fn judged(&mut self, hash: u64, clean_until: Option<u64>) -> Result<(), KernelError> {
        VerdictMaps::judged(self, hash, clean_until)
    }
    fn forget_judgements(&mut self) -> Result<usize, KernelError> {
        VerdictMaps::forget_judgements(self)
    }
    fn set_agent_slot(&mut self, slot: u32, value: u64) -> Result<(), KernelError> {
        VerdictMaps::set_agent_slot(self, slot, value)
    }
    fn agent_slot(&self, slot: u32) -> Result<u64, KernelError> {
        VerdictMaps::agent_slot(self, slot)
    }
    fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError> {
        VerdictMaps::set_mode(self, mode)
    }
    fn mode(&self) -> Result<Mode, KernelError> {
        VerdictMaps::mode(self)
    }
    fn set_smtp_ports(&mut self, ports: &[u16]) -> Result<(), KernelError> {
        VerdictMaps::set_smtp_ports(self, ports)
    }
}

/// The maps simulated in memory, so replay reports what the kernel would have done; the
/// programs' rules (expiry, subtree, prefix, hold) are mirrored here.
#[derive(Debug, Default)]
pub struct Simulated {
    /// `BLOCKED_NAMES`.
    pub names: HashMap<u64, BlockEntry>,
    /// `BLOCKED_V4` and `BLOCKED_V6` (single addresses).
    pub addrs: HashMap<IpAddr, BlockEntry>,
    /// `CLEAN_NAMES`.
    pub clean: HashMap<u64, u64>,
    /// `NAME_TAGS`.
    pub tags: HashMap<u64, u64>,
    /// `HOLD_PENDING`.
    pub pending: HashMap<u64, u64>,
    /// `AGENT_STATE`.
    pub agent: [u64; AGENT_SLOTS as usize],
    /// Global mode.
    pub mode: Option<Mode>,
}

impl Simulated {
    /// The kernel's rule (`sensor_common::verdict_for`) over the simulated mode.
    fn verdict(&self, hit: Option<u32>) -> Verdict {
        verdict_for(hit, self.mode.unwrap_or(Mode::Monitor).to_u32())
    }

    fn name_hit(&self, key: u64, kind: u32, now: u64) -> Option<u32> {
        let e = self.names.get(&key).filter(|_| key != 0)?;
        let matches = match kind {
            0 => e.flags & BLOCK_PREFIX == 0,
            k => e.flags & k != 0,
        };
        (matches && e.in_force(now)).then_some(e.flags)
    }

    /// Whether the agent judged question `full` clean (and that still holds).
    fn judged_clean(&self, full: u64, now: u64) -> bool {
        self.clean.get(&full).is_some_and(|u| now < *u)
    }

    /// What the connect hook would decide for `ip` (a v4-mapped IPv6 address as IPv4).
    pub fn connect_verdict(&self, ip: IpAddr) -> Verdict {
        let ip = canonical(ip);
        let now = monotonic_ns();
        self.verdict(
            self.addrs
                .get(&ip)
                .filter(|e| e.in_force(now))
                .map(|e| e.flags),
        )
    }

    /// What the ingress hook would decide for the DNS message `msg`
    /// (`blocks::answer_hit` in the kernel).
    pub fn answer_verdict(&self, msg: &[u8]) -> Verdict {
        let hashes = qname_hashes(msg);
        let tag = hashes.and_then(|h| question_tag_of(self.key(), msg, &h));
        self.question_verdict(hashes, tag)
    }

    /// The installation's tag key, as the kernel reads it.
    fn key(&self) -> u64 {
        self.agent[AGENT_NAME_KEY as usize]
    }

    /// A question's `tag` against the one kept under `full` (`blocks::same_tag`).
    fn same_tag(&self, full: u64, tag: Option<u64>) -> Option<bool> {
        if self.key() == 0 {
            return None;
        }
        self.tags.get(&full).map(|t| tag == Some(*t))
    }

    /// Whether a question with `tag` meets the whole-name entry under `full`.
    fn tag_matches(&self, full: u64, tag: Option<u64>) -> bool {
        self.same_tag(full, tag) != Some(false)
    }

    /// Whether a clean verdict lifts the prefix rule (`blocks::clean_lifts`): the
    /// question's tag keeps its hash.
    fn clean_lifts(&self, full: u64, tag: Option<u64>, now: u64) -> bool {
        self.judged_clean(full, now)
            && (self.key() == 0 || tag.is_some_and(|t| self.tags.get(&t) == Some(&full)))
    }

    /// The decision for a question with these hashes and keyed tag.
    fn question_verdict(&self, hashes: Option<QnameHashes>, tag: Option<u64>) -> Verdict {
        let now = monotonic_ns();
        let Some(h) = hashes else {
            return Verdict::Allowed;
        };
        let hit = self
            .name_hit(h.full, 0, now)
            .filter(|_| self.tag_matches(h.full, tag))
            .or_else(|| self.name_hit(h.last2, BLOCK_SUBTREE, now))
            .or_else(|| self.name_hit(h.last3, BLOCK_SUBTREE, now))
            .or_else(|| {
                [h.stem1, h.stem2, h.stem3]
                    .into_iter()
                    .find_map(|s| self.name_hit(s, BLOCK_PREFIX, now))
                    .filter(|_| !self.clean_lifts(h.full, tag, now))
            })
            .or_else(|| {
                let alive = now < self.agent[AGENT_ALIVE_UNTIL as usize];
                let asked = self.pending.get(&h.full);
                (h.qtype == QTYPE_MX && alive && asked.is_some_and(|t| now < t + HOLD_NS))
                    .then_some(BLOCK_HOLD)
            });
        self.verdict(hit)
    }

    /// What the egress hook does with a query: an MX question nobody judged is noted.
    pub fn query_sent(&mut self, msg: &[u8]) {
        let now = monotonic_ns();
        if let Some(h) = qname_hashes(msg)
            && h.qtype == QTYPE_MX
            && now < self.agent[AGENT_ALIVE_UNTIL as usize]
            && !self.judged_clean(h.full, now)
            && self.answer_verdict(msg) == Verdict::Allowed
        {
            self.pending.entry(h.full).or_insert(now);
        }
    }
}

impl Enforcer for Simulated {
    fn put_name(&mut self, hash: u64, entry: BlockEntry) -> Result<(), KernelError> {
        self.names.insert(hash, entry);
        Ok(())
    }
    fn remove_name(&mut self, hash: u64) -> Result<(), KernelError> {
        self.names.remove(&hash);
        Ok(())
    }
    fn tag_name(&mut self, hash: u64, tag: u64) -> Result<(), KernelError> {
        self.tags.insert(hash, tag);
        Ok(())
    }
    fn untag_name(&mut self, hash: u64) -> Result<(), KernelError> {
        self.tags.remove(&hash);
        Ok(())
    }
    fn name_tags(&self) -> Result<Vec<(u64, u64)>, KernelError> {
        Ok(self.tags.iter().map(|(k, v)| (*k, *v)).collect())
    }
    fn name_entry(&self, hash: u64) -> Result<Option<BlockEntry>, KernelError> {
        Ok(self.names.get(&hash).copied())
    }
    fn name_entries(&self) -> Result<Vec<(u64, BlockEntry)>, KernelError> {
        Ok(self.names.iter().map(|(k, e)| (*k, *e)).collect())
    }
    fn put_addr(&mut self, ip: IpAddr, entry: BlockEntry) -> Result<(), KernelError> {
        self.addrs.insert(ip, entry);
        Ok(())
    }
    fn remove_addr(&mut self, ip: IpAddr) -> Result<(), KernelError> {
        self.addrs.remove(&ip);
        Ok(())
    }
    fn addr_entry(&self, ip: IpAddr) -> Result<Option<BlockEntry>, KernelError> {
        Ok(self.addrs.get(&ip).copied())
    }
    fn addr_entries(&self) -> Result<Vec<(Cidr, BlockEntry)>, KernelError> {
        Ok(self.addrs.iter().map(|(ip, e)| (host(*ip), *e)).collect())
    }
    fn judged(&mut self, hash: u64, clean_until: Option<u64>) -> Result<(), KernelError> {
        if let Some(until) = clean_until {
            self.clean.insert(hash, until);
        }
        self.pending.remove(&hash);
        Ok(())
    }
    fn forget_judgements(&mut self) -> Result<usize, KernelError> {
        let n = self.clean.len() + self.pending.len();
        self.clean.clear();
        self.pending.clear();
        Ok(n)
    }
    fn set_agent_slot(&mut self, slot: u32, value: u64) -> Result<(), KernelError> {
        if let Some(s) = self.agent.get_mut(slot as usize) {
            *s = value;
        }
        Ok(())
    }
    fn agent_slot(&self, slot: u32) -> Result<u64, KernelError> {
        Ok(self.agent.get(slot as usize).copied().unwrap_or(0))
    }
    fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError> {
        self.mode = Some(mode);
        Ok(())
    }
    fn mode(&self) -> Result<Mode, KernelError> {
        Ok(self.mode.unwrap_or(Mode::Monitor))
    }
    fn set_smtp_ports(&mut self, _ports: &[u16]) -> Result<(), KernelError> {
        Ok(())
    }
}
