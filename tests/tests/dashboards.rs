//! Every query of every Grafana panel, run by a real Prometheus (Debian's `prometheus`)
//! that scrapes a live `mxsentry` after real DNS and SMTP traffic between network
//! namespaces: each must be valid PromQL and return data. The alert rules are loaded by
//! the same Prometheus, so they must also parse there.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mxsentry_tests::{
    Agent, Topology,
    agent::{self, free_port, test_pin_dir, test_state_dir},
    http, require_privileges,
    topology::SRV4,
};
use serde_json::Value;

const DNS: &str = "10.77.0.2:53";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    mxsentry_tests::http::get(addr, path).ok()
}

/// A real Prometheus scraping the agent every second, with the repo's alert rules loaded.
struct Prometheus {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = test_state_dir("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let rules = repo().join("deploy/prometheus/mxsentry-rules.yml");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: mxsentry\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port().unwrap());
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus) must be installed");
        let p = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&p.addr, "/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(Instant::now() < deadline, "Prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn query(&self, expr: &str) -> Value {
        let (status, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", http::urlencode(expr)),
        )
        .unwrap_or((0, String::new()));
        serde_json::from_str(&body).unwrap_or_else(
            |_| serde_json::json!({ "status": "http", "error": format!("HTTP {status}: {body}") }),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(path: &Path, state: &Path, mode: &str) {
    agent::write_config(path, state, mode, "").unwrap();
}

fn client(t: &Topology, args: &[&str]) -> Value {
    serde_json::from_str(&t.client(args).unwrap()).unwrap_or(Value::Null)
}

/// The traffic a dashboard exists to show: a detection, an unattributed connect, a
/// malformed DNS payload, a lookalike going live, then blocks in enforce mode.
fn traffic(t: &mut Topology, agent: &mut Agent, cfg: &Path, state: &Path) {
    let smtp = format!("{}:25", SRV4[1]);
    client(t, &["dns", "udp", DNS, "army.ml", "MX", "2000"]);
    client(t, &["dns", "udp", DNS, "mx.army.ml", "A", "2000"]);
    assert_eq!(client(t, &["connect", &smtp])["result"], "ok");
    agent
        .wait_for(Duration::from_secs(2), |v| v["event"] == "detection")
        .unwrap();
    client(t, &["connect", &format!("{}:25", SRV4[2])]);
    t.client(&["udp-send", DNS, "junk"]).unwrap();
    client(t, &["dns", "udp", DNS, "armymil.com", "MX", "2000"]);
    // armymil.com gets registered (an open registry: amry.mil would be a restricted-registry
    // lookalike, reported at info, which pages no one).
    t.stop_servers();
    t.serve(&["serve-dns", DNS, &format!("A={}", SRV4[1])])
        .unwrap();
    t.serve(&["listen", SRV4[1], "25"]).unwrap();
    client(t, &["dns", "udp", DNS, "armymil.com", "MX", "2000"]);
    if let Err(e) = agent.wait_for(Duration::from_secs(2), |v| {
        v["event"] == "lookalike_went_live"
    }) {
        for v in &agent.seen {
            eprintln!("{v}");
        }
        panic!("{e}");
    }
    config(cfg, state, "enforce");
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["result"] == "ok"
        })
        .unwrap();
    assert_eq!(client(t, &["connect", &smtp])["result"], "eperm");
    client(t, &["dns", "udp", DNS, "army.ml", "MX", "300"]);
    agent
        .wait_for(Duration::from_secs(2), |v| {
            v["event"] == "block" && v["kind"] == "dns_answer"
        })
        .unwrap();
}

#[test]
fn every_dashboard_query_returns_data_from_a_live_agent() {
    if !require_privileges("dashboard_queries") {
        return;
    }
    let mut t = Topology::new().unwrap();
    t.serve(&[
        "serve-dns",
        DNS,
        &format!("A={}", SRV4[1]),
        "NX=armymil.com",
    ])
    .unwrap();
    t.serve(&["listen", SRV4[1], "25"]).unwrap();
    let state = test_state_dir("dashboards");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut agent =
        Agent::start(&test_pin_dir("dash"), &["--config", &cfgs, "--cgroup", &cg]).unwrap();
    let prom = Prometheus::start(&agent.metrics_addr.to_string());
    traffic(&mut t, &mut agent, &cfg, &state);
    // Enough scrapes after the traffic for every rate() to have samples on both sides.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = prom.query("count_over_time(mxsentry_build_info[1m]) >= 5");
        if r["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the agent: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/mxsentry-overview.json")).unwrap(),
    )
    .unwrap();
    // The variables' own queries, as Grafana runs them: the node list names nodes (the
    // agent's node name, here the host name it falls back to), not scrape addresses.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let nodes = prom.query("group by (node) (mxsentry_build_info)");
    let names: Vec<&str> = nodes["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["metric"]["node"].as_str())
        .collect();
    assert_eq!(names, [host.trim()], "node variable query: {nodes}");
    let inst = prom.query(&format!(
        "group by (instance) (mxsentry_build_info{{node=~\"{}\"}})",
        host.trim()
    ));
    let instances = inst["data"]["result"].as_array().map_or(0, Vec::len);
    assert_eq!(instances, 1, "instance variable query: {inst}");

    let mut failures = Vec::new();
    let mut checked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        // Every query, the self-monitoring panels' included (process_* from the prometheus
        // crate's process collector, mxsentry_mode), must return data from the agent.
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let query = expr
                .replace("$instance", ".*")
                .replace("$node", ".*")
                .replace("$__rate_interval", "1m");
            let r = prom.query(&query);
            checked += 1;
            let n = r["data"]["result"].as_array().map_or(0, Vec::len);
            if r["status"] != "success" || n == 0 {
                failures.push(format!(
                    "{} [{}]: {query} -> {r}",
                    panel["title"], target["refId"]
                ));
            } else {
                eprintln!(
                    "ok {:>2} series  {} [{}]",
                    n,
                    panel["title"].as_str().unwrap(),
                    target["refId"].as_str().unwrap()
                );
            }
        }
    }
    assert!(checked >= 18, "only {checked} queries in the dashboard");
    assert!(
        failures.is_empty(),
        "dashboard queries without data:\n{}",
        failures.join("\n")
    );
    // The rule file loaded into this Prometheus: it lists every alert.
    let (_, rules) = http_get(&prom.addr, "/api/v1/rules").unwrap();
    for alert in [
        "MxsentryLookalikeDeliveryAttempted",
        "MxsentryDeliveryBlocked",
        "MxsentryMapUpdatesFailing",
        "MxsentryAlertPushesFailing",
        "MxsentryAgentDown",
        "MxsentryDaemonSetNotReady",
    ] {
        assert!(rules.contains(alert), "{alert} not loaded: {rules}");
    }
    // The first detection, lookalike gone live and block of this agent's life fire their
    // alerts in this Prometheus, whether the agent exported those series at 0 from its
    // start or they were born at 1 with the event (issue 16).
    for alert in [
        "MxsentryLookalikeDeliveryAttempted",
        "MxsentryLookalikeWentLive",
        "MxsentryDeliveryBlocked",
    ] {
        let query = format!("ALERTS{{alertname=\"{alert}\", alertstate=\"firing\"}}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = prom.query(&query);
            if r["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                break;
            }
            assert!(Instant::now() < deadline, "{alert} did not fire: {r}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    agent.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}
