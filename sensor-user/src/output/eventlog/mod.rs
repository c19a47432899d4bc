//! The JSON event log: one line per event, to stdout or a file rotated by size, behind a
//! gate that folds repeats and limits routine lines (`gate.rs`). Evidence lines are also
//! written to an evidence file rotated on its own, so no flood of lookups rotates them
//! away (`file.rs`: created 0640, never through a symlink).

pub mod file;
pub mod gate;

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use serde::Serialize;

use self::{
    file::RotatingFile,
    gate::{Admit, Gate, GateSettings},
};
use super::{
    clock::rfc3339,
    metrics::Metrics,
    schema::{Event, Line},
};
/// Where the log goes and its limits (the config's `[events]`).
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// The file; stdout when none.
    pub file: Option<PathBuf>,
    /// The evidence file, if any.
    pub evidence: Option<PathBuf>,
    /// Rotation size, for both files.
    pub max_bytes: u64,
    /// Rotated files kept, for both.
    pub keep: u32,
    /// Repeat folding and the rate limit.
    pub gate: GateSettings,
}

enum Sink {
    Stdout,
    Memory(Arc<Mutex<Vec<String>>>),
    File(RotatingFile),
}

/// Writes event lines; a failed write is logged and counted, never fatal.
pub struct EventLog {
    sink: Sink,
    evidence: Option<RotatingFile>,
    gate: Option<Gate>,
    metrics: Metrics,
}

impl EventLog {
    fn with(sink: Sink, metrics: Metrics) -> Self {
        Self {
            sink,
            evidence: None,
            gate: None,
            metrics,
        }
    }

    /// Lines go to stdout, every one (replay).
    pub fn stdout(metrics: Metrics) -> Self {
        Self::with(Sink::Stdout, metrics)
    }

    /// Lines are kept in memory (tests); the handle reads them.
    pub fn memory(metrics: Metrics) -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Self::with(Sink::Memory(lines.clone()), metrics), lines)
    }

    /// Lines are appended to `path`, rotated to `path.1`..`path.keep` past `max_bytes`.
    pub fn file(path: &Path, max_bytes: u64, keep: u32, metrics: Metrics) -> std::io::Result<Self> {
        Ok(Self::with(
            Sink::File(RotatingFile::open(path, max_bytes, keep)?),
            metrics,
        ))
    }

    /// The agent's log as `[events]` says: stdout or the file, the evidence file, and the
    /// gate with its limits.
    pub fn open(cfg: &LogOptions, metrics: Metrics) -> std::io::Result<Self> {
        let named = |p: &Path, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("event log {}: {e}", p.display()))
        };
        let mut log = match &cfg.file {
            Some(f) => Self::file(f, cfg.max_bytes, cfg.keep, metrics).map_err(|e| named(f, e))?,
            None => Self::stdout(metrics),
        };
        if let Some(p) = &cfg.evidence {
            log.evidence =
                Some(RotatingFile::open(p, cfg.max_bytes, cfg.keep).map_err(|e| named(p, e))?);
        }
        Ok(log.gated(cfg.gate))
    }

    /// Puts the gate in front: repeats folded, routine lines limited.
    pub fn gated(mut self, settings: GateSettings) -> Self {
        self.gate = Some(Gate::new(settings, Instant::now()));
        self
    }

    /// Writes `event` as it happened at `ts` on `host`, through the gate.
    pub fn event(&mut self, ts: SystemTime, host: &str, event: &Event) {
        let mut closed = Vec::new();
        let admit = match &mut self.gate {
            Some(g) => g.admit(event, ts, Instant::now(), &mut closed),
            None => Admit::Write,
        };
        self.write_events(host, closed);
        match admit {
            Admit::Write => self.line(ts, host, event),
            Admit::Folded => self
                .metrics
                .events_folded
                .with_label_values(&[event.name()])
                .inc(),
            Admit::Suppressed => self
                .metrics
                .events_suppressed
                .with_label_values(&[event.name()])
                .inc(),
        }
    }

    /// Writes the lines of repeat windows that closed and, now and then, what was
    /// suppressed; `all` closes every window (the agent is stopping).
    pub fn tick(&mut self, host: &str, all: bool) {
        let mut due = Vec::new();
        if let Some(g) = &mut self.gate {
            g.due(Instant::now(), all, &mut due);
        }
        self.write_events(host, due);
    }

    fn write_events(&mut self, host: &str, events: Vec<Event>) {
        for e in events {
            self.line(SystemTime::now(), host, &e);
        }
    }

    fn line(&mut self, ts: SystemTime, host: &str, event: &Event) {
        let line = Line {
            ts: rfc3339(ts),
            host,
            event,
        };
        let Some(bytes) = self.serialise(&line) else {
            return;
        };
        self.write_bytes(&bytes);
        if event.kept()
            && let Some(ev) = &mut self.evidence
            && let Err(e) = ev.write(&bytes)
        {
            self.metrics.event_log_errors.inc();
            log::warn!("writing the evidence file: {e}");
        }
    }

    /// Writes one record as a JSON line, past the gate (`--raw-events`).
    pub fn write(&mut self, record: &impl Serialize) {
        if let Some(bytes) = self.serialise(record) {
            self.write_bytes(&bytes);
        }
    }

    fn serialise(&self, record: &impl Serialize) -> Option<Vec<u8>> {
        match serde_json::to_vec(record) {
            Ok(mut l) => {
                l.push(b'\n');
                Some(l)
            }
            Err(e) => {
                self.metrics.event_log_errors.inc();
                log::warn!("event not serialisable: {e}");
                None
            }
        }
    }

    fn write_bytes(&mut self, line: &[u8]) {
        let result = match &mut self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line).and_then(|()| out.flush())
            }
            Sink::Memory(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(String::from_utf8_lossy(line).trim_end().to_string());
                }
                Ok(())
            }
            Sink::File(f) => f.write(line),
        };
        if let Err(e) = result {
            self.metrics.event_log_errors.inc();
            log::warn!("writing event log: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
