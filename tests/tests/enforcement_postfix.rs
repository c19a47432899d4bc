//! Enforcement under attack with a real Postfix resolving through a local caching Unbound
//! (the fastest resolver an agent can race), one mail lab for every phase:
//! - monitor mode says `would_block` for every lookalike delivery enforce mode stops;
//! - a lookalike and a legitimate domain share a provider's mail host: in enforce mode the
//!   legitimate delivery succeeds before and after the lookalike was looked up and after
//!   an agent restart, while the lookalike's mail stays queued;
//! - the race: fresh lookalikes of several classes interleaved with as many fresh
//!   legitimate domains: no lookalike delivered, every legitimate one delivered, none
//!   deferred by a refused connect.

use std::{path::Path, time::Duration};

use mxsentry_tests::{
    Agent, Topology,
    agent::{test_pin_dir, test_state_dir},
    mail::{LOOKALIKE_MX, LabOptions, MailLab, PROTECTED_MX, host_zone, mx_zone},
    require_privileges,
};
use serde_json::Value;

const PROTECTED: [&str; 5] = [
    "army.mil",
    "navy.mil",
    "example.com",
    "contoso.com",
    "mod.gov.uk",
];
const SHARED_HOST: &str = "mx.provider.net";

/// Fresh lookalikes for the monitor phase, none a preloaded slip.
const MONITOR: [&str; 10] = [
    "army.mil.se",
    "navy.mil.fi",
    "example.com.mx",
    "contoso.com.ar",
    "mod.gov.uk.pt",
    "army.nil",
    "navy.mul",
    "cpntoso.com",
    "exanple.com",
    "mod.gob.uk",
];

/// Fresh lookalikes for the race, by class: suffix appended, suffix typo, letters
/// swapped, confusables and other one-letter changes.
const RACE: [&str; 56] = [
    "army.mil.site",
    "navy.mil.xyz",
    "example.com.de",
    "contoso.com.info",
    "mod.gov.uk.fr",
    "army.mil.biz",
    "navy.mil.top",
    "example.com.pl",
    "contoso.com.nl",
    "mod.gov.uk.es",
    "army.mil.ch",
    "army.mill",
    "navy.mli",
    "army.mli",
    "navy.mill",
    "example.cmo",
    "contoso.comm",
    "example.co",
    "contoso.cm",
    "mod.gov.ku",
    "mod.gv.uk",
    "exapmle.com",
    "contoos.com",
    "exmaple.com",
    "contsoo.com",
    "mod.gvo.uk",
    "exampel.com",
    "cotnoso.com",
    "examlpe.com",
    "cnotoso.com",
    "mod.ogv.uk",
    "examp1e.com",
    "exarnple.com",
    "c0ntoso.com",
    "contos0.com",
    "c0nt0so.com",
    "xn--cntoso-wqf.com",
    "xn--exmple-4nf.com",
    "xn--ntoso-iyeu.com",
    "exampie.com",
    "xn--exmple-cua.com",
    "examople.com",
    "exqmple.com",
    "contiso.com",
    "contpso.com",
    "exsmple.com",
    "army.mil.shop",
    "navy.mil.dk",
    "example.com.br",
    "contoso.com.mx",
    "mod.gov.uk.it",
    "army.mil.at",
    "navy.mil.be",
    "example.com.cz",
    "contoso.com.tw",
    "mod.gov.uk.ie",
];

/// A fresh legitimate domain for the race (not under `.test`: Unbound answers that
/// special-use name itself).
fn legit(i: usize) -> String {
    format!("corr{i}.org")
}

/// Zone data: a provider's host shared by `partner*.org` and some lookalikes; every
/// other lookalike on its own host (the lookalike receiver), every other legitimate
/// domain on the protected receiver.
fn zones() -> String {
    let mut z = host_zone(SHARED_HOST, LOOKALIKE_MX, 5);
    z.push_str(&mx_zone("army.kil", Some(SHARED_HOST), LOOKALIKE_MX, 5));
    for p in [
        "partner-a.org",
        "partner-b.org",
        "partner-c.org",
        "partner-d.org",
    ] {
        z.push_str(&mx_zone(p, Some(SHARED_HOST), LOOKALIKE_MX, 5));
    }
    for (i, l) in MONITOR.iter().chain(RACE.iter()).enumerate() {
        let shared = (i % 2 == 0).then_some(SHARED_HOST);
        z.push_str(&mx_zone(l, shared, LOOKALIKE_MX, 5));
    }
    for i in 0..RACE.len() {
        let shared = (i % 2 == 0).then_some(SHARED_HOST);
        z.push_str(&mx_zone(&legit(i), shared, PROTECTED_MX, 5));
    }
    z
}

