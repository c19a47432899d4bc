//! The block ledger: owns the enforcer and remembers every block the pipeline put in the
//! kernel (names and whole domains, addresses with their expiry, the preloaded slips), so
//! blocks can be expired, rebalanced after a policy change, and never put twice.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Instant,
};

use prometheus::{IntCounter, IntGauge};
use sensor_common::domain_hash;

use super::{super::enforcer::Enforcer, registrable};
use crate::{
    detect::{Action, Policy, candidates::candidates},
    kernel::maps::Mode,
};

/// Most lookalike domains `preload` puts in `BLOCKED_NAMES` (a quarter of its capacity;
/// the rest is for what queries reveal).
pub const PRELOAD_MAX: usize = sensor_common::maps::BLOCKED_NAMES_MAX as usize / 4;

/// What `put_name` did.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The hash went into the map now.
    Added,
    /// It was there already.
    Present,
    /// The map update failed (counted and logged), or the name has no hash.
    Failed,
}

/// The blocks in force and the enforcer that holds them.
pub struct BlockLedger<E: Enforcer> {
    enforcer: E,
    /// Blocked name and domain hashes, with the name each stands for.
    names: HashMap<u64, String>,
    /// Blocked addresses, with the recipient domain each was blocked for and its expiry.
    addrs: HashMap<IpAddr, (String, Instant)>,
    /// Entries of `names` put there by `preload`.
    preloaded: HashSet<u64>,
    /// `mxsentry_map_update_errors_total`.
    errors: IntCounter,
    /// `mxsentry_preloaded_lookalikes`.
    preloaded_gauge: IntGauge,
}

impl<E: Enforcer> BlockLedger<E> {
    /// An empty ledger over `enforcer`, counting failed updates in `errors`.
    pub fn new(enforcer: E, errors: IntCounter, preloaded_gauge: IntGauge) -> Self {
        Self {
            enforcer,
            names: HashMap::new(),
            addrs: HashMap::new(),
            preloaded: HashSet::new(),
            errors,
            preloaded_gauge,
        }
    }

    /// The enforcer, for reading what it holds.
    pub fn enforcer(&self) -> &E {
        &self.enforcer
    }

    /// The enforcer, for tests and replay that set its state directly.
    pub fn enforcer_mut(&mut self) -> &mut E {
        &mut self.enforcer
    }

    fn map_error(&self, what: &str, e: impl std::fmt::Display) {
        self.errors.inc();
        log::error!("{what}: {e}");
    }

    /// Writes the mode and the SMTP ports.
    pub fn configure(&mut self, mode: Mode, smtp_ports: &[u16]) {
        if let Err(e) = self.enforcer.set_mode(mode) {
            self.map_error("setting the mode", e);
        }
        if let Err(e) = self.enforcer.set_smtp_ports(smtp_ports) {
            self.map_error("setting SMTP ports", e);
        }
    }

    /// Puts hash `h`, standing for `name`, in `BLOCKED_NAMES` once: a name hash, or with
    /// `subtree` a domain hash (which the kernel matches against a question's last two
    /// and three labels).
    pub fn put_name(&mut self, h: u64, name: &str, subtree: bool) -> Put {
        if self.names.contains_key(&h) {
            return Put::Present;
        }
        match self.enforcer.block_name(h, subtree) {
            Ok(()) => {
                self.names.insert(h, name.to_string());
                Put::Added
            }
            Err(e) => {
                self.map_error("blocking a name", e);
                Put::Failed
            }
        }
    }

    /// Blocks connects to `ip` (for `recipient`) until `expires`, or extends the block;
    /// returns whether it is new.
    pub fn put_addr(&mut self, ip: IpAddr, recipient: &str, expires: Instant) -> bool {
        if let Some(entry) = self.addrs.get_mut(&ip) {
            entry.1 = entry.1.max(expires);
            return false;
        }
        match self.enforcer.block_addr(ip) {
            Ok(()) => {
                self.addrs.insert(ip, (recipient.to_string(), expires));
                true
            }
            Err(e) => {
                self.map_error("blocking an address", e);
                false
            }
        }
    }

    /// Lifts address blocks whose answers have expired.
    pub fn expire(&mut self, now: Instant) {
        let stale: Vec<IpAddr> = self
            .addrs
            .iter()
            .filter(|(_, (_, e))| *e <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in stale {
            match self.enforcer.unblock_addr(ip) {
                Ok(()) => {
                    self.addrs.remove(&ip);
                }
                Err(e) => self.map_error("unblocking an expired address", e),
            }
        }
    }

    /// After a policy change: lifts the blocks of names `blocks` no longer says yes to.
    pub fn rebalance(&mut self, blocks: impl Fn(&str) -> bool) {
        let names: Vec<(u64, String)> = self
            .names
            .iter()
            .filter(|(_, n)| !blocks(n))
            .map(|(h, n)| (*h, n.clone()))
            .collect();
        for (h, _) in names {
            match self.enforcer.unblock_name(h) {
                Ok(()) => {
                    self.names.remove(&h);
                    self.preloaded.remove(&h);
                }
                Err(e) => self.map_error("unblocking a name", e),
            }
        }
        let addrs: Vec<IpAddr> = self
            .addrs
            .iter()
            .filter(|(_, (r, _))| !blocks(r))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in addrs {
            match self.enforcer.unblock_addr(ip) {
                Ok(()) => {
                    self.addrs.remove(&ip);
                }
                Err(e) => self.map_error("unblocking an address", e),
            }
        }
        self.preloaded_gauge.set(self.preloaded.len() as i64);
    }

    /// Blocks, before any query, the likeliest lookalikes of each `block` domain (those
    /// `blocks` confirms), as whole domains: no race with a fast local resolver for
    /// them. At most `PRELOAD_MAX` entries; the rest is decided at query time.
    pub fn preload(&mut self, policy: &Policy, blocks: impl Fn(&str) -> bool) {
        let mut added = 0usize;
        'entries: for e in &policy.protect {
            let action = e.action.unwrap_or(policy.default_action);
            let entry = e.entry.trim_end_matches('.').to_ascii_lowercase();
            // A public-suffix entry (`mil`) has no spelling to vary.
            if action != Action::Block || registrable(&entry) != entry {
                continue;
            }
            for c in candidates(&entry) {
                if self.preloaded.len() >= PRELOAD_MAX {
                    break 'entries;
                }
                if blocks(&c)
                    && let Some(h) = domain_hash(&c)
                    && self.put_name(h, &c, true) == Put::Added
                {
                    self.preloaded.insert(h);
                    added += 1;
                }
            }
        }
        self.preloaded_gauge.set(self.preloaded.len() as i64);
        if added > 0 {
            log::info!("preloaded {added} likely lookalike domains into BLOCKED_NAMES");
        }
    }
}
