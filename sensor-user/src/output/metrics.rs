//! The Prometheus metrics the agent moves itself. Names and labels are a contract with the
//! dashboards and alert rules in `deploy/` and `dashboards/`: change them only together.
//! Counters the kernel owns (event loss, program run time) are read at scrape time by
//! `kernel::collector`, registered in the same registry.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, process_collector::ProcessCollector,
};
use sensor_common::Program;

use super::schema::{BlockKind, PushResult, ReloadResult};
use crate::detect::Rule;

/// Metric registration failed: only possible with a programming error (duplicate name).
#[derive(Debug, thiserror::Error)]
#[error("registering metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Options for a metric in the `mxsentry` namespace.
pub fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("mxsentry")
}

/// Most detection series exported at zero (targets × rules).
pub const MAX_KNOWN_SERIES: usize = 20_000;

/// Latency buckets fine below a millisecond: the target for query → map update is
/// 200 µs at p99.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_01, 0.000_02, 0.000_03, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2, 0.000_3,
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
];

fn counter(name: &str, help: &str) -> prometheus::Result<IntCounter> {
    IntCounter::with_opts(opts(name, help))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(opts(name, help), labels)
}

fn gauge(name: &str, help: &str) -> prometheus::Result<IntGauge> {
    IntGauge::with_opts(opts(name, help))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    IntGaugeVec::new(opts(name, help), labels)
}

fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace("mxsentry")
        .buckets(LATENCY_BUCKETS.to_vec())
}

fn latency(name: &str, help: &str) -> prometheus::Result<Histogram> {
    Histogram::with_opts(histogram_opts(name, help))
}

fn latency_vec(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(histogram_opts(name, help), labels)
}

/// Declares `Metrics` from a table: each row is a field, its type and how it is made;
/// `register` makes and registers them all.
macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $make:expr;)*) => {
        /// Every metric the agent moves, registered in one registry.
        #[derive(Clone)]
        pub struct Metrics {
            /// The registry `/metrics` renders.
            pub registry: Registry,
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Metrics {
            fn register(registry: Registry) -> Result<Self, MetricsError> {
                $(
                    let $field: $ty = $make?;
                    registry.register(Box::new($field.clone()))?;
                )*
                Ok(Self { registry, $($field,)* })
            }
        }
    };
}

