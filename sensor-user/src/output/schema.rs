//! The event log's schema: one JSON object per line, `event` names the kind. The closed
//! sets its fields take are in `sets.rs`, re-exported here.

use std::collections::BTreeMap;

use serde::Serialize;

pub use super::sets::{
    BlockKind, PushResult, ReloadResult, ReloadTrigger, ResolverState, Severity,
};
use crate::{
    attrib::{Place, Process},
    detect::Finding,
};

/// The lookalike part of a detection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lookalike {
    /// The lookalike domain as seen.
    pub domain: String,
    /// The protected entry it imitates.
    pub target: String,
    /// The rule that matched.
    pub rule: &'static str,
    /// A sentence for a person.
    pub explanation: String,
    /// alert or block.
    pub action: &'static str,
    /// Confidence in [0, 1].
    pub score: f32,
    /// `restricted` when the name lies under a registry only vetted bodies can register
    /// in (a `lookalike`, not a `typosquat`: reported at info, blocked only if the entry
    /// says `block_restricted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<&'static str>,
    /// That registry's suffix, e.g. `mil.kr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_suffix: Option<String>,
    /// Who may register there (military, government, education…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_kind: Option<&'static str>,
    /// `learned` when the target was protected from this host's correspondents, else
    /// `configured`.
    pub source: &'static str,
    /// What this host's correspondents ledger says about the lookalike (absent when
    /// learning is off).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub history: Option<super::history::History>,
}

impl Lookalike {
    /// From the engine's finding for `domain`.
    pub fn new(domain: &str, f: &Finding) -> Self {
        Self {
            domain: domain.to_string(),
            target: f.target.clone(),
            rule: f.rule.name(),
            explanation: f.explanation.clone(),
            action: f.action.name(),
            score: (f.score * 100.0).round() / 100.0,
            registry: f.registry.as_ref().map(|_| "restricted"),
            registry_suffix: f.registry.as_ref().map(|r| r.suffix.clone()),
            registry_kind: f.registry.as_ref().map(|r| r.kind.name()),
            source: "configured",
            history: None,
        }
    }

    /// A lookalike in a restricted registry (not a typosquat).
    pub fn restricted(&self) -> bool {
        self.registry.is_some()
    }

    /// Info for a restricted-registry lookalike, else `typosquat` (a delivery is a
    /// warning, a name going live critical).
    ///
    /// The ledger moves it: an established correspondent is an old friend (info); a
    /// first contact with a lookalike of one is the strongest misdirection signal there
    /// is (critical).
    pub fn severity(&self, typosquat: Severity) -> Severity {
        match &self.history {
            _ if self.restricted() => Severity::Info,
            Some(h) if h.established => Severity::Info,
            Some(h) if h.first_contact && h.target_established => Severity::Critical,
            _ => typosquat,
        }
    }
}

/// Where a DNS packet came from: only the cgroup is known at that hook.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SocketOwner {
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Its path, container and pod, when the cgroup still exists.
    #[serde(flatten)]
    pub place: Place,
}

/// What a connect was for, from the DNS answers that led to its address.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Route {
    /// The recipient domain (the MX question, or the name looked up).
    pub recipient_domain: String,
    /// The mail host whose address this is.
    pub mx_host: String,
    /// The question whose answer carried the address.
    pub qname: String,
}

/// A map a start recreated (its layout or capacity changed), with what was carried over.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MigratedMap {
    /// The map.
    pub map: &'static str,
    /// `resized` (copied as is), `converted` or `renewed` (a ring: new, nothing copied).
    pub action: &'static str,
    /// Why it was recreated.
    pub reason: String,
    /// Entries copied into the new map.
    pub copied: u64,
    /// Entries that did not fit or that a converter dropped; for a ring, the records
    /// left unread in the old one.
    pub dropped: u64,
}

