//! What the pipeline decides, each emitted through one call that writes the event line,
//! moves its metrics and pushes its alert together (in the spirit of vector's
//! `internal_events`), so the decision code never interleaves telemetry.

use std::net::IpAddr;

use sensor_common::Verdict;

pub use self::credit::{CreditWithheld, LookalikeEstablished};
use super::sink::Sink;
use crate::{
    alert::AlertName,
    attrib::Process,
    output::schema::{BlockKind, Event, Lookalike, Route, Severity, SocketOwner},
};

mod credit;

/// An outcome of the pipeline.
pub trait Outcome {
    /// Writes the event, moves the metrics and pushes the alert of this outcome.
    fn emit(self, sink: &mut Sink);
}

/// A lookalike name was looked up (the query left the host).
pub struct LookalikeLookedUp {
    /// The question type.
    pub qtype: &'static str,
    /// What it imitates.
    pub lookalike: Lookalike,
    /// Whether its answers are now in `BLOCKED_NAMES`.
    pub name_blocked: bool,
    /// Seconds from the query in the kernel to the map update, when this lookup put a
    /// new entry in the map (measured at the update).
    pub block_latency: Option<f64>,
    /// A local resolver asking upstream on someone's behalf.
    pub resolver_upstream: bool,
    /// Who asked.
    pub socket: SocketOwner,
}

impl Outcome for LookalikeLookedUp {
    fn emit(self, sink: &mut Sink) {
        let l = &self.lookalike;
        if !count_restricted(sink, l, "lookup") {
            sink.metrics
                .lookalike_lookups
                .with_label_values(&[&l.target, l.rule])
                .inc();
        }
        if let Some(secs) = self.block_latency {
            sink.metrics
                .map_update_latency
                .with_label_values(&["blocked_names"])
                .observe(secs);
        }
        sink.emit(Event::LookalikeLookup {
            severity: Severity::Info,
            qtype: self.qtype,
            lookalike: self.lookalike,
            name_blocked: self.name_blocked,
            local_resolver_upstream: self.resolver_upstream,
            socket: self.socket,
        });
    }
}

/// The kernel dropped a DNS answer for a blocked name.
pub struct AnswerDropped {
    /// What the question imitates (none when the policy no longer says).
    pub lookalike: Option<Lookalike>,
    /// Whose socket it was meant for.
    pub socket: SocketOwner,
}

impl Outcome for AnswerDropped {
    fn emit(self, sink: &mut Sink) {
        sink.metrics
            .blocked
            .with_label_values(&[BlockKind::DnsAnswer.name()])
            .inc();
        if let Some(l) = &self.lookalike {
            sink.alert(AlertName::DeliveryBlocked, l, "DNS answer dropped".into());
        }
        sink.emit(Event::Block {
            severity: Severity::Warning,
            kind: BlockKind::DnsAnswer,
            lookalike: self.lookalike,
            address: None,
            port: None,
            route: None,
            process: None,
            socket: Some(self.socket),
        });
    }
}

/// The kernel refused an SMTP connect (EPERM).
pub struct ConnectRefused {
    /// What the recipient imitates; none for an operator's block of the address.
    pub lookalike: Option<Lookalike>,
    /// Where the connect went.
    pub address: String,
    /// Destination port.
    pub port: u16,
    /// The DNS history behind the address, if any.
    pub route: Option<Route>,
    /// Who connected.
    pub process: Process,
    /// Another lookalike behind a refusal already reported (the address served several):
    /// its own event, but the refusal is counted once.
    pub repeat: bool,
}

impl Outcome for ConnectRefused {
    fn emit(self, sink: &mut Sink) {
        if !self.repeat {
            sink.metrics
                .blocked
                .with_label_values(&[BlockKind::Connect.name()])
                .inc();
        }
        if let Some(l) = &self.lookalike {
            count_detection(sink, l);
            sink.alert(AlertName::DeliveryBlocked, l, who(&self.process));
        }
        sink.emit(Event::Block {
            severity: Severity::Warning,
            kind: BlockKind::Connect,
            lookalike: self.lookalike,
            address: Some(self.address),
            port: Some(self.port),
            route: self.route,
            process: Some(self.process),
            socket: None,
        });
    }
}

/// An SMTP connect towards a lookalike was let through (monitor mode, or alert action).
pub struct Detected {
    /// What the recipient imitates.
    pub lookalike: Lookalike,
    /// Where the connect went.
    pub address: String,
    /// Destination port.
    pub port: u16,
    /// The kernel's verdict, or in monitor mode what enforce mode would have done.
    pub verdict: Verdict,
    /// How enforce mode would have stopped it (for `would_block`).
    pub mechanism: Option<BlockKind>,
    /// The DNS history behind the address.
    pub route: Route,
    /// Who connected.
    pub process: Process,
}

