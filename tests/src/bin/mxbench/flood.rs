//! A flood of NXDOMAIN answers for lookalike names (each remembered as an unresolved
//! lookalike, which the agent persists), beside the same flood answered NODATA (the same
//! parsing and classification, but an address-only NODATA is not "unresolved": no memory,
//! no persistence): received + lost = sent for both, and the loss the first shows beyond
//! the second is the agent's own persistence. Agent RSS before and after.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use mxsentry_tests::{
    Agent, Topology,
    agent::{metric_in, test_pin_dir, test_state_dir},
    topology::SRV4,
};

use crate::dns_rate::{cpu_ns, in_parallel};

/// Parallel senders (one per core).
const SENDERS: u64 = 2;
/// Distinct registrable domains per flood (each a pending entry, for lookalikes).
const DISTINCT: u64 = 5000;

/// Parsed DNS messages (A queries out, answers in) and the kernel's DNS losses, so far.
fn counts(agent: &Agent) -> anyhow::Result<(f64, f64, String)> {
    let (_, body) = agent.http_get("/metrics")?;
    let received: f64 = ["egress", "ingress"]
        .iter()
        .map(|d| {
            metric_in(
                &body,
                &format!(r#"mxsentry_dns_messages_total{{direction="{d}",qtype="A"}}"#),
            )
            .unwrap_or(0.0)
        })
        .sum();
    let lost = metric_in(&body, r#"mxsentry_events_lost_total{kind="dns"}"#).unwrap_or(0.0);
    Ok((received, lost, body))
}

fn rss_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kb| (kb / 102.4).round() / 10.0)
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// One flood of `rate` answers a second for `secs` with names from `template`.
fn flood(
    t: &Topology,
    agent: &Agent,
    template: &str,
    rate: u64,
    secs: u64,
) -> anyhow::Result<serde_json::Value> {
    let pid = agent.pid().context("agent pid")?;
    let server = format!("{}:53", SRV4[0]);
    let (rss_before, _) = rss_mb(pid)?;
    let (r0, l0, body0) = counts(agent)?;
    let saves0 = metric_in(&body0, "mxsentry_state_saves_total").unwrap_or(0.0);
    let cpu0 = cpu_ns(pid)?;
    let n = rate * secs / SENDERS;
    let outs = in_parallel(SENDERS, |k| {
        t.client(&[
            "query-flood",
            &server,
            &format!("s{k}{template}"),
            &n.to_string(),
            &(rate / SENDERS).to_string(),
            &DISTINCT.to_string(),
        ])
    });
    let (mut sent, mut answers, mut elapsed) = (0.0, 0.0, 0.0f64);
    for out in outs {
        let v: serde_json::Value = serde_json::from_str(&out?)?;
        sent += v["sent"].as_f64().context("sent")?;
        answers += v["answers"].as_f64().context("answers")?;
        elapsed = elapsed.max(v["ns"].as_f64().context("ns")? / 1e9);
    }
    let expected = sent + answers;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (r1, l1, body) = loop {
        let (r, l, b) = counts(agent)?;
        if r - r0 + l - l0 >= expected || Instant::now() > deadline {
            break (r, l, b);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (rss_after, peak) = rss_mb(pid)?;
    let (received, lost) = (r1 - r0, l1 - l0);
    Ok(serde_json::json!({
        "answers_per_s": (answers / elapsed).round(),
        "queries_sent": sent,
        "answers_received": answers,
        "events_expected": expected,
        "received": received,
        "lost": lost,
        "accounted": received + lost == expected,
        "pending": metric_in(&body, "mxsentry_lookalikes_pending").unwrap_or(0.0),
        "state_saves": metric_in(&body, "mxsentry_state_saves_total").unwrap_or(0.0) - saves0,
        "agent_cpu_s": ((cpu_ns(pid)? - cpu0) / 1e7).round() / 100.0,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_peak_mb": peak,
    }))
}

/// The control flood (lookalikes answered NODATA), then the NXDOMAIN lookalike flood, each
/// `rate` answers a second for `secs`, on one agent.
pub fn pending_flood(rate: u64, secs: u64) -> anyhow::Result<()> {
    let mut t = Topology::new()?;
    t.serve(&[
        "serve-dns",
        &format!("{}:53", SRV4[0]),
        "NX=ck",
        "NODATA=np",
    ])?;
    let state = test_state_dir("pflood");
    std::fs::create_dir_all(&state)?;
    let cfg = state.join("mxsentry.toml");
    mxsentry_tests::agent::write_config(&cfg, &state, "monitor", "")?;
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let agent = Agent::start_quiet(
        &test_pin_dir("pflood"),
        &["--config", &cfgs, "--cgroup", &cg],
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let control = flood(&t, &agent, "q{i}.armymil.f{k}.np", rate, secs)?;
    let lookalike = flood(&t, &agent, "q{i}.armymil.f{k}.ck", rate, secs)?;
    println!(
        "{}",
        serde_json::json!({
            "measurement": "pending_flood", "rate": rate, "secs": secs, "distinct": DISTINCT,
            "control": control, "lookalike": lookalike,
        })
    );
    drop(agent);
    std::fs::remove_dir_all(&state).ok();
    Ok(())
}
