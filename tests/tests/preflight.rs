//! A sensor that cannot start says why in one line, and leaves nothing behind.

use std::process::Command;

use mxsentry_tests::{agent::agent_bin, require_privileges};

fn run_fails(prefix: &[&str], args: &[&str]) -> String {
    let bin = agent_bin().expect("agent binary");
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let out = cmd.arg("run").args(args).output().expect("spawn");
    assert!(!out.status.success(), "started when it should not have");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one clear line, got: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("os error"),
        "raw failure: {err}"
    );
    lines[0].to_string()
}

#[test]
fn unprivileged_start_names_the_missing_capabilities() {
    if !require_privileges("unprivileged_start") {
        return;
    }
    // setpriv (util-linux) runs the agent as nobody with every capability dropped.
    let line = run_fails(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
        &["--pin-dir", "/sys/fs/bpf/mxt-nocaps"],
    );
    assert_eq!(
        line,
        "mxsentry: missing capabilities: CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON (run as root or grant them, see README \"Capabilities\")"
    );
}

#[test]
fn pin_dir_outside_bpffs_is_named() {
    if !require_privileges("no_bpffs") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mxt-nobpf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let pin = dir.join("mxsentry");
    let line = run_fails(&[], &["--pin-dir", &pin.display().to_string()]);
    assert_eq!(
        line,
        format!(
            "mxsentry: bpffs not mounted at {} (mount -t bpf bpf {})",
            dir.display(),
            dir.display()
        )
    );
    assert!(!pin.exists(), "created pins off bpffs");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn missing_cgroup_is_named_and_nothing_is_pinned() {
    if !require_privileges("missing_cgroup") {
        return;
    }
    let pin = format!("/sys/fs/bpf/mxt-nocg-{}", std::process::id());
    let line = run_fails(
        &[],
        &[
            "--pin-dir",
            &pin,
            "--cgroup",
            "/sys/fs/cgroup/no-such-cgroup-mxt",
        ],
    );
    assert!(
        line.starts_with("mxsentry: cannot open cgroup /sys/fs/cgroup/no-such-cgroup-mxt: "),
        "{line}"
    );
    assert!(!std::path::Path::new(&pin).exists());
}
