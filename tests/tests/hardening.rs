//! The agent under bad input, floods and faults (issue 17): configs emptied, cut short,
//! unreadable or writable by others mid-run; a lookup flood against the event log; a
//! pending-lookalike flood against persistence; a full state directory; idle connections
//! against the metrics endpoint; a backlog's timestamps; `ctl` without privileges. Real
//! eBPF, real DNS and SMTP between network namespaces, the release binary.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use mxsentry_tests::{
    Agent, Topology,
    agent::{self, agent_bin, free_port, metric_in, test_pin_dir, test_state_dir},
    require_privileges,
    topology::SRV4,
};
use serde_json::Value;

const DNS: &str = "10.77.0.2:53";

fn topology(dns_opts: &[&str]) -> Topology {
    let mut t = Topology::new().expect("topology");
    let a = format!("A={}", SRV4[1]);
    let mut args = vec!["serve-dns", DNS, a.as_str()];
    args.extend_from_slice(dns_opts);
    t.serve(&args).expect("dns server");
    t.serve(&["listen", SRV4[1], "25"]).expect("smtp listener");
    t
}

/// A test's lab: the topology, a fresh state directory and a config in it protecting
/// army.mil (block) in `mode`, with `extra` TOML appended.
fn lab(tag: &str, dns_opts: &[&str], mode: &str, extra: &str) -> (Topology, PathBuf, PathBuf) {
    let t = topology(dns_opts);
    let state = test_state_dir(tag);
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    agent::write_config(&cfg, &state, mode, extra).unwrap();
    (t, state, cfg)
}

fn dns(t: &Topology, name: &str, qtype: &str, timeout_ms: u32) -> Value {
    let out = t
        .client(&["dns", "udp", DNS, name, qtype, &timeout_ms.to_string()])
        .expect("dns client");
    serde_json::from_str(&out).expect("json")
}

/// Postfix's lookups before a delivery: MX, then the exchanger's address.
fn look_up(t: &Topology, domain: &str) {
    dns(t, domain, "MX", 2000);
    dns(t, &format!("mx.{domain}"), "A", 2000);
}

fn connect(t: &Topology) -> String {
    let out = t
        .client(&["connect", &format!("{}:25", SRV4[1])])
        .expect("client");
    let v: Value = serde_json::from_str(&out).expect("json");
    v["result"].as_str().unwrap_or_default().to_string()
}

fn start(t: &Topology, tag: &str, config: &Path) -> Agent {
    let cg = t.cgroup.display().to_string();
    let cfg = config.display().to_string();
    Agent::start(&test_pin_dir(tag), &["--config", &cfg, "--cgroup", &cg]).expect("agent")
}

/// [`start`] without a line per kernel record (what a flood would make of the log).
fn start_quiet(t: &Topology, tag: &str, config: &Path) -> Agent {
    let cg = t.cgroup.display().to_string();
    let cfg = config.display().to_string();
    Agent::start_quiet(&test_pin_dir(tag), &["--config", &cfg, "--cgroup", &cg]).expect("agent")
}

fn reload_event(a: &mut Agent, after: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = a.seen[after..]
            .iter()
            .find(|v| v["event"] == "config_reloaded")
        {
            return v.clone();
        }
        assert!(Instant::now() < deadline, "no config_reloaded event");
        a.collect_for(Duration::from_millis(200));
    }
}

/// Writes `text` to the config at `p`, mode 0644, and returns how many lines were seen.
fn rewrite(a: &Agent, p: &Path, text: &str) -> usize {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    a.seen.len()
}

fn enforcing(t: &Topology) -> bool {
    dns(t, "army.ml", "MX", 500)["answer"].is_null()
}

