//! The kernel programs alone: the real programs in the real kernel, real traffic
//! between network namespaces. Run single-threaded (they share the kernel).

use std::time::Duration;

use mxsentry_tests::{
    Agent, Topology,
    agent::test_pin_dir,
    require_privileges,
    topology::{SRV4, SRV6},
};
use sensor_common::Program;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A topology with SMTP-port listeners on the first server address of each family.
fn smtp_topology() -> Topology {
    let mut t = Topology::new().expect("topology");
    t.serve(&["listen", SRV4[0], "25", "465", "587", "8080"])
        .expect("v4 listeners");
    t.serve(&["listen", SRV6[0], "25", "465", "587"])
        .expect("v6 listeners");
    t
}

fn agent(t: &Topology, tag: &str, extra: &[&str]) -> Agent {
    let cg = t.cgroup.display().to_string();
    let mut args = vec!["--cgroup", cg.as_str()];
    args.extend_from_slice(extra);
    Agent::start(&test_pin_dir(tag), &args).expect("agent start")
}

fn connect(t: &Topology, addr: &str) -> (String, u64) {
    let v = json(&t.client(&["connect", addr]).expect("client"));
    (
        v["result"].as_str().unwrap_or_default().to_string(),
        v["pid"].as_u64().unwrap_or(0),
    )
}

#[test]
fn connect_events_for_smtp_ports_carry_process_and_address() {
    if !require_privileges("connect_events") {
        return;
    }
    // Both ways the programs can learn the caller: direct task_struct reads by BTF
    // (the default here, where the kernel has BTF) and helper calls.
    for (flags, reads) in [(&[][..], "task_btf"), (&["--no-task-btf"][..], "helpers")] {
        connect_events_carry_process_and_address(flags, reads);
    }
}

fn connect_events_carry_process_and_address(flags: &[&str], reads: &str) {
    use std::os::unix::fs::MetadataExt as _;
    let t = smtp_topology();
    let mut a = agent(&t, "connect", flags);
    let started = a
        .wait_for(WAIT, |v| v["event"] == "agent_started")
        .expect("agent_started event");
    assert_eq!(started["caller_reads"], reads, "{started}");
    // A cgroup's id is its directory's inode number.
    let cgroup_id = std::fs::metadata(&t.cgroup).expect("test cgroup").ino();
    for (addr, port) in [
        (format!("{}:25", SRV4[0]), 25),
        (format!("{}:465", SRV4[0]), 465),
        (format!("{}:587", SRV4[0]), 587),
        (format!("[{}]:25", SRV6[0]), 25),
        (format!("[{}]:587", SRV6[0]), 587),
    ] {
        let (result, pid) = connect(&t, &addr);
        assert_eq!(result, "ok", "{addr}");
        let ev = a
            .wait_for(WAIT, |v| {
                v["event"] == "smtp_connect" && v["tgid"].as_u64() == Some(pid)
            })
            .unwrap_or_else(|e| panic!("no event for {addr}: {e}"));
        assert_eq!(ev["comm"], "mxprobe", "{reads}");
        // mxprobe connects from its main thread.
        assert_eq!(ev["pid"].as_u64(), Some(pid), "{reads}");
        assert_eq!(ev["cgroup_id"].as_u64(), Some(cgroup_id), "{reads}");
        assert_eq!(ev["port"], port);
        assert_eq!(ev["verdict"], "allowed");
        let want_ip = addr.rsplit_once(':').unwrap().0.trim_matches(['[', ']']);
        assert_eq!(ev["addr"], want_ip);
        assert_eq!(
            ev["family"],
            if want_ip.contains(':') {
                "ipv6"
            } else {
                "ipv4"
            }
        );
    }
    let (result, pid) = connect(&t, &format!("{}:8080", SRV4[0]));
    assert_eq!(result, "ok");
    a.collect_for(Duration::from_millis(500));
    let stray = connects_by(&a, pid);
    assert!(stray.is_empty(), "port 8080 produced events: {stray:?}");
    a.stop(libc::SIGINT).expect("stop");
}

