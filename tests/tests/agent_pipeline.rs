//! `mxsentry run` as a mail host runs it: real DNS and SMTP traffic between network
//! namespaces, asserted through its event log, its `/metrics` over HTTP and the kernel's
//! refusals; a real Alertmanager receives its pushes.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mxsentry_tests::{
    Agent, Topology,
    agent::{self, free_port, test_pin_dir, test_state_dir},
    require_privileges,
    topology::SRV4,
};
use serde_json::Value;

const DNS: &str = "10.77.0.2:53";

fn write_config(path: &Path, state: &Path, mode: &str, extra: &str) {
    agent::write_config(path, state, mode, extra).expect("write config");
}

/// A topology whose DNS points mx.<anything> at the SMTP listener on SRV4[1].
fn mail_topology(dns_opts: &[&str]) -> Topology {
    let mut t = Topology::new().expect("topology");
    let a = format!("A={}", SRV4[1]);
    let mut args = vec!["serve-dns", DNS, a.as_str()];
    args.extend_from_slice(dns_opts);
    t.serve(&args).expect("dns server");
    t.serve(&["listen", SRV4[1], "25"]).expect("smtp listener");
    t
}

fn connect(t: &Topology, addr: &str) -> String {
    let out = t.client(&["connect", addr]).expect("client");
    let v: Value = serde_json::from_str(&out).expect("json");
    v["result"].as_str().unwrap_or_default().to_string()
}

/// What Postfix does before delivering: MX, then the exchanger's address.
fn look_up(t: &Topology, domain: &str) -> Value {
    let mx = t
        .client(&["dns", "udp", DNS, domain, "MX", "2000"])
        .expect("dns");
    t.client(&["dns", "udp", DNS, &format!("mx.{domain}"), "A", "2000"])
        .expect("dns");
    serde_json::from_str(&mx).expect("json")
}

fn start(t: &Topology, tag: &str, config: &Path) -> Agent {
    let cg = t.cgroup.display().to_string();
    let cfg = config.display().to_string();
    Agent::start(&test_pin_dir(tag), &["--config", &cfg, "--cgroup", &cg]).expect("agent")
}

