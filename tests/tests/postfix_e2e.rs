//! A real MTA on a real mail path: Postfix resolves through Unbound and delivers by MX to
//! two `smtp-sink` receivers, all in network namespaces, with mxsentry watching Postfix's
//! cgroup. Monitor mode lets both deliveries through and reports the lookalike one;
//! enforce mode keeps the lookalike's mail queued at Postfix — nothing is lost — while the
//! protected domain's mail still goes out.

use std::{path::Path, time::Duration};

use mxsentry_tests::{
    Agent, Topology,
    agent::{self, test_pin_dir, test_state_dir},
    mail::{self, LOCAL_RESOLVER, LabOptions, MailLab},
    require_privileges,
    topology::SRV4,
};
use serde_json::Value;

fn config(path: &Path, state: &Path, mode: &str) {
    agent::write_config(path, state, mode, "").unwrap();
}

/// Nothing lost: the operator lets the mail go (the config back to monitor, written with
/// `extra`), Postfix retries its queue, and the lookalike's MX receives `subject`; then
/// the queue is empty and the agent stops.
fn release_and_finish(mut agent: Agent, lab: MailLab, state: &Path, extra: &str, subject: &str) {
    agent::write_config(&state.join("mxsentry.toml"), state, "monitor", extra).unwrap();
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["mode"] == "monitor"
        })
        .unwrap();
    lab.flush().unwrap();
    lab.wait("released mail delivered", Duration::from_secs(30), || {
        lab.received("mx-lookalike", subject) == 1
    })
    .unwrap();
    lab.wait("queue empty", Duration::from_secs(10), || {
        lab.queue().is_ok_and(|q| q.is_empty())
    })
    .unwrap();
    agent.stop(libc::SIGTERM).unwrap();
    drop(lab);
    std::fs::remove_dir_all(state).ok();
}

fn deferred_for(queue: &[Value], rcpt: &str) -> usize {
    queue
        .iter()
        .filter(|m| m["queue_name"] == "deferred")
        .filter(|m| {
            m["recipients"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["address"] == rcpt))
        })
        .count()
}

#[test]
fn postfix_monitor_reports_the_lookalike_and_enforce_keeps_its_mail_queued_without_loss() {
    if !require_privileges("postfix_e2e") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let lab = MailLab::start(&mut t, "e2e").unwrap();
    let state = test_state_dir("postfix");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut agent = Agent::start(
        &test_pin_dir("postfix"),
        &["--config", &cfgs, "--cgroup", &cg],
    )
    .unwrap();

    // Monitor: both messages are delivered; the lookalike delivery is one detection by smtp.
    lab.send(&t, "alice@army.mil", "m1-protected").unwrap();
    lab.send(&t, "bob@army.ml", "m1-lookalike").unwrap();
    lab.wait("protected delivery", Duration::from_secs(15), || {
        lab.received("mx-protected", "m1-protected") == 1
    })
    .unwrap();
    lab.wait("lookalike delivery", Duration::from_secs(15), || {
        lab.received("mx-lookalike", "m1-lookalike") == 1
    })
    .unwrap();
    let d = agent
        .wait_for(Duration::from_secs(2), |v| v["event"] == "detection")
        .unwrap();
    assert_eq!(d["process"]["comm"], "smtp", "{d}");
    assert_eq!(d["domain"], "army.ml");
    assert_eq!(d["target"], "army.mil");
    assert_eq!(d["rule"], "suffix-typo");
    // The MX host is a CNAME (mail.army.ml → mx.army.ml): either name may carry the address.
    assert!(
        matches!(
            d["route"]["mx_host"].as_str(),
            Some("mail.army.ml" | "mx.army.ml")
        ),
        "{d}"
    );
    assert_eq!(d["route"]["recipient_domain"], "army.ml", "{d}");
    assert_eq!(
        d["explanation"],
        "army.ml looks like army.mil: the suffix \"mil\" lost its \"i\""
    );
    agent.collect_for(Duration::from_millis(500));
    assert_eq!(
        agent.events("detection").len(),
        1,
        "one detection per delivery"
    );
    assert_eq!(
        agent
            .metric(
                r#"mxsentry_detections_total{action="block",rule="suffix-typo",target="army.mil"}"#
            )
            .unwrap(),
        1.0
    );
    // Two SMTP connects on port 25. The lookalike's is `would_block` only if the agent
    // put its address in the map before Postfix connected (a race in monitor mode; in
    // enforce mode the answer itself never arrives).
    assert_eq!(agent.smtp_connects_let_through("ipv4", 25), 2.0);

    // Enforce: the protected domain still gets its mail; the lookalike's stays deferred.
    config(&cfg, &state, "enforce");
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["mode"] == "enforce"
        })
        .unwrap();
    lab.send(&t, "alice@army.mil", "m2-protected").unwrap();
    lab.send(&t, "bob@army.ml", "m2-lookalike").unwrap();
    lab.wait(
        "protected delivery in enforce mode",
        Duration::from_secs(15),
        || lab.received("mx-protected", "m2-protected") == 1,
    )
    .unwrap();
    lab.wait("lookalike mail deferred", Duration::from_secs(30), || {
        lab.queue()
            .is_ok_and(|q| deferred_for(&q, "bob@army.ml") == 1)
    })
    .unwrap();
    assert_eq!(
        lab.received("mx-lookalike", "m2-lookalike"),
        0,
        "the lookalike's MX got the mail"
    );
    let b = agent
        .wait_for(Duration::from_secs(2), |v| v["event"] == "block")
        .unwrap();
    assert_eq!(b["target"], "army.mil", "{b}");
    assert!(
        agent
            .metric(r#"mxsentry_blocked_total{kind="dns_answer"}"#)
            .unwrap()
            >= 1.0
    );

    // Nothing lost: when the operator lets it go (here: back to monitor), it is delivered.
    release_and_finish(agent, lab, &state, "", "m2-lookalike");
}

