//! The block ledger: owns the enforcer and remembers every block the pipeline put in the
//! kernel, so blocks can be expired, bounded, rebalanced after a policy change, adopted
//! after a restart, and never put twice. Addresses are in `addrs.rs`; the policy's leased
//! entries and the agent's heartbeat in `lease.rs`.
//!
//! Lifetimes, all in the kernel's own clock so the programs apply them with no agent:
//! - learned names and addresses expire with the answers that taught them (TTL clamped
//!   to the cache's floor and ceiling); a name blocked before its answer arrived holds
//!   for the ceiling until that answer says how long;
//! - policy-derived entries (likely slips, protected-entry prefixes) are a lease of
//!   `POLICY_LEASE` that the running agent renews every `RENEW_EVERY`: a stopped agent's
//!   policy lapses within the lease, a restarted one renews it;
//! - an operator's entries (`mxsentry ctl`) carry no origin flag and are never touched.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use prometheus::{IntCounter, IntGauge};
use sensor_common::{
    BlockEntry, QnameHashes,
    maps::{BLOCK_LEARNED, BLOCK_PREFIX, BLOCK_SUBTREE, BLOCKED_ADDRS_MAX, BLOCKED_NAMES_MAX},
};

use super::{super::enforcer::Enforcer, addrs::AddrBlock, bound::FairLru};
use crate::{kernel::maps::Mode, output::clock::monotonic_ns};

/// Most policy entries (prefixes of `block` entries, then their likely slips) in
/// `BLOCKED_NAMES`: a quarter of its capacity.
pub const PRELOAD_MAX: usize = BLOCKED_NAMES_MAX as usize / 4;
/// Room left in each block map for an operator's entries.
pub const OPERATOR_RESERVE: usize = 4_096;
/// Most learned name blocks: what neither the policy nor an operator may need.
pub const LEARNED_NAMES_MAX: usize = BLOCKED_NAMES_MAX as usize - PRELOAD_MAX - OPERATOR_RESERVE;
/// Most learned address blocks (both families together).
pub const LEARNED_ADDRS_MAX: usize = BLOCKED_ADDRS_MAX as usize - OPERATOR_RESERVE;
/// How long a policy-derived entry holds without a running agent to renew it: long
/// enough for a restart or an upgrade, short enough that a removed agent's policy lapses.
pub const POLICY_LEASE: Duration = Duration::from_secs(600);
/// How often the running agent renews its policy lease.
pub(super) const RENEW_EVERY: Duration = Duration::from_secs(60);
/// How long the agent's heartbeat in `AGENT_STATE` vouches for it: past this, the
/// programs hold no answer for a verdict (a dead agent must not make names unresolvable).
pub(super) const ALIVE_FOR: Duration = Duration::from_secs(3);
/// How often the heartbeat is written.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// Names kept as examples of one target's evictions, per report.
const EVICTION_EXAMPLES: usize = 3;

pub(super) fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// What `learn_name` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The entry went into the map now.
    Added,
    /// It was there already.
    Present,
    /// The map update failed (counted and logged), or the name has no hash.
    Failed,
}

/// A name, domain or prefix block the ledger put (or adopted).
#[derive(Clone, Debug)]
pub struct NameBlock {
    /// What it stands for (`None`: adopted from a previous agent, which did not say).
    pub name: Option<String>,
    /// `target_id` of the protected entry.
    pub target: u32,
    /// `BLOCK_*` flags as written.
    pub flags: u32,
    /// Kernel time it lapses.
    pub expires_ns: u64,
    /// Blocked at query time for the TTL ceiling: the first answer sets the real expiry.
    pub(super) provisional: bool,
    /// The keyed tag kept for a learned whole-name block (`NAME_TAGS`).
    pub(super) tag: Option<u64>,
}

impl NameBlock {
    /// Whether this is a learned block that a question's key meets as the kernel's
    /// `answer_hit` looks it up: the whole-name key (`subtree` false) meets any entry but
    /// a prefix, a last-2/3-label key only a domain (`BLOCK_SUBTREE`) entry.
    pub(super) fn learned_and_met(&self, subtree: bool) -> bool {
        let met = if subtree {
            self.flags & BLOCK_SUBTREE != 0
        } else {
            self.flags & BLOCK_PREFIX == 0
        };
        met && self.flags & BLOCK_LEARNED != 0
    }
}

