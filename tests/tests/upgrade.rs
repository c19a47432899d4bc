//! Live program upgrades and rollbacks (issue 14): another build of the agent (the
//! `upgrade-variant` build: other connect programs, another capacity of RESOLVER_TGIDS)
//! attached with `--keep-attached`, then this build started on its pins, then the other
//! build again. A client hammers blocked addresses throughout; the kernel must run the
//! starting build's programs, keep every entry of every map, and never let a blocked
//! connect through. Real agents, real kernel; `bpftool` is the witness.

use std::{collections::BTreeMap, path::Path, thread::JoinHandle, time::Duration};

use mxsentry_tests::{
    Agent, Topology,
    agent::{agent_bin, test_pin_dir, test_state_dir, write_config},
    pins::{Attached, entries, prog_maps, programs_on, variant_bin, wait_gone},
    require_privileges,
    topology::{SRV4, SRV6},
};
use sensor_common::{
    Program,
    maps::{BLOCK_POLICY, BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6, MODE, RESOLVER_TGIDS},
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);
/// How long each hammer runs: across a whole agent start.
const HAMMER_MS: &str = "5000";

/// The maps whose every entry must survive, and RESOLVER_TGIDS (the one whose capacity
/// differs between the builds: recreated, its entries copied).
const KEPT: [&str; 4] = [BLOCKED_V4, BLOCKED_V6, BLOCKED_NAMES, MODE];

fn snapshot(pin: &Path) -> BTreeMap<&'static str, Vec<String>> {
    KEPT.iter()
        .chain([&RESOLVER_TGIDS])
        .map(|m| {
            (
                *m,
                entries(&pin.join("maps").join(m)).expect("bpftool map dump"),
            )
        })
        .collect()
}

/// A block-map entry (`bpftool` bytes: `key = value`, the value a `BlockEntry`) split
/// into what an upgrade must keep as it is and the policy lease's expiry, which every
/// starting agent renews (`None` for other entries, whose expiry is kept as it is).
fn split_lease(entry: &str) -> (String, Option<u64>) {
    let Some((key, value)) = entry.split_once(" = ") else {
        return (entry.to_string(), None);
    };
    let bytes: Vec<u8> = serde_json::from_str::<Vec<String>>(value)
        .unwrap_or_default()
        .iter()
        .filter_map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).ok())
        .collect();
    if bytes.len() != 16 {
        return (entry.to_string(), None);
    }
    let flags = u32::from_ne_bytes(bytes[..4].try_into().expect("4 bytes"));
    if flags & BLOCK_POLICY == 0 {
        return (entry.to_string(), None);
    }
    let expires = u64::from_ne_bytes(bytes[8..].try_into().expect("8 bytes"));
    (format!("{key} = {:?} lease", &bytes[..8]), Some(expires))
}

/// Every entry of `old` is in `new`: the same, or a policy entry whose lease was renewed
/// (its expiry later, never earlier).
fn kept(what: &str, m: &str, old: &[String], new: &[String]) {
    let (old, new): (Vec<_>, Vec<_>) = (
        old.iter().map(|e| split_lease(e)).collect(),
        new.iter().map(|e| split_lease(e)).collect(),
    );
    let strip = |v: &[(String, Option<u64>)]| v.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(strip(&old), strip(&new), "{what}: {m} changed");
    for ((_, before), (e, after)) in old.iter().zip(&new) {
        assert!(
            after >= before,
            "{what}: {m}: the lease of {e} was shortened"
        );
    }
}