#[test]
fn reloads_refuse_empty_cut_short_and_unreadable_files_and_name_restart_only_keys() {
    if !require_privileges("reload_hardening") {
        return;
    }
    let (t, state, cfg) = lab("reloadh", &[], "enforce", "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let mut a = start(&t, "reloadh", &cfg);
    assert!(enforcing(&t));

    // Emptied mid-deploy (`: > mxsentry.toml`): refused, enforcement stays.
    let n = rewrite(&a, &cfg, "");
    let r = reload_event(&mut a, n);
    assert_eq!(
        (r["result"].as_str(), r["protected"].as_u64()),
        (Some("error"), Some(1)),
        "{r}"
    );
    assert!(r["error"].as_str().unwrap().contains("empty"), "{r}");
    assert!(enforcing(&t), "an empty file dropped enforcement");

    // Cut short in the middle of a value, and cut short between sections.
    let cut = &good[..good.find("army.mil").unwrap() + 4];
    let n = rewrite(&a, &cfg, cut);
    let r = reload_event(&mut a, n);
    assert_eq!(r["result"], "error", "{r}");
    let head = &good[..good.find("[policy]").unwrap()];
    let n = rewrite(&a, &cfg, head);
    let r = reload_event(&mut a, n);
    assert_eq!(r["result"], "error", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("protects nothing"),
        "{r}"
    );
    assert!(enforcing(&t), "a cut-short file dropped enforcement");

    // Unreadable: something else where the file was. Said once, then its recovery.
    std::fs::remove_file(&cfg).unwrap();
    std::fs::create_dir(&cfg).unwrap();
    let n = a.seen.len();
    let r = reload_event(&mut a, n);
    assert_eq!(
        (r["result"].as_str(), r["trigger"].as_str()),
        (Some("error"), Some("file")),
        "{r}"
    );
    a.collect_for(Duration::from_secs(3));
    let errors = a.seen[n..]
        .iter()
        .filter(|v| v["event"] == "config_reloaded")
        .count();
    assert_eq!(errors, 1, "an unreadable file is said once");
    std::fs::remove_dir(&cfg).unwrap();
    let n = rewrite(&a, &cfg, &good);
    assert_eq!(reload_event(&mut a, n)["result"], "ok");

    // A restart-only key changed: applied keys apply, the event names the rest.
    let moved = good.replace(
        &format!("state_dir = \"{}\"", state.display()),
        &format!("state_dir = \"{}/elsewhere\"", state.display()),
    ) + "\n[alertmanager]\nattempts = 3\n";
    let n = rewrite(&a, &cfg, &moved.replace("\"enforce\"", "\"monitor\""));
    let r = reload_event(&mut a, n);
    assert_eq!(
        (r["result"].as_str(), r["mode"].as_str()),
        (Some("ok"), Some("monitor")),
        "{r}"
    );
    let needs: Vec<&str> = r["restart_needed"]
        .as_array()
        .unwrap_or_else(|| panic!("no restart_needed: {r}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(needs, ["agent.state_dir", "alertmanager.attempts"], "{r}");
    a.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn a_config_writable_by_others_is_refused_and_enforcement_stays() {
    if !require_privileges("world_writable_config") {
        return;
    }
    let (t, state, cfg) = lab("perms", &[], "enforce", "");
    let mut a = start(&t, "perms", &cfg);
    // chmod 666, then anyone switches enforce to monitor.
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("enforce", "monitor");
    std::fs::write(&cfg, text).unwrap();
    let n = a.seen.len();
    let r = reload_event(&mut a, n);
    assert_eq!(r["result"], "error", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("writable by anyone"),
        "{r}"
    );
    assert_eq!(r["mode"], "enforce");
    let status: Value = serde_json::from_str(&a.ctl(&["status"]).unwrap()).unwrap();
    assert_eq!(status["mode"], "enforce");
    assert!(enforcing(&t));
    a.stop(libc::SIGTERM).unwrap();
    // And at start: a clear error, nothing attached.
    let out = Command::new(agent_bin().unwrap())
        .args(["run", "--pin-dir"])
        .arg(test_pin_dir("perms2"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("writable by anyone") && err.contains("StrictModes"),
        "{err}"
    );
    std::fs::remove_dir_all(&state).ok();
}

/// An agent logging to a file (so the harness's stdout reader sees nothing): started,
/// read and stopped here.
struct FileAgent {
    child: Child,
    log: PathBuf,
    pin_dir: PathBuf,
    metrics: String,
}

impl FileAgent {
    fn start(t: &Topology, tag: &str, config: &Path, log: &Path) -> Self {
        let pin_dir = test_pin_dir(tag);
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let child = Command::new(agent_bin().unwrap())
            .args(["run", "--metrics-listen", &metrics, "--cgroup"])
            .arg(&t.cgroup)
            .arg("--pin-dir")
            .arg(&pin_dir)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let a = Self {
            child,
            log: log.to_path_buf(),
            pin_dir,
            metrics,
        };
        a.wait(&a.log, Duration::from_secs(20), |v| {
            v["event"] == "agent_started"
        });
        a
    }

    fn lines(path: &Path) -> Vec<Value> {
        let Ok(f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    fn wait(&self, path: &Path, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + mxsentry_tests::patience(timeout);
        loop {
            if let Some(v) = Self::lines(path).into_iter().find(&pred) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no matching line in {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metric(&self, sample: &str) -> f64 {
        let (_, body) = mxsentry_tests::http::get(&self.metrics, "/metrics").unwrap();
        metric_in(&body, sample).unwrap_or_else(|| panic!("no {sample}"))
    }
}

impl Drop for FileAgent {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = Command::new(agent_bin().unwrap())
            .args(["ctl", "--pin-dir"])
            .arg(&self.pin_dir)
            .arg("detach")
            .output();
    }
}

#[test]
fn a_lookup_flood_keeps_detections_and_folds_a_dropped_answers_repeats() {
    if !require_privileges("lookup_flood") {
        return;
    }
    let t = topology(&[]);
    let state = test_state_dir("lflood");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    let log = state.join("events.jsonl");
    let events = format!(
        "\n[events]\nfile = \"{}\"\nmax_bytes = 65536\nkeep = 1\n",
        log.display()
    );
    agent::write_config(&cfg, &state, "monitor", &events).unwrap();
    let a = FileAgent::start(&t, "lflood", &cfg, &log);
    look_up(&t, "army.ml");
    assert_eq!(connect(&t), "ok");
    a.wait(&log, Duration::from_secs(2), |v| v["event"] == "detection");
    // 30 s of the issue's flood, condensed: 60,000 distinct lookalike lookups at 20,000/s.
    t.client(&["query-paced", DNS, "army.ml", "60000", "20000"])
        .unwrap();
    let seen =
        || a.metric(r#"mxsentry_lookalike_lookups_total{rule="suffix-typo",target="army.mil"}"#);
    // The agent works through the backlog at its own pace (slower on a loaded machine),
    // and what outran it on two shared cores is lost at the ring, counted: wait until it
    // is done, then every lookup must be decided or counted lost.
    let lost = || a.metric(r#"mxsentry_events_lost_total{kind="dns"}"#);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut last, mut still) = (-1.0, Instant::now());
    while seen() < 60_000.0 && Instant::now() < deadline {
        let now = seen() + lost();
        if now != last {
            (last, still) = (now, Instant::now());
        } else if still.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (decided, lost) = (seen(), lost());
    let suppressed = a.metric(r#"mxsentry_events_suppressed_total{event="lookalike_lookup"}"#);
    eprintln!("lookup flood: {decided} of 60,000 lookups decided, {lost} DNS events lost");
    assert!(
        decided + lost >= 60_000.0,
        "{decided} lookups decided and {lost} DNS events counted lost, of 60,000 lookups"
    );
    assert!(
        decided > 30_000.0,
        "only {decided} of 60,000 lookups decided"
    );
    assert!(
        suppressed > decided - 10_000.0,
        "only {suppressed} of {decided} lookups suppressed"
    );
    let evidence = state.join("events.evidence.jsonl");
    let ev = FileAgent::lines(&evidence);
    assert!(
        ev.iter().any(|v| v["event"] == "detection"),
        "detection rotated away"
    );
    let summary = a.wait(&log, Duration::from_secs(15), |v| {
        v["event"] == "events_suppressed"
    });
    assert!(summary["counts"]["lookalike_lookup"].as_u64().unwrap() > 0);

    // Enforce: the same answer dropped five times (a client retrying, as a TCP server
    // retransmits): one block line, then one line with the count.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("monitor", "enforce");
    std::fs::write(&cfg, text).unwrap();
    a.wait(&log, Duration::from_secs(5), |v| {
        v["event"] == "config_reloaded" && v["mode"] == "enforce"
    });
    for _ in 0..5 {
        dns(&t, "army.ml", "MX", 300);
    }
    let rep = a.wait(&log, Duration::from_secs(15), |v| {
        v["event"] == "repeated" && v["of"]["event"] == "block" && v["of"]["kind"] == "dns_answer"
    });
    assert!(rep["count"].as_u64().unwrap() >= 3, "{rep}");
    let blocks = FileAgent::lines(&evidence)
        .into_iter()
        .filter(|v| v["event"] == "block" && v["kind"] == "dns_answer")
        .count();
    assert_eq!(
        blocks, 1,
        "each repeat of a dropped answer logged as a new block"
    );
    drop(a);
    std::fs::remove_dir_all(&state).ok();
}

fn rfc3339_secs(ts: &str) -> f64 {
    // 2026-11-23T19:17:08.123Z: seconds of the day are enough within one test.
    let t = &ts[11..23];
    let h: f64 = t[0..2].parse().unwrap();
    let m: f64 = t[3..5].parse().unwrap();
    let s: f64 = t[6..12].parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn events_of_a_backlog_carry_the_kernel_time_not_the_processing_time() {
    if !require_privileges("kernel_timestamps") {
        return;
    }
    let (t, state, cfg) = lab("kts", &[], "monitor", "");
    let mut a = start(&t, "kts", &cfg);
    a.signal(libc::SIGSTOP);
    let asked = SystemTime::now();
    dns(&t, "army.ml", "MX", 500);
    std::thread::sleep(Duration::from_secs(3));
    a.signal(libc::SIGCONT);
    let l = a
        .wait_for(Duration::from_secs(5), |v| v["event"] == "lookalike_lookup")
        .unwrap();
    let asked = rfc3339_secs(&mxsentry::output::clock::rfc3339(asked));
    let stamped = rfc3339_secs(l["ts"].as_str().unwrap());
    assert!(
        (stamped - asked).abs() < 1.0,
        "looked up at {asked}, stamped {stamped}: the processing time"
    );
    a.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}

/// DNS events the agent parsed (A and MX, both ways) and the kernel lost.
fn dns_counts(a: &Agent) -> (f64, f64) {
    let (_, body) = a.http_get("/metrics").unwrap();
    let mut received = 0.0;
    for dir in ["egress", "ingress"] {
        for qt in ["A", "MX"] {
            received += metric_in(
                &body,
                &format!(r#"mxsentry_dns_messages_total{{direction="{dir}",qtype="{qt}"}}"#),
            )
            .unwrap_or(0.0);
        }
    }
    let lost = metric_in(&body, r#"mxsentry_events_lost_total{kind="dns"}"#).unwrap_or(0.0);
    (received, lost)
}

#[test]
fn a_pending_flood_at_20k_per_second_loses_no_dns_and_the_real_one_still_goes_live() {
    if !require_privileges("pending_flood") {
        return;
    }
    let (mut t, state, cfg) = lab(
        "pflood",
        &["NX=army.ml", "NX=ck"],
        "monitor",
        "\n[cache]\npending_max = 1000\n",
    );
    let mut a = start_quiet(&t, "pflood", &cfg);
    // The real one: an MTA's MX lookup, NXDOMAIN for now.
    dns(&t, "army.ml", "MX", 2000);
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.metric("mxsentry_lookalikes_pending").unwrap() < 1.0 {
        assert!(Instant::now() < deadline, "the real one not remembered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // 1,200 distinct lookalike domains (armymil.f<k>.ck, the dot dropped), NXDOMAIN,
    // 100,000 answers at 20,000/s.
    let (r0, l0) = dns_counts(&a);
    let out = t
        .client(&[
            "query-flood",
            DNS,
            "q{i}.armymil.f{k}.ck",
            "100000",
            "20000",
            "1200",
        ])
        .unwrap();
    let flood: Value = serde_json::from_str(&out).unwrap();
    let sent = flood["sent"].as_f64().unwrap() + flood["answers"].as_f64().unwrap();
    assert!(flood["nxdomain"].as_f64().unwrap() > 90_000.0, "{flood}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (received, lost) = loop {
        let (r, l) = dns_counts(&a);
        if r - r0 + l - l0 >= sent || Instant::now() > deadline {
            break (r - r0, l - l0);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("flood: {flood}; received {received}, lost {lost}");
    assert_eq!(received + lost, sent, "events unaccounted for");
    assert_eq!(lost, 0.0, "DNS events lost during the flood");
    assert!(a.metric("mxsentry_lookalikes_pending").unwrap() <= 1000.0);
    let evicted = a
        .metric(r#"mxsentry_lookalikes_pending_evicted_total{bound="pending_per_target"}"#)
        .unwrap()
        + a.metric(r#"mxsentry_lookalikes_pending_evicted_total{bound="pending_max"}"#)
            .unwrap();
    assert!(evicted >= 201.0, "{evicted} evictions counted");
    a.wait_for(Duration::from_secs(3), |v| v["event"] == "pending_evicted")
        .unwrap();
    let saves = a.metric("mxsentry_state_saves_total").unwrap();
    assert!(saves <= 4.0, "{saves} saves during a 5 s flood");

    // Someone registers the real one.
    t.stop_servers();
    let live = format!("A={}", SRV4[1]);
    t.serve(&["serve-dns", DNS, &live, "NX=ck"]).unwrap();
    look_up(&t, "army.ml");
    let went = a
        .wait_for(Duration::from_secs(2), |v| {
            v["event"] == "lookalike_went_live"
        })
        .expect("went_live for the real one");
    assert_eq!(went["domain"], "army.ml");
    a.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn a_full_state_directory_and_a_corrupt_state_file_are_counted_and_said() {
    if !require_privileges("full_state_dir") {
        return;
    }
    let t = topology(&["NX=army.ml", "NX=navy.ml"]);
    let base = test_state_dir("fullstate");
    let state = base.join("state");
    std::fs::create_dir_all(&state).unwrap();
    mxsentry_tests::sh(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=16k",
            "mxt-state",
            state.to_str().unwrap(),
        ],
    )
    .unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(state.clone());
    std::fs::write(
        state.join("pending-lookalikes.json"),
        b"{\"army.ml\": {\"tar",
    )
    .unwrap();
    let cfg = base.join("mxsentry.toml");
    agent::write_config(&cfg, &state, "monitor", "").unwrap();
    let mut a = start(&t, "fullstate", &cfg);
    let e = a
        .wait_for(Duration::from_secs(3), |v| {
            v["event"] == "state_error" && v["op"] == "load"
        })
        .unwrap();
    assert!(e["error"].as_str().unwrap().contains("not valid"), "{e}");
    assert_eq!(
        a.metric(r#"mxsentry_state_errors_total{op="load"}"#)
            .unwrap(),
        1.0
    );
    // Fill the directory, then give the agent something to save.
    let filler = state.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1k", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    dns(&t, "army.ml", "MX", 2000);
    let e = a
        .wait_for(Duration::from_secs(8), |v| {
            v["event"] == "state_error" && v["op"] == "save"
        })
        .unwrap();
    assert!(e["error"].as_str().unwrap().contains("No space"), "{e}");
    assert!(
        a.metric(r#"mxsentry_state_errors_total{op="save"}"#)
            .unwrap()
            >= 1.0
    );
    // Room again: the next save goes through, nothing was lost.
    std::fs::remove_file(&filler).unwrap();
    dns(&t, "navy.ml", "MX", 2000);
    let deadline = Instant::now() + Duration::from_secs(8);
    while a.metric("mxsentry_state_saves_total").unwrap() < 1.0 {
        assert!(Instant::now() < deadline, "no save once there was room");
        std::thread::sleep(Duration::from_millis(200));
    }
    let saved = std::fs::read_to_string(state.join("pending-lookalikes.json")).unwrap();
    assert!(saved.contains("army.ml"), "{saved}");
    a.stop(libc::SIGTERM).unwrap();
    drop(_unmount);
    std::fs::remove_dir_all(&base).ok();
}

fn raise_own_fd_limit() {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit on our own process.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

#[test]
fn health_is_answered_past_1100_idle_metrics_connections_at_1024_descriptors() {
    if !require_privileges("metrics_idle_connections") {
        return;
    }
    let (t, state, cfg) = lab("idle", &[], "monitor", "");
    let a = start(&t, "idle", &cfg);
    // The default limit a systemd service without LimitNOFILE gets.
    let limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: sets a resource limit of our own child; the struct outlives the call.
    let rc = unsafe {
        libc::prlimit(
            a.pid().unwrap() as i32,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0);
    raise_own_fd_limit();
    // The liveness probe keeps asking while 1,100 clients connect and stay silent.
    let addr = a.metrics_addr;
    let opener = std::thread::spawn(move || {
        (0..1100)
            .filter_map(|_| std::net::TcpStream::connect(addr).ok())
            .collect::<Vec<_>>()
    });
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    let mut probe = || {
        let start = Instant::now();
        let (status, body) = a.http_get("/healthz").expect("/healthz");
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        worst = worst.max(start.elapsed());
        probes += 1;
        std::thread::sleep(Duration::from_millis(200));
    };
    while !opener.is_finished() {
        probe();
    }
    let idle = opener.join().unwrap();
    assert_eq!(idle.len(), 1100);
    for _ in 0..5 {
        probe();
    }
    assert!(
        worst < Duration::from_secs(1),
        "/healthz took {worst:?} (of {probes} probes)"
    );
    assert!(a.metric("mxsentry_http_connections_evicted_total").unwrap() >= 1000.0);
    drop(idle);
    drop(a);
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn ctl_without_cap_bpf_is_told_it_needs_cap_bpf() {
    if !require_privileges("ctl_unprivileged") {
        return;
    }
    let (t, state, cfg) = lab("ctlcap", &[], "monitor", "");
    let a = start(&t, "ctlcap", &cfg);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(agent_bin().unwrap())
        .args(["ctl", "--pin-dir"])
        .arg(&a.pin_dir)
        .arg("status")
        .output()
        .expect("setpriv (util-linux)");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs CAP_BPF"), "{err}");
    drop(a);
    std::fs::remove_dir_all(&state).ok();
}
