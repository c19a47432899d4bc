//! `cargo xtask demo`: the real scenario, narrated for a person. Unbound, two receivers and
//! Postfix in network namespaces; mxsentry protecting army.mil; one mail to army.mil and one
//! to its lookalike army.ml, in monitor mode and then in enforce mode. Everything it starts
//! is removed at the end, also on Ctrl-C.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::bail;
use mxsentry_tests::{
    Agent, Topology,
    agent::{test_pin_dir, test_state_dir},
    mail::MailLab,
};
use serde_json::Value;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: cleaning up");
    }
    Ok(())
}

fn wait(what: &str, secs: u64, pred: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred() {
        check_interrupt()?;
        if Instant::now() > deadline {
            bail!("{what}: not within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn config(path: &Path, state: &Path, mode: &str) -> anyhow::Result<()> {
    mxsentry_tests::agent::write_config(path, state, mode, "")
}

fn show_event(v: &Value) {
    let process = v["process"]["comm"]
        .as_str()
        .map(|c| format!(" by {c} (pid {})", v["process"]["tgid"]));
    println!(
        "    {:<10} {} → {}{}\n               {}",
        v["event"].as_str().unwrap_or(""),
        v["domain"].as_str().unwrap_or("?"),
        v["address"].as_str().map_or_else(
            || v["kind"].as_str().unwrap_or("").to_string(),
            String::from
        ),
        process.unwrap_or_default(),
        v["explanation"].as_str().unwrap_or("")
    );
}

fn show_state(agent: &Agent, lab: &MailLab, round: &str) -> anyhow::Result<()> {
    let metric = |s: &str| agent.metric(s).unwrap_or(0.0);
    println!(
        "  receivers:  army.mil's MX got {}, army.ml's MX got {}",
        lab.received("mx-protected", round),
        lab.received("mx-lookalike", round)
    );
    let queue = lab.queue()?;
    let queued: Vec<String> = queue
        .iter()
        .map(|m| {
            let rcpt = m["recipients"][0]["address"].as_str().unwrap_or("?");
            let why = m["recipients"][0]["delay_reason"].as_str().unwrap_or("");
            format!(
                "{rcpt} ({}: {why})",
                m["queue_name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    println!(
        "  Postfix queue: {}",
        if queued.is_empty() {
            "empty".to_string()
        } else {
            queued.join("; ")
        }
    );
    println!(
        "  metrics:    detections_total{{target=\"army.mil\"}} {}, blocked_total{{kind=\"connect\"}} {}, blocked_total{{kind=\"dns_answer\"}} {}",
        metric(r#"mxsentry_detections_total{action="block",rule="suffix-typo",target="army.mil"}"#),
        metric(r#"mxsentry_blocked_total{kind="connect"}"#),
        metric(r#"mxsentry_blocked_total{kind="dns_answer"}"#)
    );
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    println!(
        "mxsentry demo: a real Postfix, a real resolver, two real receivers, in network namespaces.\n"
    );
    let mut t = Topology::new()?;
    println!(
        "1. Unbound serves army.mil (MX mx.army.mil) and its lookalike army.ml (MX mail.army.ml, a CNAME);"
    );
    println!("   one SMTP receiver per domain records what it gets; Postfix delivers by MX.");
    let lab = MailLab::start(&mut t, "demo")?;
    check_interrupt()?;
    let state = test_state_dir("demo");
    std::fs::create_dir_all(&state)?;
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor")?;
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut agent = Agent::start(&test_pin_dir("demo"), &["--config", &cfgs, "--cgroup", &cg])?;
    println!("2. mxsentry runs in monitor mode, protecting army.mil (action: block).\n");

    println!(
        "3. Monitor mode: one mail to alice@army.mil, one to bob@army.ml (one letter dropped)."
    );
    lab.send(&t, "alice@army.mil", "round-1")?;
    lab.send(&t, "bob@army.ml", "round-1")?;
    wait("both deliveries", 20, || {
        lab.received("mx-protected", "round-1") + lab.received("mx-lookalike", "round-1") == 2
    })?;
    let d = agent.wait_for(Duration::from_secs(3), |v| v["event"] == "detection")?;
    println!("  mxsentry said:");
    show_event(&d);
    show_state(&agent, &lab, "round-1")?;

    println!("\n4. Enforce mode (the config file changes; the agent reloads it live).");
    config(&cfg, &state, "enforce")?;
    agent.wait_for(Duration::from_secs(5), |v| {
        v["event"] == "config_reloaded" && v["mode"] == "enforce"
    })?;
    lab.send(&t, "alice@army.mil", "round-2")?;
    lab.send(&t, "bob@army.ml", "round-2")?;
    wait("army.mil delivery", 20, || {
        lab.received("mx-protected", "round-2") == 1
    })?;
    wait("army.ml mail deferred", 40, || {
        lab.queue()
            .is_ok_and(|q| q.iter().any(|m| m["queue_name"] == "deferred"))
    })?;
    agent.collect_for(Duration::from_millis(300));
    println!("  mxsentry said:");
    for b in agent.events("block") {
        show_event(b);
    }
    show_state(&agent, &lab, "round-2")?;
    println!(
        "\n  The mail to army.ml never left: Postfix keeps it queued (deferred), nothing is lost."
    );
    println!("  An operator fixes the address or returns the message; `postqueue -j` finds it.\n");
    agent.stop(libc::SIGTERM)?;
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
    println!("5. Done: namespaces, Postfix, Unbound, receivers and the agent's pins are removed.");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    demo()
}