/// Every kind of line in the event log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Programs attached, agent ready.
    AgentStarted {
        /// Package version.
        version: &'static str,
        /// monitor or enforce.
        mode: &'static str,
        /// cgroup attached to.
        cgroup: String,
        /// Programs attached by this start.
        attached: usize,
        /// Programs re-adopted from pins.
        adopted: usize,
        /// Programs whose pinned links were switched to this build's programs.
        upgraded: usize,
        /// Each program: adopted, upgraded or attached.
        programs: BTreeMap<&'static str, &'static str>,
        /// The pinned maps' layout version.
        layout: u32,
        /// Maps recreated by this start, with what was carried over.
        migrated: Vec<MigratedMap>,
        /// The pin directory (locked by this agent).
        pin_dir: String,
        /// How the connect programs learn the caller: task_btf, helpers or adopted.
        caller_reads: &'static str,
        /// SMTP ports watched.
        smtp_ports: Vec<u16>,
        /// Number of protected entries.
        protected: usize,
        /// Of those, learned from this host's established correspondents.
        learned: usize,
        /// Config file in use, if any.
        config: Option<String>,
        /// Metrics endpoint.
        metrics: String,
    },
    /// Agent exiting.
    AgentStopped {
        /// Kernel records received, by kind.
        received: BTreeMap<&'static str, u64>,
        /// Records that could not be decoded.
        undecodable: u64,
        /// Events the kernel lost, by kind.
        lost: BTreeMap<&'static str, u64>,
        /// Whether programs were detached.
        detached: bool,
    },
    /// Pins removed under the running agent, put back from the objects it holds.
    PinsRestored {
        /// What was put back (`links/mx_connect4`, `maps/MODE`, the pin directory itself).
        restored: Vec<String>,
    },
    /// `mxsentry ctl detach` asked this agent to detach everything when it stops.
    DetachRequested {
        /// The request's text (who asked).
        request: String,
    },
    /// A configuration (re)load.
    ConfigReloaded {
        /// ok or error.
        result: ReloadResult,
        /// sighup or file.
        trigger: ReloadTrigger,
        /// Why it was refused.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Protected entries now in force.
        protected: usize,
        /// Mode now in force.
        mode: &'static str,
        /// Changed keys only a restart applies (their running values stay).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restart_needed: Vec<&'static str>,
        /// Conflicts in the file worth a word, each with its line.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// A lookalike name was looked up.
    LookalikeLookup {
        /// Severity.
        severity: Severity,
        /// The question type.
        qtype: &'static str,
        /// What it imitates and why.
        #[serde(flatten)]
        lookalike: Lookalike,
        /// Whether its answers are now in `BLOCKED_NAMES`.
        name_blocked: bool,
        /// A local resolver asking its upstream on someone's behalf: the asker's own
        /// lookup is the other event.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        local_resolver_upstream: bool,
        /// Who asked (cgroup only: the DNS hook has no process).
        socket: SocketOwner,
    },
    /// An SMTP connect towards a lookalike, let through (monitor mode or alert action).
    Detection {
        /// Severity.
        severity: Severity,
        /// What it imitates and why.
        #[serde(flatten)]
        lookalike: Lookalike,
        /// Where the connect went.
        address: String,
        /// Destination port.
        port: u16,
        /// The kernel's verdict (allowed or would_block); in monitor mode `would_block`
        /// whenever enforce mode would have stopped this delivery.
        verdict: &'static str,
        /// For `would_block`: how enforce mode stops it (`dns_answer`: the answer that
        /// gave the address is dropped; `connect`: the connect is refused).
        #[serde(skip_serializing_if = "Option::is_none")]
        mechanism: Option<BlockKind>,
        /// The DNS history behind the address.
        route: Route,
        /// Who connected.
        process: Process,
    },
    /// A delivery refused: a connect (EPERM) or a DNS answer dropped.
    Block {
        /// Severity.
        severity: Severity,
        /// connect or dns_answer.
        kind: BlockKind,
        /// What it imitates and why (absent for operator blocks of unknown addresses).
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        lookalike: Option<Lookalike>,
        /// For connects: the address.
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// For connects: the port.
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// For connects: the DNS history behind the address.
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<Route>,
        /// For connects: who connected.
        #[serde(skip_serializing_if = "Option::is_none")]
        process: Option<Process>,
        /// For answers: whose socket it was meant for.
        #[serde(skip_serializing_if = "Option::is_none")]
        socket: Option<SocketOwner>,
    },
    /// A lookalike that did not resolve before now does: someone registered it.
    LookalikeWentLive {
        /// Severity.
        severity: Severity,
        /// What it imitates and why.
        #[serde(flatten)]
        lookalike: Lookalike,
        /// When it was first seen unresolved (Unix seconds).
        unresolved_since: u64,
        /// Addresses it now resolves to (the first `WENT_LIVE_LIST_MAX`).
        addresses: Vec<String>,
        /// How many addresses the answer gave in all.
        addresses_total: usize,
        /// Mail exchangers it now has (the first `WENT_LIVE_LIST_MAX`).
        mx: Vec<String>,
        /// How many exchangers the answer gave in all.
        mx_total: usize,
    },
    /// A learned address block lifted: a legitimate name resolves to the address too (a
    /// shared mail host). The lookalike's answers are still dropped by name.
    AddressBlockLifted {
        /// Severity.
        severity: Severity,
        /// The address.
        address: String,
        /// The lookalike domains it was blocked for.
        lookalikes: Vec<String>,
        /// The legitimate domain that resolved there, when the agent saw its answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        legitimate: Option<String>,
    },
    /// A legitimate name's question meets a lookalike's learned name block in the kernel
    /// (the same name hash, which whoever picks the lookalike's name can compute): its
    /// answers are dropped while the block lasts. Not lifted by the agent, which would
    /// let whoever computes a collision unblock the lookalike; the operator decides.
    NameHashCollision {
        /// Severity.
        severity: Severity,
        /// The name or domain the block was learned for.
        lookalike: String,
        /// The legitimate name whose answers it drops.
        legitimate: String,
    },
    /// Learned blocks of one protected target pushed out by the bound for newer ones.
    BlocksEvicted {
        /// Severity.
        severity: Severity,
        /// The protected target ("unknown" for blocks adopted from a previous agent).
        target: String,
        /// How many since the last such line (at most one a second per target).
        count: u64,
        /// A few of the names or addresses evicted.
        examples: Vec<String>,
    },
    /// A local resolver found (its upstream answers are never dropped) or gone.
    LocalResolver {
        /// found or gone.
        state: ResolverState,
        /// Its thread-group id.
        tgid: u32,
        /// Its command name, when /proc still has it.
        comm: String,
    },
    /// Repeats of one event within the repeat window, written as one line when the
    /// window closes (the first was written as it happened).
    Repeated {
        /// The event repeated, as written the first time (without `ts` and `host`).
        of: serde_json::Value,
        /// Repeats after the first.
        count: u64,
        /// When the first repeat happened.
        first_ts: String,
        /// When the last one happened.
        last_ts: String,
        /// The window, in seconds.
        window_secs: u64,
        /// Whether the repeated event is evidence.
        #[serde(skip)]
        kept: bool,
    },
    /// Routine lines not written because of the rate limit, by event.
    EventsSuppressed {
        /// Lines not written, by event name.
        counts: BTreeMap<&'static str, u64>,
        /// Since when (the previous summary, or the first suppression).
        since: String,
        /// The limit, in lines per second.
        rate_limit: u32,
    },
    /// Unresolved lookalikes forgotten because the memory is full (counted).
    PendingEvicted {
        /// Entries forgotten since the last such line.
        count: u64,
        /// Why: `pending_max` (all targets) or `pending_per_target`.
        bound: &'static str,
        /// A few of the names forgotten.
        examples: Vec<String>,
    },
    /// The agent's state on disk could not be saved or loaded (counted).
    StateError {
        /// save or load.
        op: &'static str,
        /// The file.
        file: String,
        /// What went wrong, and what became of the data.
        error: String,
    },
    /// An SMTP connect to an address with no DNS history.
    UnattributedConnect {
        /// Severity.
        severity: Severity,
        /// Where the connect went.
        address: String,
        /// Destination port.
        port: u16,
        /// The kernel's verdict.
        verdict: &'static str,
        /// Who connected.
        process: Process,
        /// Lookalikes whose answers named this address but are not why the host connected:
        /// they reached no asker (dropped, or a local resolver's own lookup:
        /// `explain.rs`), or the address is one it connects to without DNS (`direct.rs`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        unreceived_lookalikes: Vec<String>,
    },
}

