//! The image `cargo xtask image` builds (`localhost/mxsentry:<version>`), proved: its
//! filesystem is exported with podman (`podman create` + `podman export`; `podman run`
//! fails on this VM's cgroup layout, so the image's own binary is run outside a container)
//! and its `mxsentry` runs as root with only the DaemonSet's capabilities (CAP_BPF,
//! CAP_NET_ADMIN, CAP_PERFMON, no new privileges: `setpriv`) on the test cgroup. Then the
//! runbook's upgrade and uninstall steps, with that binary as the new version.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use mxsentry_tests::{
    Agent, Topology,
    agent::{test_pin_dir, test_state_dir},
    cannot_run, require_privileges, sh,
    topology::SRV4,
};
use sensor_common::Program;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);
const DNS: &str = "10.77.0.2:53";
/// CAP_NET_ADMIN (12), CAP_PERFMON (38), CAP_BPF (39): the DaemonSet's `add` list.
const DAEMONSET_CAPS: u64 = 1 << 12 | 1 << 38 | 1 << 39;

fn tag() -> String {
    format!("localhost/mxsentry:{}", env!("CARGO_PKG_VERSION"))
}

/// The image's filesystem, exported into a directory; removed on drop.
struct Rootfs {
    dir: PathBuf,
}

impl Rootfs {
    /// Exports the image, or says why it cannot (and fails under CI).
    fn export(test: &str) -> Option<Self> {
        if !require_privileges(test) {
            return None;
        }
        if sh("podman", &["--version"]).is_err() {
            cannot_run(
                test,
                "podman is not installed (cargo xtask setup installs it)",
            );
            return None;
        }
        if sh("podman", &["image", "exists", &tag()]).is_err() {
            cannot_run(
                test,
                &format!("no image {} (cargo xtask image builds it)", tag()),
            );
            return None;
        }
        let dir = test_state_dir(&format!("rootfs-{test}"));
        std::fs::create_dir_all(&dir).expect("rootfs dir");
        let name = format!("mxt-image-{}-{test}", std::process::id());
        // The image has no shell: any command will do, it is never started.
        sh("podman", &["create", "--name", &name, &tag(), "--version"]).expect("podman create");
        let tar = dir.join("rootfs.tar");
        let exported = sh(
            "podman",
            &["export", "-o", &tar.display().to_string(), &name],
        );
        let _ = sh("podman", &["rm", &name]);
        exported.expect("podman export");
        sh(
            "tar",
            &[
                "-xf",
                &tar.display().to_string(),
                "-C",
                &dir.display().to_string(),
            ],
        )
        .expect("untar the rootfs");
        std::fs::remove_file(&tar).expect("rm tar");
        Some(Self { dir })
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }

    /// Every regular file in the image, as absolute paths.
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("read rootfs").flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push(format!("/{}", p.strip_prefix(&self.dir).unwrap().display()));
                }
            }
        }
        out.sort();
        out
    }

    /// A script that runs the image's `mxsentry` as a DaemonSet pod would: uid 0, only the
    /// three capabilities (bounding, permitted, effective), nothing inheritable, no new
    /// privileges.
    fn as_daemonset(&self) -> PathBuf {
        let script = self.dir.join("as-daemonset.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec setpriv --bounding-set=-all,+bpf,+net_admin,+perfmon \
                 --inh-caps=-all --no-new-privs -- {} \"$@\"\n",
                self.path("/usr/local/bin/mxsentry").display()
            ),
        )
        .expect("write the wrapper");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the wrapper");
        script
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether an ELF file asks for a program interpreter (a dynamic loader), which an image
/// with nothing but the binary does not have.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    assert_eq!(&elf[..5], b"\x7fELF\x02", "not a 64-bit ELF file");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]) == PT_INTERP
    })
}

/// `CapEff`, `CapBnd` and the real uid of a running process.
fn caps_of(pid: u32) -> (u64, u64, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let hex = |k: &str| u64::from_str_radix(&field(k), 16).expect("capability mask");
    let uid = field("Uid:")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    (hex("CapEff:"), hex("CapBnd:"), uid)
}