/// Blocks evicted by the bound, per target, since the last report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// `target_id` of the protected entry whose blocks gave way.
    pub target: u32,
    /// How many.
    pub count: u64,
    /// A few of the names (or addresses) evicted.
    pub examples: Vec<String>,
}

/// The blocks in force and the enforcer that holds them.
pub struct BlockLedger<E: Enforcer> {
    pub(super) enforcer: E,
    /// Name, domain and stem hashes the ledger put (or adopted), learned and policy.
    pub(super) names: HashMap<u64, NameBlock>,
    /// Learned address blocks.
    pub(super) addrs: HashMap<IpAddr, AddrBlock>,
    /// The bound on learned names.
    pub(super) learned_names: FairLru<u64>,
    /// The bound on learned addresses.
    pub(super) learned_addrs: FairLru<IpAddr>,
    /// Hashes of the policy entries in force.
    pub(super) policy: HashSet<u64>,
    /// When the policy lease was last renewed (kernel time).
    pub(super) renewed_ns: u64,
    /// When the heartbeat was last written (kernel time; 0: write it at once).
    pub(super) heartbeat_ns: u64,
    /// The latest kernel time seen.
    pub(super) last_now_ns: Option<u64>,
    /// Whether answers are held for this agent's verdicts (the policy blocks something).
    pub(super) holds: bool,
    /// The learned-address count last written to `AGENT_STATE`.
    pub(super) learned_count_written: Option<u64>,
    /// Evictions not reported yet, by target.
    pub(super) evicted: BTreeMap<u32, Evicted>,
    /// The installation's name-tag key (`namekey.rs`; 0: none, tags are not kept).
    pub(super) name_key: u64,
    /// Tags kept for clean verdicts (`NAME_TAGS` keys), oldest first (`namekey.rs`).
    pub(super) clean_tags: std::collections::VecDeque<u64>,

    /// `mxsentry_map_update_errors_total`.
    errors: IntCounter,
    /// `mxsentry_preloaded_lookalikes`.
    pub(super) preloaded_gauge: IntGauge,
}

impl<E: Enforcer> BlockLedger<E> {
    /// An empty ledger over `enforcer`, counting failed updates in `errors`.
    pub fn new(enforcer: E, errors: IntCounter, preloaded_gauge: IntGauge) -> Self {
        Self::bounded(enforcer, errors, preloaded_gauge, LEARNED_NAMES_MAX)
    }

