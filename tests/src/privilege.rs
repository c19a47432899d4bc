//! Deciding whether a privileged test can run, and saying why not.

use std::path::Path;

/// Returns `true` when the test can run. Otherwise prints why, and panics under
/// CI (CI=true) so a machine that cannot run the test never passes it silently.
pub fn require_privileges(test: &str) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("not running as root");
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        missing.push("kernel has no BTF");
    }
    if !Path::new("/sys/fs/bpf").exists() {
        missing.push("no /sys/fs/bpf");
    }
    if which("ip").is_none() {
        missing.push("iproute2 `ip` not installed");
    }
    if missing.is_empty() {
        return true;
    }
    cannot_run(test, &missing.join(", "))
}

/// Says why `test` cannot run and returns `false`; under CI (CI=true) panics instead, so a
/// machine that cannot run the test never passes it silently.
pub fn cannot_run(test: &str, why: &str) -> bool {
    eprintln!("SKIPPED {test}: {why}");
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
        panic!("{test} cannot run under CI: {why}");
    }
    false
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.exists())
}