metrics! {
    /// DNS messages parsed, by direction (egress|ingress) and question type.
    dns_messages: IntCounterVec = counter_vec("dns_messages_total", "DNS messages parsed, by direction and question type.", &["direction", "qtype"]);
    /// Captured payloads that were not usable DNS, by reason.
    dns_parse_errors: IntCounterVec = counter_vec("dns_parse_errors_total", "Captured DNS payloads skipped as unusable, by reason.", &["reason"]);
    /// SMTP connects seen, by port, family (ipv4|ipv6) and kernel verdict.
    smtp_connects: IntCounterVec = counter_vec("smtp_connects_total", "Outbound SMTP connects, by port, family and kernel verdict.", &["port", "family", "verdict"]);
    /// Deliveries headed for a lookalike, by protected target, rule and action.
    detections: IntCounterVec = counter_vec("detections_total", "Deliveries headed for a lookalike, by protected target, rule and action.", &["target", "rule", "action"]);
    /// Lookalikes in restricted registries (reported, not typosquats), by target, registry
    /// kind and where seen (lookup|delivery|went_live).
    restricted_lookalikes: IntCounterVec = counter_vec("restricted_lookalikes_total", "Lookalikes of protected entries under restricted registries (reported at info), by target, registry kind and where seen.", &["target", "registry", "seen"]);
    /// Refusals, by kind (connect|dns_answer).
    blocked: IntCounterVec = counter_vec("blocked_total", "Deliveries refused, by kind (connect or dns_answer).", &["kind"]);
    /// SMTP connects to an address with no DNS history.
    unattributed: IntCounter = counter("unattributed_connects_total", "SMTP connects to an address the agent saw no DNS answer for.");
    /// Addresses in the cache.
    cache_entries: IntGauge = gauge("cache_entries", "Addresses in the attribution cache.");
    /// Addresses pushed out of the cache by its bound.
    cache_evictions: IntCounter = counter("cache_evictions_total", "Addresses pushed out of the attribution cache by its size bound.");
    /// Legitimate names whose question met a lookalike's learned name block (a collision).
    name_hash_collisions: IntCounter = counter("name_hash_collisions_total", "Legitimate names whose question met a lookalike's learned name block in the kernel (the same name hash): computed collisions, most likely attacks. Reported, not lifted.");
    /// Deliveries to a shared host whose credit a lookalike's fresher answer would have had.
    credits_withheld: IntCounter = counter("correspondent_credits_withheld_total", "Deliveries to a mail host shared by a lookalike and a legitimate recipient asked for close together: credited to neither in the correspondents ledger, so a lookalike never becomes an established correspondent with other domains' mail.");
    /// Lookalikes of `block` entries that became established correspondents.
    lookalikes_established: IntCounter = counter("correspondent_lookalikes_established_total", "Lookalikes of block entries that became established correspondents of this host with a delivery (monitor mode, or past a lost race): never blocked from then on. A real partner that resembles a protected name, or a lookalike whose owner had this host bounce to it for days: for a person to confirm or forget.");
    /// Nameless learned blocks (a previous agent's) lifted: their name is not blocked now.
    adopted_blocks_lifted: IntCounter = counter("adopted_blocks_lifted_total", "Learned name blocks taken over from a previous agent (their names unknown) lifted: under the key of a name the operator allows or declares, or met by a question whose keyed tag they carry that the current policy does not block.");
    /// Addresses that became direct destinations.
    direct_destinations: IntCounter = counter("direct_destinations_total", "Addresses this host connected to repeatedly with no DNS route to them (a relay host given by address), from then on never address-blocked or attributed to a lookalike that names them.");
    /// Connects not reported for a lookalike whose answers no asker received.
    lookalikes_not_received: IntCounter = counter("connect_lookalikes_not_received_total", "Connects to an address a lookalike's answer named, not reported as deliveries to the lookalike because no asker can have been told it: the kernel dropped the answer, or only a local resolver's own lookup (no MX answer behind it) gave the address.");
    /// Glue addresses of MX answers past the per-exchanger or per-answer bound.
    glue_skipped: IntCounter = counter("dns_glue_skipped_total", "Glue addresses in MX answers past the per-exchanger (32) or per-answer (1024) bound, not learned.");
    /// Config reloads, by result (ok|error).
    config_reloads: IntCounterVec = counter_vec("config_reloads_total", "Configuration reloads, by result.", &["result"]);
    /// Time from the kernel event to the agent's decision.
    decision_latency: Histogram = latency("decision_latency_seconds", "Time from the kernel event to the agent's decision.");
    /// Time from an SMTP connect in the kernel to the agent's event line about it.
    connect_event_latency: Histogram = latency("connect_event_latency_seconds", "Time from an SMTP connect (kernel timestamp) to its event line (detection, block or unattributed_connect).");
    /// Time from a DNS event to the kernel map update it caused, by map.
    map_update_latency: HistogramVec = latency_vec("map_update_latency_seconds", "Time from a DNS event to the kernel map update it caused, by map.", &["map"]);
    /// Programs attached (equal to `programs_expected` when healthy).
    programs_attached: IntGauge = gauge("programs_attached", "eBPF programs attached.");
    /// Programs this build attaches.
    programs_expected: IntGauge = gauge("programs_expected", "eBPF programs this build attaches.");
    /// Likely lookalike domains blocked in advance of any query.
    preloaded: IntGauge = gauge("preloaded_lookalikes", "Likely lookalike domains of block entries put in the kernel's name block map before any query.");
    /// Local resolver processes whose upstream sockets are exempt from answer drops.
    local_resolvers: IntGauge = gauge("local_resolvers", "Local resolver processes (serving port 53) whose upstream answers are never dropped.");
    /// Processes the last resolver scan could not inspect (descriptors unreadable).
    resolver_scan_unreadable: IntGauge = gauge("resolver_scan_unreadable", "Processes the last local-resolver scan could not inspect (no access to their descriptors).");
    /// Lookalikes looked up that did not resolve, remembered in case they go live.
    lookalikes_pending: IntGauge = gauge("lookalikes_pending", "Lookalikes looked up that did not resolve, watched in case they go live.");
    /// Remembered unresolved lookalikes that started to resolve, by protected target.
    lookalikes_went_live: IntCounterVec = counter_vec("lookalikes_went_live_total", "Lookalikes that did not resolve before and now do (someone registered them), by target.", &["target"]);
    /// Lookups of lookalike names, by protected target and rule.
    lookalike_lookups: IntCounterVec = counter_vec("lookalike_lookups_total", "DNS lookups of lookalike names, by protected target and rule.", &["target", "rule"]);
    /// Alerts pushed to Alertmanager, by result (ok|failed|dropped).
    alert_pushes: IntCounterVec = counter_vec("alert_pushes_total", "Alerts pushed to Alertmanager, by result.", &["result"]);
    /// Routine event lines not written because of the rate limit, by event.
    events_suppressed: IntCounterVec = counter_vec("events_suppressed_total", "Routine event lines not written because of the event log's rate limit (summarised in events_suppressed lines), by event.", &["event"]);
    /// Repeats folded into one line and a count, by event.
    events_folded: IntCounterVec = counter_vec("events_folded_total", "Repeats of an event within the repeat window, folded into one line and a count (a repeated line), by event.", &["event"]);
    /// Unresolved lookalikes forgotten because memory is full, by bound.
    pending_evicted: IntCounterVec = counter_vec("lookalikes_pending_evicted_total", "Unresolved lookalikes forgotten because the memory was full, by bound (pending_max or pending_per_target).", &["bound"]);
    /// Saves of the agent's state files.
    state_saves: IntCounter = counter("state_saves_total", "Saves of the agent's state (unresolved lookalikes), each a write-then-rename.");
    /// State that could not be saved or loaded, by operation.
    state_errors: IntCounterVec = counter_vec("state_errors_total", "The agent's state could not be saved (full or read-only directory) or loaded (corrupt or unreadable file), by operation (save|load: unresolved lookalikes; ledger_save|ledger_load: the correspondents ledger).", &["op"]);
    /// Metrics-endpoint connections closed to make room (the connection cap).
    http_evicted: IntCounter = counter("http_connections_evicted_total", "Connections to the metrics endpoint closed unanswered to keep within its connection cap (idle or slow clients).");
    /// Event-log lines that could not be written.
    event_log_errors: IntCounter = counter("event_log_errors_total", "Event-log lines that could not be written.");
    /// MX answers the kernel held (dropped once) for a verdict the agent had not given yet.
    answers_held: IntCounter = counter("answers_held_total", "MX answers held (dropped once, retried by the resolver) because the agent had not judged their question yet.");
    /// Lookalike addresses not blocked, or unblocked, because a legitimate name resolves there.
    shared_addresses: IntCounter = counter("shared_addresses_total", "Lookalike addresses not blocked or unblocked because a legitimate name resolves to them too (shared mail hosts).");
    /// Learned blocks evicted by the bound, by protected target.
    block_evictions: IntCounterVec = counter_vec("block_evictions_total", "Learned blocks evicted for newer ones of the same protected target (a flood of lookalike names), by target.", &["target"]);
    /// Kernel map updates that failed (map full, map gone).
    map_update_errors: IntCounter = counter("map_update_errors_total", "Kernel map updates that failed.");
    /// DNS messages handed on cut, by reason (`dns::Cut`).
    dns_incomplete: IntCounterVec = counter_vec("dns_incomplete_messages_total", "DNS messages the agent could not put back together whole from the kernel's records, handed on cut, by reason.", &["reason"]);
    /// Kernel records the agent could not decode.
    undecodable: IntCounter = counter("undecodable_records_total", "Kernel ring records the agent could not decode.");
    /// Protected entries in force, by source (configured|learned).
    protected_entries: IntGaugeVec = gauge_vec("protected_entries", "Protected entries in force, by source (configured in the policy, or learned from this host's established correspondents).", &["source"]);
    /// Registrable domains in the correspondents ledger.
    correspondents: IntGauge = gauge("correspondents", "Registrable domains this host has delivered to, in its correspondents ledger.");
    /// Of those, the established ones.
    correspondents_established: IntGauge = gauge("correspondents_established", "Correspondents delivered to on enough distinct days with enough deliveries to count as established.");
    /// Correspondents dropped to keep within max_domains.
    correspondents_evicted: IntCounter = counter("correspondents_evicted_total", "Correspondents dropped from the ledger to keep within learn.max_domains (least valuable first).");
    /// Deliveries to a lookalike never delivered to before, by target and whether the
    /// target is an established correspondent.
    first_contacts: IntCounterVec = counter_vec("lookalike_first_contacts_total", "Deliveries to a lookalike this host never delivered to before, by protected target and whether the target is an established correspondent (true: critical).", &["target", "target_established"]);
    /// Always 1, labelled with the version and the node.
    build_info: IntGaugeVec = gauge_vec("build_info", "Always 1; the version and node labels.", &["version", "node"]);
}

