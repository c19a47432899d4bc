//! Errors from the kernel side, each one line a person can act on.

use std::path::PathBuf;

/// What went wrong loading, attaching or driving the eBPF programs.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A required capability is not in the effective set.
    #[error("missing capabilities: {0} (run as root or grant them, see README \"Capabilities\")")]
    MissingCapabilities(String),
    /// No cgroup2 filesystem in /proc/self/mountinfo.
    #[error("cgroup v2 not mounted: no cgroup2 entry in /proc/self/mountinfo")]
    NoCgroup2,
    /// The pin directory's parent is not a bpffs.
    #[error("bpffs not mounted at {0} (mount -t bpf bpf {0})")]
    NoBpffs(PathBuf),
    /// The kernel exposes no BTF.
    #[error(
        "BTF missing: /sys/kernel/btf/vmlinux not found (kernel built without CONFIG_DEBUG_INFO_BTF)"
    )]
    NoBtf,
    /// The configured cgroup cannot be opened.
    #[error("cannot open cgroup {path}: {}", plain(reason))]
    Cgroup {
        /// The cgroup directory.
        path: PathBuf,
        /// Why (not a `source`: the message already says it once).
        reason: std::io::Error,
    },
    /// Reading a procfs or sysfs file failed.
    #[error("cannot read {path}: {}", plain(reason))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`: the message already says it once).
        reason: std::io::Error,
    },
    /// The eBPF object failed to load (maps, relocations).
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program failed to load, verify or attach.
    #[error("program {name}: {source}")]
    Program {
        /// Program name.
        name: String,
        /// Why.
        source: aya::programs::ProgramError,
    },
    /// Pinning or unpinning failed.
    #[error("pinning {path}: {message}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A map the programs need is absent from the object or the pin directory.
    #[error("map {0} not found in the kernel object")]
    MissingMap(String),
    /// A program the contract lists is absent from the kernel object.
    #[error("program {0} not found in the kernel object (agent and kernel object out of step)")]
    MissingProgram(&'static str),
    /// Another agent holds the pin directory's lock.
    #[error(
        "pin directory {pin_dir} is owned by a running mxsentry ({holder}): one agent per pin \
         directory; stop that one first, or give this one its own --pin-dir"
    )]
    Owned {
        /// The pin directory.
        pin_dir: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// A pinned map is not what this build's programs use, and cannot be carried over.
    #[error(
        "pinned map {name} ({path}) does not match this build: {difference}; nothing was \
         attached (remove it, or `mxsentry ctl detach` to start afresh)"
    )]
    MapMismatch {
        /// The map's name.
        name: String,
        /// Its pin.
        path: PathBuf,
        /// What differs.
        difference: String,
    },
    /// A pinned link that cannot be adopted.
    #[error(
        "pinned link {path}: {reason}; nothing was attached (`mxsentry ctl detach` to start afresh)"
    )]
    LinkMismatch {
        /// The link's pin.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A bpf(2) call or a bpffs operation failed.
    #[error("{what}: {}", plain(reason))]
    Bpf {
        /// What was being done.
        what: String,
        /// Why (not a `source`: the message already says it once).
        reason: std::io::Error,
    },
    /// A map operation failed.
    #[error("map {name}: {source}")]
    Map {
        /// Map name.
        name: String,
        /// Why.
        source: aya::maps::MapError,
    },
}

/// A closure turning an I/O error into [`KernelError::Bpf`] about `what`.
pub fn bpf_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> KernelError {
    move |reason| KernelError::Bpf {
        what: what.to_string(),
        reason,
    }
}

/// An I/O error as a person reads it: "No such file or directory", without "(os error 2)".
pub fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_drops_the_errno_suffix() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(super::plain(&e), "No such file or directory");
        let custom = std::io::Error::other("boom");
        assert_eq!(super::plain(&custom), "boom");
    }
}
