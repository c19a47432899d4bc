//! DNS answers as the attacker who registered a lookalike writes them, against the real
//! kernel programs and agent: answers of several KiB over UDP (EDNS) and TCP with the
//! preferred mail host last, TCP answers and queries cut anywhere (the length prefix
//! alone, inside the header), several messages in one segment. The sensor must see each
//! message whole, drop a blocked answer however it is cut, and tie the mail host to the
//! lookalike. Run single-threaded (they share the kernel).

use std::{path::PathBuf, time::Duration};

use mxsentry_tests::{
    Agent, Topology,
    agent::{self, test_pin_dir, test_state_dir},
    require_privileges,
    topology::{SRV4, SRV6},
};
use sensor_common::event::IPV6_EXT_MAX;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);
/// The lookalike's preferred mail host: outside the lookalike's domain, last in its answer.
const BEST: &str = "mx.hoster.test";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn dns_server() -> String {
    format!("{}:53", SRV4[0])
}

/// A topology with the hostile DNS server (`opts` added to its zone: army.ml's MX answer
/// `size` bytes with `BEST` last, `BEST` at SRV4[2]) and an SMTP listener at SRV4[2].
fn hostile(size: usize, opts: &[&str]) -> Topology {
    let mut t = Topology::new().expect("topology");
    let best = format!("HOST={BEST}={}", SRV4[2]);
    let size = format!("SIZE={size}");
    let mut args = vec![
        "serve-hostile",
        "10.77.0.2:53",
        "BIG=army.ml",
        "BEST=mx.hoster.test",
        &best,
        &size,
    ];
    args.extend_from_slice(opts);
    t.serve(&args).expect("hostile DNS server");
    t.serve(&["listen", SRV4[2], "25"]).expect("SMTP listener");
    t
}

/// An agent protecting army.mil (action block) in `mode`, logging raw DNS messages.
fn agent(t: &Topology, tag: &str, mode: &str) -> (Agent, PathBuf) {
    let state = test_state_dir(tag);
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = state.join("mxsentry.toml");
    agent::write_config(&cfg, &state, mode, "").expect("config");
    let (cg, cfgs) = (t.cgroup.display().to_string(), cfg.display().to_string());
    let a = Agent::start(&test_pin_dir(tag), &["--config", &cfgs, "--cgroup", &cg])
        .expect("agent start");
    (a, state)
}

/// Asks the hostile server for `names` (comma-separated) over `transport`.
fn ask(t: &Topology, transport: &str, names: &str, qt: &str, timeout_ms: u32) -> Value {
    ask_at(t, &dns_server(), transport, names, qt, timeout_ms)
}

/// Asks the DNS server at `server` for `names` (comma-separated) over `transport`.
fn ask_at(
    t: &Topology,
    server: &str,
    transport: &str,
    names: &str,
    qt: &str,
    timeout_ms: u32,
) -> Value {
    json(
        &t.client(&["dns", transport, server, names, qt, &timeout_ms.to_string()])
            .expect("dns client"),
    )
}

/// Asks the hostile server for `name` (`qt`) over UDP and over TCP: no answer may reach
/// the client (`what`: what the answer was).
fn assert_dropped(t: &Topology, name: &str, qt: &str, what: &str) {
    for transport in ["udp", "tcp"] {
        let out = ask(t, transport, name, qt, 1500);
        assert!(
            out["answer"].is_null(),
            "{transport}: {what} reached the client: {out}"
        );
    }
}

/// The raw record of a DNS message with exactly these bytes (hex) in `direction`.
fn message(a: &mut Agent, direction: &str, transport: &str, hex: &str) -> anyhow::Result<Value> {
    a.wait_for(WAIT, |v| {
        v["event"] == "dns_packet"
            && v["direction"] == direction
            && v["transport"] == transport
            && v["data"] == hex
    })
}

/// A delivery to the lookalike as an MTA makes it: MX (over `transport`), then the
/// preferred host's address, then an SMTP connect; the connect's result.
fn deliver(t: &Topology, transport: &str) -> (Value, String) {
    let mx = ask(t, transport, "army.ml", "MX", 2000);
    let a = ask(t, "udp", BEST, "A", 2000);
    assert!(a["answer"].is_string(), "{BEST} unanswered: {a}");
    let c = json(
        &t.client(&["connect", &format!("{}:25", SRV4[2])])
            .expect("connect"),
    );
    (mx, c["result"].as_str().unwrap_or_default().to_string())
}