#[test]
fn ipv6_only_mx_mx_over_tcp_and_an_agent_restart_during_traffic() {
    if !require_privileges("postfix_paths") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let lab = MailLab::start(&mut t, "paths").unwrap();
    let state = test_state_dir("paths");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let pins = test_pin_dir("paths");
    let args = [
        "--config",
        cfgs.as_str(),
        "--cgroup",
        cg.as_str(),
        "--keep-attached",
    ];
    let mut agent = Agent::start(&pins, &args).unwrap();

    // A lookalike whose only MX host has an IPv6 address.
    lab.send(&t, "carol@army.mi", "v6-only").unwrap();
    lab.wait("IPv6 delivery", Duration::from_secs(15), || {
        lab.received("mx-lookalike6", "v6-only") == 1
    })
    .unwrap();
    let d = agent
        .wait_for(Duration::from_secs(2), |v| {
            v["event"] == "detection" && v["domain"] == "army.mi"
        })
        .unwrap();
    assert_eq!(d["address"], mxsentry_tests::mail::LOOKALIKE_MX6, "{d}");
    assert_eq!(d["process"]["comm"], "smtp");
    assert!(agent.smtp_connects_let_through("ipv6", 25) >= 1.0);

    // 30 MX hosts: the UDP answer is truncated and the resolver asks again over TCP.
    lab.send(&t, "dave@arrmy.mil", "over-tcp").unwrap();
    lab.wait(
        "delivery after a TCP MX lookup",
        Duration::from_secs(20),
        || lab.received("mx-lookalike", "over-tcp") == 1,
    )
    .unwrap();
    let d = agent
        .wait_for(Duration::from_secs(2), |v| {
            v["event"] == "detection" && v["domain"] == "arrmy.mil"
        })
        .unwrap();
    assert_eq!(d["rule"], "repetition", "{d}");
    assert!(
        agent
            .events("dns_packet")
            .iter()
            .any(|p| p["transport"] == "tcp" && p["direction"] == "ingress"),
        "no DNS answer over TCP was captured"
    );

    // Enforce, then restart the agent while mail is being sent: the pinned programs and
    // maps keep refusing with no agent running, and the new agent re-adopts them.
    config(&cfg, &state, "enforce");
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["mode"] == "enforce"
        })
        .unwrap();
    lab.send(&t, "erin@army.ml", "during-restart").unwrap();
    let stopped = agent.stop(libc::SIGTERM).unwrap();
    assert_eq!(stopped["detached"], false);
    lab.send(&t, "frank@army.ml", "during-restart").unwrap();
    let mut agent = Agent::start(&pins, &args).unwrap();
    let started = agent.events("agent_started")[0].clone();
    // Every program held, every one re-adopted from its pin (none attached twice).
    assert_eq!(
        started["adopted"],
        sensor_common::Program::ALL.len(),
        "{started}"
    );
    assert_eq!(
        agent.metric("mxsentry_programs_attached").unwrap(),
        sensor_common::Program::ALL.len() as f64
    );
    lab.wait(
        "both queued, none delivered",
        Duration::from_secs(40),
        || {
            lab.queue().is_ok_and(|q| {
                deferred_for(&q, "erin@army.ml") + deferred_for(&q, "frank@army.ml") == 2
            })
        },
    )
    .unwrap();
    assert_eq!(lab.received("mx-lookalike", "during-restart"), 0);
    // The new agent reports only what happens after it started: no detection replayed.
    agent.collect_for(Duration::from_millis(500));
    assert!(
        agent.events("detection").is_empty(),
        "events replayed after re-adoption: {:?}",
        agent.events("detection")
    );
    agent.stop(libc::SIGTERM).unwrap();
    let _ = agent.ctl(&["detach"]);
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
}