fn config(path: &Path, state: &Path, mode: &str) {
    let protect: Vec<String> = PROTECTED
        .iter()
        .map(|e| format!("{{ entry = \"{e}\", action = \"block\" }}"))
        .collect();
    let text = format!(
        "[agent]\nmode = \"{mode}\"\nstate_dir = \"{}\"\n\n[policy]\nprotect = [{}]\n",
        state.display(),
        protect.join(", ")
    );
    std::fs::write(path, text).unwrap();
}

fn delivered(lab: &MailLab, subject: &str) -> bool {
    lab.received("mx-protected", subject) + lab.received("mx-lookalike", subject) > 0
}

fn queued(lab: &MailLab, rcpt: &str) -> bool {
    lab.queue().is_ok_and(|q| {
        q.iter().any(|m| {
            m["recipients"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["address"] == rcpt))
        })
    })
}

/// Sends to `rcpt` and waits for delivery; the delivery must not have been deferred
/// (a refused connect, a lost lookup) on the way.
fn deliver(lab: &MailLab, t: &Topology, rcpt: &str, subject: &str) {
    lab.send(t, rcpt, subject).unwrap();
    lab.wait(
        &format!("delivery to {rcpt}"),
        Duration::from_secs(30),
        || delivered(lab, subject),
    )
    .unwrap();
    let deferred: Vec<String> = lab
        .log_for(rcpt)
        .into_iter()
        .filter(|l| l.contains("status=deferred"))
        .collect();
    assert!(deferred.is_empty(), "{rcpt} was deferred: {deferred:?}");
}

/// Sends to a lookalike and waits until Postfix has deferred it.
fn stays_queued(lab: &MailLab, t: &Topology, rcpt: &str, subject: &str) {
    lab.send(t, rcpt, subject).unwrap();
    lab.wait(&format!("{rcpt} deferred"), Duration::from_secs(30), || {
        lab.log_for(rcpt)
            .iter()
            .any(|l| l.contains("status=deferred"))
    })
    .unwrap();
    assert!(!delivered(lab, subject), "{rcpt} was delivered");
}

