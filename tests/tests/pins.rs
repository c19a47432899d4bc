//! Pinned state with one owner (issue 14): a second agent on the same pins refuses, pins
//! removed under a running agent come back, planted maps are refused before anything is
//! attached, and `ctl detach` leaves nothing. Real agents on real pins; `bpftool` is the
//! witness. Run single-threaded (they share the kernel).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mxsentry::kernel::layout::type_name;
use mxsentry_tests::{
    Agent, Topology,
    agent::{agent_bin, free_port, test_pin_dir},
    pins::{self, Exited, plant, prog_maps, programs_on, run_to_exit, wait_gone},
    require_privileges,
    topology::SRV4,
};
use sensor_common::{
    Program,
    maps::{BLOCKED_V4, DNS_EVENTS, MAPS, MapKind, MapSpec},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

fn smtp_topology() -> Topology {
    let mut t = Topology::new().expect("topology");
    t.serve(&["listen", SRV4[0], "25"]).expect("listener");
    t
}

fn connect(t: &Topology, addr: &str) -> (String, u64) {
    let out = t.client(&["connect", addr]).expect("client");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    (
        v["result"].as_str().unwrap_or_default().to_string(),
        v["pid"].as_u64().unwrap_or(0),
    )
}

/// Runs `mxsentry run` on `pin` and `t`'s cgroup to its exit (for starts that must fail).
fn run_agent(t: &Topology, pin: &Path, extra: &[&str]) -> Exited {
    let (pin, cg) = (pin.display().to_string(), t.cgroup.display().to_string());
    let listen = format!("127.0.0.1:{}", free_port().expect("port"));
    let mut args = vec![
        "run",
        "--pin-dir",
        &pin,
        "--cgroup",
        &cg,
        "--metrics-listen",
        &listen,
    ];
    args.extend_from_slice(extra);
    run_to_exit(&agent_bin().expect("agent"), &args, Duration::from_secs(30)).expect("agent run")
}

fn ctl_detach(pin: &Path) -> Exited {
    pins::ctl_detach(pin).expect("ctl detach")
}

#[test]
fn a_second_agent_on_the_same_pins_refuses_in_one_line_and_the_first_keeps_working() {
    if !require_privileges("two_agents") {
        return;
    }
    let t = smtp_topology();
    let pin = test_pin_dir("owner");
    let cg = t.cgroup.display().to_string();
    let mut first = Agent::start(&pin, &["--cgroup", &cg]).expect("first agent");
    let pid = first.pid().expect("running");
    let before = programs_on(&t.cgroup).expect("bpftool");
    assert_eq!(before.len(), Program::ALL.len());

    let second = run_agent(&t, &pin, &[]);
    assert!(
        !second.success,
        "the second agent started: {}",
        second.stdout
    );
    let lines: Vec<&str> = second.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {}", second.stderr);
    assert!(
        lines[0].contains("is owned by a running mxsentry")
            && lines[0].contains(&format!("pid {pid}")),
        "does not name the holder: {}",
        lines[0]
    );
    assert!(
        !second.stdout.contains("agent_started"),
        "{}",
        second.stdout
    );

    // The first is untouched and keeps working: same programs, pins, events, blocks.
    assert_eq!(programs_on(&t.cgroup).expect("bpftool"), before);
    first
        .ctl(&["block-addr", SRV4[0], "--enforce"])
        .expect("block");
    let (r, tgid) = connect(&t, &format!("{}:25", SRV4[0]));
    assert_eq!(r, "eperm");
    first
        .wait_for(WAIT, |v| {
            v["event"] == "smtp_connect"
                && v["tgid"].as_u64() == Some(tgid)
                && v["verdict"] == "blocked"
        })
        .expect("the first agent still gets the kernel's events");
    let stopped = first.stop(libc::SIGTERM).expect("stop");
    assert_eq!(stopped["detached"], true);
    assert!(programs_on(&t.cgroup).expect("bpftool").is_empty());
    assert!(!pin.exists(), "pins left");
}

fn pin_paths(pin: &Path) -> Vec<PathBuf> {
    let links = Program::ALL
        .iter()
        .map(|p| pin.join("links").join(p.name()));
    let maps = MAPS
        .iter()
        .filter(|m| m.pinned)
        .map(|m| pin.join("maps").join(m.name));
    links.chain(maps).collect()
}

#[test]
fn pins_removed_under_a_running_agent_are_reported_and_put_back_within_5_seconds() {
    if !require_privileges("pins_removed") {
        return;
    }
    let t = smtp_topology();
    let pin = test_pin_dir("removed");
    let cg = t.cgroup.display().to_string();
    let mut a = Agent::start(&pin, &["--cgroup", &cg]).expect("agent");
    a.ctl(&["block-addr", SRV4[0], "--enforce"]).expect("block");
    let before = programs_on(&t.cgroup).expect("bpftool");

    // What the README once advised for an uninstall: the whole directory.
    std::fs::remove_dir_all(&pin).expect("rm -r the pin directory");
    let removed = Instant::now();
    let ev = a
        .wait_for(WAIT, |v| v["event"] == "pins_restored")
        .expect("no pins_restored within 5 s");
    assert!(removed.elapsed() < WAIT, "{:?}", removed.elapsed());
    let restored = ev["restored"].to_string();
    for p in ["links/mx_connect4", "maps/BLOCKED_V4", "the pin directory"] {
        assert!(restored.contains(p), "{p} not said: {ev}");
    }
    for p in pin_paths(&pin) {
        assert!(p.exists(), "{} not put back", p.display());
    }
    // The same programs, the block still in force, ctl working on the pins again.
    assert_eq!(programs_on(&t.cgroup).expect("bpftool"), before);
    assert_eq!(connect(&t, &format!("{}:25", SRV4[0])).0, "eperm");
    let status: Value = serde_json::from_str(&a.ctl(&["status"]).expect("status")).expect("JSON");
    let pid = a.pid().expect("running");
    assert!(
        status["owner"].to_string().contains(&format!("pid {pid}")),
        "{status}"
    );

    // One pin alone.
    let v4 = pin.join("maps").join(BLOCKED_V4);
    std::fs::remove_file(&v4).expect("rm one pin");
    let removed = Instant::now();
    a.wait_for(WAIT, |v| {
        v["event"] == "pins_restored" && v["restored"] == serde_json::json!(["maps/BLOCKED_V4"])
    })
    .expect("the single pin not put back within 5 s");
    assert!(removed.elapsed() < WAIT);
    assert!(v4.exists());
    a.ctl(&["unblock-addr", SRV4[0]])
        .expect("ctl on the restored pin");
    assert_eq!(connect(&t, &format!("{}:25", SRV4[0])).0, "ok");

    let stopped = a.stop(libc::SIGINT).expect("stop");
    assert_eq!(stopped["detached"], true);
    assert!(programs_on(&t.cgroup).expect("bpftool").is_empty());
    assert!(!pin.exists());
}

#[test]
fn a_pin_directory_taken_over_while_removed_is_left_with_exactly_one_owner() {
    if !require_privileges("pins_taken_over") {
        return;
    }
    let t = smtp_topology();
    let pin = test_pin_dir("takeover");
    let cg = t.cgroup.display().to_string();
    let mut first = Agent::start(&pin, &["--cgroup", &cg]).expect("first agent");
    // The directory removed while the first agent cannot put it back (stopped), and a
    // second agent started there meanwhile: the second owns the new directory.
    first.signal(libc::SIGSTOP);
    std::fs::remove_dir_all(&pin).expect("rm -r the pin directory");
    let mut second = Agent::start(&pin, &["--cgroup", &cg]).expect("second agent");
    first.signal(libc::SIGCONT);
    // The first finds the directory another's: it says so and exits non-zero, touching
    // nothing there (its own links, whose pins went, detach as it exits).
    let status = first
        .wait_exit(WAIT)
        .expect("the first agent did not give up");
    assert!(!status.success(), "the first agent exited 0");
    assert_eq!(first.events("agent_stopped").len(), 1, "{:?}", first.seen);
    assert_eq!(
        programs_on(&t.cgroup).expect("bpftool").len(),
        Program::ALL.len()
    );
    for p in pin_paths(&pin) {
        assert!(p.exists(), "{} missing for the new owner", p.display());
    }
    let pid = second.pid().expect("running");
    let status: Value =
        serde_json::from_str(&second.ctl(&["status"]).expect("status")).expect("JSON");
    assert!(
        status["owner"].to_string().contains(&format!("pid {pid}")),
        "{status}"
    );
    second.stop(libc::SIGTERM).expect("stop the second");
    assert!(programs_on(&t.cgroup).expect("bpftool").is_empty());
    assert!(!pin.exists());
}

/// A map of another type, with the spec's sizes where the kernel allows them.
fn wrong_type(spec: &MapSpec) -> (&'static str, u32, u32) {
    match spec.kind {
        MapKind::RingBuf => ("hash", 4, 4),
        MapKind::Hash => ("lru_hash", spec.key_size, spec.value_size),
        MapKind::Array => ("hash", 4, spec.value_size),
        _ => ("hash", spec.key_size, spec.value_size),
    }
}

/// Plants `kind` under `spec`'s name in a fresh pin directory and starts an agent on it.
fn planted_start(t: &Topology, n: usize, spec: &MapSpec, kind: &str, key: u32, value: u32) {
    let pin = test_pin_dir(&format!("plant{n}"));
    let flags = if kind == "lpm_trie" { 1 } else { 0 };
    let max = if kind == "ringbuf" {
        1 << 16
    } else {
        spec.max_entries.min(4096)
    };
    plant(
        &pin.join("maps").join(spec.name),
        spec.name,
        kind,
        key,
        value,
        max,
        flags,
    )
    .unwrap_or_else(|e| panic!("planting {} as {kind}: {e}", spec.name));
    let run = run_agent(t, &pin, &[]);
    let what = format!("{} planted as {kind} key {key} value {value}", spec.name);
    assert!(!run.success, "{what}: the agent started: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {}", run.stderr);
    assert!(
        lines[0].contains(&format!("pinned map {} ", spec.name))
            && lines[0].contains("does not match"),
        "{what}: {}",
        lines[0]
    );
    let diff = if kind != type_name(spec.kind.bpf_type()) {
        format!("type {kind}, expected {}", type_name(spec.kind.bpf_type()))
    } else {
        format!("value size {value}, expected {}", spec.value_size)
    };
    assert!(
        lines[0].contains(&diff),
        "{what}: difference not named: {}",
        lines[0]
    );
    assert!(
        programs_on(&t.cgroup).expect("bpftool").is_empty(),
        "{what}: programs attached"
    );
    let links = std::fs::read_dir(pin.join("links"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(links, 0, "{what}: links pinned");
    assert!(ctl_detach(&pin).success);
}

#[test]
fn maps_planted_with_a_wrong_type_or_size_are_refused_and_nothing_is_attached() {
    if !require_privileges("planted_maps") {
        return;
    }
    let t = Topology::new().expect("topology");
    let mut n = 0;
    for spec in MAPS.iter().filter(|m| m.pinned) {
        let (kind, key, value) = wrong_type(spec);
        planted_start(&t, n, spec, kind, key, value);
        n += 1;
        // A ring's size is its capacity: one of another size is replaced (below).
        if spec.kind != MapKind::RingBuf {
            let kind = type_name(spec.kind.bpf_type());
            planted_start(&t, n, spec, &kind, spec.key_size, spec.value_size + 4);
            n += 1;
        }
    }

    // A ring of another size holds records, not state: it is replaced, and said so.
    let pin = test_pin_dir("ring");
    let spec = MAPS.iter().find(|m| m.name == DNS_EVENTS).expect("spec");
    plant(
        &pin.join("maps").join(DNS_EVENTS),
        DNS_EVENTS,
        "ringbuf",
        0,
        0,
        1 << 16,
        0,
    )
    .expect("plant");
    let cg = t.cgroup.display().to_string();
    let mut a = Agent::start(&pin, &["--cgroup", &cg]).expect("agent over a smaller ring");
    let started = a.events("agent_started")[0].clone();
    assert_eq!(started["migrated"][0]["map"], spec.name, "{started}");
    assert_eq!(started["migrated"][0]["action"], "renewed", "{started}");
    a.stop(libc::SIGTERM).expect("stop");

    // Planted over a kept-attached sensor: refused, and the sensor left as it was.
    let pin = test_pin_dir("planted-kept");
    let mut kept = Agent::start(&pin, &["--cgroup", &cg, "--keep-attached"]).expect("agent");
    kept.stop(libc::SIGTERM).expect("stop");
    std::mem::forget(kept); // its Drop would detach what this test keeps
    let before = programs_on(&t.cgroup).expect("bpftool");
    let v4 = pin.join("maps").join(BLOCKED_V4);
    std::fs::remove_file(&v4).expect("unpin");
    plant(&v4, BLOCKED_V4, "array", 4, 4, 16, 0).expect("plant");
    let run = run_agent(&t, &pin, &[]);
    assert!(
        !run.success && run.stderr.contains("pinned map BLOCKED_V4"),
        "{}",
        run.stderr
    );
    assert_eq!(
        programs_on(&t.cgroup).expect("bpftool"),
        before,
        "the kept sensor changed"
    );
    assert!(ctl_detach(&pin).success);
    assert!(programs_on(&t.cgroup).expect("bpftool").is_empty());
}

/// Every program on `cgroup` and every map they use, by id.
fn ids(cgroup: &Path) -> (Vec<u64>, Vec<u64>) {
    let progs: Vec<u64> = programs_on(cgroup)
        .expect("bpftool")
        .iter()
        .map(|p| p.id)
        .collect();
    let mut maps: Vec<u64> = progs
        .iter()
        .flat_map(|p| prog_maps(*p).expect("maps"))
        .collect();
    maps.sort();
    maps.dedup();
    (progs, maps)
}

#[test]
fn ctl_detach_leaves_nothing_in_bpffs_or_on_the_cgroup() {
    if !require_privileges("uninstall") {
        return;
    }
    let t = smtp_topology();
    let cg = t.cgroup.display().to_string();

    // Kept attached with no agent running: ctl detach removes links, programs, maps, lock.
    let pin = test_pin_dir("uninstall");
    let mut a = Agent::start(&pin, &["--cgroup", &cg, "--keep-attached"]).expect("agent");
    a.ctl(&["block-addr", SRV4[0], "--enforce"]).expect("block");
    let (progs, maps) = ids(&t.cgroup);
    assert_eq!(progs.len(), Program::ALL.len());
    a.stop(libc::SIGTERM).expect("stop");
    std::mem::forget(a);
    assert_eq!(
        connect(&t, &format!("{}:25", SRV4[0])).0,
        "eperm",
        "kept enforcing"
    );
    let out = ctl_detach(&pin);
    assert!(out.success, "{}", out.stderr);
    assert!(!pin.exists(), "pin directory left");
    assert!(
        programs_on(&t.cgroup).expect("bpftool").is_empty(),
        "programs left on the cgroup"
    );
    wait_gone(&progs, &maps).expect("programs or maps left in the kernel");
    assert_eq!(connect(&t, &format!("{}:25", SRV4[0])).0, "ok");

    // With the owner running: it acknowledges, and detaches everything when it stops,
    // even though it was started with --keep-attached.
    let pin = test_pin_dir("uninstall-running");
    let mut a = Agent::start(&pin, &["--cgroup", &cg, "--keep-attached"]).expect("agent");
    let (progs, maps) = ids(&t.cgroup);
    let out = ctl_detach(&pin);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains("will detach everything when it stops"),
        "{}",
        out.stdout
    );
    a.wait_for(WAIT, |v| v["event"] == "detach_requested")
        .expect("acknowledged");
    let stopped = a.stop(libc::SIGTERM).expect("stop");
    assert_eq!(stopped["detached"], true, "{stopped}");
    assert!(!pin.exists(), "pin directory left");
    assert!(programs_on(&t.cgroup).expect("bpftool").is_empty());
    wait_gone(&progs, &maps).expect("programs or maps left in the kernel");
}