    /// As `new`, with at most `learned` learned names (tests use a small bound).
    pub fn bounded(enforcer: E, errors: IntCounter, gauge: IntGauge, learned: usize) -> Self {
        Self {
            enforcer,
            names: HashMap::new(),
            addrs: HashMap::new(),
            learned_names: FairLru::new(learned),
            learned_addrs: FairLru::new(LEARNED_ADDRS_MAX),
            policy: HashSet::new(),
            renewed_ns: 0,
            heartbeat_ns: 0,
            last_now_ns: None,
            holds: false,
            learned_count_written: None,
            evicted: BTreeMap::new(),
            name_key: 0,
            clean_tags: std::collections::VecDeque::new(),
            errors,
            preloaded_gauge: gauge,
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

    pub(super) fn map_error(&self, what: &str, e: impl std::fmt::Display) {
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

    /// Removes name entry `h` from the kernel and the ledger.
    pub(super) fn remove_name(&mut self, h: u64) -> bool {
        match self.enforcer.remove_name(h) {
            Ok(()) => {
                // Any block may have had a tag, one the ledger never knew of too (a
                // previous agent's): it goes with the block, after it.
                self.untag(h);
                self.names.remove(&h);
                self.learned_names.remove(&h);
                self.policy.remove(&h);
                true
            }
            Err(e) => {
                self.map_error("removing a name block", e);
                false
            }
        }
    }

    /// Blocks answers to `name` (hash `h`; with `subtree`, a domain hash covering every
    /// name under it; else `tag`, the question's keyed tag, when known) for `target`,
    /// until `ceiling_ns` or until its first answer says how long; makes room by evicting
    /// fairly when the bound is reached.
    pub fn learn_name(
        &mut self,
        h: u64,
        name: &str,
        target: u32,
        (subtree, tag): (bool, Option<u64>),
        ceiling_ns: u64,
    ) -> Put {
        if let Some(n) = self.names.get(&h) {
            let lapsed = n.flags & BLOCK_LEARNED != 0 && n.expires_ns <= monotonic_ns();
            let (flags, target) = (n.flags, n.target);
            self.learned_names.touch(&h);
            if !lapsed {
                return Put::Present;
            }
            // Lapsed in the kernel, not yet swept: the kernel ignores it, so the name is
            // blocked again until its answer says how long (or a held answer released
            // on "present" passed in the gap, whose timing the lookalike's TTL sets).
            return self.renew_lapsed(h, BlockEntry::new(flags, target, ceiling_ns));
        }
        // An entry this ledger does not own (an operator's `ctl block-name`, the policy's)
        // blocks the name already; a learned one written over it would expire with its
        // answer and take the operator's block with it.
        if let Ok(Some(e)) = self.enforcer.name_entry(h)
            && e.flags & BLOCK_LEARNED == 0
        {
            return Put::Present;
        }
        for (gone, t) in self.learned_names.insert(h, target) {
            let label = self.names.get(&gone).and_then(|n| n.name.clone());
            if self.remove_name(gone) {
                self.note_eviction(t, label.unwrap_or_else(|| format!("{gone:016x}")));
            }
        }
        let flags = BLOCK_LEARNED | if subtree { BLOCK_SUBTREE } else { 0 };
        // The tag before the block, so the block never meets another name meanwhile; a
        // tag that cannot be written leaves the block untagged (closed for the lookalike).
        let tag = tag.filter(|_| !subtree && self.name_key != 0).filter(|t| {
            let kept = self.enforcer.tag_name(h, *t);
            kept.map_err(|e| self.map_error("tagging a name block", e))
                .is_ok()
        });
        match self
            .enforcer
            .put_name(h, BlockEntry::new(flags, target, ceiling_ns))
        {
            Ok(()) => {
                let block = NameBlock {
                    name: Some(name.to_string()),
                    target,
                    flags,
                    expires_ns: ceiling_ns,
                    provisional: true,
                    tag,
                };
                self.names.insert(h, block);
                Put::Added
            }
            Err(e) => {
                self.learned_names.remove(&h);
                if tag.is_some() {
                    self.untag(h);
                }
                self.map_error("blocking a name", e);
                Put::Failed
            }
        }
    }

    /// Writes `entry` over the lapsed learned block under `h`, provisional again.
    fn renew_lapsed(&mut self, h: u64, entry: BlockEntry) -> Put {
        if let Err(e) = self.enforcer.put_name(h, entry) {
            self.map_error("renewing a lapsed name block", e);
            return Put::Failed;
        }
        if let Some(n) = self.names.get_mut(&h) {
            n.expires_ns = entry.expires_ns;
            n.provisional = true;
        }
        Put::Added
    }

    /// Whether the programs run in enforce mode now (read from the kernel: `ctl mode`
    /// may have switched it); a map that cannot be read counts as monitor.
    pub fn enforcing(&mut self) -> bool {
        match self.enforcer.mode() {
            Ok(m) => m == Mode::Enforce,
            Err(e) => {
                self.map_error("reading the mode", e);
                false
            }
        }
    }

    /// Removes the tag under `h`, if any (a tag left behind only narrows a later block
    /// under the same hash, and takes a place in `NAME_TAGS`).
    pub(super) fn untag(&mut self, h: u64) {
        if let Err(e) = self.enforcer.untag_name(h) {
            self.map_error("forgetting a name tag", e);
        }
    }

    pub(super) fn note_eviction(&mut self, target: u32, what: String) {
        let e = self.evicted.entry(target).or_insert_with(|| Evicted {
            target,
            ..Evicted::default()
        });
        e.count += 1;
        if e.examples.len() < EVICTION_EXAMPLES {
            e.examples.push(what);
        }
    }

    /// The evictions since the last call, by target.
    pub fn take_evictions(&mut self) -> Vec<Evicted> {
        std::mem::take(&mut self.evicted).into_values().collect()
    }

    /// An answer to a question under a learned name block arrived: the block lasts as long
    /// as that answer may be believed (`expires_ns`), never less than earlier answers said.
    pub fn answered(&mut self, hashes: &QnameHashes, expires_ns: u64) {
        // As the kernel matches: the whole name, or a domain block above it.
        let key = [
            (hashes.full, false),
            (hashes.last2, true),
            (hashes.last3, true),
        ]
        .into_iter()
        .find(|(k, subtree)| {
            *k != 0
                && self
                    .names
                    .get(k)
                    .is_some_and(|n| n.learned_and_met(*subtree))
        })
        .map(|(k, _)| k);
        let Some(key) = key else { return };
        let Some(n) = self.names.get_mut(&key) else {
            return;
        };
        let new = if n.provisional {
            expires_ns
        } else {
            n.expires_ns.max(expires_ns)
        };
        n.provisional = false;
        if new == n.expires_ns {
            return;
        }
        n.expires_ns = new;
        let entry = BlockEntry::new(n.flags, n.target, new);
        if let Err(e) = self.enforcer.put_name(key, entry) {
            self.map_error("setting a name block's expiry", e);
        }
    }

    /// Whether the kernel's prefix rule already decides this question (a protected `block`
    /// entry with labels appended): no learned block is needed for it.
    pub fn prefix_covers(&self, hashes: &QnameHashes) -> bool {
        [hashes.stem1, hashes.stem2, hashes.stem3]
            .into_iter()
            .any(|s| {
                s != 0
                    && self.policy.contains(&s)
                    && self
                        .names
                        .get(&s)
                        .is_some_and(|n| n.flags & BLOCK_PREFIX != 0)
            })
    }

    /// Records the agent's verdict on question `h` (see `Enforcer::judged`); a clean one
    /// keeps the name's keyed `tag` beside it, without which it lifts no prefix rule.
    pub fn judged(&mut self, h: u64, clean_until: Option<u64>, tag: Option<u64>) {
        if let (Some(_), Some(tag)) = (clean_until, tag) {
            self.tag_clean(h, tag);
        }
        if let Err(e) = self.enforcer.judged(h, clean_until) {
            self.map_error("recording a verdict", e);
        }
    }

    /// Housekeeping at kernel time `now_ns`: lapsed learned blocks leave the kernel (the
    /// programs already ignore them), the policy lease is renewed, the heartbeat written.
    /// Returns the addresses lifted because a legitimate answer contested them.
    pub fn expire(&mut self, now_ns: u64) -> Vec<(IpAddr, AddrBlock)> {
        let stale: Vec<u64> = self
            .names
            .iter()
            .filter(|(_, n)| n.flags & BLOCK_LEARNED != 0 && n.expires_ns <= now_ns)
            .map(|(h, _)| *h)
            .collect();
        for h in stale {
            self.remove_name(h);
        }
        let contested = self.expire_addrs(now_ns);
        if now_ns >= self.renewed_ns.saturating_add(ns(RENEW_EVERY)) {
            self.renew(now_ns);
        }
        self.heartbeat(now_ns);
        contested
    }

    /// After a policy change: lifts the learned blocks `blocks` no longer says yes to, and
    /// adopted ones (names unknown) whose target is no longer among `block_targets`.
    pub fn rebalance(&mut self, blocks: impl Fn(&str) -> bool, block_targets: &HashSet<u32>) {
        let lift: Vec<u64> = self
            .names
            .iter()
            .filter(|(_, n)| n.flags & BLOCK_LEARNED != 0)
            .filter(|(_, n)| match &n.name {
                Some(name) => !blocks(name),
                None => !block_targets.contains(&n.target),
            })
            .map(|(h, _)| *h)
            .collect();
        for h in lift {
            self.remove_name(h);
        }
        self.rebalance_addrs(&blocks, block_targets);
    }
}