fn client(t: &Topology, args: &[&str]) -> Value {
    serde_json::from_str(&t.client(args).expect("client")).unwrap_or(Value::Null)
}

#[test]
fn image_holds_a_static_agent_config_and_sbom_with_its_labels() {
    let Some(rootfs) = Rootfs::export("image_contents") else {
        return;
    };
    assert_eq!(
        rootfs.files(),
        [
            "/etc/mxsentry/mxsentry.toml",
            "/usr/local/bin/mxsentry",
            "/usr/share/doc/mxsentry/sbom.cdx.json",
        ],
        "files in the image"
    );
    let bin = std::fs::read(rootfs.path("/usr/local/bin/mxsentry")).expect("binary");
    assert!(
        !has_interpreter(&bin),
        "the image's mxsentry is dynamically linked"
    );
    let sbom: Value = serde_json::from_slice(
        &std::fs::read(rootfs.path("/usr/share/doc/mxsentry/sbom.cdx.json")).expect("sbom"),
    )
    .expect("SBOM is JSON");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let crates: Vec<&str> = sbom["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in ["aya", "tokio", "hickory-proto", "prometheus"] {
        assert!(crates.contains(&c), "SBOM lacks {c}: {crates:?}");
    }
    let labels: Value = serde_json::from_str(
        &sh(
            "podman",
            &["image", "inspect", "--format", "{{json .Labels}}", &tag()],
        )
        .expect("inspect"),
    )
    .expect("labels");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let rev = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or_default();
    let commit = rev.trim_end_matches("-dirty");
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "revision label {rev:?}"
    );
    let source = labels["org.opencontainers.image.source"]
        .as_str()
        .unwrap_or_default();
    assert!(source.starts_with("https://"), "source label {source:?}");
}

