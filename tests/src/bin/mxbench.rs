//! Measurements for `cargo xtask bench` that need the real kernel, namespaces and agent.
//! Prints one JSON object per measurement; `cargo xtask bench` writes docs/benchmarks.md.
//!
//! `mxbench latency N`: N DNS queries for distinct lookalike names leave a client; the
//! agent's `map_update_latency_seconds{map="blocked_names"}` histogram gives the time from
//! each query event (kernel timestamp) to its `BLOCKED_NAMES` update.

use std::time::Duration;

use anyhow::{Context as _, bail};
use mxsentry_tests::{
    Agent, Topology,
    agent::{test_pin_dir, test_state_dir},
    topology::SRV4,
};

/// `histogram_quantile` as Prometheus computes it, from cumulative buckets.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let width = le - prev.0;
            let inside = count - prev.1;
            return Some(
                prev.0
                    + width
                        * if inside > 0.0 {
                            (rank - prev.1) / inside
                        } else {
                            1.0
                        },
            );
        }
        prev = (le, count);
    }
    None
}

fn buckets(body: &str, name: &str, label: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut out: Vec<(f64, f64)> = body
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let v = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, v))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn latency(n: u32) -> anyhow::Result<()> {
    let mut t = Topology::new()?;
    let dns = format!("{}:53", SRV4[0]);
    t.serve(&["serve-dns", &dns])?;
    let state = test_state_dir("bench");
    std::fs::create_dir_all(&state)?;
    let cfg = state.join("mxsentry.toml");
    // Protecting the suffix `mil` makes every name under `ml` a lookalike to block.
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nstate_dir = \"{}\"\n[policy]\nprotect = [{{ entry = \"mil\", action = \"block\" }}]\n",
            state.display()
        ),
    )?;
    let cg = t.cgroup.display().to_string();
    let cfgs = cfg.display().to_string();
    let agent = Agent::start(
        &test_pin_dir("bench"),
        &["--config", &cfgs, "--cgroup", &cg],
    )?;
    // 1 ms apart: the rate of a busy MTA, not a flood (loss is measured elsewhere).
    t.client(&["query-many", &dns, "ml", &n.to_string(), "1000"])?;
    let name = "mxsentry_map_update_latency_seconds";
    let label = "map=\"blocked_names\"";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let b = loop {
        let (_, body) = agent.http_get("/metrics")?;
        let b = buckets(&body, name, label);
        if b.last().is_some_and(|l| l.1 >= f64::from(n)) {
            break b;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "only {:?} of {n} map updates recorded",
                b.last().map(|l| l.1)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let p50 = quantile(0.5, &b).context("p50")?;
    let p99 = quantile(0.99, &b).context("p99")?;
    println!(
        "{}",
        serde_json::json!({
            "measurement": "query_to_blocked_names",
            "samples": n,
            "p50_us": (p50 * 1e6).round(),
            "p99_us": (p99 * 1e6).round(),
        })
    );
    drop(agent);
    std::fs::remove_dir_all(&state).ok();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["latency", n] => latency(n.parse()?),
        _ => bail!("usage: mxbench latency N"),
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let b = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert!((quantile(0.75, &b).unwrap() - 0.15).abs() < 1e-9);
    }
}