impl Event {
    /// The `event` name of the line.
    pub fn name(&self) -> &'static str {
        match self {
            Event::AgentStarted { .. } => "agent_started",
            Event::AgentStopped { .. } => "agent_stopped",
            Event::ConfigReloaded { .. } => "config_reloaded",
            Event::LookalikeLookup { .. } => "lookalike_lookup",
            Event::Detection { .. } => "detection",
            Event::Block { .. } => "block",
            Event::LookalikeWentLive { .. } => "lookalike_went_live",
            Event::LocalResolver { .. } => "local_resolver",
            Event::UnattributedConnect { .. } => "unattributed_connect",
            Event::Repeated { .. } => "repeated",
            Event::EventsSuppressed { .. } => "events_suppressed",
            Event::PendingEvicted { .. } => "pending_evicted",
            Event::StateError { .. } => "state_error",
            Event::PinsRestored { .. } => "pins_restored",
            Event::DetachRequested { .. } => "detach_requested",
            Event::AddressBlockLifted { .. } => "address_block_lifted",
            Event::NameHashCollision { .. } => "name_hash_collision",
            Event::BlocksEvicted { .. } => "blocks_evicted",
        }
    }

    /// Evidence and the agent's own state: never rate-limited, and copied to the
    /// evidence file so that no flood of routine lines rotates it away. Routine: lookups
    /// and unattributed connects, which whoever writes DNS answers or runs a process can
    /// multiply.
    pub fn kept(&self) -> bool {
        match self {
            Event::LookalikeLookup { .. } | Event::UnattributedConnect { .. } => false,
            Event::Repeated { kept, .. } => *kept,
            _ => true,
        }
    }

    /// Whether identical lines close together are folded into one and a count: routine
    /// events, and a dropped answer (a TCP server retransmits it; each copy is dropped).
    pub fn folds_repeats(&self) -> bool {
        !self.kept()
            || matches!(
                self,
                Event::Block {
                    kind: BlockKind::DnsAnswer,
                    ..
                }
            )
    }
}

/// One log line: the event with a timestamp and the host name.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// RFC 3339 UTC.
    pub ts: String,
    /// The node.
    pub host: &'a str,
    /// The event.
    #[serde(flatten)]
    pub event: &'a Event,
}
