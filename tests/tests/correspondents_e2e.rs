//! Correspondents learned from a real MTA. Postfix delivers to three partners
//! (contoso.com, fabrikam.com, adatum.com) and to army.ml, a lookalike of the configured
//! army.mil, on three days (the agent's ledger clock shifted a day per run,
//! `MXSENTRY_CLOCK_OFFSET_SECS`). The partners become established and are protected with
//! no configuration (learned action `block`); army.ml becomes an old friend. In enforce
//! mode the first delivery to fabrikm.com (fabrikam.com's lookalike) stays deferred,
//! reported as a first contact against a learned entry, while army.ml is delivered and
//! reported at info. The ledger survives a restart; nothing is lost when the operator lets
//! the mail go; and seeding a fresh ledger from Postfix's own log gives the live ledger.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use mxsentry_tests::{
    Agent, Topology,
    agent::{agent_bin, test_pin_dir, test_state_dir},
    mail::MailLab,
    require_privileges,
};
use serde_json::Value;

const DAY: u64 = 86_400;

/// army.mil protected with `block`; learning with a low bar so one delivery a day counts,
/// learned entries blocking too.
fn config(path: &Path, state: &Path, mode: &str) {
    let text = format!(
        "[agent]\nmode = \"{mode}\"\nstate_dir = \"{}\"\n\n\
         [policy]\nprotect = [{{ entry = \"army.mil\", action = \"block\" }}]\n\n\
         [learn]\nmin_days = 3\nmin_deliveries = 3\nprotect_top = 10\naction = \"block\"\n\
         save_every_secs = 1\n",
        state.display()
    );
    std::fs::write(path, text).expect("config");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod config");
}

/// Partners, and the configured entry's lookalike that this host mails every day.
const DAILY: [(&str, &str); 4] = [
    ("alice@contoso.com", "mx-protected"),
    ("bob@fabrikam.com", "mx-protected"),
    ("carol@adatum.com", "mx-protected"),
    ("dave@army.ml", "mx-lookalike"),
];

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

/// Sends to `rcpt` and waits until `receiver` holds it.
fn deliver(t: &Topology, lab: &MailLab, rcpt: &str, receiver: &str, subject: &str) {
    lab.send(t, rcpt, subject).expect("send");
    lab.wait(subject, Duration::from_secs(15), || {
        lab.received(receiver, subject) == 1
    })
    .expect("delivered");
}

#[test]
fn postfix_deliveries_teach_the_agent_whom_to_protect_and_whom_never_to_block() {
    if !require_privileges("correspondents_e2e") {
        return;
    }
    let mut t = Topology::new().expect("topology");
    let lab = MailLab::start(&mut t, "corr").expect("mail lab");
    let state = test_state_dir("corr");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = state.join("mxsentry.toml");
    config(&cfg, &state, "monitor");

    // Three days of ordinary mail, in monitor mode.
    for day in 0..3 {
        let mut agent = agent_on(&t, &cfg, day);
        assert_eq!(agent.events("agent_started")[0]["learned"], 0);
        for (i, (rcpt, receiver)) in DAILY.iter().enumerate() {
            deliver(&t, &lab, rcpt, receiver, &format!("day{day}-{i}"));
        }
        if day < 2 {
            agent.collect_for(Duration::from_millis(300));
            agent.stop(libc::SIGTERM).expect("stop");
            continue;
        }
        // The third day makes the partners established: protected within seconds.
        lab.wait("learned", Duration::from_secs(5), || {
            agent
                .metric(r#"mxsentry_protected_entries{source="learned"}"#)
                .is_ok_and(|v| v == 3.0)
        })
        .expect("the three partners protected from the ledger");
        agent.stop(libc::SIGTERM).expect("stop");
    }

    // Enforce, after a restart that keeps the ledger.
    config(&cfg, &state, "enforce");
    let mut agent = agent_on(&t, &cfg, 2);
    assert_eq!(agent.events("agent_started")[0]["learned"], 3);
    // The first mail to a partner's lookalike stays queued: a first contact, learned entry.
    lab.send(&t, "eve@fabrikm.com", "first-contact")
        .expect("send");
    let b = agent
        .wait_for(Duration::from_secs(20), |v| {
            v["event"] == "block" && v["domain"] == "fabrikm.com"
        })
        .expect("the lookalike's delivery refused");
    assert_eq!(b["target"], "fabrikam.com", "{b}");
    assert_eq!(b["source"], "learned", "{b}");
    assert_eq!(b["first_contact"], true, "{b}");
    assert_eq!(b["target_established"], true, "{b}");
    // The old friend that resembles army.mil is delivered, reported at info.
    deliver(&t, &lab, "dave@army.ml", "mx-lookalike", "old-friend");
    let d = agent
        .wait_for(Duration::from_secs(3), |v| {
            v["event"] == "detection" && v["domain"] == "army.ml"
        })
        .expect("the old friend's delivery reported");
    assert_eq!(d["established"], true, "{d}");
    assert_eq!(d["severity"], "info", "{d}");
    assert_eq!(d["verdict"], "allowed", "{d}");
    assert_eq!(
        lab.received("mx-lookalike", "first-contact"),
        0,
        "the lookalike got the mail"
    );

    // Nothing lost: the operator lets it go. Postfix must have given up on its attempt
    // first: a flush while that delivery is still in flight does not reach it, and its
    // next retry is minutes away (CI once flushed 1 s early, and the mail stayed queued).
    lab.wait("first contact deferred", Duration::from_secs(30), || {
        lab.log_for("eve@fabrikm.com")
            .iter()
            .any(|l| l.contains("status=deferred"))
    })
    .expect("the lookalike's mail deferred");
    config(&cfg, &state, "monitor");
    agent
        .wait_for(Duration::from_secs(5), |v| {
            v["event"] == "config_reloaded" && v["mode"] == "monitor"
        })
        .expect("reloaded");
    lab.flush().expect("flush");
    lab.wait("released", Duration::from_secs(30), || {
        lab.received("mx-lookalike", "first-contact") == 1
    })
    .expect("the held mail delivered once released");
    agent.collect_for(Duration::from_millis(500));
    agent.stop(libc::SIGTERM).expect("stop");

    // Postfix's own log, imported into a fresh ledger, says the same as the live one.
    let live = ledger(&state);
    let expected: BTreeMap<String, u64> = [
        ("contoso.com", 3),
        ("fabrikam.com", 3),
        ("adatum.com", 3),
        ("army.ml", 4),
        ("fabrikm.com", 1),
    ]
    .into_iter()
    .map(|(d, n)| (d.to_string(), n))
    .collect();
    assert_eq!(live, expected);
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