#[test]
fn image_agent_with_only_the_daemonsets_capabilities_attaches_and_reports() {
    let Some(rootfs) = Rootfs::export("image_capabilities") else {
        return;
    };
    let mut t = Topology::new().expect("topology");
    t.serve(&["serve-dns", DNS, &format!("A={}", SRV4[1])])
        .expect("dns");
    t.serve(&["listen", SRV4[1], "25"]).expect("smtp");
    let state = test_state_dir("image-caps");
    let (cg, st) = (t.cgroup.display().to_string(), state.display().to_string());
    // The image's own config (monitor mode, example.org protected with action block).
    let cfg = rootfs
        .path("/etc/mxsentry/mxsentry.toml")
        .display()
        .to_string();
    let pin = test_pin_dir("image");
    let mut agent = Agent::start_as(
        &rootfs.as_daemonset(),
        &pin,
        &["--config", &cfg, "--cgroup", &cg, "--state-dir", &st],
    )
    .expect("the image's agent starts with three capabilities");
    let (eff, bnd, uid) = caps_of(agent.pid().expect("pid"));
    assert_eq!(
        (eff, bnd, uid.as_str()),
        (DAEMONSET_CAPS, DAEMONSET_CAPS, "0")
    );
    assert_eq!(
        t.mxsentry_programs(),
        Program::ALL.len(),
        "programs attached"
    );
    assert_eq!(
        agent.metric("mxsentry_programs_attached").expect("metrics"),
        Program::ALL.len() as f64
    );

    client(&t, &["dns", "udp", DNS, "exmaple.org", "MX", "2000"]);
    client(&t, &["dns", "udp", DNS, "mx.exmaple.org", "A", "2000"]);
    let connect = client(&t, &["connect", &format!("{}:25", SRV4[1])]);
    assert_eq!(connect["result"], "ok", "monitor mode lets it through");
    let pid = connect["pid"].as_u64();
    let ev = agent
        .wait_for(WAIT, |v| {
            v["event"] == "smtp_connect" && v["tgid"].as_u64() == pid
        })
        .expect("the connect is reported");
    assert_eq!(ev["port"], 25, "{ev}");
    let det = agent
        .wait_for(WAIT, |v| v["event"] == "detection")
        .expect("the lookalike delivery is detected");
    assert_eq!(det["target"], "example.org", "{det}");

    let stopped = agent.stop(libc::SIGTERM).expect("stop");
    assert_eq!(stopped["detached"], true, "{stopped}");
    assert_eq!(t.mxsentry_programs(), 0, "programs left attached");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn runbook_upgrade_to_the_image_then_uninstall() {
    let Some(rootfs) = Rootfs::export("image_upgrade") else {
        return;
    };
    let mut t = Topology::new().expect("topology");
    t.serve(&["listen", SRV4[0], "25"]).expect("smtp");
    let smtp = format!("{}:25", SRV4[0]);
    let state = test_state_dir("image-upgrade");
    let (cg, st) = (t.cgroup.display().to_string(), state.display().to_string());
    let pin = test_pin_dir("upgrade");

    // The running version (this workspace's build), as a pod that exits for an upgrade.
    let mut old = Agent::start(
        &pin,
        &["--cgroup", &cg, "--state-dir", &st, "--keep-attached"],
    )
    .expect("old agent");
    old.ctl(&["block-addr", SRV4[0], "--enforce"])
        .expect("block");
    assert_eq!(client(&t, &["connect", &smtp])["result"], "eperm");
    let stopped = old.stop(libc::SIGTERM).expect("stop old");
    assert_eq!(stopped["detached"], false);
    std::mem::forget(old); // its Drop would detach the pins the upgrade keeps
    assert_eq!(
        t.mxsentry_programs(),
        Program::ALL.len(),
        "pins keep the programs"
    );
    assert_eq!(
        client(&t, &["connect", &smtp])["result"],
        "eperm",
        "no agent: still refused"
    );

    // The new version: the image's binary with the DaemonSet's capabilities.
    let wrapper = rootfs.as_daemonset();
    let cfg = rootfs
        .path("/etc/mxsentry/mxsentry.toml")
        .display()
        .to_string();
    let mut new = Agent::start_as(
        &wrapper,
        &pin,
        &[
            "--config",
            &cfg,
            "--cgroup",
            &cg,
            "--state-dir",
            &st,
            "--keep-attached",
        ],
    )
    .expect("new agent");
    let started = new.events("agent_started")[0].clone();
    assert_eq!(started["adopted"], Program::ALL.len(), "{started}");
    assert_eq!(t.mxsentry_programs(), Program::ALL.len(), "attached twice");
    let refused = client(&t, &["connect", &smtp]);
    assert_eq!(refused["result"], "eperm", "the block survived the upgrade");
    let pid = refused["pid"].as_u64();
    new.wait_for(WAIT, |v| {
        v["event"] == "smtp_connect" && v["tgid"].as_u64() == pid && v["verdict"] == "blocked"
    })
    .expect("the new agent reports the refused connect");

    // Uninstall: `mxsentry ctl detach` in the running pod (same binary, same capabilities),
    // then the pod's deletion: nothing stays attached or pinned.
    let out = Command::new(&wrapper)
        .args(["ctl", "--pin-dir", &pin.display().to_string(), "detach"])
        .output()
        .expect("ctl detach");
    assert!(
        out.status.success(),
        "ctl detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running owner acknowledged the request: it detaches everything as it stops,
    // its --keep-attached notwithstanding.
    let stopped = new.stop(libc::SIGTERM).expect("stop new");
    assert_eq!(stopped["detached"], true, "{stopped}");
    assert_eq!(
        t.mxsentry_programs(),
        0,
        "programs left attached after uninstall"
    );
    assert!(!Path::new(&pin).exists(), "pins left after uninstall");
    assert_eq!(
        client(&t, &["connect", &smtp])["result"],
        "ok",
        "still refusing after uninstall"
    );
    let _ = std::fs::remove_dir_all(&state);
}