/// Connects to both blocked addresses, 100 µs apart, for `HAMMER_MS`: the outcomes.
fn hammer(t: &Topology) -> JoinHandle<Value> {
    let v4 = format!("{}:25", SRV4[0]);
    let v6 = format!("[{}]:25", SRV6[0]);
    let mut cmd = t.client_command(&["connect-loop", HAMMER_MS, "100", &v4, &v6]);
    std::thread::spawn(move || {
        let out = cmd.output().expect("hammer");
        assert!(
            out.status.success(),
            "hammer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("hammer JSON")
    })
}

/// Starts `bin` on the pins over `t`'s cgroup, enforcing, keeping its programs attached.
fn start(t: &Topology, bin: &Path, pin: &Path, cfg: &Path, keep: bool) -> Agent {
    let (cg, cfg) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let mut args = vec!["--config", cfg.as_str(), "--cgroup", cg.as_str()];
    if keep {
        args.push("--keep-attached");
    }
    Agent::start_quiet_as(bin, pin, &args).expect("agent start")
}

/// Checks a switch: every blocked connect refused while it happened, the kernel now
/// running `now` where the programs differ from `before`, every map entry kept.
fn check_switch(
    what: &str,
    hammered: Value,
    before: &[Attached],
    now: &[Attached],
    old_maps: &BTreeMap<&str, Vec<String>>,
    new_maps: &BTreeMap<&str, Vec<String>>,
) {
    eprintln!("{what}: hammered {hammered}");
    let refused = hammered["eperm"].as_u64().unwrap_or(0);
    assert_eq!(
        hammered["ok"],
        Value::Null,
        "{what}: a blocked connect went through: {hammered}"
    );
    assert_eq!(hammered["other"], Value::Null, "{what}: {hammered}");
    assert!(refused > 1000, "{what}: the hammer barely ran: {hammered}");
    assert_eq!(now.len(), Program::ALL.len(), "{what}: {now:?}");
    for (b, n) in before.iter().zip(now) {
        assert_eq!(b.name, n.name);
        if b.name.starts_with("mx_connect") {
            assert_ne!(
                b.tag, n.tag,
                "{what}: {} still runs the old instructions",
                n.name
            );
            assert_ne!(b.id, n.id, "{what}: {} not switched", n.name);
        }
    }
    for m in KEPT {
        kept(what, m, &old_maps[m], &new_maps[m]);
    }
    for e in &old_maps[RESOLVER_TGIDS] {
        assert!(
            new_maps[RESOLVER_TGIDS].contains(e),
            "{what}: {e} lost from RESOLVER_TGIDS"
        );
    }
}

fn started_line(a: &Agent) -> Value {
    a.events("agent_started")[0].clone()
}

#[test]
fn upgrade_and_rollback_switch_the_programs_keep_every_block_and_never_let_a_blocked_connect_through()
 {
    if !require_privileges("upgrade") {
        return;
    }
    let (current, other) = (
        agent_bin().expect("agent"),
        variant_bin().expect("variant build"),
    );
    let mut t = Topology::with_dns().expect("topology");
    t.serve(&["listen", SRV4[0], "25"]).expect("v4 listener");
    t.serve(&["listen", SRV6[0], "25"]).expect("v6 listener");
    let (pin, state) = (test_pin_dir("upgrade"), test_state_dir("upgrade"));
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = state.join("mxsentry.toml");
    write_config(&cfg, &state, "enforce", "").expect("config");

    // The running build: blocks learned (preloaded lookalikes of army.mil, two addresses),
    // a local resolver listed by the bind hook.
    let mut old = start(&t, &other, &pin, &cfg, true);
    old.ctl(&["block-addr", SRV4[0], "--enforce"])
        .expect("block v4");
    old.ctl(&["block-addr", SRV6[0], "--enforce"])
        .expect("block v6");
    let upstream = format!("{}:53", SRV4[0]);
    let (resolver, _) = t
        .serve_in_cgroup(&["forward-dns", "127.0.0.2:53", &upstream, "connected"])
        .expect("resolver");
    old.wait_for(WAIT, |v| {
        v["event"] == "local_resolver" && v["tgid"] == resolver
    })
    .expect("resolver listed");
    let maps0 = snapshot(&pin);
    assert!(maps0[BLOCKED_NAMES].len() > 10, "no lookalikes preloaded");
    let progs0 = programs_on(&t.cgroup).expect("bpftool");
    old.stop(libc::SIGTERM).expect("stop the old build");
    std::mem::forget(old); // its Drop would detach what the upgrade keeps

    // Upgrade, hammered.
    let h = hammer(&t);
    std::thread::sleep(Duration::from_millis(500));
    let mut new = start(&t, &current, &pin, &cfg, true);
    let hammered = h.join().expect("hammer thread");
    let started = started_line(&new);
    for p in ["mx_connect4", "mx_connect6"] {
        assert_eq!(started["programs"][p], "upgraded", "{started}");
    }
    assert_eq!(started["migrated"][0]["map"], RESOLVER_TGIDS, "{started}");
    assert!(
        started["migrated"][0]["copied"].as_u64() >= Some(1),
        "{started}"
    );
    let (progs1, maps1) = (programs_on(&t.cgroup).expect("bpftool"), snapshot(&pin));
    check_switch("upgrade", hammered, &progs0, &progs1, &maps0, &maps1);
    // The old build's switched programs and its replaced map are gone from the kernel.
    let replaced: Vec<u64> = progs0
        .iter()
        .filter(|p| !progs1.contains(p))
        .map(|p| p.id)
        .collect();
    wait_gone(&replaced, &[]).expect("old programs left");
    new.stop(libc::SIGTERM).expect("stop the new build");
    std::mem::forget(new);

    // Rollback, hammered: the other build again, with the same guarantees.
    let h = hammer(&t);
    std::thread::sleep(Duration::from_millis(500));
    let back = start(&t, &other, &pin, &cfg, false);
    let hammered = h.join().expect("hammer thread");
    let started = started_line(&back);
    assert_eq!(started["programs"]["mx_connect4"], "upgraded", "{started}");
    let (progs2, maps2) = (programs_on(&t.cgroup).expect("bpftool"), snapshot(&pin));
    check_switch("rollback", hammered, &progs1, &progs2, &maps1, &maps2);
    for (a, b) in progs0.iter().zip(&progs2) {
        assert_eq!(
            a.tag, b.tag,
            "the rollback does not run the old build's {}",
            a.name
        );
    }

    // And nothing is left once the rolled-back agent detaches.
    let ids: Vec<u64> = progs2.iter().map(|p| p.id).collect();
    let mut maps: Vec<u64> = ids
        .iter()
        .flat_map(|p| prog_maps(*p).expect("maps"))
        .collect();
    maps.dedup();
    let mut back = back;
    let stopped = back.stop(libc::SIGTERM).expect("stop");
    assert_eq!(stopped["detached"], true);
    assert!(programs_on(&t.cgroup).expect("bpftool").is_empty());
    assert!(!pin.exists());
    wait_gone(&ids, &maps).expect("left in the kernel");
    let _ = std::fs::remove_dir_all(&state);
}
