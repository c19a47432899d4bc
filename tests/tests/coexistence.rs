//! Coexistence: a cgroup program someone else attached (as systemd's IP accounting or Cilium
//! do) keeps running while mxsentry attaches beside it, and is still there after mxsentry
//! leaves. The other program is loaded here with raw bpf(2) calls: a cgroup_skb egress
//! program that counts packets in an array map and lets them pass.

use std::time::Duration;

use mxsentry_tests::{
    Agent, Topology, agent::test_pin_dir, rawbpf::Counter, require_privileges, sh, topology::SRV4,
};

fn programs_on(cgroup: &std::path::Path) -> String {
    sh(
        "bpftool",
        &["cgroup", "show", &cgroup.display().to_string()],
    )
    .unwrap_or_default()
}

#[test]
fn another_programs_cgroup_hook_keeps_working_beside_mxsentry() {
    if !require_privileges("coexistence") {
        return;
    }
    let mut t = Topology::new().unwrap();
    t.serve(&["listen", SRV4[1], "25"]).unwrap();
    let other = Counter::attach(&t.cgroup).expect("attach the other program");
    let cg = t.cgroup.display().to_string();
    let mut agent = Agent::start(&test_pin_dir("coexist"), &["--cgroup", &cg]).unwrap();
    let shown = programs_on(&t.cgroup);
    assert!(
        shown.contains("counter") && shown.contains("mx_dns_egress"),
        "both should be attached:\n{shown}"
    );

    let before = other.packets();
    let v: serde_json::Value =
        serde_json::from_str(&t.client(&["connect", &format!("{}:25", SRV4[1])]).unwrap()).unwrap();
    assert_eq!(v["result"], "ok");
    // mxsentry saw the connect...
    agent
        .wait_for(Duration::from_secs(2), |v| v["event"] == "smtp_connect")
        .unwrap();
    // ...and the other program still ran on the same packets.
    assert!(
        other.packets() > before,
        "the other program stopped counting"
    );

    agent.stop(libc::SIGTERM).unwrap();
    let shown = programs_on(&t.cgroup);
    assert!(
        shown.contains("counter") && !shown.contains("mx_"),
        "mxsentry must leave only its own:\n{shown}"
    );
    let after = other.packets();
    t.client(&["connect", &format!("{}:25", SRV4[1])]).unwrap();
    assert!(
        other.packets() > after,
        "the other program stopped after mxsentry left"
    );
}
