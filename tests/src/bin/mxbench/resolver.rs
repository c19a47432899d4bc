//! Everyone else's lookups through a local caching resolver while a lookalike is being
//! blocked, vs while nothing is: the resolver must not slow down (target: within 5%).

use std::time::Duration;

use anyhow::Context as _;
use mxsentry_tests::{
    Agent, Topology,
    agent::{self, test_pin_dir, test_state_dir},
    mail::{self, LOCAL_RESOLVER, LabOptions, MailLab},
};

use crate::median;

/// p50 latency (µs) of `n` lookups of distinct names through the local resolver, and
/// how many of them were not answered.
fn lookups(t: &Topology, run: &str, n: u32) -> anyhow::Result<(f64, u64)> {
    let v = mail::lookups(t, run, n)?;
    let unanswered = u64::from(n) - v["answered"].as_u64().context("answered")?;
    Ok((v["p50_us"].as_f64().context("p50")?, unanswered))
}

/// `rounds` alternating rounds of `n` lookups, with and without a process asking the same
/// resolver for names under a blocked lookalike (every one of whose answers is dropped).
pub fn resolver_ratio(rounds: u32, n: u32) -> anyhow::Result<()> {
    let mut t = Topology::new()?;
    let opts = LabOptions {
        local_resolver: true,
        ..LabOptions::default()
    };
    let lab = MailLab::start_with(&mut t, "resratio", &opts)?;
    let state = test_state_dir("resratio");
    std::fs::create_dir_all(&state)?;
    let cfg = state.join("mxsentry.toml");
    agent::write_config(&cfg, &state, "enforce", "")?;
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let _agent = Agent::start_quiet(
        &test_pin_dir("resratio"),
        &["--config", &cfgs, "--cgroup", &cg],
    )?;
    let (mut ratios, mut unanswered, mut asked_dropped) = (Vec::new(), 0u64, 0u64);
    for round in 0..rounds {
        let quiet = || lookups(&t, &format!("q{round}"), n);
        let blocking = || -> anyhow::Result<((f64, u64), u64)> {
            std::thread::scope(|s| {
                let asker = s.spawn(|| {
                    t.client(&[
                        "lookup-many",
                        LOCAL_RESOLVER,
                        &format!("a{round}.army.ml"),
                        "10",
                        "100",
                    ])
                });
                std::thread::sleep(Duration::from_millis(50));
                let l = lookups(&t, &format!("b{round}"), n)?;
                let asked: serde_json::Value = serde_json::from_str(
                    &asker
                        .join()
                        .map_err(|_| anyhow::anyhow!("asker panicked"))??,
                )?;
                Ok((l, asked["timeouts"].as_u64().unwrap_or(0)))
            })
        };
        // Alternate which goes first, so drift cancels out.
        let (q, (b, dropped)) = if round % 2 == 0 {
            (quiet()?, blocking()?)
        } else {
            let b = blocking()?;
            (quiet()?, b)
        };
        eprintln!(
            "round {round}: p50 {:.0} µs blocking, {:.0} µs quiet",
            b.0, q.0
        );
        ratios.push(b.0 / q.0);
        unanswered += q.1 + b.1;
        asked_dropped += dropped;
    }
    println!(
        "{}",
        serde_json::json!({
            "measurement": "resolver_ratio",
            "rounds": rounds,
            "lookups_per_round": n,
            "median_ratio": (median(ratios) * 1000.0).round() / 1000.0,
            "unanswered": unanswered,
            "lookalike_answers_dropped": asked_dropped,
            "lookalike_asks": u64::from(rounds) * 10,
        })
    );
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
    Ok(())
}
