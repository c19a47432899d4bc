//! The agent's sections: `[agent]`, `[metrics]`, `[events]`, `[alertmanager]`, `[cache]`.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::{
    kernel::{DEFAULT_PIN_DIR, maps::Mode},
    output::eventlog::{LogOptions, gate::GateSettings},
};

/// `[agent]`: what the kernel side does.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSection {
    /// monitor (report) or enforce (refuse) for block-action entries.
    pub mode: Mode,
    /// Destination ports that count as SMTP.
    pub smtp_ports: Vec<u16>,
    /// cgroup v2 directory to attach to (default: the cgroup v2 root).
    pub cgroup: Option<PathBuf>,
    /// bpffs directory for pinned maps and links.
    pub pin_dir: PathBuf,
    /// Where the agent keeps state across restarts (unresolved lookalikes).
    pub state_dir: PathBuf,
    /// procfs to read process details from (a host /proc mounted into a container).
    pub proc_root: PathBuf,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            mode: Mode::Monitor,
            smtp_ports: vec![25, 465, 587],
            cgroup: None,
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            state_dir: PathBuf::from("/var/lib/mxsentry"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Path of the metrics page.
    pub path: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9464)),
            path: "/metrics".into(),
        }
    }
}

/// `[events]`: the JSON event log.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// File to append to; stdout when absent.
    pub file: Option<PathBuf>,
    /// Rotate the file when it grows past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`FILE.1` ... `FILE.N`).
    pub keep: u32,
    /// Where detections, blocks, lookalikes gone live and the agent's own state changes
    /// are written too, rotated on their own so a flood of lookups never rotates them
    /// away. Default with `file`: its name with `.evidence` before the extension.
    pub evidence_file: Option<PathBuf>,
    /// Lines per second for routine events (lookups, unattributed connects); more are
    /// counted and summarised, not written. Evidence is never limited.
    pub rate_limit: u32,
    /// Repeats of one event (the same lookup, a dropped answer and its retransmissions)
    /// within this many seconds are one line and a count; 0 writes every repeat.
    pub repeat_window_secs: u64,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            file: None,
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
            evidence_file: None,
            rate_limit: 100,
            repeat_window_secs: 10,
        }
    }
}

impl EventsSection {
    /// What the event log is opened with.
    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            file: self.file.clone(),
            evidence: self.evidence_path(),
            max_bytes: self.max_bytes,
            keep: self.keep,
            gate: GateSettings {
                rate_limit: self.rate_limit,
                repeat_window: std::time::Duration::from_secs(self.repeat_window_secs),
            },
        }
    }

    /// The evidence file: as configured, else derived from `file` (`events.jsonl` →
    /// `events.evidence.jsonl`), else none (stdout only).
    pub fn evidence_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.evidence_file {
            return Some(p.clone());
        }
        let f = self.file.as_ref()?;
        let stem = f.file_stem()?.to_string_lossy();
        let name = match f.extension() {
            Some(ext) => format!("{stem}.evidence.{}", ext.to_string_lossy()),
            None => format!("{stem}.evidence"),
        };
        Some(f.with_file_name(name))
    }
}

/// `[alertmanager]`: optional direct push of each detection.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerSection {
    /// Base URL, e.g. `http://alertmanager:9093`; no push when absent.
    pub url: Option<String>,
    /// Attempts per alert before giving up (counted).
    pub attempts: u32,
    /// First retry delay; doubles each attempt.
    pub backoff_ms: u64,
    /// How long an alert stays firing without a new detection.
    pub resolve_after_secs: u64,
}

impl Default for AlertmanagerSection {
    fn default() -> Self {
        Self {
            url: None,
            attempts: 5,
            backoff_ms: 200,
            resolve_after_secs: 3600,
        }
    }
}

/// `[cache]`: the address → recipient cache and the unresolved-lookalike memory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Most addresses remembered (least recently used go first).
    pub max_entries: usize,
    /// Shortest time an answer is kept, whatever its TTL.
    pub ttl_floor_secs: u64,
    /// Longest time an answer is kept, whatever its TTL.
    pub ttl_ceiling_secs: u64,
    /// Most unresolved lookalikes remembered.
    pub pending_max: usize,
    /// Most unresolved lookalikes remembered per protected target (default: 1,000 or
    /// `pending_max`, the smaller), so a flood imitating one cannot push out the others.
    pub pending_per_target: Option<usize>,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl_floor_secs: 30,
            ttl_ceiling_secs: 86_400,
            pending_max: 10_000,
            pending_per_target: None,
        }
    }
}

impl CacheSection {
    /// The per-target bound in force.
    pub fn per_target(&self) -> usize {
        self.pending_per_target
            .unwrap_or(1000)
            .min(self.pending_max)
            .max(1)
    }
}
