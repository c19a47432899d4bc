//! Who made a connect or sent a query: process, executable, cgroup, container.

use serde::Serialize;

use super::container::from_cgroup_path;

/// Where a cgroup path places a process: the path, and the container and pod it names.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Place {
    /// cgroup v2 path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Container id, when the cgroup path has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Kubernetes pod UID, when the cgroup path has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

impl Place {
    /// Reads container and pod from `cgroup` (a path as `/proc/PID/cgroup` shows it).
    pub fn from_cgroup(cgroup: Option<String>) -> Self {
        let c = cgroup.as_deref().map(from_cgroup_path).unwrap_or_default();
        Self {
            cgroup,
            container_id: c.id,
            pod_uid: c.pod_uid,
        }
    }
}

/// The process behind an event, as much as /proc still tells.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Process {
    /// Thread-group id (the PID users see).
    pub tgid: u32,
    /// Command name from the kernel.
    pub comm: String,
    /// Executable path, when the process still exists and /proc is readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Real uid, from /proc (the kernel program does not take it: see `ConnectEvent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Its cgroup, container and pod.
    #[serde(flatten)]
    pub place: Place,
}

/// The cgroup v2 path in the text of `/proc/PID/cgroup` (the `0::` line).
pub fn cgroup_v2_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// The real uid in the text of `/proc/PID/status` (the first number of its `Uid:` line).
pub fn real_uid(proc_status: &str) -> Option<u32> {
    proc_status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// Describes process `tgid` whose kernel command name is `comm`, reading `proc_root`
/// (`/proc`, or a mounted host /proc in a container).
pub fn describe(proc_root: &std::path::Path, tgid: u32, comm: String) -> Process {
    let dir = proc_root.join(tgid.to_string());
    let exe = std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.display().to_string());
    let cgroup = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .as_deref()
        .and_then(cgroup_v2_path);
    let uid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .as_deref()
        .and_then(real_uid);
    Process {
        tgid,
        comm,
        exe,
        uid,
        place: Place::from_cgroup(cgroup),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_line_of_proc_cgroup() {
        let text = "12:memory:/legacy\n0::/system.slice/postfix.service\n";
        assert_eq!(
            cgroup_v2_path(text).as_deref(),
            Some("/system.slice/postfix.service")
        );
        assert_eq!(cgroup_v2_path("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn real_uid_of_proc_status() {
        let text = "Name:\tsmtp\nUid:\t107\t107\t107\t107\nGid:\t114\n";
        assert_eq!(real_uid(text), Some(107));
        assert_eq!(real_uid("Name:\tx\n"), None);
        assert_eq!(real_uid("Uid:\tnope\n"), None);
    }

    #[test]
    fn this_process_is_described() {
        let p = describe(
            std::path::Path::new("/proc"),
            std::process::id(),
            "test".into(),
        );
        assert!(p.exe.is_some());
        assert!(p.place.cgroup.is_some());
        // SAFETY: getuid has no preconditions.
        assert_eq!(p.uid, Some(unsafe { libc::getuid() }));
        let gone = describe(std::path::Path::new("/proc"), u32::MAX, "gone".into());
        assert_eq!((gone.exe, gone.uid), (None, None));
    }
}
