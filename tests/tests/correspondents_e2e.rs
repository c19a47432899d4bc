//! Correspondents learned from a real MTA: Postfix delivers to army.mil on three days
//! (the agent's ledger clock shifted a day per run, `MXSENTRY_CLOCK_OFFSET_SECS`), with no
//! protected entry configured. army.mil becomes an established correspondent and is
//! protected without configuration; the first delivery to its lookalike army.ml is a
//! critical first contact; the ledger survives restarts; and seeding a fresh ledger from
//! Postfix's own log gives the same domains and counts as the live one.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use mxsentry_tests::{
    Agent, Topology,
    agent::{agent_bin, test_pin_dir, test_state_dir},
    mail::MailLab,
    require_privileges,
};
use serde_json::Value;

const DAY: u64 = 86_400;

/// No configured protection; learning with a low bar so one delivery a day counts.
fn config(path: &Path, state: &Path) {
    let text = format!(
        "[agent]\nmode = \"monitor\"\nstate_dir = \"{}\"\n\n[policy]\nintentionally_empty = true\n\n\
         [learn]\nmin_days = 3\nmin_deliveries = 3\nprotect_top = 10\nsave_every_secs = 1\n",
        state.display()
    );
    std::fs::write(path, text).expect("config");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod config");
}

/// The agent with its ledger clock `day` days ahead.
fn agent_on(t: &Topology, cfg: &Path, day: u64) -> Agent {
    let offset = (day * DAY).to_string();
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    Agent::start_env(
        &test_pin_dir("corr"),
        &["--config", &cfgs, "--cgroup", &cg],
        &[("MXSENTRY_CLOCK_OFFSET_SECS", &offset)],
    )
    .expect("agent")
}

/// `mxsentry correspondents --state-dir STATE list --json`: domain → deliveries.
fn ledger(state: &Path) -> BTreeMap<String, u64> {
    let out = Command::new(agent_bin().expect("agent binary"))
        .args(["correspondents", "--state-dir"])
        .arg(state)
        .args(["list", "--json"])
        .output()
        .expect("correspondents list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .map(|v| {
            (
                v["domain"].as_str().unwrap_or_default().to_string(),
                v["deliveries"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn postfix_deliveries_teach_the_agent_whom_to_protect_and_a_first_contact_pages() {
    if !require_privileges("correspondents_e2e") {
        return;
    }
    let mut t = Topology::new().expect("topology");
    let lab = MailLab::start(&mut t, "corr").expect("mail lab");
    let state = test_state_dir("corr");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state);

    // Days 0 and 1: one delivery each, nothing protected yet.
    for day in 0..2 {
        let mut agent = agent_on(&t, &cfg, day);
        assert_eq!(agent.events("agent_started")[0]["learned"], 0);
        let subject = format!("day{day}");
        lab.send(&t, "alice@army.mil", &subject).expect("send");
        lab.wait("delivery", Duration::from_secs(15), || {
            lab.received("mx-protected", &subject) == 1
        })
        .expect("delivered");
        agent.collect_for(Duration::from_millis(500));
        agent.stop(libc::SIGTERM).expect("stop");
    }

    // Day 2: the third day makes army.mil established; it is protected within seconds.
    let mut agent = agent_on(&t, &cfg, 2);
    lab.send(&t, "alice@army.mil", "day2").expect("send");
    lab.wait("delivery", Duration::from_secs(15), || {
        lab.received("mx-protected", "day2") == 1
    })
    .expect("delivered");
    lab.wait("learned", Duration::from_secs(5), || {
        agent
            .metric(r#"mxsentry_protected_entries{source="learned"}"#)
            .is_ok_and(|v| v == 1.0)
    })
    .expect("army.mil protected from the ledger");

    // The first delivery to its lookalike: a critical first contact, from a learned entry.
    lab.send(&t, "bob@army.ml", "first-contact").expect("send");
    lab.wait("lookalike delivery", Duration::from_secs(15), || {
        lab.received("mx-lookalike", "first-contact") == 1
    })
    .expect("delivered (learned entries alert)");
    let d = agent
        .wait_for(Duration::from_secs(3), |v| v["event"] == "detection")
        .expect("detection");
    assert_eq!(d["domain"], "army.ml", "{d}");
    assert_eq!(d["target"], "army.mil", "{d}");
    assert_eq!(d["source"], "learned", "{d}");
    assert_eq!(d["action"], "alert", "{d}");
    assert_eq!(d["first_contact"], true, "{d}");
    assert_eq!(d["target_established"], true, "{d}");
    assert_eq!(d["severity"], "critical", "{d}");
    assert_eq!(
        agent
            .metric(r#"mxsentry_lookalike_first_contacts_total{target="army.mil",target_established="true"}"#)
            .expect("first contacts"),
        1.0
    );
    agent.stop(libc::SIGTERM).expect("stop");

    // A restart keeps the ledger, and so the learned entry.
    let mut agent = agent_on(&t, &cfg, 2);
    assert_eq!(agent.events("agent_started")[0]["learned"], 1);
    agent.stop(libc::SIGTERM).expect("stop");

    // Postfix's own log, imported into a fresh ledger, says the same as the live one.
    let live = ledger(&state);
    assert_eq!(
        live,
        BTreeMap::from([("army.mil".to_string(), 3), ("army.ml".to_string(), 1)])
    );
    let seeded = test_state_dir("corr-seeded");
    let _ = std::fs::remove_dir_all(&seeded);
    let out = Command::new(agent_bin().expect("agent binary"))
        .args(["correspondents", "--state-dir"])
        .arg(&seeded)
        .arg("import")
        .arg(lab.dir.join("maillog"))
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ledger(&seeded), live);
    drop(lab);
    std::fs::remove_dir_all(&state).ok();
    std::fs::remove_dir_all(&seeded).ok();
}