impl Metrics {
    /// Creates and registers every metric for the agent on `node`, with the process
    /// collector (CPU, memory, descriptors); label series known up front start at zero.
    pub fn new(node: &str) -> Result<Self, MetricsError> {
        let m = Self::register(Registry::new())?;
        m.registry
            .register(Box::new(ProcessCollector::for_self()))?;
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), node])
            .set(1);
        for result in PushResult::ALL {
            m.alert_pushes.with_label_values(&[result.name()]).inc_by(0);
        }
        m.programs_expected.set(Program::ALL.len() as i64);
        for kind in BlockKind::ALL {
            m.blocked.with_label_values(&[kind.name()]).inc_by(0);
        }
        for result in ReloadResult::ALL {
            m.config_reloads
                .with_label_values(&[result.name()])
                .inc_by(0);
        }
        for e in crate::dns::ParseError::ALL {
            m.dns_parse_errors
                .with_label_values(&[e.reason()])
                .inc_by(0);
        }
        m.dns_parse_errors
            .with_label_values(&["truncated_capture"])
            .inc_by(0);
        for event in ["lookalike_lookup", "unattributed_connect"] {
            m.events_suppressed.with_label_values(&[event]).inc_by(0);
        }
        for bound in ["pending_max", "pending_per_target"] {
            m.pending_evicted.with_label_values(&[bound]).inc_by(0);
        }
        for op in ["save", "load", "ledger_save", "ledger_load"] {
            m.state_errors.with_label_values(&[op]).inc_by(0);
        }
        for c in crate::dns::Cut::ALL {
            m.dns_incomplete.with_label_values(&[c.reason()]).inc_by(0);
        }
        Ok(m)
    }

    /// Exports every detection series the policy can produce at zero, so an alert on
    /// `increase()` fires on the first event: each protected target × rule with the
    /// target's action, and each target's went-live counter. Past `MAX_KNOWN_SERIES`
    /// (a very large policy) only the went-live counters are, and the alert rules' own
    /// new-series detection covers the rest.
    pub fn known_targets<'a>(&self, targets: impl Iterator<Item = (&'a str, &'static str)>) {
        let targets: Vec<_> = targets.collect();
        let all_rules = targets.len() * Rule::ALL.len() <= MAX_KNOWN_SERIES;
        if !all_rules {
            log::info!(
                "{} protected targets: detection series are not exported at zero \
                 (the alert rules detect new series instead)",
                targets.len()
            );
        }
        for (target, action) in targets {
            self.lookalikes_went_live
                .with_label_values(&[target])
                .inc_by(0);
            self.first_contacts
                .with_label_values(&[target, "true"])
                .inc_by(0);
            if action == "block" {
                self.block_evictions.with_label_values(&[target]).inc_by(0);
            }
            if all_rules {
                for rule in Rule::ALL {
                    self.detections
                        .with_label_values(&[target, rule.name(), action])
                        .inc_by(0);
                }
            }
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            log::warn!("rendering metrics: {e}");
        }
        out
    }
}