#[test]
fn blocked_addresses_refused_in_enforce_reported_in_monitor_and_mode_switches_live() {
    if !require_privileges("blocked_addresses") {
        return;
    }
    let mut t = smtp_topology();
    t.serve(&["listen", SRV4[1], "25"]).expect("listener .3");
    t.serve(&["listen", SRV4[2], "25"]).expect("listener .5");
    t.serve(&["listen", SRV6[1], "25"]).expect("listener ::3");
    t.serve(&["listen", SRV6[2], "25"]).expect("listener ::5");
    let mut a = agent(&t, "block", &[]);
    a.ctl(&["block-addr", "10.77.0.2"]).expect("exact v4");
    a.ctl(&["block-addr", "fd77::/126"]).expect("v6 prefix");
    a.ctl(&["block-addr", "10.77.0.0/30"]).expect("v4 prefix");
    let blocked = [
        format!("{}:25", SRV4[0]),
        format!("{}:25", SRV4[1]),
        format!("[{}]:25", SRV6[0]),
        format!("[{}]:25", SRV6[1]),
    ];
    let open = [format!("{}:25", SRV4[2]), format!("[{}]:25", SRV6[2])];
    for (mode, want_blocked, want_verdict) in [
        ("monitor", "ok", "would_block"),
        ("enforce", "eperm", "blocked"),
        ("monitor", "ok", "would_block"),
    ] {
        a.ctl(&["mode", mode]).expect("mode");
        for addr in &blocked {
            let (r, pid) = connect(&t, addr);
            assert_eq!(r, want_blocked, "{mode} {addr}");
            let ev = a
                .wait_for(WAIT, |v| {
                    v["event"] == "smtp_connect" && v["tgid"].as_u64() == Some(pid)
                })
                .expect("event");
            assert_eq!(ev["verdict"], want_verdict, "{mode} {addr}");
        }
        for addr in &open {
            let (r, pid) = connect(&t, addr);
            assert_eq!(r, "ok", "{mode} {addr} is not blocked");
            let ev = a
                .wait_for(WAIT, |v| {
                    v["event"] == "smtp_connect" && v["tgid"].as_u64() == Some(pid)
                })
                .expect("event");
            assert_eq!(ev["verdict"], "allowed");
        }
    }
    // A per-entry enforce flag refuses even in monitor mode.
    a.ctl(&["unblock-addr", "10.77.0.0/30"]).expect("unblock");
    a.ctl(&["unblock-addr", "10.77.0.2"]).expect("unblock");
    assert_eq!(connect(&t, &format!("{}:25", SRV4[1])).0, "ok");
    a.ctl(&["block-addr", "10.77.0.3", "--enforce"])
        .expect("enforced entry");
    assert_eq!(connect(&t, &format!("{}:25", SRV4[1])).0, "eperm");
    a.ctl(&["unblock-addr", "10.77.0.3"]).expect("unblock");
    learned_entry_under_an_operator_range(&t, &mut a);
    a.stop(libc::SIGTERM).expect("stop");
}

/// An agent's learned entry on one address (a lookalike's host) under a range an operator
/// enforces: the trie returns the longest match alone, so the learned entry decided. In
/// monitor mode (it carries no enforce flag), and once it lapsed or was contested with
/// no agent to sweep it, the operator's range did not apply to that address.
fn learned_entry_under_an_operator_range(t: &Topology, a: &mut Agent) {
    use mxsentry::kernel::maps::{Cidr, VerdictMaps};
    use sensor_common::{
        BlockEntry,
        maps::{BLOCK_CONTESTED, BLOCK_LEARNED},
    };
    let mut maps = VerdictMaps::open(&test_pin_dir("block")).expect("maps");
    let one = Cidr {
        addr: SRV4[1].parse().expect("address"),
        prefix: 32,
    };
    a.ctl(&["block-addr", "10.77.0.0/30", "--enforce"])
        .expect("operator range");
    let target = format!("{}:25", SRV4[1]);
    for (what, entry) in [
        ("in force", BlockEntry::new(BLOCK_LEARNED, 1, u64::MAX)),
        ("lapsed", BlockEntry::new(BLOCK_LEARNED, 1, 1)),
        (
            "contested",
            BlockEntry::new(BLOCK_LEARNED | BLOCK_CONTESTED, 1, u64::MAX),
        ),
    ] {
        maps.block_addr(one, entry).expect("learned entry");
        assert_eq!(connect(t, &target).0, "eperm", "a learned entry {what}");
    }
    maps.unblock_addr(one).expect("unblock");
    a.ctl(&["unblock-addr", "10.77.0.0/30"]).expect("unblock");
}

/// Waits for the DNS packet event with exactly these bytes, direction, family and transport.
fn captured(
    a: &mut Agent,
    direction: &str,
    family: &str,
    transport: &str,
    hex: &str,
) -> anyhow::Result<Value> {
    a.wait_for(WAIT, |v| {
        v["event"] == "dns_packet"
            && v["direction"] == direction
            && v["family"] == family
            && v["transport"] == transport
            && v["data"] == hex
    })
}

