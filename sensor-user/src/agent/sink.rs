//! Where the pipeline's outcomes go: the event log, the metrics and the alert push.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::{
    alert::{Alert, AlertName, Pusher},
    output::{
        EventLog, Metrics,
        clock::rfc3339,
        schema::{Event, Line, Lookalike},
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
        }
    }

    /// Writes one event line, stamped now.
    pub fn emit(&mut self, event: Event) {
        let line = Line {
            ts: rfc3339(SystemTime::now()),
            host: &self.host,
            event: &event,
        };
        self.log.write(&line);
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
