//! DNS events the agent sustains end to end (captured, parsed, classified), at rising
//! offered rates, with the kernel's loss counter: received + lost must equal sent.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use mxsentry_tests::{
    Agent, Topology,
    agent::{metric_in, test_pin_dir, test_state_dir},
    topology::SRV4,
};

use crate::protected;

/// DNS events the agent received (parsed queries) and the kernel lost, so far.
fn counts(agent: &Agent) -> anyhow::Result<(f64, f64)> {
    let (_, body) = agent.http_get("/metrics")?;
    let received = metric_in(
        &body,
        r#"mxsentry_dns_messages_total{direction="egress",qtype="A"}"#,
    )
    .unwrap_or(0.0);
    let lost = metric_in(&body, r#"mxsentry_events_lost_total{kind="dns"}"#).unwrap_or(0.0);
    Ok((received, lost))
}

/// Parallel sending processes.
const SENDERS: u64 = 2;

/// Runs `f(0)`..`f(n - 1)` on threads of their own and collects what each returned.
pub fn in_parallel<T: Send>(
    n: u64,
    f: impl Fn(u64) -> anyhow::Result<T> + Sync,
) -> Vec<anyhow::Result<T>> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..n).map(|k| s.spawn(move || f(k))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("sender panicked")))
            })
            .collect()
    })
}

/// CPU time the process has used, in nanoseconds (/proc/PID/schedstat).
pub fn cpu_ns(pid: u32) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("schedstat")
}

/// For each rate, `secs` seconds of distinct A queries (no answers: the server side has
/// no listener, so only the query events count).
pub fn dns_rate(secs: u64, rates: &[u64]) -> anyhow::Result<()> {
    let t = Topology::new()?;
    let state = test_state_dir("dnsrate");
    std::fs::create_dir_all(&state)?;
    let cfg = state.join("mxsentry.toml");
    std::fs::write(&cfg, protected::config(&state, 20))?;
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let agent = Agent::start_quiet(
        &test_pin_dir("dnsrate"),
        &["--config", &cfgs, "--cgroup", &cg],
    )?;
    let pid = agent.pid().context("agent pid")?;
    let server = format!("{}:53", SRV4[0]);
    let mut rows = Vec::new();
    for &rate in rates {
        let n = rate * secs;
        let (r0, l0) = counts(&agent)?;
        let cpu0 = cpu_ns(pid)?;
        // Two senders, one per core: one process alone tops out near 120,000/s here.
        let outs = in_parallel(SENDERS, |k| {
            t.client(&[
                "query-paced",
                &server,
                &format!("s{k}.r{rate}.example.net"),
                &(n / SENDERS).to_string(),
                &(rate / SENDERS).to_string(),
            ])
        });
        let (mut sent, mut elapsed) = (0.0, 0.0f64);
        for out in outs {
            let v: serde_json::Value = serde_json::from_str(&out?)?;
            sent += v["sent"].as_f64().context("sent")?;
            elapsed = elapsed.max(v["ns"].as_f64().context("ns")? / 1e9);
        }
        // Let the agent finish what is queued, then read the tallies.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (r1, l1) = loop {
            let (r, l) = counts(&agent)?;
            if r - r0 + l - l0 >= sent || Instant::now() > deadline {
                break (r, l);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (received, lost) = (r1 - r0, l1 - l0);
        let cpu = cpu_ns(pid)? - cpu0;
        rows.push(serde_json::json!({
            "offered_per_s": rate,
            "achieved_per_s": (sent / elapsed).round(),
            "sent": sent,
            "received": received,
            "lost": lost,
            "accounted": received + lost == sent,
            "agent_cpu_ms_per_10k": ((cpu / 1e6) / (received / 1e4) * 100.0).round() / 100.0,
        }));
    }
    println!(
        "{}",
        serde_json::json!({ "measurement": "dns_rate", "secs": secs, "rows": rows })
    );
    drop(agent);
    std::fs::remove_dir_all(&state).ok();
    Ok(())
}