/// Mixed case and a 63-byte label: the kernel's hash must equal the agent's.
fn long_mixed_name() -> String {
    format!("{}.MiXeD.Example", "L".repeat(31) + &"l".repeat(32))
}

#[test]
fn dns_over_udp_and_tcp_v4_and_v6_captured_byte_exact() {
    if !require_privileges("dns_capture") {
        return;
    }
    let t = Topology::with_dns().expect("topology with DNS");
    let mut a = agent(&t, "dns", &[]);
    let name = long_mixed_name();
    let want_hash = format!(
        "{:016x}",
        mxsentry::kernel::maps::name_hash(&name).expect("hash")
    );
    for transport in ["udp", "tcp"] {
        for server in [format!("{}:53", SRV4[0]), format!("[{}]:53", SRV6[0])] {
            let fam = if server.starts_with('[') {
                "ipv6"
            } else {
                "ipv4"
            };
            for qt in ["MX", "A", "AAAA"] {
                let out = json(
                    &t.client(&["dns", transport, &server, &name, qt, "2000"])
                        .expect("dns client"),
                );
                let q = out["query"].as_str().expect("query").to_string();
                let ans = out["answer"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no answer {transport} {server} {qt}"))
                    .to_string();
                let eg = captured(&mut a, "egress", fam, transport, &q).unwrap_or_else(|e| {
                    panic!("query not captured {transport} {server} {qt}: {e}")
                });
                let ing = captured(&mut a, "ingress", fam, transport, &ans).unwrap_or_else(|e| {
                    panic!("answer not captured {transport} {server} {qt}: {e}")
                });
                for ev in [&eg, &ing] {
                    assert_eq!(ev["transport"], transport);
                    assert_eq!(
                        ev["family"],
                        if server.starts_with('[') {
                            "ipv6"
                        } else {
                            "ipv4"
                        }
                    );
                    assert_eq!(
                        ev["qname_hash"],
                        want_hash.as_str(),
                        "kernel and agent hash differ"
                    );
                    assert_eq!(
                        ev["msg_len"].as_u64(),
                        Some(ev["data"].as_str().unwrap_or("").len() as u64 / 2)
                    );
                    assert!(ev["cookie"].as_u64().unwrap_or(0) > 0);
                }
            }
        }
    }
    a.stop(libc::SIGINT).expect("stop");
}

#[test]
fn enforce_drops_answers_for_blocked_names_only() {
    if !require_privileges("dns_block") {
        return;
    }
    let t = Topology::with_dns().expect("topology with DNS");
    let mut a = agent(&t, "dnsblock", &["--mode", "enforce"]);
    a.ctl(&["block-name", "Army.ML"]).expect("block name");
    for server in [format!("{}:53", SRV4[0]), format!("[{}]:53", SRV6[0])] {
        for transport in ["udp", "tcp"] {
            let blocked = json(
                &t.client(&["dns", transport, &server, "army.ml", "MX", "1500"])
                    .expect("client"),
            );
            assert!(
                blocked["answer"].is_null(),
                "{transport} {server}: blocked name was answered: {blocked}"
            );
            let other = json(
                &t.client(&["dns", transport, &server, "army.mil", "MX", "1500"])
                    .expect("client"),
            );
            assert!(
                other["answer"].is_string(),
                "{transport} {server}: other name unanswered"
            );
        }
        let upper = json(
            &t.client(&["dns", "udp", &server, "ARMY.ml", "A", "1500"])
                .expect("client"),
        );
        assert!(upper["answer"].is_null(), "case must not evade the block");
    }
    let drop = a
        .wait_for(WAIT, |v| {
            v["event"] == "dns_packet" && v["verdict"] == "blocked"
        })
        .expect("blocked event");
    assert_eq!(drop["direction"], "ingress");
    // Monitor mode: the same name is answered and reported as would_block.
    a.ctl(&["mode", "monitor"]).expect("mode");
    let seen = json(
        &t.client(&[
            "dns",
            "udp",
            &format!("{}:53", SRV4[0]),
            "army.ml",
            "MX",
            "1500",
        ])
        .expect("client"),
    );
    assert!(seen["answer"].is_string());
    a.wait_for(WAIT, |v| {
        v["event"] == "dns_packet" && v["verdict"] == "would_block"
    })
    .expect("would_block event");
    a.stop(libc::SIGINT).expect("stop");
}

/// Waits for the forwarder to report what its upstream did for `name`.
fn upstream_outcome(lines: &std::sync::mpsc::Receiver<String>, name: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(5)) {
            Ok(l) if l.ends_with(&format!(" {name}")) => return l,
            Ok(_) => continue,
            Err(e) => panic!("forwarder said nothing about {name}: {e}"),
        }
    }
}