#[test]
fn monitor_detects_reload_to_enforce_refuses_bad_reload_keeps_enforcing() {
    if !require_privileges("monitor_detects_reload_to_enforce") {
        return;
    }
    let t = mail_topology(&[]);
    let state = test_state_dir("pipeline");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    write_config(&cfg, &state, "monitor", "");
    let mut agent = start(&t, "pipeline", &cfg);
    assert_eq!(agent.http_get("/readyz").unwrap().0, 200);
    assert_eq!(agent.http_get("/healthz").unwrap().0, 200);

    // Monitor: the delivery goes through and is reported within a second.
    look_up(&t, "army.ml");
    let smtp = format!("{}:25", SRV4[1]);
    let sent = Instant::now();
    assert_eq!(connect(&t, &smtp), "ok");
    let d = agent
        .wait_for(Duration::from_secs(1), |v| v["event"] == "detection")
        .expect("detection within 1 s");
    eprintln!("detection {:?} after the connect", sent.elapsed());
    assert_eq!(d["domain"], "army.ml");
    assert_eq!(d["target"], "army.mil");
    assert_eq!(d["rule"], "suffix-typo");
    assert_eq!(d["action"], "block");
    assert_eq!(d["verdict"], "would_block");
    assert_eq!(d["route"]["mx_host"], "mx.army.ml");
    assert_eq!(d["process"]["comm"], "mxprobe");
    assert!(
        d["process"]["cgroup"]
            .as_str()
            .unwrap_or_default()
            .contains("mxt-")
    );
    assert!(d["ts"].as_str().is_some() && d["host"].as_str().is_some());
    assert_eq!(
        agent
            .metric(
                r#"mxsentry_detections_total{action="block",rule="suffix-typo",target="army.mil"}"#
            )
            .unwrap(),
        1.0
    );
    // The connect is counted once, under the kernel's verdict at the connect: that is
    // `would_block` only if the agent had put the address in the map by then. Answers do
    // not wake it (it drains the ring every 10 ms), so in monitor mode the connect can
    // come first; the detection above says what enforce would have done either way.
    assert_eq!(agent.smtp_connects_let_through("ipv4", 25), 1.0);
    assert!(
        agent
            .metric(r#"mxsentry_dns_messages_total{direction="egress",qtype="MX"}"#)
            .unwrap()
            >= 1.0
    );
    assert!(
        agent
            .metric(r#"mxsentry_lookalike_lookups_total{rule="suffix-typo",target="army.mil"}"#)
            .unwrap()
            >= 2.0
    );
    assert_eq!(
        agent.metric("mxsentry_programs_attached").unwrap(),
        sensor_common::Program::ALL.len() as f64
    );
    assert!(
        agent
            .metric(r#"mxsentry_program_runs_total{program="mx_connect4"}"#)
            .unwrap()
            >= 1.0
    );
    assert!(agent.metric("mxsentry_cache_entries").unwrap() >= 1.0);

    // Unattributed: an SMTP connect to an address no DNS answer gave.
    connect(&t, &format!("{}:25", SRV4[2]));
    let u = agent
        .wait_for(Duration::from_secs(1), |v| {
            v["event"] == "unattributed_connect"
        })
        .unwrap();
    assert_eq!(u["address"], SRV4[2]);
    assert_eq!(
        agent
            .metric("mxsentry_unattributed_connects_total")
            .unwrap(),
        1.0
    );

    // The file changes to enforce: applied live, programs stay attached.
    write_config(&cfg, &state, "enforce", "");
    let r = agent
        .wait_for(Duration::from_secs(5), |v| v["event"] == "config_reloaded")
        .unwrap();
    assert_eq!(
        (
            r["result"].as_str(),
            r["trigger"].as_str(),
            r["mode"].as_str()
        ),
        (Some("ok"), Some("file"), Some("enforce"))
    );
    // The address cached in monitor mode is refused now, without a new lookup.
    assert_eq!(connect(&t, &smtp), "eperm");
    let b = agent
        .wait_for(Duration::from_secs(1), |v| {
            v["event"] == "block" && v["kind"] == "connect"
        })
        .unwrap();
    assert_eq!(b["target"], "army.mil");
    // A new lookup of the lookalike gets no answer: it is dropped at this host.
    let q: Value = serde_json::from_str(
        &t.client(&["dns", "udp", DNS, "army.ml", "MX", "500"])
            .unwrap(),
    )
    .unwrap();
    assert!(q["answer"].is_null(), "answer not dropped: {q}");
    agent
        .wait_for(Duration::from_secs(1), |v| {
            v["event"] == "block" && v["kind"] == "dns_answer"
        })
        .unwrap();
    // Other names still resolve and deliver.
    let ok: Value = serde_json::from_str(
        &t.client(&["dns", "udp", DNS, "army.mil", "MX", "2000"])
            .unwrap(),
    )
    .unwrap();
    assert!(!ok["answer"].is_null(), "{ok}");
    assert_eq!(
        agent
            .metric(r#"mxsentry_blocked_total{kind="connect"}"#)
            .unwrap(),
        1.0
    );
    assert!(
        agent
            .metric(r#"mxsentry_blocked_total{kind="dns_answer"}"#)
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        agent
            .metric(r#"mxsentry_config_reloads_total{result="ok"}"#)
            .unwrap(),
        1.0
    );

    // A broken file is refused; the running policy keeps enforcing.
    std::fs::write(&cfg, "[policy]\nprotect = [\"army..mil\"]\n").unwrap();
    let r = agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["result"] == "error"
        })
        .unwrap();
    assert!(r["error"].as_str().unwrap().contains("line 2"), "{r}");
    assert_eq!(
        agent
            .metric(r#"mxsentry_config_reloads_total{result="error"}"#)
            .unwrap(),
        1.0
    );
    assert_eq!(connect(&t, &smtp), "eperm");

    // SIGHUP re-reads the file on demand.
    write_config(&cfg, &state, "enforce", "");
    agent.signal(libc::SIGHUP);
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["result"] == "ok" && v["mode"] == "enforce"
        })
        .unwrap();
    agent.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn a_lookalike_that_did_not_resolve_is_remembered_across_restarts_and_going_live_is_raised() {
    if !require_privileges("lookalike_went_live") {
        return;
    }
    let mut t = mail_topology(&["NX=army.ml"]);
    let state = test_state_dir("live");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    write_config(&cfg, &state, "monitor", "");
    let mut agent = start(&t, "live", &cfg);
    let q: Value = serde_json::from_str(
        &t.client(&["dns", "udp", DNS, "army.ml", "MX", "2000"])
            .unwrap(),
    )
    .unwrap();
    assert!(!q["answer"].is_null(), "{q}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while agent.metric("mxsentry_lookalikes_pending").unwrap() < 1.0 {
        assert!(
            Instant::now() < deadline,
            "NXDOMAIN lookalike not remembered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.stop(libc::SIGTERM).unwrap();
    let saved = std::fs::read_to_string(state.join("pending-lookalikes.json")).unwrap();
    assert!(saved.contains("army.ml"), "{saved}");

    // Someone registers the trap; a restarted agent still remembers.
    t.stop_servers();
    let a = format!("A={}", SRV4[1]);
    t.serve(&["serve-dns", DNS, &a]).unwrap();
    let mut agent = start(&t, "live", &cfg);
    assert_eq!(agent.metric("mxsentry_lookalikes_pending").unwrap(), 1.0);
    look_up(&t, "army.ml");
    let live = agent
        .wait_for(Duration::from_secs(1), |v| {
            v["event"] == "lookalike_went_live"
        })
        .unwrap();
    assert_eq!(live["severity"], "critical");
    assert_eq!(live["target"], "army.mil");
    assert_eq!(agent.metric("mxsentry_lookalikes_pending").unwrap(), 0.0);
    assert_eq!(
        agent
            .metric(r#"mxsentry_lookalikes_went_live_total{target="army.mil"}"#)
            .unwrap(),
        1.0
    );
    agent.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}

/// A real Alertmanager (Debian's prometheus-alertmanager) on loopback.
struct Alertmanager {
    child: std::process::Child,
    url: String,
    dir: PathBuf,
}

impl Alertmanager {
    fn start() -> Self {
        let dir = test_state_dir("alertmanager");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("am.yml"),
            "route:\n  receiver: log\nreceivers:\n  - name: log\n",
        )
        .unwrap();
        let port = free_port().unwrap();
        let child = std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (Debian package prometheus-alertmanager) must be installed");
        let am = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(&am.url, "/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn get(base: &str, path: &str) -> Option<(u16, String)> {
    mxsentry_tests::http::get(base.strip_prefix("http://")?, path).ok()
}

#[test]
fn detections_are_pushed_to_a_real_alertmanager_within_a_second() {
    if !require_privileges("alertmanager_push") {
        return;
    }
    let am = Alertmanager::start();
    let t = mail_topology(&[]);
    let state = test_state_dir("alerts");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    write_config(
        &cfg,
        &state,
        "monitor",
        &format!("\n[alertmanager]\nurl = \"{}\"\n", am.url),
    );
    let mut agent = start(&t, "alerts", &cfg);
    look_up(&t, "army.ml");
    let sent = Instant::now();
    assert_eq!(connect(&t, &format!("{}:25", SRV4[1])), "ok");
    let alert = loop {
        // Chunked or not, the body is one JSON array; find it and parse it.
        let body = get(&am.url, "/api/v2/alerts")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let json = body
            .find('[')
            .map(|i| &body[i..body.rfind(']').map_or(body.len(), |j| j + 1)])
            .unwrap_or("[]");
        let alerts: Vec<Value> = serde_json::from_str(json).unwrap_or_default();
        if let Some(a) = alerts
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "MxsentryLookalikeDeliveryAttempted")
        {
            break a;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "no alert in Alertmanager within 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "alert visible in Alertmanager {:?} after the connect",
        sent.elapsed()
    );
    assert_eq!(alert["labels"]["target"], "army.mil");
    assert_eq!(alert["labels"]["rule"], "suffix-typo");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["annotations"]["lookalike"], "army.ml");
    assert!(
        alert["annotations"]["process"]
            .as_str()
            .unwrap()
            .contains("mxprobe")
    );
    agent
        .wait_for(Duration::from_secs(1), |v| v["event"] == "detection")
        .unwrap();
    assert_eq!(
        agent
            .metric(r#"mxsentry_alert_pushes_total{result="ok"}"#)
            .unwrap(),
        1.0
    );
    agent.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}
