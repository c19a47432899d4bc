//! Enforcement under attack, without an MTA: learned blocks lapse on their TTL across an
//! agent restart and with no agent at all, an address keeps every name it was learned for
//! (a v4-mapped connect too), and a flood of lookalike names cannot stop the next one
//! from being blocked. Real Unbound and the test DNS responder in namespaces; the real
//! release agent; the kernel's refusals and dropped answers are what is asserted.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use mxsentry_tests::{
    Agent, Topology,
    agent::{test_pin_dir, test_state_dir},
    mail::{LOOKALIKE_MX, LabOptions, MailLab, host_zone, mx_zone},
    require_privileges,
    topology::SRV4,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A config protecting `entries` with the block action, in `mode`, with `extra` TOML.
fn config(path: &Path, state: &Path, mode: &str, entries: &[&str], extra: &str) {
    let protect: Vec<String> = entries
        .iter()
        .map(|e| format!("{{ entry = \"{e}\", action = \"block\" }}"))
        .collect();
    let text = format!(
        "[agent]\nmode = \"{mode}\"\nstate_dir = \"{}\"\n{extra}\n[policy]\nprotect = [{}]\n",
        state.display(),
        protect.join(", ")
    );
    std::fs::write(path, text).unwrap();
}

/// `mxprobe dns udp` against `server`: whether an answer came back.
fn answered(t: &Topology, server: &str, name: &str, qtype: &str) -> bool {
    let v = json(
        &t.client(&["dns", "udp", server, name, qtype, "700"])
            .unwrap(),
    );
    !v["answer"].is_null()
}

fn connect(t: &Topology, addr: &str) -> String {
    let v = json(&t.client(&["connect", addr]).unwrap());
    v["result"].as_str().unwrap_or_default().to_string()
}

/// The learned entries `mxsentry ctl blocks` lists in the kernel now.
fn learned(agent: &Agent) -> Vec<Value> {
    agent
        .ctl(&["blocks"])
        .unwrap_or_default()
        .lines()
        .map(json)
        .filter(|v| v["origin"] == "learned")
        .collect()
}

/// Waits until `pred` holds, polling every 100 ms; false when `timeout` passes first.
fn eventually(timeout: Duration, pred: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    pred()
}

/// The lab's zones (TTL 5) plus a provider's mail host shared by a lookalike and a
/// legitimate domain, and a lookalike no preload covers.
fn zones() -> String {
    [
        host_zone("mx.provider.net", LOOKALIKE_MX, 5),
        mx_zone("partner.org", Some("mx.provider.net"), LOOKALIKE_MX, 5),
        mx_zone("army.mik", None, LOOKALIKE_MX, 5),
    ]
    .concat()
}

