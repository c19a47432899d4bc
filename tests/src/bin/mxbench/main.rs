//! Measurements for `cargo xtask bench` that need the real kernel, namespaces and agent.
//! Prints one JSON object per measurement; `cargo xtask bench` writes docs/benchmarks.md.
//!
//! `mxbench latency N`: N DNS queries for distinct lookalike names leave a client; the
//! agent's `map_update_latency_seconds{map="blocked_names"}` histogram gives the time from
//! each query event (kernel timestamp) to its `BLOCKED_NAMES` update.

mod bare;
mod dns_cost;
mod dns_rate;
mod flood;
mod memory;
mod net;
mod protected;
mod resolver;

use std::time::Duration;

use anyhow::{Context as _, bail};
use mxsentry_tests::{
    Agent, Topology,
    agent::{metric_in, test_pin_dir, test_state_dir},
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

/// The buckets of histogram `name` (series matching `label`) once it holds `count`
/// observations, polling the agent's /metrics for at most `timeout`.
fn histogram_when(
    agent: &Agent,
    name: &str,
    label: &str,
    count: u32,
    timeout: Duration,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (_, body) = agent.http_get("/metrics")?;
        let b = buckets(&body, name, label);
        if b.last().is_some_and(|l| l.1 >= f64::from(count)) {
            return Ok(b);
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "{name}: only {:?} of {count} observations",
                b.last().map(|l| l.1)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn latency(n: u32) -> anyhow::Result<()> {
    let mut t = Topology::new()?;
    let dns = format!("{}:53", SRV4[0]);
    // Every A answer points at an SMTP listener, so the connect phase has somewhere to go.
    t.serve(&["serve-dns", &dns, &format!("A={}", SRV4[1])])?;
    t.serve(&["listen", SRV4[1], "25"])?;
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
    let b = histogram_when(
        &agent,
        "mxsentry_map_update_latency_seconds",
        "map=\"blocked_names\"",
        n,
        Duration::from_secs(30),
    )?;
    let p50 = quantile(0.5, &b).context("p50")?;
    let p99 = quantile(0.99, &b).context("p99")?;
    // Attributed connects: a lookalike name resolved, then its address connected to;
    // each gives a detection line, timed by connect_event_latency_seconds.
    let connects = 200;
    for i in 0..connects {
        t.client(&["dns", "udp", &dns, &format!("c{i}.ml"), "A", "1000"])?;
        t.client(&["connect", &format!("{}:25", SRV4[1])])?;
    }
    let c = histogram_when(
        &agent,
        "mxsentry_connect_event_latency_seconds",
        "le=",
        connects,
        Duration::from_secs(10),
    )?;
    let c50 = quantile(0.5, &c).context("connect p50")?;
    let c99 = quantile(0.99, &c).context("connect p99")?;
    println!(
        "{}",
        serde_json::json!({
            "measurement": "query_to_blocked_names",
            "samples": n,
            "p50_us": (p50 * 1e6).round(),
            "p99_us": (p99 * 1e6).round(),
            "connects": connects,
            "connect_p50_us": (c50 * 1e6).round(),
            "connect_p99_us": (c99 * 1e6).round(),
        })
    );
    drop(agent);
    std::fs::remove_dir_all(&state).ok();
    Ok(())
}

type Stats = std::collections::BTreeMap<String, (f64, f64)>;

/// Per-program kernel run time and runs, from the agent's scrape of the kernel's stats.
fn prog_stats(agent: &Agent) -> anyhow::Result<Stats> {
    let (_, body) = agent.http_get("/metrics")?;
    let mut out = Stats::new();
    for p in [
        "mx_connect4",
        "mx_connect6",
        "mx_dns_egress",
        "mx_dns_ingress",
    ] {
        let secs = metric_in(
            &body,
            &format!("mxsentry_program_run_seconds_total{{program=\"{p}\"}}"),
        )
        .unwrap_or(0.0);
        let runs = metric_in(
            &body,
            &format!("mxsentry_program_runs_total{{program=\"{p}\"}}"),
        )
        .unwrap_or(0.0);
        out.insert(p.to_string(), (secs, runs));
    }
    Ok(out)
}

/// Run time (ns) and runs of every loaded program named `name`, from bpftool.
fn floor_stats(name: &str) -> anyhow::Result<(f64, f64)> {
    let out = mxsentry_tests::sh("bpftool", &["prog", "show", "name", name, "-j"])?;
    // One object, or one per line, depending on the bpftool version: read them all.
    let mut total = (0.0, 0.0);
    for v in serde_json::Deserializer::from_str(&out).into_iter::<serde_json::Value>() {
        let v = v?;
        for p in v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]) {
            total.0 += p["run_time_ns"].as_f64().unwrap_or(0.0);
            total.1 += p["run_cnt"].as_f64().unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// ns per run of the floor program between two snapshots, and its runs.
fn floor_per_run(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let runs = b.1 - a.1;
    let ns = if runs > 0.0 {
        (b.0 - a.0) / runs
    } else {
        f64::NAN
    };
    (ns, runs)
}

/// ns per run of `prog` between two snapshots, and the runs.
fn per_run(a: &Stats, b: &Stats, prog: &str) -> (f64, f64) {
    let (s0, r0) = a[prog];
    let (s1, r1) = b[prog];
    let runs = r1 - r0;
    (
        if runs > 0.0 {
            (s1 - s0) * 1e9 / runs
        } else {
            f64::NAN
        },
        runs,
    )
}

/// One round of a phase: (ns per run, runs) of mxsentry's program and of the floor.
type Paired = ((f64, f64), (f64, f64));

/// Kernel cost per program run (the kernel's own accounting), phase by phase, `rounds`
/// times over, in each of `loads` loads of the programs: each row is the median of every
/// round, with their spread, and each measured row beside a floor also its ratio to that
/// floor, the median over the loads of each load's median round ratio.
///
/// Several loads because a load's ratio holds still over its rounds but moves from one
/// load to the next by more than the gap being measured (0.88 to 1.15 for one build of
/// the non-SMTP connect here): where the JIT put the programs and the floors, and what
/// that code's cache lines and branches meet on this VM, is fixed per load and chance
/// between loads.
fn progcost(n: u32, rounds: u32, loads: u32) -> anyhow::Result<()> {
    use mxsentry_tests::rawbpf::Pass;
    anyhow::ensure!(rounds > 0, "progcost needs at least one round");
    anyhow::ensure!(loads > 0, "progcost needs at least one load");
    let mut t = Topology::new()?;
    let dns = format!("{}:53", SRV4[0]);
    t.serve(&["serve-dns", &dns])?;
    t.serve(&["listen", SRV4[1], "25", "8080"])?;
    let cg = t.cgroup.display().to_string();
    let n = n.to_string();
    // Per load, per round: (mxsentry's ns per run, runs), and the floor's, on the same phase.
    let mut phases: [Vec<Vec<Paired>>; 3] = Default::default();
    let mut last = None;
    for _ in 0..loads {
        // The previous load's programs are detached first, so every load's run order is
        // the same: floors, mxsentry's programs, floors.
        drop(last.take());
        // The floors: empty programs on the same hooks, run on the same connects and
        // packets under the same accounting, one attached before mxsentry's programs and
        // one after (a program's place in the cgroup's run order moves its figure by some
        // ns on this VM); each floor figure is the two together.
        let floors_before = (Pass::attach(&t.cgroup)?, Pass::attach_connect4(&t.cgroup)?);
        let agent = Agent::start(&test_pin_dir("progcost"), &["--cgroup", &cg])?;
        let floors_after = (Pass::attach(&t.cgroup)?, Pass::attach_connect4(&t.cgroup)?);
        let mut this_load: [Vec<Paired>; 3] = Default::default();
        for _ in 0..rounds {
            let (s0, c0) = (prog_stats(&agent)?, floor_stats("floor_connect4")?);
            t.client(&["connect-many", &format!("{}:8080", SRV4[1]), &n])?;
            let (s1, c1) = (prog_stats(&agent)?, floor_stats("floor_connect4")?);
            t.client(&["connect-many", &format!("{}:25", SRV4[1]), &n])?;
            let (s2, c2) = (prog_stats(&agent)?, floor_stats("floor_connect4")?);
            let f2 = floor_stats("floor_pass")?;
            t.client(&["udp-many", &format!("{}:9999", SRV4[1]), &n])?;
            let (s3, f3) = (prog_stats(&agent)?, floor_stats("floor_pass")?);
            for (phase, sample) in this_load.iter_mut().zip([
                (per_run(&s0, &s1, "mx_connect4"), floor_per_run(c0, c1)),
                (per_run(&s1, &s2, "mx_connect4"), floor_per_run(c1, c2)),
                (per_run(&s2, &s3, "mx_dns_egress"), floor_per_run(f2, f3)),
            ]) {
                phase.push(sample);
            }
        }
        for (phase, rounds) in phases.iter_mut().zip(this_load) {
            phase.push(rounds);
        }
        last = Some((floors_after, agent, floors_before));
    }
    let (_, agent, _) = last.as_ref().context("no load ran")?;
    let s3 = prog_stats(agent)?;
    t.client(&["query-many", &dns, "example", &n, "200"])?;
    std::thread::sleep(Duration::from_millis(500));
    let s4 = prog_stats(agent)?;
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let row = |what: &str, samples: &[(f64, f64)], ratios: Option<Vec<f64>>| {
        let ns: Vec<f64> = samples.iter().map(|s| s.0).collect();
        let lo = ns.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ns.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        serde_json::json!({
            "what": what,
            "ns_per_run": round1(median(ns)),
            "min": round1(lo),
            "max": round1(hi),
            "rounds": samples.len(),
            "runs_per_round": samples.first().map_or(0.0, |s| s.1),
            "ratio_to_floor": ratios.map(|r| round3(median(r))),
        })
    };
    // A phase's row, with its ratio to the floor, and the floor's row.
    let paired = |what: &str, floor_what: &str, loads: &[Vec<Paired>]| {
        let all: Vec<Paired> = loads.iter().flatten().copied().collect();
        let ours: Vec<_> = all.iter().map(|x| x.0).collect();
        let floor: Vec<_> = all.iter().map(|x| x.1).collect();
        let by_load: Vec<f64> = loads
            .iter()
            .map(|l| median(l.iter().map(|x| x.0.0 / x.1.0).collect()))
            .collect();
        let mut ours_row = row(what, &ours, Some(by_load.clone()));
        ours_row["ratio_by_load"] =
            serde_json::json!(by_load.into_iter().map(round3).collect::<Vec<_>>());
        [ours_row, row(floor_what, &floor, None)]
    };
    let rows: Vec<_> = paired(
        "connect4, non-SMTP port",
        "the floor: an empty connect4 program (r0 = 1) on the same non-SMTP connects",
        &phases[0],
    )
    .into_iter()
    .chain(paired(
        "connect4, SMTP port (with event)",
        "the floor: an empty connect4 program (r0 = 1) on the same SMTP connects",
        &phases[1],
    ))
    .chain(paired(
        "cgroup_skb egress, non-DNS UDP packet",
        "the floor: an empty cgroup_skb program (r0 = 1) on the same packets",
        &phases[2],
    ))
    .chain([
        row(
            "cgroup_skb egress, DNS query (parsed, with event)",
            &[per_run(&s3, &s4, "mx_dns_egress")],
            None,
        ),
        row(
            "cgroup_skb ingress, DNS answers",
            &[per_run(&s3, &s4, "mx_dns_ingress")],
            None,
        ),
    ])
    .collect();
    println!(
        "{}",
        serde_json::json!({ "measurement": "program_cost", "rows": rows })
    );
    Ok(())
}

/// The median (upper middle for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// connect() wall time with the sensor attached vs not, alternating, on loopback.
fn connect_ratio(rounds: u32, n: u32) -> anyhow::Result<()> {
    let mut t = Topology::new()?;
    t.serve_in_client(&["listen", "127.0.0.1", "25", "8080"])?;
    let bare = bare::Bare::new(&t)?;
    // Two cgroups without programs, timed the same way: the ratio's own noise floor.
    let control = bare::Bare::named(&t, "control")?;
    // A cgroup with empty programs on the same hooks: what attaching anything costs.
    let floor = bare::Bare::named(&t, "floor")?;
    let _skb_floor = mxsentry_tests::rawbpf::Pass::attach(floor.path())?;
    let _connect_floor = mxsentry_tests::rawbpf::Pass::attach_connect4(floor.path())?;
    let cg = t.cgroup.display().to_string();
    let agent = Agent::start_quiet(&test_pin_dir("ratio"), &["--cgroup", &cg])?;
    // The agent's work on one phase's 4,000 SMTP events must not overlap the next phase's
    // timing: after each attached SMTP phase, wait until it has handled them all.
    let mut smtp_seen = 0.0;
    let mut settle = |extra: f64| -> anyhow::Result<()> {
        smtp_seen += extra;
        let sample = r#"mxsentry_smtp_connects_total{family="ipv4",port="25",verdict="allowed"}"#;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while agent.metric(sample).unwrap_or(0.0) < smtp_seen {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the agent did not handle {smtp_seen} SMTP connects"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    let per_phase: f64 = n.into();
    let n = n.to_string();
    let ns = |out: String| -> anyhow::Result<f64> {
        let v: serde_json::Value = serde_json::from_str(&out)?;
        v["ns"].as_f64().context("ns")
    };
    let (mut smtp, mut other, mut aa, mut empty) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let args = ["connect-timed", "127.0.0.1:8080", n.as_str()];
        for (side, out) in [(&control, &mut aa), (&floor, &mut empty)] {
            let (c, b) = if round % 2 == 0 {
                let c = ns(side.probe(&t, &args)?)?;
                (c, ns(bare.probe(&t, &args)?)?)
            } else {
                let b = ns(bare.probe(&t, &args)?)?;
                (ns(side.probe(&t, &args)?)?, b)
            };
            out.push(c / b);
        }
        for port in ["25", "8080"] {
            let args = ["connect-timed", &format!("127.0.0.1:{port}"), n.as_str()];
            // Alternate which side goes first, so drift between the two cancels out.
            let expected = if port == "25" { per_phase } else { 0.0 };
            let (a, d) = if round % 2 == 0 {
                let a = ns(t.client(&args)?)?;
                settle(expected)?;
                (a, ns(bare.probe(&t, &args)?)?)
            } else {
                let d = ns(bare.probe(&t, &args)?)?;
                let a = ns(t.client(&args)?)?;
                settle(expected)?;
                (a, d)
            };
            eprintln!("round {round} port {port}: attached {a:.0} ns, bare {d:.0} ns");
            if port == "25" {
                smtp.push(a / d);
            } else {
                other.push(a / d);
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "measurement": "connect_ratio",
            "rounds": rounds,
            "connects_per_round": n,
            "smtp_median_ratio": (median(smtp) * 1000.0).round() / 1000.0,
            "non_smtp_median_ratio": (median(other) * 1000.0).round() / 1000.0,
            "control_median_ratio": (median(aa) * 1000.0).round() / 1000.0,
            "empty_programs_median_ratio": (median(empty) * 1000.0).round() / 1000.0,
        })
    );
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
        ["progcost", n, rounds] => progcost(n.parse()?, rounds.parse()?, 1),
        ["progcost", n, rounds, loads] => progcost(n.parse()?, rounds.parse()?, loads.parse()?),
        ["dnscost", n, rounds] => dns_cost::dns_cost(n.parse()?, rounds.parse()?),
        ["connect-ratio", rounds, n] => connect_ratio(rounds.parse()?, n.parse()?),
        ["net-ratio", rounds, secs] => net::net_ratio(rounds.parse()?, secs.parse()?),
        ["dns-rate", secs, rates @ ..] => dns_rate::dns_rate(
            secs.parse()?,
            &rates
                .iter()
                .map(|r| r.parse())
                .collect::<Result<Vec<u64>, _>>()?,
        ),
        ["memory", load] => memory::memory(&[20, 10_000], load.parse()?),
        ["resolver-ratio", rounds, n] => resolver::resolver_ratio(rounds.parse()?, n.parse()?),
        ["pending-flood", rate, secs] => flood::pending_flood(rate.parse()?, secs.parse()?),
        _ => bail!(
            "usage: mxbench latency N | progcost N ROUNDS [LOADS] | dnscost N ROUNDS | connect-ratio ROUNDS N | net-ratio ROUNDS SECS | dns-rate SECS RATE... | memory QUERIES | resolver-ratio ROUNDS N | pending-flood RATE SECS"
        ),
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
