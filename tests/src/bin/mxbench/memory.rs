//! Agent memory with 20 and with 10,000 protected domains: resident set idle, and its
//! peak under a DNS load of lookalike and clean names.

use std::time::Duration;

use anyhow::Context as _;
use mxsentry_tests::{
    Agent, Topology,
    agent::{test_pin_dir, test_state_dir},
    topology::SRV4,
};

use crate::protected;

/// VmRSS, VmHWM and RssAnon (the agent's own heap and stacks, without mapped ring or
/// file pages) of `pid`, in MB.
fn rss(pid: u32) -> anyhow::Result<(f64, f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let kb: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?, field("RssAnon:")?))
}

/// For each protected-set size: RSS after start, then peak RSS after `load` queries at
/// 20,000/s (half of them one-slip lookalikes of protected names).
pub fn memory(sizes: &[usize], load: u64) -> anyhow::Result<()> {
    let t = Topology::new()?;
    let server = format!("{}:53", SRV4[0]);
    let mut rows = Vec::new();
    for &n in sizes {
        let state = test_state_dir(&format!("mem{n}"));
        std::fs::create_dir_all(&state)?;
        let cfg = state.join("mxsentry.toml");
        std::fs::write(&cfg, protected::config(&state, n))?;
        let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
        let agent = Agent::start_quiet(
            &test_pin_dir(&format!("mem{n}")),
            &["--config", &cfgs, "--cgroup", &cg],
        )?;
        let pid = agent.pid().context("agent pid")?;
        std::thread::sleep(Duration::from_secs(1));
        let (idle, _, idle_anon) = rss(pid)?;
        // A lookalike of the first protected name under its own suffix ("r" prefix), and
        // clean names: both kinds of work.
        let first = protected::names(1).remove(0);
        let look = format!("x{first}");
        for suffix in [look.as_str(), "example.net"] {
            t.client(&[
                "query-paced",
                &server,
                suffix,
                &(load / 2).to_string(),
                "20000",
            ])?;
        }
        std::thread::sleep(Duration::from_secs(2));
        let (_, peak, anon) = rss(pid)?;
        rows.push(serde_json::json!({
            "protected": n,
            "idle_mb": (idle * 10.0).round() / 10.0,
            "load_peak_mb": (peak * 10.0).round() / 10.0,
            "idle_anon_mb": (idle_anon * 10.0).round() / 10.0,
            "load_anon_mb": (anon * 10.0).round() / 10.0,
            "queries": load,
        }));
        drop(agent);
        std::fs::remove_dir_all(&state).ok();
    }
    println!(
        "{}",
        serde_json::json!({ "measurement": "memory", "rows": rows })
    );
    Ok(())
}