#[test]
fn local_resolver_keeps_its_upstream_answers_the_asker_loses_them() {
    if !require_privileges("local_resolver") {
        return;
    }
    let mut t = Topology::with_dns().expect("topology with DNS");
    let upstream = format!("{}:53", SRV4[0]);
    // Bound port 53 before the agent ran: the agent's /proc scan must find it. It sends
    // upstream with sendto() on unconnected sockets (the sendmsg hooks), like dnsmasq.
    let (early, early_out) = t
        .serve_in_cgroup(&["forward-dns", "127.0.0.2:53", &upstream, "unconnected"])
        .expect("early forwarder");
    let mut a = agent(&t, "resolver", &["--mode", "enforce"]);
    a.wait_for(WAIT, |v| {
        v["event"] == "local_resolver" && v["state"] == "found" && v["tgid"] == early
    })
    .expect("pre-existing resolver found by the scan");
    // Binds after the agent: the bind hooks list it; it connects its upstream sockets
    // (the connect hooks), like unbound and systemd-resolved.
    let (late, late_out) = t
        .serve_in_cgroup(&["forward-dns", "127.0.0.3:53", &upstream, "connected"])
        .expect("late forwarder");
    a.wait_for(WAIT, |v| {
        v["event"] == "local_resolver"
            && v["state"] == "found"
            && v["tgid"] == late
            && v["comm"] == "mxprobe"
    })
    .expect("new resolver listed by the bind hook");
    // The scan is host-wide: the test DNS servers in the server namespace count too.
    // Resolvers come and go host-wide (other tests' servers): the gauge is what was found
    // minus what went away; read again until no event moved it between the two reads.
    let mut listed = 0.0;
    let mut consistent = false;
    for _ in 0..50 {
        let moves = a.events("local_resolver");
        let count = |state: &str| moves.iter().filter(|v| v["state"] == state).count() as f64;
        listed = a.metric("mxsentry_local_resolvers").expect("metric");
        if listed == count("found") - count("gone") {
            consistent = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        consistent,
        "gauge {listed} never matched the events' found - gone"
    );
    assert!(listed >= 2.0, "{listed}");
    a.ctl(&["block-name", "army.ml"]).expect("block name");

    for (server, out) in [("127.0.0.2:53", &early_out), ("127.0.0.3:53", &late_out)] {
        let asked = json(
            &t.client(&["dns", "udp", server, "army.ml", "MX", "1500"])
                .expect("client"),
        );
        assert!(
            asked["answer"].is_null(),
            "{server}: the asker got the blocked answer: {asked}"
        );
        assert_eq!(
            upstream_outcome(out, "army.ml"),
            "upstream answer army.ml",
            "{server}: the resolver's own upstream answer was dropped"
        );
        let other = json(
            &t.client(&["dns", "udp", server, "army.mil", "MX", "1500"])
                .expect("client"),
        );
        assert!(
            other["answer"].is_string(),
            "{server}: other name unanswered"
        );
        assert_eq!(
            upstream_outcome(out, "army.mil"),
            "upstream answer army.mil"
        );
    }
    // In the kernel's words: kept at the resolver's upstream socket, dropped at the asker's.
    let kept = a
        .wait_for(WAIT, |v| {
            v["event"] == "dns_packet"
                && v["direction"] == "ingress"
                && v["local_resolver"] == true
                && v["verdict"] == "would_block"
        })
        .expect("answer kept at the resolver");
    assert_eq!(kept["src"], upstream.as_str());
    let dropped = a
        .wait_for(WAIT, |v| {
            v["event"] == "dns_packet"
                && v["direction"] == "ingress"
                && v["local_resolver"] == false
                && v["verdict"] == "blocked"
        })
        .expect("answer dropped at the asker");
    assert!(
        dropped["src"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0."),
        "{dropped}"
    );

    // An exited resolver is unlisted, so its pid cannot exempt a later process.
    // SAFETY: plain kill(2) of a child this test started.
    assert_eq!(unsafe { libc::kill(early as i32, libc::SIGKILL) }, 0);
    a.wait_for(WAIT, |v| {
        v["event"] == "local_resolver" && v["state"] == "gone" && v["tgid"] == early
    })
    .expect("exited resolver unlisted");
    assert_eq!(
        a.metric("mxsentry_local_resolvers").expect("metric"),
        listed - 1.0
    );
    a.stop(libc::SIGINT).expect("stop");
}

#[test]
fn ring_buffer_overrun_received_plus_lost_equals_sent() {
    if !require_privileges("ring_overrun") {
        return;
    }
    let t = Topology::new().expect("topology");
    let mut a = agent(&t, "flood", &[]);
    // Stop the consumer so the 4 MiB ring (about 47,000 connect records) overflows.
    a.signal(libc::SIGSTOP);
    const SENT: u64 = 100_000;
    let n: u64 = t
        .client(&[
            "connect-many",
            &format!("{}:25", SRV4[2]),
            &SENT.to_string(),
        ])
        .expect("flood")
        .parse()
        .expect("count");
    assert_eq!(n, SENT);
    a.signal(libc::SIGCONT);
    let stopped = a.stop(libc::SIGINT).expect("stop");
    let received = stopped["received"]["connect"].as_u64().unwrap_or(0);
    let lost = stopped["lost"]["connect"].as_u64().unwrap_or(0);
    assert!(lost > 0, "the ring never overflowed: {stopped}");
    assert_eq!(received + lost, SENT, "{stopped}");
    assert_eq!(a.events("smtp_connect").len() as u64, received);
}

#[test]
fn restart_readopts_pins_and_keep_attached_keeps_blocking() {
    if !require_privileges("readopt") {
        return;
    }
    let t = smtp_topology();
    let pin = test_pin_dir("readopt");
    let cg = t.cgroup.display().to_string();
    let mut first = Agent::start(&pin, &["--cgroup", &cg, "--keep-attached"]).expect("first agent");
    first.ctl(&["block-addr", SRV4[0]]).expect("block");
    first.ctl(&["mode", "enforce"]).expect("enforce");
    let stopped = first.stop(libc::SIGTERM).expect("stop first");
    assert_eq!(stopped["detached"], false);
    std::mem::forget(first); // its Drop would detach the pins we mean to keep
    assert_eq!(t.mxsentry_programs(), Program::ALL.len());
    assert_eq!(
        connect(&t, &format!("{}:25", SRV4[0])).0,
        "eperm",
        "no agent running, still enforcing"
    );

    let mut second =
        Agent::start(&pin, &["--cgroup", &cg, "--mode", "enforce"]).expect("second agent");
    let started = second.events("agent_started")[0].clone();
    assert_eq!(started["adopted"], Program::ALL.len(), "{started}");
    assert_eq!(t.mxsentry_programs(), Program::ALL.len(), "attached twice");
    let (r, pid) = connect(&t, &format!("{}:25", SRV4[0]));
    assert_eq!(r, "eperm");
    second
        .wait_for(WAIT, |v| {
            v["event"] == "smtp_connect"
                && v["tgid"].as_u64() == Some(pid)
                && v["verdict"] == "blocked"
        })
        .expect("event after re-adoption");
    let stopped = second.stop(libc::SIGINT).expect("stop second");
    assert_eq!(stopped["detached"], true);
    assert_eq!(t.mxsentry_programs(), 0, "programs left attached");
    assert!(!pin.exists(), "pins left behind");
    assert_eq!(
        connect(&t, &format!("{}:25", SRV4[0])).0,
        "ok",
        "still blocking after detach"
    );
}

/// The SMTP connect events `a` has collected from process `pid`.
fn connects_by(a: &Agent, pid: u64) -> Vec<&Value> {
    a.events("smtp_connect")
        .into_iter()
        .filter(|v| v["tgid"].as_u64() == Some(pid))
        .collect()
}

/// The names of the connect programs attached to `t`'s cgroup, as bpftool lists them.
fn connect_builds_on(t: &Topology) -> Vec<String> {
    mxsentry_tests::pins::programs_on(&t.cgroup)
        .expect("bpftool cgroup show")
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with("mx_connect"))
        .collect()
}

/// Connects to `unwatched` then to `watched` on both families: only the second is
/// reported (the ring keeps order, so an event for the first would have come before).
fn only_watched_port_reported(t: &Topology, a: &mut Agent, watched: u16, unwatched: u16) {
    for host in [SRV4[0].to_string(), format!("[{}]", SRV6[0])] {
        let (result, quiet) = connect(t, &format!("{host}:{unwatched}"));
        assert_eq!(result, "ok", "{host}:{unwatched}");
        let (result, pid) = connect(t, &format!("{host}:{watched}"));
        assert_eq!(result, "ok", "{host}:{watched}");
        let ev = a
            .wait_for(WAIT, |v| {
                v["event"] == "smtp_connect" && v["tgid"].as_u64() == Some(pid)
            })
            .unwrap_or_else(|e| panic!("no event for {host}:{watched}: {e}"));
        assert_eq!(ev["port"], watched);
        let stray = connects_by(a, quiet);
        assert!(stray.is_empty(), "port {unwatched} reported: {stray:?}");
    }
}

/// Waits until the agent has said `n` successful reloads.
fn wait_reloads(a: &mut Agent, n: usize) {
    let ok = |a: &Agent| {
        a.events("config_reloaded")
            .iter()
            .filter(|v| v["result"] == "ok")
            .count()
    };
    let deadline = std::time::Instant::now() + mxsentry_tests::patience(Duration::from_secs(10));
    while ok(a) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "reload {n} not reported: {:?}",
            a.events("config_reloaded")
        );
        a.collect_for(Duration::from_millis(100));
    }
}