impl Outcome for Detected {
    fn emit(self, sink: &mut Sink) {
        // A restricted-registry lookalike is reported, not paged: no alert push.
        if !count_restricted(sink, &self.lookalike, "delivery") {
            count_detection(sink, &self.lookalike);
            sink.alert(
                AlertName::LookalikeDeliveryAttempted,
                &self.lookalike,
                who(&self.process),
            );
        }
        sink.emit(Event::Detection {
            severity: self.lookalike.severity(Severity::Warning),
            lookalike: self.lookalike,
            address: self.address,
            port: self.port,
            verdict: self.verdict.name(),
            mechanism: self.mechanism,
            route: self.route,
            process: self.process,
        });
    }
}

/// The kernel held an MX answer whose question the agent had not judged yet (dropped
/// once; the resolver's retry meets the verdict).
pub struct AnswerHeld;

impl Outcome for AnswerHeld {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.answers_held.inc();
    }
}

/// An MX answer carried more glue addresses than are learned from one answer.
pub struct GlueSkipped {
    /// The answer's question name.
    pub qname: String,
    /// Glue addresses not learned.
    pub skipped: usize,
}

impl Outcome for GlueSkipped {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.glue_skipped.inc_by(self.skipped as u64);
        log::warn!(
            "MX answer for {} carried {} glue addresses past the learning bounds: not learned",
            self.qname,
            self.skipped
        );
    }
}

/// A legitimate name's question meets a lookalike's learned name block in the kernel (the
/// same hash): a computed collision, most likely an attack on that name's mail. Reported,
/// not lifted (lifting would let whoever computes one unblock the lookalike).
pub struct NameHashCollision {
    /// The name or domain the block was learned for.
    pub lookalike: String,
    /// The legitimate name whose answers it drops.
    pub legitimate: String,
}

impl Outcome for NameHashCollision {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.name_hash_collisions.inc();
        sink.emit(Event::NameHashCollision {
            severity: Severity::Critical,
            lookalike: self.lookalike,
            legitimate: self.legitimate,
        });
    }
}

/// A learned name block a previous agent left (its name unknown) lifted: a question met
/// it whose name the current policy does not block (`pipeline/adopted.rs`).
pub struct AdoptedBlockLifted {
    /// The name (or domain) the block stood for, as the question says.
    pub name: String,
}

impl Outcome for AdoptedBlockLifted {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.adopted_blocks_lifted.inc();
        log::warn!(
            "lifted a name block a previous agent learned for {}: the current policy does \
             not block it",
            self.name
        );
    }
}

/// A connect to an address a lookalike's answer named, not reported as a delivery to the
/// lookalike: no asker received that answer (`pipeline/explain.rs`).
pub struct LookalikeNotReceived {
    /// The lookalike recipient domains left out.
    pub lookalikes: Vec<String>,
    /// The address connected to.
    pub address: IpAddr,
}

impl Outcome for LookalikeNotReceived {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.lookalikes_not_received.inc();
        log::debug!(
            "connect to {} not reported for {:?}: no asker received the answers that named \
             it for them",
            self.address,
            self.lookalikes
        );
    }
}

/// An address became a direct destination (`pipeline/direct.rs`): connects there are no
/// longer attributed to lookalikes that name it, nor is it address-blocked.
pub struct DirectDestination {
    /// The address.
    pub address: IpAddr,
}

impl Outcome for DirectDestination {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.direct_destinations.inc();
        log::warn!(
            "{} is a direct destination (connects with no DNS route to it: a relay host \
             given by address?): never address-blocked or attributed to a lookalike from \
             now on",
            self.address
        );
    }
}

/// A lookalike's address that a legitimate name also resolves to: never blocked, or its
/// block lifted (the lookalike's own answers are still dropped by name).
pub struct AddressShared {
    /// The address.
    pub address: IpAddr,
    /// Lookalike domains it was learned for.
    pub lookalikes: Vec<String>,
    /// The legitimate domain that resolved there, when known (the kernel may have seen
    /// the answer the agent has not).
    pub legitimate: Option<String>,
    /// A block was lifted (else: none was put).
    pub lifted: bool,
}

impl Outcome for AddressShared {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.shared_addresses.inc();
        if !self.lifted {
            log::debug!(
                "not blocking {} for {:?}: {:?} resolves there too",
                self.address,
                self.lookalikes,
                self.legitimate
            );
            return;
        }
        sink.emit(Event::AddressBlockLifted {
            severity: Severity::Info,
            address: self.address.to_string(),
            lookalikes: self.lookalikes,
            legitimate: self.legitimate,
        });
    }
}