#[test]
fn an_address_keeps_every_name_it_was_learned_for_and_a_v4_mapped_connect_keeps_it() {
    if !require_privileges("enforcement_names") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let opts = LabOptions {
        zones: zones(),
        ..LabOptions::default()
    };
    let lab = MailLab::start_with(&mut t, "names", &opts).unwrap();
    let dns = format!("{}:53", SRV4[0]);
    let smtp = format!("{LOOKALIKE_MX}:25");
    let state = test_state_dir("names");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor", &["army.mil"], "");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let args = ["--config", cfgs.as_str(), "--cgroup", cg.as_str()];
    let mut agent = Agent::start(&test_pin_dir("names"), &args).unwrap();

    // Two names on one address: a lookalike's mail host, then a legitimate domain's
    // (a shared provider). The later clean answer does not hide the lookalike.
    assert!(answered(&t, &dns, "mx.army.ml", "A"));
    assert!(answered(&t, &dns, "mx.provider.net", "A"));
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "dns_packet"
                && v["direction"] == "ingress"
                && v["src"] == dns.as_str()
                && v["qname_hash"]
                    == format!(
                        "{:016x}",
                        mxsentry::kernel::maps::name_hash("mx.provider.net").unwrap()
                    )
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(connect(&t, &smtp), "ok");
    let d = agent
        .wait_for(WAIT, |v| {
            v["event"] == "detection" && v["domain"] == "army.ml"
        })
        .expect("a delivery to the lookalike is reported though a clean name shares its host");
    assert_eq!(d["target"], "army.mil", "{d}");
    // The same address through a v4-mapped IPv6 connect keeps its attribution.
    assert_eq!(connect(&t, &format!("[::ffff:{LOOKALIKE_MX}]:25")), "ok");
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "detection"
                && v["domain"] == "army.ml"
                && v["address"] == format!("::ffff:{LOOKALIKE_MX}")
        })
        .expect("a v4-mapped connect keeps its attribution");
    agent.stop(libc::SIGTERM).unwrap();
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn learned_blocks_lapse_on_their_ttl_across_a_restart_and_with_no_agent() {
    if !require_privileges("enforcement_ttl") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let opts = LabOptions {
        zones: zones(),
        ..LabOptions::default()
    };
    let lab = MailLab::start_with(&mut t, "ttl", &opts).unwrap();
    let dns = format!("{}:53", SRV4[0]);
    let smtp = format!("{LOOKALIKE_MX}:25");
    let state = test_state_dir("ttl");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    // Answers believed for their own 5 s; a name blocked before its answer for 5 s too.
    let cache = "[cache]\nttl_floor_secs = 1\nttl_ceiling_secs = 5\n";
    config(&cfg, &state, "monitor", &["army.mil"], cache);
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let pins = test_pin_dir("ttl");
    let args = [
        "--config",
        cfgs.as_str(),
        "--cgroup",
        cg.as_str(),
        "--keep-attached",
    ];
    let mut agent = Agent::start(&pins, &args).unwrap();

    // Restart in between: a lookalike's exclusive host is learned (the lookalike
    // `army.mik` is no likely slip: only its lookup blocks it), then enforced.
    assert!(answered(&t, &dns, "mx.army.mik", "A"));
    let learned_at = Instant::now();
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "lookalike_lookup" && v["domain"] == "mx.army.mik"
        })
        .unwrap();
    agent.ctl(&["mode", "enforce"]).unwrap();
    assert!(
        eventually(WAIT, || connect(&t, &smtp) == "eperm"),
        "the learned address is not refused"
    );
    agent.stop(libc::SIGTERM).unwrap();
    std::mem::forget(agent); // its Drop would detach the pins
    let mut agent = Agent::start(&pins, &args).unwrap();
    agent.ctl(&["mode", "enforce"]).unwrap();
    let lapse = learned_at + Duration::from_secs(6);
    std::thread::sleep(lapse.saturating_duration_since(Instant::now()));
    assert_eq!(
        connect(&t, &smtp),
        "ok",
        "a learned address block outlived its TTL across a restart"
    );
    assert!(
        eventually(Duration::from_secs(2), || learned(&agent).is_empty()),
        "learned entries still in the kernel after their TTL: {:?}",
        learned(&agent)
    );

    // Killed, nothing restarted: learned blocks lapse in the kernel by themselves. In
    // enforce mode the lookalike's own lookups are dropped now...
    assert!(!answered(&t, &dns, "army.mik", "MX"));
    let learned_at = Instant::now();
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "lookalike_lookup"
                && v["domain"] == "army.mik"
                && v["name_blocked"] == true
        })
        .unwrap();
    assert!(
        !answered(&t, &dns, "army.mik", "MX"),
        "learned name block not enforced"
    );
    // ...and an address learned from a delivered answer (back to monitor for a moment).
    agent.ctl(&["mode", "monitor"]).unwrap();
    assert!(answered(&t, &dns, "mx.army.ml", "A"));
    std::thread::sleep(Duration::from_millis(300));
    agent.ctl(&["mode", "enforce"]).unwrap();
    assert!(
        eventually(WAIT, || connect(&t, &smtp) == "eperm"),
        "the learned address is not refused"
    );
    let killed_at = Instant::now();
    agent.signal(libc::SIGKILL);
    assert_eq!(connect(&t, &smtp), "eperm", "no agent: still enforcing");
    let lapse = learned_at.max(killed_at) + Duration::from_secs(6);
    std::thread::sleep(lapse.saturating_duration_since(Instant::now()));
    assert_eq!(
        connect(&t, &smtp),
        "ok",
        "a learned address block outlived its TTL with no agent"
    );
    assert!(
        answered(&t, &dns, "army.mik", "MX"),
        "a learned name block outlived its TTL with no agent"
    );
    // The likely slips stay blocked: their lease outlives a crash, not a removal.
    assert!(
        !answered(&t, &dns, "army.ml", "MX"),
        "a preloaded slip lapsed"
    );
    drop(agent);
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn a_flood_of_lookalike_names_does_not_stop_the_next_lookalike_from_being_blocked() {
    if !require_privileges("enforcement_flood") {
        return;
    }
    let t = Topology::with_dns().unwrap();
    let dns = format!("{}:53", SRV4[0]);
    let state = test_state_dir("flood");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    // Answers believed for 5 minutes at least: the other target's learned block must
    // not lapse on its TTL while the flood is under way.
    let cache = "[cache]\nttl_floor_secs = 300\n";
    config(&cfg, &state, "enforce", &["army.mil", "mod.gov.uk"], cache);
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut agent = Agent::start_quiet(
        &test_pin_dir("flood"),
        &["--config", &cfgs, "--cgroup", &cg],
    )
    .unwrap();
    // A lookalike of another protected entry, learned before the flood.
    answered(&t, &dns, "army.mik", "A");
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "lookalike_lookup"
                && v["domain"] == "army.mik"
                && v["name_blocked"] == true
        })
        .unwrap();
    // 80,000 distinct lookalike names under one protected entry, each needing its own
    // entry (`<n>.mod.gov.uk.com`: the lookalike part has four labels), more than the
    // name map holds.
    let n = 80_000;
    t.client(&["query-many", &dns, "mod.gov.uk.com", &n.to_string(), "40"])
        .unwrap();
    // Lookup lines are rate-limited in a flood (evidence is not): the lookups counter
    // says when the agent is through it (all counted, or no longer moving: a full ring
    // is counted, not fatal).
    let lookups = r#"mxsentry_lookalike_lookups_total{rule="suffix-appended",target="mod.gov.uk"}"#;
    let (mut last, deadline) = (-1.0, Instant::now() + Duration::from_secs(90));
    while Instant::now() < deadline {
        let seen = agent.metric(lookups).unwrap_or(0.0);
        if seen >= n as f64 || seen == last {
            break;
        }
        last = seen;
        std::thread::sleep(Duration::from_secs(1));
    }
    let lost = agent.metric(r#"mxsentry_events_lost_total{kind="dns"}"#);
    eprintln!("flood: {last} lookups seen, {lost:?} DNS events lost");
    // The next lookalike: blocked as soon as the agent has seen its query (its first
    // answer races the agent: an address lookup is not held).
    let next = "fresh.mod.gov.uk.com";
    answered(&t, &dns, next, "A");
    let looked = agent
        .wait_for(Duration::from_secs(20), |v| {
            v["event"] == "lookalike_lookup" && v["domain"] == next
        })
        .unwrap();
    assert_eq!(looked["name_blocked"], true, "{looked}");
    assert!(
        !answered(&t, &dns, next, "A"),
        "the next lookalike's answer passed"
    );
    // The other entry's block survived the flood; so did the likely slips.
    assert!(
        !answered(&t, &dns, "army.mik", "A"),
        "another target's block was evicted"
    );
    assert!(
        !answered(&t, &dns, "army.ml", "MX"),
        "a preloaded slip was evicted"
    );
    assert_eq!(
        agent.metric("mxsentry_map_update_errors_total").unwrap(),
        0.0
    );
    let evicted = agent
        .metric(r#"mxsentry_block_evictions_total{target="mod.gov.uk"}"#)
        .unwrap();
    assert!(evicted > 0.0, "no eviction counted");
    assert_eq!(
        agent
            .metric(r#"mxsentry_block_evictions_total{target="army.mil"}"#)
            .unwrap(),
        0.0
    );
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "blocks_evicted" && v["target"] == "mod.gov.uk"
        })
        .expect("evictions logged");
    agent.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}

