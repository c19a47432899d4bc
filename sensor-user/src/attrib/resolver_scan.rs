//! Local resolvers: processes serving DNS on port 53, in any network namespace.
//!
//! The kernel's bind hooks list every resolver that binds port 53 while the sensor is
//! attached; this scan finds the ones that bound before. It reads each network
//! namespace's socket tables once (`/proc/PID/net/{udp,tcp}{,6}`) and then the file
//! descriptors of the processes in namespaces that have a port-53 socket.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// TCP state LISTEN in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";
/// The DNS port.
const DNS_PORT: u16 = 53;

/// What a scan found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Resolver processes by tgid, with their command name.
    pub resolvers: BTreeMap<u32, String>,
    /// Processes with a port-53 socket in their namespace whose descriptors could not be
    /// read (no CAP_SYS_PTRACE for another user's process): the bind hooks still see
    /// them if they restart.
    pub unreadable: u32,
}

/// Socket inodes bound to local port 53 in one `/proc/net/{udp,tcp}{,6}` table: for TCP
/// only listening sockets, for UDP any (a server's UDP socket is unconnected).
pub fn port53_inodes(table: &str, tcp: bool) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st queues timer retrnsmt uid timeout inode ...
            let local = f.get(1)?;
            let state = f.get(3)?;
            let inode = f.get(9)?.parse::<u64>().ok()?;
            let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            let serving = port == DNS_PORT && (!tcp || *state == TCP_LISTEN);
            (serving && inode != 0).then_some(inode)
        })
        .collect()
}

/// The socket inode a `/proc/PID/fd/N` link names (`socket:[12345]`).
fn socket_inode(link: &Path) -> Option<u64> {
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

fn pids(proc_root: &Path) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Port-53 socket inodes of the namespace `pid` is in.
fn namespace_inodes(proc_root: &Path, pid: u32) -> Vec<u64> {
    let net = proc_root.join(pid.to_string()).join("net");
    let mut out = Vec::new();
    for (file, tcp) in [
        ("udp", false),
        ("udp6", false),
        ("tcp", true),
        ("tcp6", true),
    ] {
        if let Ok(text) = fs::read_to_string(net.join(file)) {
            out.extend(port53_inodes(&text, tcp));
        }
    }
    out
}

/// Finds the processes under `proc_root` that hold a socket serving port 53.
pub fn scan(proc_root: &Path) -> Scan {
    let mut scan = Scan::default();
    // Namespace (by its inode link) -> does it have a port-53 socket.
    let mut namespaces: BTreeMap<std::path::PathBuf, bool> = BTreeMap::new();
    let mut inodes: BTreeSet<u64> = BTreeSet::new();
    for pid in pids(proc_root) {
        let dir = proc_root.join(pid.to_string());
        let Ok(ns) = fs::read_link(dir.join("ns/net")) else {
            continue;
        };
        let serving = match namespaces.get(&ns) {
            Some(s) => *s,
            None => {
                let found = namespace_inodes(proc_root, pid);
                let s = !found.is_empty();
                inodes.extend(found);
                namespaces.insert(ns, s);
                s
            }
        };
        if !serving {
            continue;
        }
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            // Gone since the listing, or not ours to read.
            if dir.exists() {
                scan.unreadable += 1;
            }
            continue;
        };
        let holds = fds
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .filter_map(|l| socket_inode(&l))
            .any(|i| inodes.contains(&i));
        if holds {
            scan.resolvers.insert(pid, comm(proc_root, pid));
        }
    }
    scan
}

/// The command name of process `tgid`, or "" once it is gone.
pub fn comm(proc_root: &Path, tgid: u32) -> String {
    fs::read_to_string(proc_root.join(tgid.to_string()).join("comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// Whether process `tgid` still runs (a zombie holds no sockets and serves nothing).
pub fn alive(proc_root: &Path, tgid: u32) -> bool {
    fs::read_to_string(proc_root.join(tgid.to_string()).join("stat"))
        .ok()
        .as_deref()
        .and_then(stat_state)
        .is_some_and(|s| s != 'Z' && s != 'X')
}

/// The state letter in `/proc/PID/stat`: after the `)` that closes the command name,
/// which may itself hold spaces and parentheses.
fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 40123 2 0000000000000000 0
  124: 0100007F:9C40 0200000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 40999 2 0000000000000000 0
";
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 3500007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   991        0 30001 1 0000000000000000 100 0 0 10 5
   1: 0100007F:0035 0100007F:C350 01 00000000:00000000 00:00000000 00000000   991        0 30002 1 0000000000000000 100 0 0 10 5
";

    #[test]
    fn udp_server_socket_counts_client_socket_to_53_does_not() {
        assert_eq!(port53_inodes(UDP, false), vec![40123]);
    }

    #[test]
    fn tcp_only_listeners_count() {
        assert_eq!(port53_inodes(TCP, true), vec![30001]);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(port53_inodes("header\nnot a table line\n  1: zz:zz\n", false).is_empty());
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(Path::new("socket:[40123]")), Some(40123));
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
        assert_eq!(socket_inode(Path::new("pipe:[5]")), None);
    }

    #[test]
    fn stat_state_after_odd_command_names() {
        assert_eq!(stat_state("42 (unbound) S 1 42"), Some('S'));
        assert_eq!(stat_state("43 (a) b) Z 1 43"), Some('Z'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn scan_of_missing_proc_is_empty() {
        assert_eq!(scan(Path::new("/nonexistent-proc")), Scan::default());
    }
}