/// `agent.smtp_ports` picks the connect programs' build (the standard ports as constants,
/// any other set looked up), and a reload or a restart over kept links that changes the
/// set switches the attached build in place; connects are reported by the set in force.
#[test]
fn smtp_ports_choose_the_connect_build_and_a_reload_or_restart_switches_it() {
    if !require_privileges("connect_builds") {
        return;
    }
    let mut t = Topology::new().expect("topology");
    t.serve(&["listen", SRV4[0], "25", "2525"])
        .expect("v4 listeners");
    t.serve(&["listen", SRV6[0], "25", "2525"])
        .expect("v6 listeners");
    let state = mxsentry_tests::agent::test_state_dir("connect-builds");
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = state.join("mxsentry.toml");
    let write = |ports: &str| {
        let text = format!("[agent]\nstate_dir = \"{}\"\n{ports}\n", state.display());
        std::fs::write(&cfg, text).expect("config");
        std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod config");
    };
    write("smtp_ports = [2525]");
    let cfg_arg = cfg.display().to_string();
    let mut a = agent(
        &t,
        "connect-builds",
        &["--config", &cfg_arg, "--keep-attached"],
    );
    // Any set but the standard one: the build that looks ports up.
    assert_eq!(
        connect_builds_on(&t),
        ["mx_connect4_cfg", "mx_connect6_cfg"]
    );
    only_watched_port_reported(&t, &mut a, 2525, 25);

    // A reload to the standard ports switches both links to the constant build.
    write("");
    wait_reloads(&mut a, 1);
    assert_eq!(connect_builds_on(&t), ["mx_connect4", "mx_connect6"]);
    only_watched_port_reported(&t, &mut a, 25, 2525);
    // Metrics still count the switched programs under their program's name.
    assert!(
        a.metric(r#"mxsentry_program_runs_total{program="mx_connect4"}"#)
            .expect("metric")
            >= 1.0
    );

    // And back: the other build again, from the first connect after the reload.
    write("smtp_ports = [2525]");
    wait_reloads(&mut a, 2);
    assert_eq!(
        connect_builds_on(&t),
        ["mx_connect4_cfg", "mx_connect6_cfg"]
    );
    only_watched_port_reported(&t, &mut a, 2525, 25);

    // A restart over the kept links with the standard set: switched as an upgrade is.
    let stopped = a.stop(libc::SIGTERM).expect("stop");
    assert_eq!(stopped["detached"], false, "{stopped}");
    write("");
    let mut b = agent(&t, "connect-builds", &["--config", &cfg_arg]);
    let started = b
        .wait_for(WAIT, |v| v["event"] == "agent_started")
        .expect("agent_started");
    assert_eq!(started["programs"]["mx_connect4"], "upgraded", "{started}");
    assert_eq!(started["programs"]["mx_connect6"], "upgraded", "{started}");
    assert_eq!(
        started["programs"]["mx_dns_ingress"], "adopted",
        "{started}"
    );
    assert_eq!(connect_builds_on(&t), ["mx_connect4", "mx_connect6"]);
    only_watched_port_reported(&t, &mut b, 25, 2525);
    b.stop(libc::SIGINT).expect("stop");
}
