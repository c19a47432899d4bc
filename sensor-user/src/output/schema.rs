//! The event log's schema: one JSON object per line, `event` names the kind.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    attrib::{Place, Process},
    detect::Finding,
};

/// Declares a closed set of names: an enum serialised as its snake_case name, with
/// `name()` for metric labels and `ALL` for exporting every label at zero.
macro_rules! names {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
        #[serde(rename_all = "snake_case")]
        pub enum $ty { $($(#[$vdoc])* $v),+ }

        impl $ty {
            /// Every value.
            pub const ALL: &[$ty] = &[$($ty::$v),+];

            /// The name used in events and metric labels.
            pub const fn name(self) -> &'static str {
                match self { $($ty::$v => $s),+ }
            }
        }
    };
}

names! {
    /// Severity, as alert rules and Alertmanager use it.
    Severity {
        /// For the record.
        Info = "info",
        /// Someone should look.
        Warning = "warning",
        /// Someone should look now.
        Critical = "critical",
    }
}

names! {
    /// What a block refused (and, in a detection, how enforce mode would have stopped it).
    BlockKind {
        /// An SMTP connect refused with EPERM.
        Connect = "connect",
        /// A DNS answer dropped before the asking socket saw it.
        DnsAnswer = "dns_answer",
    }
}

names! {
    /// What made the agent read its config again.
    ReloadTrigger {
        /// SIGHUP.
        Sighup = "sighup",
        /// The file's contents changed.
        File = "file",
    }
}

names! {
    /// How a config (re)load ended.
    ReloadResult {
        /// Applied.
        Ok = "ok",
        /// Refused; the running config stays.
        Error = "error",
    }
}

names! {
    /// How an alert push to Alertmanager ended.
    PushResult {
        /// Alertmanager took it.
        Ok = "ok",
        /// Every attempt failed.
        Failed = "failed",
        /// The queue was full: dropped without trying.
        Dropped = "dropped",
    }
}

names! {
    /// A change in the local resolvers the agent knows.
    ResolverState {
        /// A process serving port 53 was found.
        Found = "found",
        /// It exited.
        Gone = "gone",
    }
}

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
        /// How the connect programs learn the caller: task_btf, helpers or adopted.
        caller_reads: &'static str,
        /// SMTP ports watched.
        smtp_ports: Vec<u16>,
        /// Number of protected entries.
        protected: usize,
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
        /// Addresses it now resolves to.
        addresses: Vec<String>,
        /// Mail exchangers it now has.
        mx: Vec<String>,
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
    },
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