/// Learned blocks pushed out by the bound to make room for newer ones of the same target
/// (a flood of lookalike names), reported once per tick.
pub struct BlocksEvicted {
    /// The protected target whose blocks gave way ("unknown" for adopted ones).
    pub target: String,
    /// How many since the last report.
    pub count: u64,
    /// A few of them.
    pub examples: Vec<String>,
}

impl Outcome for BlocksEvicted {
    fn emit(self, sink: &mut Sink) {
        sink.metrics
            .block_evictions
            .with_label_values(&[&self.target])
            .inc_by(self.count);
        log::warn!(
            "{} learned blocks of {} evicted for newer ones (e.g. {:?})",
            self.count,
            self.target,
            self.examples
        );
        sink.emit(Event::BlocksEvicted {
            severity: Severity::Warning,
            target: self.target,
            count: self.count,
            examples: self.examples,
        });
    }
}

/// An SMTP connect to an address with no DNS history.
pub struct Unattributed {
    /// Where the connect went.
    pub address: String,
    /// Destination port.
    pub port: u16,
    /// The kernel's verdict.
    pub verdict: Verdict,
    /// Who connected.
    pub process: Process,
    /// Lookalikes whose answers named the address but are not why the host connected.
    pub unreceived_lookalikes: Vec<String>,
}

impl Outcome for Unattributed {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.unattributed.inc();
        // A host that knew a lookalike's address some other way (its own cache from
        // before the block, a lookup the sensor could not see) is told apart from a
        // plain relay delivery only by this: worth a look, not a page.
        let severity = if self.unreceived_lookalikes.is_empty() {
            Severity::Info
        } else {
            Severity::Warning
        };
        sink.emit(Event::UnattributedConnect {
            severity,
            address: self.address,
            port: self.port,
            verdict: self.verdict.name(),
            process: self.process,
            unreceived_lookalikes: self.unreceived_lookalikes,
        });
    }
}

/// A lookalike that did not resolve before now does: someone registered it.
pub struct WentLive {
    /// What it imitates.
    pub lookalike: Lookalike,
    /// When it was first seen unresolved (Unix seconds).
    pub since: u64,
    /// Addresses it now resolves to, the first `WENT_LIVE_LIST_MAX`, and how many in all.
    pub addresses: (Vec<String>, usize),
    /// Mail exchangers it now has, the first `WENT_LIVE_LIST_MAX`, and how many in all.
    pub mx: (Vec<String>, usize),
}

/// Addresses and exchangers a `lookalike_went_live` line names at most. The line is
/// evidence, never rate-limited: whoever writes the lookalike's answer chooses how many
/// it gives (a 64 KiB answer over TCP named 3,000 exchangers: a line of 770 KB).
pub const WENT_LIVE_LIST_MAX: usize = 32;

/// The first `WENT_LIVE_LIST_MAX` of `items`, and how many there were.
pub fn listed(items: impl Iterator<Item = String>) -> (Vec<String>, usize) {
    let mut total = 0;
    let mut kept = Vec::new();
    for item in items {
        total += 1;
        if kept.len() < WENT_LIVE_LIST_MAX {
            kept.push(item);
        }
    }
    (kept, total)
}

impl Outcome for WentLive {
    fn emit(self, sink: &mut Sink) {
        if !count_restricted(sink, &self.lookalike, "went_live") {
            count_detection(sink, &self.lookalike);
            sink.metrics
                .lookalikes_went_live
                .with_label_values(&[&self.lookalike.target])
                .inc();
            sink.alert(AlertName::LookalikeWentLive, &self.lookalike, "DNS".into());
        }
        sink.emit(Event::LookalikeWentLive {
            severity: self.lookalike.severity(Severity::Critical),
            lookalike: self.lookalike,
            unresolved_since: self.since,
            addresses: self.addresses.0,
            addresses_total: self.addresses.1,
            mx: self.mx.0,
            mx_total: self.mx.1,
        });
    }
}

/// Counts a restricted-registry lookalike (seen at `seen`); false for a typosquat.
fn count_restricted(sink: &Sink, l: &Lookalike, seen: &str) -> bool {
    let Some(kind) = l.registry_kind else {
        return false;
    };
    sink.metrics
        .restricted_lookalikes
        .with_label_values(&[&l.target, kind, seen])
        .inc();
    true
}

fn count_detection(sink: &Sink, l: &Lookalike) {
    sink.metrics
        .detections
        .with_label_values(&[&l.target, l.rule, l.action])
        .inc();
    if let Some(h) = l.history.as_ref().filter(|h| h.first_contact) {
        let established = if h.target_established {
            "true"
        } else {
            "false"
        };
        sink.metrics
            .first_contacts
            .with_label_values(&[&l.target, established])
            .inc();
    }
}

fn who(p: &Process) -> String {
    format!("{} (pid {})", p.comm, p.tgid)
}
