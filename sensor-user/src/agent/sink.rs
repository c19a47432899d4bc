//! Where the pipeline's outcomes go: the event log, the metrics and the alert push.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::{
    alert::{Alert, AlertName, Pusher},
    output::{
        EventLog, Metrics,
        clock::kernel_wall_time,
        schema::{Event, Lookalike},
    },
};

/// The outside world, as the pipeline talks to it.
pub struct Sink {
    /// Event lines.
    pub log: EventLog,
    /// Metrics.
    pub metrics: Metrics,
    /// Alertmanager push, when configured.
    pub alerts: Option<Pusher>,
    /// Node name for events and alerts.
    pub host: String,
    /// How long a pushed alert fires unless pushed again.
    pub alert_resolve: Duration,
    /// The kernel's time (CLOCK_MONOTONIC ns) of the record being decided, 0 between
    /// records: lines about it carry when it happened, not when the agent got to it.
    kernel_ts: u64,
}

impl Sink {
    /// A sink writing to `log` and moving `metrics`, with no alert push.
    pub fn new(log: EventLog, metrics: Metrics, host: impl Into<String>) -> Self {
        Self {
            log,
            metrics,
            alerts: None,
            host: host.into(),
            alert_resolve: Duration::from_secs(300),
            kernel_ts: 0,
        }
    }

    /// Lines from now on are about the kernel record stamped `ts_ns` (0: about nothing
    /// the kernel stamped; they carry the time they are written).
    pub fn at_kernel_time(&mut self, ts_ns: u64) {
        self.kernel_ts = ts_ns;
    }

    /// Writes one event line, stamped with its kernel record's time, else now.
    pub fn emit(&mut self, event: Event) {
        let ts = match self.kernel_ts {
            0 => SystemTime::now(),
            t => kernel_wall_time(t),
        };
        if matches!(event, Event::AgentStopped { .. }) {
            // The last word: everything folded or suppressed is said before it.
            self.log.tick(&self.host, true);
        }
        self.log.event(ts, &self.host, &event);
    }

    /// Once a second: repeat windows that ran out, and what was suppressed.
    pub fn tick(&mut self) {
        self.log.tick(&self.host, false);
    }

    /// Writes a raw record (for `--raw-events`).
    pub fn emit_raw(&mut self, record: &impl Serialize) {
        self.log.write(record);
    }

    /// Pushes alert `name` about `l` (who: the process, or how it was seen).
    pub fn alert(&self, name: AlertName, l: &Lookalike, who: String) {
        let Some(p) = &self.alerts else {
            return;
        };
        let labels = [
            ("alertname", name.as_str()),
            ("severity", name.severity().name()),
            ("host", self.host.as_str()),
            ("target", l.target.as_str()),
            ("rule", l.rule),
            ("action", l.action),
        ];
        let annotations = [
            ("lookalike", l.domain.clone()),
            ("process", who),
            ("explanation", l.explanation.clone()),
        ];
        p.send(Alert::new(&labels, &annotations, self.alert_resolve));
    }

    /// A kernel map update that failed: counted and logged.
    pub fn map_error(&self, what: &str, e: impl std::fmt::Display) {
        self.metrics.map_update_errors.inc();
        log::error!("{what}: {e}");
    }
}
