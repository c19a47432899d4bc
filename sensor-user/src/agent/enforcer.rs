//! Where decisions land: the kernel's verdict maps, or a simulation of them for replay.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use sensor_common::{QnameHashes, Verdict, maps::BLOCK_SUBTREE, verdict_for};

use crate::kernel::{
    KernelError, VerdictMaps,
    maps::{Cidr, Mode},
};

/// The map updates the pipeline makes.
pub trait Enforcer {
    /// Adds a question-name hash to `BLOCKED_NAMES`; `subtree` covers the names under it.
    fn block_name(&mut self, hash: u64, subtree: bool) -> Result<(), KernelError>;
    /// Removes a question-name hash.
    fn unblock_name(&mut self, hash: u64) -> Result<(), KernelError>;
    /// Adds one address to `BLOCKED_V4`/`BLOCKED_V6`.
    fn block_addr(&mut self, ip: IpAddr) -> Result<(), KernelError>;
    /// Removes one address.
    fn unblock_addr(&mut self, ip: IpAddr) -> Result<(), KernelError>;
    /// Sets the global mode.
    fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError>;
    /// Sets the SMTP ports.
    fn set_smtp_ports(&mut self, ports: &[u16]) -> Result<(), KernelError>;
}

fn host(ip: IpAddr) -> Cidr {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    Cidr { addr: ip, prefix }
}

impl Enforcer for VerdictMaps {
    fn block_name(&mut self, hash: u64, subtree: bool) -> Result<(), KernelError> {
        // No BLOCK_ENFORCE: the kernel applies the global mode (monitor reports, enforce drops).
        let flags = if subtree { BLOCK_SUBTREE } else { 0 };
        self.block_name_hash(hash, flags)
    }
    fn unblock_name(&mut self, hash: u64) -> Result<(), KernelError> {
        self.unblock_name_hash(hash)
    }
    fn block_addr(&mut self, ip: IpAddr) -> Result<(), KernelError> {
        VerdictMaps::block_addr(self, host(ip), 0)
    }
    fn unblock_addr(&mut self, ip: IpAddr) -> Result<(), KernelError> {
        VerdictMaps::unblock_addr(self, host(ip))
    }
    fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError> {
        VerdictMaps::set_mode(self, mode)
    }
    fn set_smtp_ports(&mut self, ports: &[u16]) -> Result<(), KernelError> {
        VerdictMaps::set_smtp_ports(self, ports)
    }
}

/// The maps simulated in memory, so replay reports what the kernel would have done.
#[derive(Debug, Default)]
pub struct Simulated {
    /// Blocked name hashes, and whether each covers the names under it.
    pub names: HashMap<u64, bool>,
    /// Blocked addresses.
    pub addrs: HashSet<IpAddr>,
    /// Global mode.
    pub mode: Option<Mode>,
}

impl Simulated {
    /// The kernel's rule (`sensor_common::verdict_for`) over the simulated mode.
    fn verdict(&self, hit: Option<u32>) -> Verdict {
        verdict_for(hit, self.mode.unwrap_or(Mode::Monitor).to_u32())
    }

    /// What the connect hook would decide for `ip` (the agent's blocks carry no flags).
    pub fn connect_verdict(&self, ip: IpAddr) -> Verdict {
        self.verdict(self.addrs.contains(&ip).then_some(0))
    }

    /// What the ingress hook would decide for an answer with these question hashes.
    pub fn answer_verdict(&self, hashes: Option<QnameHashes>) -> Verdict {
        let flags = |subtree: bool| if subtree { BLOCK_SUBTREE } else { 0 };
        let hit = hashes.and_then(|h| {
            self.names.get(&h.full).map(|s| flags(*s)).or_else(|| {
                [h.last2, h.last3]
                    .into_iter()
                    .find(|s| *s != 0 && self.names.get(s) == Some(&true))
                    .map(|_| BLOCK_SUBTREE)
            })
        });
        self.verdict(hit)
    }
}

impl Enforcer for Simulated {
    fn block_name(&mut self, hash: u64, subtree: bool) -> Result<(), KernelError> {
        self.names.insert(hash, subtree);
        Ok(())
    }
    fn unblock_name(&mut self, hash: u64) -> Result<(), KernelError> {
        self.names.remove(&hash);
        Ok(())
    }
    fn block_addr(&mut self, ip: IpAddr) -> Result<(), KernelError> {
        self.addrs.insert(ip);
        Ok(())
    }
    fn unblock_addr(&mut self, ip: IpAddr) -> Result<(), KernelError> {
        self.addrs.remove(&ip);
        Ok(())
    }
    fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError> {
        self.mode = Some(mode);
        Ok(())
    }
    fn set_smtp_ports(&mut self, _ports: &[u16]) -> Result<(), KernelError> {
        Ok(())
    }
}
