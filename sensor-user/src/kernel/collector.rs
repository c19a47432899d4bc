//! Values the kernel owns, read when Prometheus scrapes (as ebpf_exporter does): the
//! ring-buffer loss counters, the kernel's per-program run accounting and the mode in
//! force. Nothing copies them into the agent's own metrics between scrapes.

use std::{collections::BTreeMap, sync::Mutex};

use prometheus::{
    CounterVec, IntCounterVec, IntGaugeVec,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use sensor_common::{EventKind, Program, event::CaptureStat};

use super::{VerdictMaps, maps::Mode};
use crate::output::metrics::{MetricsError, opts};

/// A Prometheus collector over the pinned maps and the kernel's program statistics.
pub struct KernelCounters {
    maps: Mutex<VerdictMaps>,
    /// `mxsentry_events_lost_total{kind}`.
    lost: IntCounterVec,
    /// `mxsentry_dns_capture_events_total{reason}`.
    capture: IntCounterVec,
    /// `mxsentry_program_run_seconds_total{program}`.
    run_seconds: CounterVec,
    /// `mxsentry_program_runs_total{program}`.
    runs: IntCounterVec,
    /// `mxsentry_mode{mode}`: 1 for the mode the kernel enforces now (it can be switched
    /// by `mxsentry ctl mode` as well as by the config), 0 for the other.
    mode: IntGaugeVec,
}

impl KernelCounters {
    /// A collector reading `maps` (and the kernel's statistics of our programs).
    pub fn new(maps: VerdictMaps) -> Result<Self, MetricsError> {
        Ok(Self {
            maps: Mutex::new(maps),
            lost: IntCounterVec::new(
                opts(
                    "events_lost_total",
                    "Kernel events lost because the ring buffer was full, by kind.",
                ),
                &["kind"],
            )?,
            capture: IntCounterVec::new(
                opts(
                    "dns_capture_events_total",
                    "DNS traffic the kernel could not capture whole or follow, and TCP \
                     streams it restarted or took up mid-way, by reason.",
                ),
                &["reason"],
            )?,
            run_seconds: CounterVec::new(
                opts(
                    "program_run_seconds_total",
                    "Kernel run time of each eBPF program (kernel accounting).",
                ),
                &["program"],
            )?,
            runs: IntCounterVec::new(
                opts(
                    "program_runs_total",
                    "Runs of each eBPF program (kernel accounting).",
                ),
                &["program"],
            )?,
            mode: IntGaugeVec::new(
                opts(
                    "mode",
                    "The mode the kernel programs apply now: 1 for it, 0 for the other.",
                ),
                &["mode"],
            )?,
        })
    }

    /// Sets the vectors to the kernel's current totals.
    fn read(&self) {
        self.lost.reset();
        self.capture.reset();
        if let Ok(maps) = self.maps.lock() {
            for k in EventKind::ALL {
                match maps.lost(k) {
                    Ok(n) => self.lost.with_label_values(&[k.name()]).inc_by(n),
                    Err(e) => log::warn!("reading loss counter: {e}"),
                }
            }
            for stat in CaptureStat::ALL {
                match maps.capture_stat(stat) {
                    Ok(n) => self.capture.with_label_values(&[stat.name()]).inc_by(n),
                    Err(e) => log::warn!("reading capture counter: {e}"),
                }
            }
            match maps.mode() {
                Ok(now) => {
                    for m in [Mode::Monitor, Mode::Enforce] {
                        let v = i64::from(m == now);
                        self.mode.with_label_values(&[m.name()]).set(v);
                    }
                }
                Err(e) => log::warn!("reading the mode: {e}"),
            }
        }
        // One program may be loaded more than once (an upgrade in flight): sum them.
        let mut totals: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
        for info in aya::programs::loaded_programs().flatten() {
            let Some(p) = info.name_as_str().and_then(Program::from_name) else {
                continue;
            };
            let t = totals.entry(p.name()).or_default();
            t.0 += info.run_time().as_secs_f64();
            t.1 += info.run_count();
        }
        self.run_seconds.reset();
        self.runs.reset();
        for (name, (secs, n)) in totals {
            self.run_seconds.with_label_values(&[name]).inc_by(secs);
            self.runs.with_label_values(&[name]).inc_by(n);
        }
    }
}

impl Collector for KernelCounters {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.lost.desc(),
            self.capture.desc(),
            self.run_seconds.desc(),
            self.runs.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.read();
        [
            self.lost.collect(),
            self.capture.collect(),
            self.run_seconds.collect(),
            self.runs.collect(),
            self.mode.collect(),
        ]
        .concat()
    }
}
