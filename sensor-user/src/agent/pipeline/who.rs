//! Naming who is behind a DNS packet (a socket's cgroup) or a connect (a process).

use std::path::PathBuf;

use super::ConnectIn;
use crate::{
    attrib::{CgroupPaths, Place, Process, describe},
    output::schema::SocketOwner,
};

/// What the pipeline reads about the host to name the sender.
pub struct Who {
    /// cgroup id → path (none in replay).
    pub cgroups: Option<CgroupPaths>,
    /// procfs for process details.
    pub proc_root: PathBuf,
}

impl Who {
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
    /// (not for the common clean, attributed connect).
    pub fn process(&mut self, c: &ConnectIn) -> Process {
        let mut process = describe(&self.proc_root, c.tgid, c.comm.clone());
        // A short-lived sender (sendmail, a test client) may be gone before we look: its
        // cgroup id from the kernel still places it.
        if process.place.cgroup.is_none() && c.cgroup_id != 0 {
            process.place = self.socket(c.cgroup_id).place;
        }
        process
    }
}