/// 1,000 lookups of other names through the local resolver.
fn lookups(t: &Topology, run: &str) -> Value {
    mail::lookups(t, run, 1000).unwrap()
}

/// Waits until the agent has read the last answer of a `lookups` run: 6,000 packets, each
/// also logged raw for the test, can put it behind, and the next phase should start
/// with an idle agent.
fn caught_up(agent: &mut Agent, run: &str) {
    let last = mxsentry::kernel::maps::name_hash(&format!("l999.{run}.other.org")).unwrap();
    let last = format!("{last:016x}");
    agent
        .wait_for(Duration::from_secs(60), |v| {
            v["event"] == "dns_packet" && v["direction"] == "ingress" && v["qname_hash"] == last
        })
        .unwrap();
}

fn assert_all_answered(v: &Value, phase: &str) {
    assert_eq!(v["answered"], 1000, "{phase}: {v}");
    assert_eq!(v["timeouts"], 0, "{phase}: {v}");
}

#[test]
fn local_caching_resolver_keeps_answering_everyone_else_while_the_lookalike_stays_queued() {
    if !require_privileges("postfix_local_resolver") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let opts = LabOptions {
        local_resolver: true,
        ..LabOptions::default()
    };
    let lab = MailLab::start_with(&mut t, "localres", &opts).unwrap();
    let state = test_state_dir("localres");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "enforce");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut agent = Agent::start(
        &test_pin_dir("localres"),
        &["--config", &cfgs, "--cgroup", &cg],
    )
    .unwrap();
    // Unbound was running before the agent: found by the scan.
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "local_resolver" && v["comm"] == "unbound"
        })
        .unwrap();

    let before = lookups(&t, "before");
    assert_all_answered(&before, "before the block");
    caught_up(&mut agent, "before");

    lab.send(&t, "alice@army.mil", "lr-protected").unwrap();
    lab.send(&t, "bob@army.ml", "lr-lookalike").unwrap();
    lab.wait("protected delivery", Duration::from_secs(15), || {
        lab.received("mx-protected", "lr-protected") == 1
    })
    .unwrap();
    lab.wait("lookalike mail deferred", Duration::from_secs(30), || {
        lab.queue()
            .is_ok_and(|q| deferred_for(&q, "bob@army.ml") == 1)
    })
    .unwrap();
    assert_eq!(lab.received("mx-lookalike", "lr-lookalike"), 0);
    let dropped = agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "block" && v["kind"] == "dns_answer"
        })
        .unwrap();
    assert_eq!(dropped["target"], "army.mil", "{dropped}");

    // During the block: Postfix retries and another process keeps asking for the
    // lookalike, while everyone else's lookups go through the same resolver.
    lab.flush().unwrap();
    // A second process asks for names under the lookalike the whole time (each answer
    // dropped, so each waits out its 100 ms timeout).
    let (during, asked) = std::thread::scope(|s| {
        let asker = s.spawn(|| {
            t.client(&["lookup-many", LOCAL_RESOLVER, "ask.army.ml", "30", "100"])
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        let during = lookups(&t, "during");
        (during, asker.join().unwrap())
    });
    let asked: Value = serde_json::from_str(&asked).unwrap();
    assert_eq!(asked["timeouts"], 30, "the lookalike was answered: {asked}");
    assert_all_answered(&during, "during the block");
    caught_up(&mut agent, "during");
    let after = lookups(&t, "after");
    assert_all_answered(&after, "after the block");
    eprintln!(
        "lookups through the local resolver: before {before}, during {during}, after {after}"
    );
    // A resolver that thinks its upstream is failing shows it in timeouts, failures and
    // retries of hundreds of milliseconds, not in percents. On this VM single runs of the
    // same phase swing between ~45 and ~150 µs p50 (CPU placement), so the test bounds
    // the harm in absolute terms, and `cargo xtask bench` measures the ratio (target 5%)
    // over alternating blocked and unblocked rounds (docs/benchmarks.md).
    for (phase, v) in [("before", &before), ("during", &during), ("after", &after)] {
        let p50 = v["p50_us"].as_f64().unwrap();
        assert!(p50 < 1_000.0, "{phase} the block, p50 {p50} µs: {v}");
        assert!(v["p99_us"].as_f64().unwrap() < 20_000.0, "{phase}: {v}");
    }
    // Still queued (deferred, or active in the retry the flush started), not delivered.
    let queue = lab.queue().unwrap();
    assert!(
        queue
            .iter()
            .any(|m| m["recipients"][0]["address"] == "bob@army.ml"),
        "{queue:?}"
    );
    assert_eq!(lab.received("mx-lookalike", "lr-lookalike"), 0);
    // The asker's answers were dropped at the asker; the upstream's answers to Unbound
    // for the same names reached Unbound's exempt upstream socket.
    let kept = agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "dns_packet"
                && v["direction"] == "ingress"
                && v["local_resolver"] == true
                && v["verdict"] == "would_block"
        })
        .unwrap();
    assert_eq!(kept["src"], format!("{}:53", SRV4[0]), "{kept}");

    // Nothing lost: released, it is delivered (Unbound never saw its upstream fail, so
    // it resolves the name at once).
    release_and_finish(agent, lab, &state, "", "lr-lookalike");
}

