//! The Prometheus metrics. Names and labels are a contract with the dashboards and alert
//! rules in `deploy/` and `dashboards/`: change them only together.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
    core::{AtomicF64, GenericCounterVec},
};

/// Every metric the agent exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// DNS messages parsed, by direction (egress|ingress) and question type.
    pub dns_messages: IntCounterVec,
    /// Captured payloads that were not usable DNS, by reason.
    pub dns_parse_errors: IntCounterVec,
    /// SMTP connects seen, by port, family (ipv4|ipv6) and kernel verdict.
    pub smtp_connects: IntCounterVec,
    /// Deliveries headed for a lookalike, by protected target, rule and action.
    pub detections: IntCounterVec,
    /// Refusals, by kind (connect|dns_answer).
    pub blocked: IntCounterVec,
    /// SMTP connects to an address with no DNS history.
    pub unattributed: IntCounter,
    /// Kernel events lost (ring full), by kind; read from the kernel at scrape.
    pub events_lost: IntCounterVec,
    /// Addresses in the cache.
    pub cache_entries: IntGauge,
    /// Addresses pushed out of the cache by its bound.
    pub cache_evictions: IntCounter,
    /// Config reloads, by result (ok|error).
    pub config_reloads: IntCounterVec,
    /// Time from the kernel event to the agent's decision.
    pub decision_latency: Histogram,
    /// Time from an SMTP connect in the kernel to the agent's event line about it.
    pub connect_event_latency: Histogram,
    /// Time from a DNS event to the kernel map update it caused, by map.
    pub map_update_latency: HistogramVec,
    /// Programs attached (equal to `programs_expected` when healthy).
    pub programs_attached: IntGauge,
    /// Programs this build attaches.
    pub programs_expected: IntGauge,
    /// Likely lookalike domains blocked in advance of any query.
    pub preloaded: IntGauge,
    /// Local resolver processes whose upstream sockets are exempt from answer drops.
    pub local_resolvers: IntGauge,
    /// Processes the last resolver scan could not inspect (descriptors unreadable).
    pub resolver_scan_unreadable: IntGauge,
    /// Kernel run time of each program, from the kernel's own accounting.
    pub program_run_seconds: GenericCounterVec<AtomicF64>,
    /// Kernel runs of each program.
    pub program_runs: IntCounterVec,
    /// Lookalikes looked up that did not resolve, remembered in case they go live.
    pub lookalikes_pending: IntGauge,
    /// Remembered unresolved lookalikes that started to resolve, by protected target.
    pub lookalikes_went_live: IntCounterVec,
    /// Lookups of lookalike names, by protected target and rule.
    pub lookalike_lookups: IntCounterVec,
    /// Alerts pushed to Alertmanager, by result (ok|failed|dropped).
    pub alert_pushes: IntCounterVec,
    /// Event-log lines that could not be written.
    pub event_log_errors: IntCounter,
    /// Kernel map updates that failed (map full, map gone).
    pub map_update_errors: IntCounter,
    /// Kernel records the agent could not decode.
    pub undecodable: IntCounter,
    /// Always 1, labelled with the version.
    pub build_info: IntGaugeVec,
}

/// Metric registration failed: only possible with a programming error (duplicate name).
#[derive(Debug, thiserror::Error)]
#[error("registering metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("mxsentry")
}

