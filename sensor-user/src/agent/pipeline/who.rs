//! Naming who is behind a DNS packet (a socket's cgroup) or a connect (a process).

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use super::ConnectIn;
use crate::{
    attrib::{CgroupPaths, Place, Process, describe},
    output::schema::SocketOwner,
};

/// How long a process read from /proc names that process's later connects: a burst of
/// connects from one process (a queue run, a flood to unknown addresses) reads /proc
/// once, not three files per connect. Short, so an exec or uid change shows soon.
const PROCESS_FRESH: Duration = Duration::from_secs(1);
/// Most processes remembered at once; when full, the stale ones go, else all.
const PROCESSES_MAX: usize = 1024;

/// What the cache tells one process from another by: its id, the kernel's command name
/// for it and its cgroup (a reused id within `PROCESS_FRESH` rarely matches all three).
type ProcessKey = (u32, String, u64);

/// What the pipeline reads about the host to name the sender.
pub struct Who {
    /// cgroup id → path (none in replay).
    cgroups: Option<CgroupPaths>,
    /// procfs for process details.
    proc_root: PathBuf,
    /// Processes recently read from /proc, and when.
    processes: HashMap<ProcessKey, (Process, Instant)>,
}

impl Who {
    /// Names senders from `proc_root` and, when given, the host's cgroup paths.
    pub fn new(cgroups: Option<CgroupPaths>, proc_root: PathBuf) -> Self {
        Self {
            cgroups,
            proc_root,
            processes: HashMap::new(),
        }
    }

    /// The owner of a socket in cgroup `cgroup_id`.
    pub fn socket(&mut self, cgroup_id: u64) -> SocketOwner {
        let path = self
            .cgroups
            .as_mut()
            .and_then(|c| c.path(cgroup_id))
            .map(String::from);
        SocketOwner {
            cgroup_id,
            place: Place::from_cgroup(path),
        }
    }

    /// The process behind a connect, read from /proc only when an event will name it
    /// (not for the common clean, attributed connect), and at most once per
    /// `PROCESS_FRESH` for one process.
    pub fn process(&mut self, c: &ConnectIn) -> Process {
        let now = Instant::now();
        let key = (c.tgid, c.comm.clone(), c.cgroup_id);
        if let Some((p, at)) = self.processes.get(&key)
            && now.duration_since(*at) < PROCESS_FRESH
        {
            return p.clone();
        }
        let mut process = describe(&self.proc_root, c.tgid, c.comm.clone());
        // A short-lived sender (sendmail, a test client) may be gone before we look: its
        // cgroup id from the kernel still places it.
        if process.place.cgroup.is_none() && c.cgroup_id != 0 {
            process.place = self.socket(c.cgroup_id).place;
        }
        if self.processes.len() >= PROCESSES_MAX {
            self.processes
                .retain(|_, (_, at)| now.duration_since(*at) < PROCESS_FRESH);
            if self.processes.len() >= PROCESSES_MAX {
                self.processes.clear();
            }
        }
        self.processes.insert(key, (process.clone(), now));
        process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(tgid: u32, comm: &str) -> ConnectIn {
        ConnectIn {
            ts_ns: 0,
            tgid,
            comm: comm.into(),
            cgroup_id: 0,
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 25,
            verdict: sensor_common::Verdict::Allowed,
        }
    }

    #[test]
    fn a_process_is_read_once_while_fresh() {
        let d = std::env::temp_dir().join(format!("mxsentry-who-{}", std::process::id()));
        let dir = d.join("4242");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status"), "Uid:\t107\t107\t107\t107\n").unwrap();
        let mut who = Who::new(None, d.clone());
        assert_eq!(who.process(&connect(4242, "smtp")).uid, Some(107));
        // Changed on disk: the remembered read still names the burst's later connects.
        std::fs::write(dir.join("status"), "Uid:\t0\t0\t0\t0\n").unwrap();
        assert_eq!(who.process(&connect(4242, "smtp")).uid, Some(107));
        // Another command name under the same id is another process: read afresh.
        assert_eq!(who.process(&connect(4242, "sendmail")).uid, Some(0));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut who = Who::new(None, "/nonexistent".into());
        for tgid in 0..(PROCESSES_MAX as u32 + 10) {
            who.process(&connect(tgid, "x"));
        }
        assert!(who.processes.len() <= PROCESSES_MAX);
    }
}