#[test]
fn an_address_learned_before_enforcement_is_refused_at_connect() {
    if !require_privileges("postfix_cached") {
        return;
    }
    let mut t = Topology::new().unwrap();
    // Postfix reaches army.ml's host through /etc/hosts: it holds the address already,
    // as an MTA with its own DNS cache does, so there is no answer left to drop.
    let opts = LabOptions {
        pinned_route: Some((
            "army.ml".into(),
            "mx.army.ml".into(),
            mxsentry_tests::mail::LOOKALIKE_MX.into(),
        )),
        ..LabOptions::default()
    };
    let lab = MailLab::start_with(&mut t, "cached", &opts).unwrap();
    let state = test_state_dir("cached");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    // Long enough that the learned address outlives the test.
    let keep = "\n[cache]\nttl_floor_secs = 600\n";
    agent::write_config(&cfg, &state, "monitor", keep).unwrap();
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut agent = Agent::start(
        &test_pin_dir("cached"),
        &["--config", &cfgs, "--cgroup", &cg],
    )
    .unwrap();

    // Before enforcement: the host's address is looked up (and answered, in monitor mode).
    let looked = t
        .client(&[
            "dns",
            "udp",
            &format!("{}:53", SRV4[0]),
            "mx.army.ml",
            "A",
            "1500",
        ])
        .unwrap();
    assert!(looked.contains("\"answer\":\""), "{looked}");
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "lookalike_lookup" && v["domain"] == "mx.army.ml"
        })
        .unwrap();

    agent::write_config(&cfg, &state, "enforce", keep).unwrap();
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["mode"] == "enforce"
        })
        .unwrap();
    lab.send(&t, "bob@army.ml", "cached-lookalike").unwrap();
    lab.wait("lookalike mail deferred", Duration::from_secs(30), || {
        lab.queue()
            .is_ok_and(|q| deferred_for(&q, "bob@army.ml") == 1)
    })
    .unwrap();
    assert_eq!(lab.received("mx-lookalike", "cached-lookalike"), 0);
    let b = agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "block" && v["kind"] == "connect"
        })
        .unwrap();
    assert_eq!(b["address"], mxsentry_tests::mail::LOOKALIKE_MX, "{b}");
    assert_eq!(b["process"]["comm"], "smtp", "{b}");
    assert_eq!(b["route"]["recipient_domain"], "army.ml", "{b}");
    assert_eq!(b["target"], "army.mil", "{b}");
    let log = std::fs::read_to_string(lab.dir.join("maillog")).unwrap_or_default();
    assert!(
        log.contains("Operation not permitted"),
        "Postfix did not see the refusal:\n{log}"
    );
    assert_eq!(
        agent
            .metric(r#"mxsentry_blocked_total{kind="connect"}"#)
            .unwrap(),
        1.0
    );

    // Nothing lost: released, it is delivered.
    release_and_finish(agent, lab, &state, keep, "cached-lookalike");
}
