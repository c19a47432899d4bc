//! A stop signal at any point of start-up (issue 14): SIGTERM and SIGINT while the config
//! is read, at each start-up step (the agent's debug lines say which), at delays from the
//! moment the process defers them, and right after `agent_started`. Every run must end
//! with `agent_stopped` and exit 0, and leave nothing attached or pinned unless
//! `--keep-attached` (then all eight programs or, stopped before attaching, none).

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

use mxsentry_tests::{
    Topology,
    agent::{agent_bin, free_port, test_pin_dir, test_state_dir, write_config},
    pins::{ctl_detach, programs_on},
    require_privileges,
};
use sensor_common::Program;

/// Where in start-up the signal is sent.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// This long after the process blocked stop signals (its first instructions).
    AfterDeferred(u64),
    /// When the agent logs this start-up step.
    Step(&'static str),
    /// Right after `agent_started`.
    Started,
}

// No point inside the config read: the config must be a regular file (a FIFO is refused
// before it is opened), so that read never waits.
const POINTS: [Point; 13] = [
    Point::AfterDeferred(0),
    Point::AfterDeferred(1),
    Point::AfterDeferred(3),
    Point::AfterDeferred(10),
    Point::AfterDeferred(30),
    Point::AfterDeferred(100),
    Point::AfterDeferred(200),
    Point::AfterDeferred(400),
    Point::Step("start-up: config loaded"),
    Point::Step("start-up: pin directory locked"),
    Point::Step("start-up: programs attached"),
    Point::Step("start-up: pipeline built"),
    Point::Started,
];

/// Lines of `r`, on a channel.
fn lines(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, pat: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let hit = l.contains(pat);
        seen.push(l);
        if hit {
            return;
        }
    }
    panic!("no line with {pat:?}; saw {seen:?}");
}

/// Whether process `pid` defers signal `sig` (blocked: its first instructions) or
/// handles it (its handlers are installed): from then on the signal cannot kill it.
fn deferred(pid: u32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let has = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (sig - 1)) != 0)
    };
    has("SigBlk:") || has("SigCgt:")
}

fn spawn(t: &Topology, pin: &Path, cfg: &Path, keep: bool) -> Child {
    let listen = format!("127.0.0.1:{}", free_port().expect("port"));
    let mut cmd = Command::new(agent_bin().expect("agent"));
    cmd.args(["run", "--pin-dir"])
        .arg(pin)
        .arg("--cgroup")
        .arg(&t.cgroup)
        .args(["--metrics-listen", &listen, "--config"])
        .arg(cfg)
        .args(keep.then_some("--keep-attached"))
        .env("RUST_LOG", "info,mxsentry=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn mxsentry")
}

/// One start-up stopped by `sig` at `point`; `n` names its pin directory.
fn stop_at(t: &Topology, n: usize, sig: i32, point: Point, keep: bool) {
    let what = format!(
        "signal {sig} at {point:?}{}",
        if keep { " with --keep-attached" } else { "" }
    );
    let pin = test_pin_dir(&format!("sig{n}"));
    let state = test_state_dir(&format!("sig{n}"));
    std::fs::create_dir_all(&state).expect("state dir");
    let file = state.join("mxsentry.toml");
    write_config(&file, &state, "monitor", "").expect("config");
    let mut child = spawn(t, &pin, &file, keep);
    let pid = child.id();
    let (out, err) = (
        lines(child.stdout.take().expect("stdout")),
        lines(child.stderr.take().expect("stderr")),
    );
    let (mut seen_out, mut seen_err) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    let wait_until = |f: &dyn Fn() -> bool| {
        while !f() {
            assert!(Instant::now() < deadline, "{what}: never got there");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    match point {
        Point::AfterDeferred(ms) => {
            wait_until(&|| deferred(pid, sig));
            std::thread::sleep(Duration::from_millis(ms));
        }
        Point::Step(s) => wait_line(&err, s, &mut seen_err),
        Point::Started => wait_line(&out, "\"agent_started\"", &mut seen_out),
    }
    // SAFETY: kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
    let status = wait_exit(&mut child, &what);
    seen_out.extend(out.iter());
    seen_err.extend(err.iter());
    assert!(
        status.success(),
        "{what}: exit {status}; stderr {seen_err:?}"
    );
    let last = seen_out.last().cloned().unwrap_or_default();
    assert!(
        last.contains("\"agent_stopped\""),
        "{what}: last line {last:?}; stderr {seen_err:?}"
    );
    let attached = programs_on(&t.cgroup).expect("bpftool").len();
    if keep {
        assert!(
            attached == 0 || attached == Program::ALL.len(),
            "{what}: {attached} attached"
        );
        assert!(ctl_detach(&pin).expect("ctl detach").success);
    } else {
        assert_eq!(attached, 0, "{what}: programs left attached");
        assert!(!pin.exists(), "{what}: pins left");
    }
    let _ = std::fs::remove_dir_all(&state);
}

fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running 20 s after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stop_signal_at_any_point_of_start_up_ends_with_agent_stopped_and_nothing_attached() {
    if !require_privileges("startup_signals") {
        return;
    }
    let t = Topology::new().expect("topology");
    let mut n = 0;
    for sig in [libc::SIGTERM, libc::SIGINT] {
        for point in POINTS {
            stop_at(&t, n, sig, point, false);
            n += 1;
        }
    }
    for point in [
        Point::AfterDeferred(0),
        Point::Step("start-up: programs attached"),
        Point::Started,
    ] {
        stop_at(&t, n, libc::SIGTERM, point, true);
        n += 1;
    }
}