#[test]
fn monitor_says_would_block_for_a_delivery_whose_answer_enforce_drops_however_late_the_agent() {
    if !require_privileges("enforcement_monitor") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let dns = format!("{}:53", SRV4[0]);
    let a = format!("A={}", SRV4[1]);
    t.serve(&["serve-dns", &dns, &a]).unwrap();
    t.serve(&["listen", SRV4[1], "25"]).unwrap();
    let state = test_state_dir("monitor");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor", &["army.mil"], "");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let args = ["--config", cfgs.as_str(), "--cgroup", cg.as_str()];
    let mut agent = Agent::start(&test_pin_dir("monitor"), &args).unwrap();
    // The recipient's MX lookup: from now on its answers would be dropped in enforce.
    assert!(answered(&t, &dns, "army.mik", "MX"));
    agent
        .wait_for(WAIT, |v| {
            v["event"] == "lookalike_lookup"
                && v["domain"] == "army.mik"
                && v["name_blocked"] == true
        })
        .unwrap();
    // The agent falls behind while the host resolves the mail host and connects at once:
    // the address is not in any map at the connect.
    agent.signal(libc::SIGSTOP);
    let looked = answered(&t, &dns, "mx.army.mik", "A");
    let result = connect(&t, &format!("{}:25", SRV4[1]));
    agent.signal(libc::SIGCONT);
    assert!(looked);
    assert_eq!(result, "ok");
    let d = agent
        .wait_for(WAIT, |v| {
            v["event"] == "detection" && v["domain"] == "army.mik"
        })
        .unwrap();
    assert_eq!(
        d["verdict"], "would_block",
        "monitor understates enforce: {d}"
    );
    assert_eq!(d["mechanism"], "dns_answer", "{d}");
    // Which is what enforce mode does with that answer.
    agent.ctl(&["mode", "enforce"]).unwrap();
    assert!(
        !answered(&t, &dns, "mx.army.mik", "A"),
        "enforce let the answer through"
    );
    agent.stop(libc::SIGTERM).unwrap();
    std::fs::remove_dir_all(&state).ok();
}
