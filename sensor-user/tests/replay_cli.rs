//! `mxsentry replay` on a capture: no privileges, the same pipeline, simulated maps.
//! The capture is built here (Ethernet/IPv4/UDP/TCP with etherparse, DNS with hickory).

use std::{net::Ipv4Addr, process::Command, str::FromStr};

use etherparse::PacketBuilder;
use hickory_proto::{
    op::{Message, OpCode, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, MX},
    },
};
use serde_json::Value;

const HOST: [u8; 4] = [10, 0, 0, 1];
const RESOLVER: [u8; 4] = [10, 0, 0, 53];
const MX_IP: [u8; 4] = [192, 0, 2, 25];

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn syn(dst: [u8; 4], port: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(HOST, dst, 64)
        .tcp(40000, port, 1, 64240)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    // Classic pcap: magic, v2.4, zone, sigfigs, snaplen, linktype 1 (Ethernet).
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

fn capture() -> Vec<u8> {
    let name = |s: &str| Name::from_str(s).unwrap();
    let mut q = Message::query();
    q.add_query(Query::query(name("army.ml."), RecordType::MX));
    let mut r = Message::response(0, OpCode::Query);
    r.add_query(Query::query(name("army.ml."), RecordType::MX));
    r.add_answer(Record::from_rdata(
        name("army.ml."),
        300,
        RData::MX(MX::new(10, name("mx.army.ml."))),
    ));
    r.add_additional(Record::from_rdata(
        name("mx.army.ml."),
        300,
        RData::A(A(Ipv4Addr::from(MX_IP))),
    ));
    pcap(&[
        udp(HOST, RESOLVER, 5353, 53, &q.to_vec().unwrap()),
        udp(RESOLVER, HOST, 53, 5353, &r.to_vec().unwrap()),
        syn(MX_IP, 25),
        syn([198, 51, 100, 9], 587),
        udp(RESOLVER, HOST, 53, 5353, b"not dns at all"),
    ])
}

fn replay(tag: &str, args: &[&str]) -> (Vec<Value>, String, bool) {
    let dir = std::env::temp_dir().join(format!("mxsentry-replay-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mail.pcap");
    std::fs::write(&file, capture()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mxsentry"))
        .arg("replay")
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let events = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["kind"].as_str() {
            Some(k) => format!("{}:{k}", e["event"].as_str().unwrap()),
            None => e["event"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[test]
fn monitor_replay_reports_the_lookalike_delivery() {
    let (events, stderr, ok) = replay("monitor", &["--protect", "army.mil=block"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        kinds(&events),
        ["lookalike_lookup", "detection", "unattributed_connect"]
    );
    assert_eq!(events[1]["verdict"], "would_block");
    assert_eq!(events[1]["mechanism"], "dns_answer");
    assert_eq!(events[1]["route"]["mx_host"], "mx.army.ml");
    assert!(
        stderr.contains("2 smtp connects") && stderr.contains("3 dns messages"),
        "{stderr}"
    );
}

#[test]
fn enforce_replay_shows_what_the_kernel_would_refuse() {
    let (events, stderr, ok) = replay(
        "enforce",
        &["--protect", "army.mil=block", "--mode", "enforce"],
    );
    assert!(ok, "{stderr}");
    // Enforce drops the answer that gave the address, so the captured host would never
    // have connected; an address is refused only once an answer delivered it (a shared
    // mail host must not be refused for everyone). A connect there anyway cannot have
    // come from that answer: the replay reports it unattributed, naming the lookalike
    // whose dropped answer named the address (whoever writes a lookalike's DNS can name
    // any host, so it is no delivery to the lookalike).
    assert_eq!(
        kinds(&events),
        [
            "lookalike_lookup",
            "block:dns_answer",
            "unattributed_connect",
            "unattributed_connect"
        ]
    );
    assert_eq!(events[2]["verdict"], "allowed");
    assert_eq!(
        events[2]["unreceived_lookalikes"][0], "army.ml",
        "{events:?}"
    );
    assert_eq!(events[2]["severity"], "warning");
}

#[test]
fn a_file_that_is_not_a_capture_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_mxsentry"))
        .args(["replay", "/etc/hostname"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a pcap or pcapng file") || err.contains("is empty"),
        "{err}"
    );
}
