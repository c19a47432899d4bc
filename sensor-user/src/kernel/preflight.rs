//! Checks run before loading anything, so a missing privilege or kernel feature
//! is one clear line instead of a raw errno from deep inside a syscall.

use std::path::Path;

use super::KernelError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Names of the capabilities the agent needs that `cap_eff` lacks.
///
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as the kernel allows.
pub fn missing_capabilities(cap_eff: u64) -> Vec<&'static str> {
    let has = |c: u32| cap_eff & (1u64 << c) != 0;
    let admin = has(CAP_SYS_ADMIN);
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !admin {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !admin {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// The effective capability set from a /proc/PID/status text.
pub fn cap_eff_in(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn read(path: &Path) -> Result<String, KernelError> {
    std::fs::read_to_string(path).map_err(|reason| KernelError::Read {
        path: path.into(),
        reason,
    })
}

/// Whether `dir` lives on a bpffs.
pub fn is_bpffs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain old data, valid when zeroed.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs writes into the struct we own; the path is NUL-terminated.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Runs every check; the first failure is returned.
pub fn check(pin_dir: &Path) -> Result<(), KernelError> {
    let status = read(Path::new("/proc/self/status"))?;
    let missing = missing_capabilities(cap_eff_in(&status).unwrap_or(0));
    if !missing.is_empty() {
        return Err(KernelError::MissingCapabilities(missing.join(", ")));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(KernelError::NoBtf);
    }
    super::cgroup::cgroup2_mount()?;
    // The pin dir may not exist yet; its parent must be a bpffs.
    let bpffs = if pin_dir.exists() {
        pin_dir
    } else {
        pin_dir.parent().unwrap_or(pin_dir)
    };
    if !is_bpffs(bpffs) {
        return Err(KernelError::NoBpffs(bpffs.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing_capabilities(0x000001ffffffffff).is_empty());
    }

    #[test]
    fn nobody_lacks_all_three() {
        assert_eq!(
            missing_capabilities(0),
            vec!["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
        );
    }

    #[test]
    fn sys_admin_covers_bpf_and_perfmon_but_not_net_admin() {
        assert_eq!(
            missing_capabilities(1 << CAP_SYS_ADMIN),
            vec!["CAP_NET_ADMIN"]
        );
        let least = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON);
        assert!(missing_capabilities(least).is_empty());
    }

    #[test]
    fn parses_status() {
        let s = "Name:\tbash\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff_in(s), Some(0x000001ffffffffff));
        assert_eq!(cap_eff_in("Name: x\n"), None);
    }
}