impl Metrics {
    /// Creates and registers every metric; label series known up front start at zero.
    pub fn new() -> Result<Self, MetricsError> {
        let r = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                r.register(Box::new(m.clone()))?;
                m
            }};
        }
        // Fine below a millisecond: the target for query → map update is 200 µs at p99.
        let latency_buckets = vec![
            0.000_01, 0.000_02, 0.000_03, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2, 0.000_3,
            0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
        ];
        let m = Metrics {
            dns_messages: reg!(IntCounterVec::new(
                opts(
                    "dns_messages_total",
                    "DNS messages parsed, by direction and question type."
                ),
                &["direction", "qtype"]
            )?),
            dns_parse_errors: reg!(IntCounterVec::new(
                opts(
                    "dns_parse_errors_total",
                    "Captured DNS payloads skipped as unusable, by reason."
                ),
                &["reason"]
            )?),
            smtp_connects: reg!(IntCounterVec::new(
                opts(
                    "smtp_connects_total",
                    "Outbound SMTP connects, by port, family and kernel verdict."
                ),
                &["port", "family", "verdict"]
            )?),
            detections: reg!(IntCounterVec::new(
                opts(
                    "detections_total",
                    "Deliveries headed for a lookalike, by protected target, rule and action."
                ),
                &["target", "rule", "action"]
            )?),
            blocked: reg!(IntCounterVec::new(
                opts(
                    "blocked_total",
                    "Deliveries refused, by kind (connect or dns_answer)."
                ),
                &["kind"]
            )?),
            unattributed: reg!(IntCounter::with_opts(opts(
                "unattributed_connects_total",
                "SMTP connects to an address the agent saw no DNS answer for."
            ))?),
            events_lost: reg!(IntCounterVec::new(
                opts(
                    "events_lost_total",
                    "Kernel events lost because the ring buffer was full, by kind."
                ),
                &["kind"]
            )?),
            cache_entries: reg!(IntGauge::with_opts(opts(
                "cache_entries",
                "Addresses in the attribution cache."
            ))?),
            cache_evictions: reg!(IntCounter::with_opts(opts(
                "cache_evictions_total",
                "Addresses pushed out of the attribution cache by its size bound."
            ))?),
            config_reloads: reg!(IntCounterVec::new(
                opts("config_reloads_total", "Configuration reloads, by result."),
                &["result"]
            )?),
            decision_latency: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    "decision_latency_seconds",
                    "Time from the kernel event to the agent's decision."
                )
                .namespace("mxsentry")
                .buckets(latency_buckets.clone())
            )?),
            connect_event_latency: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    "connect_event_latency_seconds",
                    "Time from an SMTP connect (kernel timestamp) to its event line (detection, block or unattributed_connect)."
                )
                .namespace("mxsentry")
                .buckets(latency_buckets.clone())
            )?),
            map_update_latency: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "map_update_latency_seconds",
                    "Time from a DNS event to the kernel map update it caused, by map."
                )
                .namespace("mxsentry")
                .buckets(latency_buckets),
                &["map"]
            )?),
            programs_attached: reg!(IntGauge::with_opts(opts(
                "programs_attached",
                "eBPF programs attached."
            ))?),
            programs_expected: reg!(IntGauge::with_opts(opts(
                "programs_expected",
                "eBPF programs this build attaches."
            ))?),
            preloaded: reg!(IntGauge::with_opts(opts(
                "preloaded_lookalikes",
                "Likely lookalike domains of block entries put in the kernel's name block map before any query."
            ))?),
            local_resolvers: reg!(IntGauge::with_opts(opts(
                "local_resolvers",
                "Local resolver processes (serving port 53) whose upstream answers are never dropped."
            ))?),
            resolver_scan_unreadable: reg!(IntGauge::with_opts(opts(
                "resolver_scan_unreadable",
                "Processes the last local-resolver scan could not inspect (no access to their descriptors)."
            ))?),
            program_run_seconds: reg!(GenericCounterVec::<AtomicF64>::new(
                opts(
                    "program_run_seconds_total",
                    "Kernel run time of each eBPF program (kernel accounting)."
                ),
                &["program"]
            )?),
            program_runs: reg!(IntCounterVec::new(
                opts(
                    "program_runs_total",
                    "Runs of each eBPF program (kernel accounting)."
                ),
                &["program"]
            )?),
            lookalikes_pending: reg!(IntGauge::with_opts(opts(
                "lookalikes_pending",
                "Lookalikes looked up that did not resolve, watched in case they go live."
            ))?),
            lookalikes_went_live: reg!(IntCounterVec::new(
                opts(
                    "lookalikes_went_live_total",
                    "Lookalikes that did not resolve before and now do (someone registered them), by target."
                ),
                &["target"]
            )?),
            lookalike_lookups: reg!(IntCounterVec::new(
                opts(
                    "lookalike_lookups_total",
                    "DNS lookups of lookalike names, by protected target and rule."
                ),
                &["target", "rule"]
            )?),
            alert_pushes: reg!(IntCounterVec::new(
                opts(
                    "alert_pushes_total",
                    "Alerts pushed to Alertmanager, by result."
                ),
                &["result"]
            )?),
            event_log_errors: reg!(IntCounter::with_opts(opts(
                "event_log_errors_total",
                "Event-log lines that could not be written."
            ))?),
            map_update_errors: reg!(IntCounter::with_opts(opts(
                "map_update_errors_total",
                "Kernel map updates that failed."
            ))?),
            undecodable: reg!(IntCounter::with_opts(opts(
                "undecodable_records_total",
                "Kernel ring records the agent could not decode."
            ))?),
            build_info: reg!(IntGaugeVec::new(
                opts("build_info", "Always 1; the version label."),
                &["version"]
            )?),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.programs_expected
            .set(sensor_common::maps::PROGRAMS.len() as i64);
        for kind in ["connect", "dns_answer"] {
            m.blocked.with_label_values(&[kind]).inc_by(0);
        }
        for kind in sensor_common::EventKind::ALL {
            m.events_lost.with_label_values(&[kind.name()]).inc_by(0);
        }
        for result in ["ok", "error"] {
            m.config_reloads.with_label_values(&[result]).inc_by(0);
        }
        for e in crate::dns::ParseError::ALL {
            m.dns_parse_errors
                .with_label_values(&[e.reason()])
                .inc_by(0);
        }
        m.dns_parse_errors
            .with_label_values(&["truncated_capture"])
            .inc_by(0);
        Ok(m)
    }

    /// Raises a counter to `value` (a total read from the kernel); counters never go down.
    pub fn raise_to(counter: &IntCounter, value: u64) {
        let now = counter.get();
        if value > now {
            counter.inc_by(value - now);
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
