//! The agent's sections: `[agent]`, `[metrics]`, `[events]`, `[alertmanager]`, `[cache]`.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::kernel::{DEFAULT_PIN_DIR, maps::Mode};

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
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            file: None,
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
        }
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
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl_floor_secs: 30,
            ttl_ceiling_secs: 86_400,
            pending_max: 10_000,
        }
    }
}

impl CacheSection {
    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_entries == 0 {
            return Err("cache.max_entries must be at least 1".into());
        }
        if self.ttl_floor_secs > self.ttl_ceiling_secs {
            return Err(format!(
                "cache.ttl_floor_secs ({}) is above cache.ttl_ceiling_secs ({})",
                self.ttl_floor_secs, self.ttl_ceiling_secs
            ));
        }
        Ok(())
    }
}