#[test]
fn monitor_tells_the_truth_shared_hosts_are_never_refused_and_no_lookalike_wins_the_race() {
    if !require_privileges("enforcement_postfix") {
        return;
    }
    let mut t = Topology::new().unwrap();
    let opts = LabOptions {
        local_resolver: true,
        zones: zones(),
        ..LabOptions::default()
    };
    let lab = MailLab::start_with(&mut t, "race", &opts).unwrap();
    let state = test_state_dir("race");
    std::fs::create_dir_all(&state).unwrap();
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let pins = test_pin_dir("race");
    let args = [
        "--config",
        cfgs.as_str(),
        "--cgroup",
        cg.as_str(),
        "--keep-attached",
    ];
    let mut agent = Agent::start_quiet(&pins, &args).unwrap();

    // Monitor: every lookalike delivery goes out and is reported as what enforce mode
    // would do with it.
    for (i, l) in MONITOR.iter().enumerate() {
        let subject = format!("mon-{i}-end");
        lab.send(&t, &format!("bob@{l}"), &subject).unwrap();
    }
    let mut understated = Vec::new();
    for (i, l) in MONITOR.iter().enumerate() {
        let subject = format!("mon-{i}-end");
        lab.wait(
            &format!("monitor delivery to {l}"),
            Duration::from_secs(30),
            || delivered(&lab, &subject),
        )
        .unwrap();
        let d = agent
            .wait_for(Duration::from_secs(5), |v| {
                v["event"] == "detection" && v["domain"] == *l
            })
            .unwrap();
        if d["verdict"] != "would_block" || !d["mechanism"].is_string() {
            understated.push(d);
        }
    }
    assert!(
        understated.is_empty(),
        "monitor understates enforce: {understated:?}"
    );

    // Enforce. The provider's address was learned for lookalikes only so far; the
    // legitimate domain it also serves is delivered all the same.
    config(&cfg, &state, "enforce");
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["mode"] == "enforce"
        })
        .unwrap();
    deliver(&lab, &t, "alice@partner-a.org", "shared-1-end");
    stays_queued(&lab, &t, "bob@army.kil", "look-1-end");
    deliver(&lab, &t, "carol@partner-b.org", "shared-2-end");

    // Restarted (programs and maps kept): the same.
    agent.stop(libc::SIGTERM).unwrap();
    std::mem::forget(agent); // its Drop would detach the pins
    let mut agent = Agent::start_quiet(&pins, &args).unwrap();
    deliver(&lab, &t, "dave@partner-c.org", "shared-3-end");
    lab.flush().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        queued(&lab, "bob@army.kil"),
        "the lookalike's mail left the queue"
    );
    assert!(!delivered(&lab, "look-1-end"));

    // The race: fresh lookalikes and fresh legitimate domains, interleaved.
    for (i, l) in RACE.iter().enumerate() {
        lab.send(&t, &format!("eve@{l}"), &format!("race-l-{i}-end"))
            .unwrap();
        lab.send(
            &t,
            &format!("fred@{}", legit(i)),
            &format!("race-g-{i}-end"),
        )
        .unwrap();
    }
    let all_legit = || (0..RACE.len()).all(|i| delivered(&lab, &format!("race-g-{i}-end")));
    if lab
        .wait(
            "every legitimate delivery",
            Duration::from_secs(90),
            all_legit,
        )
        .is_err()
    {
        let missing: Vec<(String, Vec<String>)> = (0..RACE.len())
            .filter(|i| !delivered(&lab, &format!("race-g-{i}-end")))
            .map(|i| (legit(i), lab.log_for(&format!("fred@{}", legit(i)))))
            .collect();
        let held = agent.metric("mxsentry_answers_held_total");
        panic!("legitimate domains not delivered ({held:?} answers held): {missing:#?}");
    }
    for l in RACE {
        let rcpt = format!("eve@{l}");
        lab.wait(&format!("{rcpt} deferred"), Duration::from_secs(60), || {
            lab.log_for(&rcpt)
                .iter()
                .any(|l| l.contains("status=deferred"))
        })
        .unwrap();
    }
    let slipped: Vec<&str> = RACE
        .iter()
        .enumerate()
        .filter(|(i, _)| delivered(&lab, &format!("race-l-{i}-end")))
        .map(|(_, l)| *l)
        .collect();
    assert!(
        slipped.is_empty(),
        "lookalikes delivered in enforce mode: {slipped:?}"
    );
    let refused: Vec<String> = (0..RACE.len())
        .flat_map(|i| lab.log_for(&format!("fred@{}", legit(i))))
        .filter(|l| l.contains("status=deferred") || l.contains("Operation not permitted"))
        .collect();
    assert!(
        refused.is_empty(),
        "legitimate deliveries deferred: {refused:?}"
    );
    deliver(&lab, &t, "gina@partner-d.org", "shared-4-end");
    let held = agent.metric("mxsentry_answers_held_total").unwrap_or(0.0);
    eprintln!(
        "race: {} lookalikes deferred, {} legitimate domains delivered, {held} answers held for a verdict",
        RACE.len(),
        RACE.len()
    );
    agent.stop(libc::SIGTERM).unwrap();
    let _ = agent.ctl(&["detach"]);
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
}

/// Every name of the race and the monitor phase is a `block` lookalike of the policy, by
/// the engine of the agent under test (a change of the engine shows here first).
#[test]
fn the_race_names_are_lookalikes_and_the_legitimate_ones_are_clean() {
    let bin = mxsentry_tests::agent::agent_bin().unwrap();
    let mut args = vec!["check".to_string(), "--json".to_string()];
    for p in PROTECTED {
        args.push("--protect".into());
        args.push(format!("{p}=block"));
    }
    let names: Vec<String> = MONITOR
        .iter()
        .chain(RACE.iter())
        .chain(["army.kil"].iter())
        .map(|s| s.to_string())
        .chain((0..RACE.len()).map(legit))
        .chain(["partner-a.org".to_string()])
        .collect();
    args.extend(names.iter().cloned());
    let out = std::process::Command::new(bin)
        .args(&args)
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), names.len());
    for (v, n) in lines.iter().zip(&names) {
        let want = if n.starts_with("corr") || n.starts_with("partner") {
            "clean"
        } else {
            "typosquat"
        };
        assert_eq!(v["verdict"], want, "{n}: {v}");
    }
}