/// Monitor: the big answer is captured whole, and the connect to its last mail host is
/// reported as a delivery to the lookalike.
fn whole_answer_ties_the_last_mx_host(tag: &str, size: usize, transport: &str, opts: &[&str]) {
    let t = hostile(size, opts);
    let (mut a, state) = agent(&t, tag, "monitor");
    let (mx, result) = deliver(&t, transport);
    let answer = mx["answer"].as_str().expect("MX answered in monitor mode");
    assert!(
        answer.len() / 2 >= size,
        "answer of {} bytes",
        answer.len() / 2
    );
    assert_eq!(result, "ok");
    let d = a
        .wait_for(WAIT, |v| v["event"] == "detection")
        .unwrap_or_else(|e| panic!("{transport}: the delivery to army.ml was not reported: {e}"));
    assert_eq!(d["domain"], "army.ml", "{d}");
    assert_eq!(d["route"]["mx_host"], BEST, "{d}");
    assert_eq!(d["target"], "army.mil", "{d}");
    let wire = if transport == "udp-edns:4096" {
        "udp"
    } else {
        "tcp"
    };
    let m = message(&mut a, "ingress", wire, answer)
        .unwrap_or_else(|e| panic!("{transport}: the answer was not captured whole: {e}"));
    assert_eq!(m["msg_len"].as_u64(), Some(answer.len() as u64 / 2), "{m}");
    assert_eq!(m["verdict"], "would_block", "{m}");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

#[test]
fn udp_edns_answer_of_3_5_kib_with_the_preferred_mx_last_is_tied_to_the_lookalike() {
    if !require_privileges("udp_edns_big") {
        return;
    }
    whole_answer_ties_the_last_mx_host("udpbig", 3500, "udp-edns:4096", &[]);
}

#[test]
fn tcp_answer_of_20_kib_with_the_preferred_mx_last_is_tied_to_the_lookalike() {
    if !require_privileges("tcp_big") {
        return;
    }
    // Cut every 1,000 bytes as well: the answer spans many segments whatever the MSS.
    whole_answer_ties_the_last_mx_host("tcpbig", 20_000, "tcp", &["TCP=every:1000"]);
}

/// Enforce: army.ml's answer (army.ml is among the slips of army.mil blocked from the
/// start) is dropped however the server cuts it, and other answers are not.
#[test]
fn enforce_drops_a_blocked_tcp_answer_however_it_is_cut() {
    if !require_privileges("tcp_cut_answers") {
        return;
    }
    for cut in ["whole", "prefix", "header:5", "every:7"] {
        let t = hostile(600, &[&format!("TCP={cut}")]);
        let (mut a, state) = agent(&t, "tcpcut", "enforce");
        let blocked = ask(&t, "tcp", "army.ml", "MX", 1500);
        assert!(
            blocked["answer"].is_null(),
            "TCP={cut}: the lookalike's answer reached the client: {blocked}"
        );
        let other = ask(&t, "tcp", "army.mil", "MX", 1500);
        assert!(other["answer"].is_string(), "TCP={cut}: {other}");
        let dropped = a
            .wait_for(WAIT, |v| {
                v["event"] == "dns_packet"
                    && v["direction"] == "ingress"
                    && v["transport"] == "tcp"
                    && v["verdict"] == "blocked"
            })
            .unwrap_or_else(|e| panic!("TCP={cut}: no blocked answer reported: {e}"));
        assert!(dropped["qname_hash"].is_string(), "{dropped}");
        a.stop(libc::SIGINT).expect("stop");
        std::fs::remove_dir_all(state).ok();
    }
}

/// Urgent data: the server sends the length's first byte with an urgent byte (MSG_OOB),
/// which the reading socket never sees, then the rest. The bytes on the wire are not the
/// stream the socket reads: before, the kernel read the urgent byte as part of the length,
/// never found the question, and the blocked answer reached the client. Now the stream is
/// counted as lost and, at a client in enforce mode, dropped (no DNS server sends urgent
/// data).
#[test]
fn enforce_drops_a_tcp_answer_sent_with_urgent_data() {
    if !require_privileges("tcp_urgent") {
        return;
    }
    let t = hostile(600, &["TCP=urgent"]);
    let (mut a, state) = agent(&t, "tcpurg", "enforce");
    let blocked = ask(&t, "tcp", "army.ml", "MX", 1500);
    assert!(
        blocked["answer"].is_null(),
        "the lookalike's answer sent with urgent data reached the client: {blocked}"
    );
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// A bare SYN before a blocked answer's last byte (the host's TCP discards it with a
/// challenge ACK). Before, any SYN restarted the kernel's stream, so the last byte was
/// read as a new message and the answer, undecided until its end (it is shorter than
/// the 272 bytes the kernel waits for), reached the client whole. Now a SYN in a stream
/// that carried data is ignored unless the socket is connecting anew.
#[test]
fn enforce_drops_a_tcp_answer_with_a_syn_before_its_last_byte() {
    if !require_privileges("tcp_syn_mid_stream") {
        return;
    }
    only_the_lookalike_s_tcp_answer_is_dropped("TCP=syn", "tcpsyn", "past the SYN");
}

/// In enforce mode, from the hostile server with `opt`: the answer under the blocked slip
/// army.ml (an NXDOMAIN of a few dozen bytes) never reaches the client over TCP, and a
/// legitimate answer sent the same way does (`how` says how, for the failure).
fn only_the_lookalike_s_tcp_answer_is_dropped(opt: &str, tag: &str, how: &str) {
    let t = hostile(600, &[opt]);
    let (mut a, state) = agent(&t, tag, "enforce");
    let blocked = ask(&t, "tcp", "mx.army.ml", "A", 1500);
    assert!(
        blocked["answer"].is_null(),
        "the lookalike's answer reached the client {how}: {blocked}"
    );
    let other = ask(&t, "tcp", "mx.army.mil", "A", 1500);
    assert!(other["answer"].is_string(), "{other}");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// A bare SYN before any byte of the reply, with a sequence number a decoy's length
/// before the reply's first byte, then one segment from there: the decoy (a length that
/// spans the reply, an innocent question) and the reply. The host's TCP discards the SYN
/// and trims the decoy; the application reads the reply alone. Before, the SYN restarted
/// the kernel's stream where the sender chose (the stream had carried no data yet): it
/// framed the decoy, judged its innocent question and read the lookalike's answer as the
/// decoy's body, which reached the client in enforce mode.
#[test]
fn enforce_drops_a_tcp_answer_behind_a_syn_and_a_decoy() {
    if !require_privileges("tcp_syn_decoy") {
        return;
    }
    only_the_lookalike_s_tcp_answer_is_dropped("TCP=syndecoy", "tcpdecoy", "behind the decoy");
}

/// An answer whose question name ends in a compression pointer (to a zero byte of the
/// header): stub resolvers accept it, the kernel cannot hash it. Before, such an answer
/// to army.ml (a blocked slip) passed in enforce mode; now an answer with records and a
/// question the kernel cannot read counts as blocked at a client, over UDP and TCP.
#[test]
fn enforce_drops_an_answer_whose_question_the_kernel_cannot_read() {
    if !require_privileges("question_pointer") {
        return;
    }
    let t = hostile(600, &["QPTR=1"]);
    let (mut a, state) = agent(&t, "qptr", "enforce");
    // (EDNS: the answer is bigger than 512 bytes; cut to its question with TC set, it
    // carries no records and passes, and the client asks again over TCP.)
    for transport in ["udp-edns:4096", "tcp"] {
        let out = ask(&t, transport, "army.ml", "MX", 1500);
        assert!(
            out["answer"].is_null(),
            "{transport}: an answer with an unreadable question reached the client: {out}"
        );
    }
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// An answer with no question section: an innocent name's record first, where the
/// question belongs, then the lookalike's MX records (musl's stub matches an answer to its
/// query by id alone). Before, the kernel read the innocent owner as the question and the
/// answer to army.ml (a blocked slip) passed in enforce mode; now an answer with records
/// and a question count other than one counts as blocked at a client, over UDP and TCP.
#[test]
fn enforce_drops_an_answer_without_its_question() {
    if !require_privileges("no_question") {
        return;
    }
    let t = hostile(400, &["NOQ=1"]);
    let (mut a, state) = agent(&t, "noq", "enforce");
    assert_dropped(&t, "army.ml", "MX", "an answer without its question");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// An answer to another question than the one asked: the lookalike's server answers
/// `army.ml MX` (a blocked slip) with the question and records of an innocent name, the
/// id and type the query's. musl and glibc's TCP reader match an answer to its query by id
/// alone, and the kernel read the innocent question: before, the answer reached the
/// client over UDP and TCP in enforce mode. Now the questions a client socket asked are
/// kept, and an answer to none of them counts as blocked: dropped in enforce mode,
/// reported and let through in monitor mode.
#[test]
fn an_answer_to_a_question_not_asked_counts_as_blocked() {
    if !require_privileges("other_question") {
        return;
    }
    let t = hostile(400, &["OTHERQ=1"]);
    let (mut a, state) = agent(&t, "otherq", "enforce");
    assert_dropped(&t, "army.ml", "MX", "an answer to a question not asked");
    let counted = a
        .metric(r#"mxsentry_dns_capture_events_total{reason="question_not_asked"}"#)
        .expect("metric");
    assert!(counted >= 2.0, "question_not_asked counted {counted}");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
    let (mut a, state) = agent(&t, "otherq-monitor", "monitor");
    let out = ask(&t, "udp", "army.ml", "MX", 1500);
    let answer = out["answer"].as_str().unwrap_or_default().to_string();
    assert!(!answer.is_empty(), "monitor mode refused the answer: {out}");
    let seen = message(&mut a, "ingress", "udp", &answer).expect("the answer's record");
    assert_eq!(seen["verdict"], "would_block", "{seen}");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// The name asked, with another type: an MX question held for the agent's verdict was let
/// through by an answer saying it was an A question (the hold is for MX answers). The
/// type is part of what is matched; a clean name shows the rule (a lookalike's answer is
/// blocked by its name whatever the type).
#[test]
fn an_answer_to_another_type_of_the_name_asked_counts_as_blocked() {
    if !require_privileges("other_type") {
        return;
    }
    let t = hostile(400, &["OTHERQ=type"]);
    let (mut a, state) = agent(&t, "othertype", "enforce");
    assert_dropped(&t, BEST, "MX", "an answer to another type");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// An answer with its QR bit clear, as if it were a query: neither glibc nor musl looks at
/// that bit, and the kernel decided only messages marked as answers: the lookalike's
/// answer reached the client over UDP and TCP in enforce mode. Now a message from a DNS
/// server's port to a client's is an answer, whatever the bit says.
#[test]
fn enforce_drops_a_lookalike_answer_marked_as_a_query() {
    if !require_privileges("qr_clear") {
        return;
    }
    let t = hostile(400, &["QR0=1"]);
    let (mut a, state) = agent(&t, "qr0", "enforce");
    assert_dropped(&t, "army.ml", "MX", "an answer marked as a query");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// A zone transfer's messages after the first carry no question (RFC 5936): an AXFR
/// answered by two messages of its id, the second without its question. With the rule
/// above applied to every message, the second was dropped in enforce mode and the stream
/// with it (a transfer stalled). Only a message with the id of the AXFR or IXFR answer
/// its stream carried may come without a question.
#[test]
fn a_zone_transfer_s_messages_after_the_first_pass_without_a_question() {
    if !require_privileges("no_question_later") {
        return;
    }
    // Cut every 60 bytes: the kernel decides at most two messages a segment (more are
    // counted and, at a guarded client, dropped), and both queries' replies, four
    // messages, would come in one.
    let t = hostile(400, &["NOQ=later", "TCP=every:60"]);
    let (mut a, state) = agent(&t, "noqlater", "enforce");
    // The client reads the first two messages: the AXFR's two.
    let out = ask(&t, "tcp", "army.mil,army.mil", "AXFR", 1500);
    let answers = out["answers"].as_array().cloned().unwrap_or_default();
    assert!(
        answers.len() == 2 && answers.iter().all(|a| a.is_string()),
        "a zone transfer's second message was dropped: {out}"
    );
    let second = answers[1].as_str().unwrap_or_default();
    assert_eq!(
        &second[8..12],
        "0000",
        "the second message has no question: {out}"
    );
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// IPv6 answers behind extension headers, which the host's IPv6 skips before UDP or TCP
/// reads the answer. Before, the kernel took the first extension header for the transport
/// header, found no DNS and let the answer pass unread: a blocked answer reached the
/// client. Now the chain is followed: behind as many headers as the kernel follows (UDP),
/// behind an atomic fragment's header (UDP; before, such an answer was taken as unread and
/// dropped, legitimate or not), or hop-by-hop and destination options (TCP), the
/// lookalike's answer is dropped and another passes. Behind one header more than it
/// follows, an answer at a client's DNS socket is dropped in enforce mode and counted (no
/// DNS server sends such a chain).
#[test]
fn enforce_reads_ipv6_answers_behind_extension_headers() {
    if !require_privileges("ipv6_extension_headers") {
        return;
    }
    let mut t = Topology::new().expect("topology");
    let (near, far) = (format!("[{}]:53", SRV6[0]), format!("[{}]:53", SRV6[1]));
    t.serve(&["serve-hostile", &near, &format!("V6EXT={IPV6_EXT_MAX}")])
        .expect("hostile DNS server behind headers");
    t.serve(&[
        "serve-hostile",
        &far,
        &format!("V6EXT={}", IPV6_EXT_MAX + 1),
    ])
    .expect("hostile DNS server behind more headers");
    let atomic = format!("[{}]:53", SRV6[2]);
    t.serve(&["serve-hostile", &atomic, "V6EXT=1", "V6FRAG=1"])
        .expect("hostile DNS server sending atomic fragments");
    let (mut a, state) = agent(&t, "v6ext", "enforce");
    let blocked = ask_at(&t, &atomic, "udp", "army.ml", "MX", 1500);
    assert!(
        blocked["answer"].is_null(),
        "the lookalike's answer as an atomic fragment reached the client: {blocked}"
    );
    let other = ask_at(&t, &atomic, "udp", "army.mil", "MX", 1500);
    assert!(
        other["answer"].is_string(),
        "a legitimate answer as an atomic fragment was dropped: {other}"
    );
    for transport in ["udp", "tcp"] {
        let blocked = ask_at(&t, &near, transport, "army.ml", "MX", 1500);
        assert!(
            blocked["answer"].is_null(),
            "{transport}: the lookalike's answer behind extension headers reached the client: {blocked}"
        );
        let other = ask_at(&t, &near, transport, "army.mil", "MX", 1500);
        assert!(other["answer"].is_string(), "{transport}: {other}");
    }
    let unread = ask_at(&t, &far, "udp", "army.mil", "MX", 1500);
    assert!(
        unread["answer"].is_null(),
        "an answer behind more headers than the kernel follows reached the client: {unread}"
    );
    let counted = a.metric(r#"mxsentry_dns_capture_events_total{reason="ipv6_chain_unread"}"#);
    assert!(
        counted.as_ref().is_ok_and(|n| *n >= 1.0),
        "the unread chain is not counted: {counted:?}"
    );
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// A query over TCP is seen however the client cuts it: the agent reports the lookup.
#[test]
fn tcp_queries_are_seen_however_they_are_cut() {
    if !require_privileges("tcp_cut_queries") {
        return;
    }
    let t = hostile(600, &[]);
    let (mut a, state) = agent(&t, "tcpq", "monitor");
    for (i, how) in ["tcp", "tcp-prefix", "tcp-header:3", "tcp-header:11"]
        .iter()
        .enumerate()
    {
        let name = format!("q{i}.army.ml");
        let out = ask(&t, how, &name, "A", 1500);
        let q = out["query"].as_str().expect("query").to_string();
        message(&mut a, "egress", "tcp", &q)
            .unwrap_or_else(|e| panic!("{how}: the query was not captured whole: {e}"));
        a.wait_for(WAIT, |v| {
            v["event"] == "lookalike_lookup" && v["domain"] == name.as_str()
        })
        .unwrap_or_else(|e| panic!("{how}: the lookup of {name} was not reported: {e}"));
    }
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// Two queries in one segment and their answers in one segment (glibc's A and AAAA over
/// one connection): each message is seen; in enforce mode the segment holding a blocked
/// answer does not reach the client. (The kernel decides at most two questions per
/// segment, the verifier's budget; past that the stream is counted as lost and, at a
/// client in enforce mode, dropped.)
#[test]
fn several_messages_in_one_segment_are_each_seen_and_a_blocked_one_is_dropped() {
    if !require_privileges("tcp_many_per_segment") {
        return;
    }
    let names = "other.org,army.ml";
    let t = hostile(600, &[]);
    let (mut a, state) = agent(&t, "tcpmany", "monitor");
    let out = ask(&t, "tcp", names, "MX", 2000);
    let answers = out["answers"].as_array().expect("answers").clone();
    assert_eq!(answers.len(), 2);
    for (name, ans) in names.split(',').zip(&answers) {
        let hex = ans
            .as_str()
            .unwrap_or_else(|| panic!("{name} unanswered in monitor mode: {out}"));
        let m = message(&mut a, "ingress", "tcp", hex)
            .unwrap_or_else(|e| panic!("answer for {name} not captured: {e}"));
        let want = if name == "army.ml" {
            "would_block"
        } else {
            "allowed"
        };
        assert_eq!(m["verdict"], want, "{name}: {m}");
        let hash = mxsentry::kernel::maps::name_hash(name).expect("hash");
        assert_eq!(m["qname_hash"], format!("{hash:016x}"), "{name}: {m}");
    }
    for name in names.split(',') {
        let hash = format!("{:016x}", mxsentry::kernel::maps::name_hash(name).unwrap());
        a.wait_for(WAIT, |v| {
            v["event"] == "dns_packet" && v["direction"] == "egress" && v["qname_hash"] == hash
        })
        .unwrap_or_else(|e| panic!("query for {name} not captured: {e}"));
    }
    a.ctl(&["mode", "enforce"]).expect("enforce");
    let out = ask(&t, "tcp", names, "MX", 1500);
    assert!(
        out["answers"]
            .as_array()
            .is_some_and(|v| v.iter().all(Value::is_null)),
        "the segment holding army.ml's answer reached the client: {out}"
    );
    let out = ask(&t, "tcp", "army.mil,other.org", "MX", 1500);
    assert!(
        out["answers"]
            .as_array()
            .is_some_and(|v| v.iter().all(Value::is_string)),
        "answers without a blocked one were dropped: {out}"
    );
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// A whole-name block in the kernel drops only the answers of the name whose keyed tag it
/// carries (`NAME_TAGS`). Before, any question whose 64-bit FNV hash was the block's key
/// met it: whoever picks a lookalike's name can compute one whose hash is a legitimate
/// name's, get it looked up, and have that name's answers dropped. The state a computed
/// collision leaves is written here directly (a block under the legitimate name's hash,
/// tagged for another name): computing a real collision is a search this test does not
/// carry, and the kernel sees nothing but the key and the tag.
#[test]
fn a_whole_name_block_drops_only_the_answers_of_the_name_it_was_learned_for() {
    use mxsentry::kernel::maps::{VerdictMaps, name_hash};
    use sensor_common::{
        BlockEntry,
        maps::AGENT_NAME_KEY,
        qname::{MAX_QNAME_WIRE, encode_name},
        tag::name_tag,
    };
    if !require_privileges("name_tags") {
        return;
    }
    let t = hostile(600, &[]);
    let (mut a, state) = agent(&t, "nametag", "enforce");
    let mut maps = VerdictMaps::open(&test_pin_dir("nametag")).expect("maps");
    let key = maps.agent_slot(AGENT_NAME_KEY).expect("key slot");
    assert_ne!(key, 0, "the agent drew no tag key");
    let tag_of = |name: &str| {
        let mut w = [0u8; MAX_QNAME_WIRE];
        let n = encode_name(name, &mut w).expect("wire name");
        name_tag(key, &w[..n])
    };
    // `BEST` is a legitimate name here; the block under its hash was learned for another.
    let h = name_hash(BEST).expect("hash");
    maps.block_name_hash(h, BlockEntry::new(0, 0, 0))
        .expect("block");
    maps.tag_name_hash(h, tag_of("army.mil.a.b.c.zq7v.com"))
        .expect("tag");
    let before = a
        .metric(r#"mxsentry_dns_capture_events_total{reason="name_tag_mismatch"}"#)
        .unwrap_or(0.0);
    for transport in ["udp", "tcp"] {
        let out = ask(&t, transport, BEST, "A", 1500);
        assert!(
            out["answer"].is_string(),
            "{transport}: a name sharing the block's hash had its answer dropped: {out}"
        );
    }
    assert!(
        a.metric(r#"mxsentry_dns_capture_events_total{reason="name_tag_mismatch"}"#)
            .expect("metric")
            > before
    );
    // Its own tag, or none (a block a sensor before tags learned): dropped.
    maps.tag_name_hash(h, tag_of(BEST)).expect("tag");
    let out = ask(&t, "udp", BEST, "A", 1500);
    assert!(out["answer"].is_null(), "tagged for itself, passed: {out}");
    maps.untag_name_hash(h).expect("untag");
    let out = ask(&t, "tcp", BEST, "A", 1500);
    assert!(out["answer"].is_null(), "untagged, passed: {out}");
    maps.unblock_name_hash(h).expect("unblock");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// The prefix rule (`army.mil` with labels appended) is lifted for a name the agent judged
/// clean only with that name's keyed tag beside the verdict. A blocklist's lookup about
/// the protected name (judged clean, its tag kept) is answered; a clean verdict under a
/// lookalike's hash with no tag, as one written for a name computed to share that hash
/// leaves it, lifts nothing, and the lookalike's answer is dropped. (Before, any clean
/// verdict under the hash lifted the rule; computing a real collision is a search this
/// test does not carry, so the verdict is written into `CLEAN_NAMES` directly.)
#[test]
fn a_clean_verdict_lifts_the_prefix_rule_only_for_its_own_name() {
    use mxsentry::kernel::maps::{VerdictMaps, name_hash};
    use sensor_common::{
        BlockEntry,
        maps::{AGENT_NAME_KEY, BLOCK_LEARNED},
        qname::{MAX_QNAME_WIRE, encode_name},
        tag::name_tag,
    };
    if !require_privileges("clean_tags") {
        return;
    }
    let t = hostile(600, &[]);
    let (mut a, state) = agent(&t, "cleantag", "enforce");
    // The first answer can beat the agent's verdict (the prefix rule drops it, and the
    // client asks again, as a resolver would): the verdict must then let it through.
    let listed = "army.mil.dbl.spamhaus.org";
    let answered = (0..3).any(|_| ask(&t, "udp", listed, "A", 1000)["answer"].is_string());
    assert!(
        answered,
        "a blocklist lookup was dropped after the agent's verdict"
    );
    let lookalike = "army.mil.zq7v.net";
    let mut maps = VerdictMaps::open(&test_pin_dir("cleantag")).expect("maps");
    // A whole-name block under the listed name's hash, tagged for another name: the
    // state a computed collision leaves. Its tag took the verdict's place in NAME_TAGS
    // (one entry per hash for both), and the listed name's answers were dropped.
    let key = maps.agent_slot(AGENT_NAME_KEY).expect("key slot");
    let mut w = [0u8; MAX_QNAME_WIRE];
    let n = encode_name("army.mil.a.b.c.d.zq7v.net", &mut w).expect("wire name");
    let h = name_hash(listed).expect("hash");
    maps.block_name_hash(h, BlockEntry::new(BLOCK_LEARNED, 0, 0))
        .expect("block");
    maps.tag_name_hash(h, name_tag(key, &w[..n])).expect("tag");
    let out = ask(&t, "udp", listed, "A", 1500);
    assert!(
        out["answer"].is_string(),
        "a block under its hash undid the listed name's clean verdict: {out}"
    );
    maps.untag_name_hash(h).expect("untag");
    maps.unblock_name_hash(h).expect("unblock");
    maps.judged(name_hash(lookalike).expect("hash"), Some(u64::MAX))
        .expect("clean verdict");
    for transport in ["udp", "tcp"] {
        let out = ask(&t, transport, lookalike, "MX", 1500);
        assert!(
            out["answer"].is_null(),
            "{transport}: another name's clean verdict lifted the prefix rule: {out}"
        );
    }
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// Asks for `names` (MX, over one TCP connection) with the agent stopped right after a
/// heartbeat, so the kernel still counts it alive and holds an unjudged MX answer, and
/// lets the agent go 700 ms later: the client's report and how long it waited.
fn ask_while_stopped(t: &Topology, a: &Agent, names: &str) -> (Value, Duration) {
    std::thread::scope(|s| {
        a.signal(libc::SIGSTOP);
        let asked = s.spawn(|| {
            let start = std::time::Instant::now();
            let out = ask(t, "tcp", names, "MX", 8000);
            (out, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(700));
        a.signal(libc::SIGCONT);
        asked.join().expect("client thread")
    })
}

/// An MX answer over TCP that arrives before the agent's verdict on its question is held
/// (dropped) until the verdict, as a UDP one is; a stub that asks over TCP first
/// (`options use-vc`) meets it whenever its resolver answers from cache. The kernel kept
/// dropping the segment's re-sendings as it does a blocked answer's, after the clean
/// verdict too: the connection hung until the client gave up. The agent is stopped
/// right after a heartbeat, so the kernel holds the answer, and let go 700 ms later.
#[test]
fn a_tcp_mx_answer_held_for_the_verdict_arrives_once_the_name_is_judged_clean() {
    if !require_privileges("tcp_hold") {
        return;
    }
    let t = hostile(600, &[]);
    let (mut a, state) = agent(&t, "tcphold", "enforce");
    let before = a.metric("mxsentry_answers_held_total").unwrap_or(0.0);
    let (out, waited) = ask_while_stopped(&t, &a, "fabrikam.example");
    assert!(
        out["answer"].is_string(),
        "a held TCP answer never arrived after its clean verdict: {out}"
    );
    assert!(
        waited >= Duration::from_millis(500),
        "answered in {waited:?}: the answer was not held, so this tested nothing"
    );
    assert!(
        waited < Duration::from_secs(5),
        "answered only in {waited:?}"
    );
    let held = a.metric("mxsentry_answers_held_total").unwrap_or(0.0) - before;
    eprintln!("answered after {waited:?}; answers held: {held}");
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}

/// Monitor: before the reply, the lookalike's server sends a decoy at the reply's own
/// sequence number without the ACK flag, its length prefix spanning the reply. The
/// client's TCP discards it; the kernel read it as the stream's next message, and the
/// real answer as that message's body: the agent never saw the answer the MTA read
/// (nothing was counted). A segment the host's TCP discards is not read.
#[test]
fn a_tcp_decoy_without_ack_does_not_hide_the_answer_after_it() {
    if !require_privileges("tcp_noack_decoy") {
        return;
    }
    whole_answer_ties_the_last_mx_host("noackdecoy", 600, "tcp", &["TCP=noackdecoy"]);
}

/// Two MX answers in one TCP reply, cut so that the first segment carries the first
/// answer's length, header and the start of its question: the second segment completes
/// that question (judged clean before) and carries the whole second answer, whose
/// question the agent has not judged yet (it is stopped), so that segment is held and
/// the stream put back. Put back as it stood, the first answer was undecided again, but
/// the start of its question was gone from the kernel's buffer (the second answer's
/// first bytes were read over it): re-sent, it was judged as a name spliced from both,
/// `army.ml` here, and the stream was dropped for good. Now it is put back as decided.
#[test]
fn a_held_answer_behind_a_partly_read_one_is_decided_again_without_splicing() {
    if !require_privileges("tcp_hold_splice") {
        return;
    }
    // Reply cut after 2 + 16 bytes: length, header, and "\x04xxx" of `xxxy.ml`'s question;
    // the second answer's question starts "\x04arm".
    let t = hostile(600, &["TCP=header:16"]);
    let (mut a, state) = agent(&t, "tcpsplice", "enforce");
    // Judged clean first (its first answer may be held for that verdict: asked again).
    let judged = (0..3).any(|_| ask(&t, "udp", "xxxy.ml", "MX", 1000)["answer"].is_string());
    assert!(judged, "xxxy.ml was never answered");
    let (out, waited) = ask_while_stopped(&t, &a, "xxxy.ml,arms.example");
    let answers = out["answers"].as_array().expect("answers");
    assert!(
        answers.len() == 2 && answers.iter().all(Value::is_string),
        "the reply never arrived whole after the verdict: {out}"
    );
    assert!(
        waited >= Duration::from_millis(500),
        "answered in {waited:?}: nothing was held, so this tested nothing"
    );
    a.stop(libc::SIGINT).expect("stop");
    std::fs::remove_dir_all(state).ok();
}
