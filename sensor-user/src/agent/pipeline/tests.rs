//! The pipeline driven directly: DNS messages built with hickory, maps simulated.

use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, CNAME, MX},
    },
};
use sensor_common::{BlockEntry, Verdict, event::Direction, maps::BLOCK_SUBTREE};
use serde_json::Value;

use super::{ConnectIn, DnsIn, Pipeline, who::Who};
use crate::{
    agent::{Sink, enforcer::Simulated, learning::Learning, pending::Pending},
    config::Loaded,
    kernel::maps::{Mode, name_hash},
    output::{EventLog, Metrics},
};

pub(super) const MX_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));

fn config(text: &str) -> Loaded {
    Loaded::parse(text, std::path::Path::new("test.toml")).unwrap()
}

fn pipeline(text: &str) -> (Pipeline<Simulated>, Arc<Mutex<Vec<String>>>, Metrics) {
    pipeline_seeded(text, |_| {})
}

/// A pipeline for `text` whose in-memory correspondents ledger `seed` fills first.
pub(super) fn pipeline_seeded(
    text: &str,
    seed: impl FnOnce(&mut Learning),
) -> (Pipeline<Simulated>, Arc<Mutex<Vec<String>>>, Metrics) {
    pipeline_over(text, seed, Simulated::default())
}

/// `pipeline_seeded` over `kernel`: the maps as a previous agent left them.
pub(super) fn pipeline_over(
    text: &str,
    seed: impl FnOnce(&mut Learning),
    kernel: Simulated,
) -> (Pipeline<Simulated>, Arc<Mutex<Vec<String>>>, Metrics) {
    let metrics = Metrics::new("test").unwrap();
    let (log, lines) = EventLog::memory(metrics.clone());
    let mut sink = Sink::new(log, metrics.clone(), "test");
    let who = Who::new(None, "/proc".into());
    let loaded = config(text);
    let mut learning = Learning::in_memory(&loaded.config.learn, loaded.policy.clone(), &mut sink);
    seed(&mut learning);
    (
        Pipeline::new(loaded, kernel, sink, who, Pending::in_memory(100), learning),
        lines,
        metrics,
    )
}

/// A pipeline for `text` in enforce mode.
pub(super) fn enforcing(text: &str) -> (Pipeline<Simulated>, Arc<Mutex<Vec<String>>>, Metrics) {
    let (mut p, lines, m) = pipeline_seeded(text, |_| {});
    p.enforcer_mut().mode = Some(Mode::Enforce);
    (p, lines, m)
}

pub(super) fn events(lines: &Arc<Mutex<Vec<String>>>, kind: &str) -> Vec<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == kind)
        .collect()
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

pub(super) fn query(q: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(name(q), t));
    m.to_vec().unwrap()
}

pub(super) fn answer(
    q: &str,
    t: RecordType,
    records: Vec<Record>,
    additionals: Vec<Record>,
) -> Vec<u8> {
    let mut m = Message::response(1, OpCode::Query);
    m.add_query(Query::query(name(q), t));
    m.add_answers(records);
    m.add_additionals(additionals);
    m.to_vec().unwrap()
}

/// One DNS message through the simulated kernel (as `blocks.rs` judges it) and the
/// pipeline.
pub(super) fn dns(p: &mut Pipeline<Simulated>, bytes: &[u8], direction: Direction) {
    let verdict = match direction {
        Direction::Ingress => p.enforcer().answer_verdict(bytes),
        Direction::Egress => {
            p.enforcer_mut().query_sent(bytes);
            Verdict::Allowed
        }
    };
    p.on_dns(&DnsIn {
        ts_ns: 0,
        direction,
        verdict,
        cgroup_id: 0,
        payload: bytes,
        msg_len: bytes.len(),
        resolver: false,
        from_server: false,
    });
}

pub(super) fn connect(p: &mut Pipeline<Simulated>, addr: IpAddr) {
    let verdict = p.enforcer().connect_verdict(addr);
    p.on_connect(ConnectIn {
        ts_ns: 0,
        tgid: std::process::id(),
        comm: "smtp".into(),
        cgroup_id: 0,
        addr,
        port: 25,
        verdict,
    });
}

/// `owner MX 10 exchanger`, TTL 300.
pub(super) fn mx_record(owner: &str, exchanger: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::MX(MX::new(10, name(exchanger))))
}

/// `owner A MX_IP`, TTL 300.
pub(super) fn a_record(owner: &str) -> Record {
    Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 25))))
}

/// MX army.ml → mx.army.ml (glue 192.0.2.25), as Postfix's lookups would see it.
fn resolve_lookalike(p: &mut Pipeline<Simulated>) {
    dns(p, &query("army.ml.", RecordType::MX), Direction::Egress);
    let mx = mx_record("army.ml.", "mx.army.ml.");
    let glue = a_record("mx.army.ml.");
    dns(
        p,
        &answer("army.ml.", RecordType::MX, vec![mx], vec![glue]),
        Direction::Ingress,
    );
}

/// Whether `domain` is blocked with everything under it.
fn subtree(p: &Pipeline<Simulated>, domain: &str) -> bool {
    let h = sensor_common::domain_hash(domain).unwrap();
    p.enforcer()
        .names
        .get(&h)
        .is_some_and(|e| e.flags & BLOCK_SUBTREE != 0)
}

const BLOCK: &str = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";
const ALERT: &str = "[policy]\nprotect = [\"army.mil\"]\n";

#[test]
fn monitor_mode_detects_the_delivery_with_its_route_and_process() {
    let (mut p, lines, m) = pipeline(BLOCK);
    resolve_lookalike(&mut p);
    // The domain is in the block map, whole, before any answer arrives.
    assert!(subtree(&p, "army.ml"));
    assert!(p.enforcer().addrs.contains_key(&MX_IP));
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["domain"], "army.ml");
    assert_eq!(d[0]["target"], "army.mil");
    assert_eq!(d[0]["rule"], "suffix-typo");
    assert_eq!(d[0]["action"], "block");
    assert_eq!(d[0]["verdict"], "would_block");
    assert_eq!(d[0]["mechanism"], "dns_answer");
    assert_eq!(d[0]["route"]["mx_host"], "mx.army.ml");
    assert_eq!(d[0]["process"]["comm"], "smtp");
    assert!(
        d[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("lost its \"i\"")
    );
    assert_eq!(events(&lines, "lookalike_lookup").len(), 1);
    assert_eq!(
        m.detections
            .with_label_values(&["army.mil", "suffix-typo", "block"])
            .get(),
        1
    );
    assert_eq!(
        m.smtp_connects
            .with_label_values(&["25", "ipv4", "would_block"])
            .get(),
        1
    );
    assert_eq!(
        m.dns_messages.with_label_values(&["ingress", "MX"]).get(),
        1
    );
    assert_eq!(m.cache_entries.get(), 1);
}

/// An answer with its QR bit clear, from a server's port to a client's: the stubs take it
/// for the answer (they do not read the bit), and so must the agent. Before, it was taken
/// for a query this host received: no route was learned and the delivery went
/// unattributed.
#[test]
fn an_answer_marked_as_a_query_from_a_server_is_read_as_an_answer() {
    let (mut p, lines, _) = pipeline(ALERT);
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    let mx = mx_record("army.ml.", "mx.army.ml.");
    let glue = a_record("mx.army.ml.");
    let mut bytes = answer("army.ml.", RecordType::MX, vec![mx], vec![glue]);
    bytes[2] &= 0x7f;
    p.on_dns(&DnsIn {
        ts_ns: 0,
        direction: Direction::Ingress,
        verdict: Verdict::Allowed,
        cgroup_id: 0,
        payload: &bytes,
        msg_len: bytes.len(),
        resolver: false,
        from_server: true,
    });
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["domain"], "army.ml");
    assert_eq!(d[0]["route"]["mx_host"], "mx.army.ml");
}

#[test]
fn an_mx_host_looked_up_later_is_attributed_to_the_recipient() {
    let (mut p, lines, _) = pipeline(ALERT);
    let mx = mx_record("army.ml.", "mx.army.ml.");
    dns(
        &mut p,
        &answer("army.ml.", RecordType::MX, vec![mx], vec![]),
        Direction::Ingress,
    );
    let a = a_record("mx.army.ml.");
    dns(
        &mut p,
        &answer("mx.army.ml.", RecordType::A, vec![a], vec![]),
        Direction::Ingress,
    );
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d[0]["route"]["recipient_domain"], "army.ml");
    assert_eq!(d[0]["action"], "alert");
    assert_eq!(d[0]["verdict"], "allowed");
    // Alert action: nothing is put in the block maps.
    assert!(p.enforcer().addrs.is_empty() && p.enforcer().names.is_empty());
}

#[test]
fn a_cnamed_exchanger_resolved_in_two_steps_keeps_its_recipient() {
    let (mut p, lines, _) = pipeline(ALERT);
    let mx = mx_record("army.ml.", "mail.army.ml.");
    dns(
        &mut p,
        &answer("army.ml.", RecordType::MX, vec![mx], vec![]),
        Direction::Ingress,
    );
    let cname = Record::from_rdata(
        name("mail.army.ml."),
        300,
        RData::CNAME(CNAME(name("mx.army.ml."))),
    );
    dns(
        &mut p,
        &answer("mail.army.ml.", RecordType::A, vec![cname], vec![]),
        Direction::Ingress,
    );
    let a = a_record("mx.army.ml.");
    dns(
        &mut p,
        &answer("mx.army.ml.", RecordType::A, vec![a], vec![]),
        Direction::Ingress,
    );
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d[0]["route"]["recipient_domain"], "army.ml");
    assert_eq!(d[0]["domain"], "army.ml");
}

#[test]
fn enforce_drops_the_answer_and_learns_no_address_from_it() {
    let (mut p, lines, m) = pipeline(&format!("[agent]\nmode = \"enforce\"\n{BLOCK}"));
    resolve_lookalike(&mut p);
    let b = events(&lines, "block");
    let kinds: Vec<&str> = b.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dns_answer"]);
    assert_eq!(b[0]["target"], "army.mil");
    assert_eq!(m.blocked.with_label_values(&["dns_answer"]).get(), 1);
    // Nobody here received that answer: its addresses may be anyone's mail host.
    assert!(p.enforcer().addrs.is_empty());
    // A host connecting there was never told the address by the lookalike's answer
    // (whoever writes it can name anyone's host): the connect is unattributed, and says
    // which dropped answers named the address.
    connect(&mut p, MX_IP);
    assert!(events(&lines, "detection").is_empty());
    let u = events(&lines, "unattributed_connect");
    assert_eq!(u[0]["unreceived_lookalikes"][0], "army.ml", "{u:?}");
    assert_eq!(m.lookalikes_not_received.get(), 1);
}

#[test]
fn unattributed_connects_are_reported_not_ignored() {
    let (mut p, lines, m) = pipeline(BLOCK);
    connect(&mut p, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
    let u = events(&lines, "unattributed_connect");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0]["address"], "198.51.100.7");
    assert_eq!(m.unattributed.get(), 1);
}

/// Monitor mode, an `alert` entry: the lookalike's MX answer reached the kernel before
/// the agent's verdict, so the kernel's hold judged it `would_block`. Enforce mode would
/// have held it once and let the resolver's retry through (only `block` lookalikes are
/// dropped): the delivery was reported as one enforce mode would have stopped.
#[test]
fn monitor_does_not_say_would_block_for_an_alert_lookalike_s_held_answer() {
    let (mut p, lines, _m) = pipeline(ALERT);
    let mx = mx_record("army.ml.", "mx.army.ml.");
    let bytes = answer(
        "army.ml.",
        RecordType::MX,
        vec![mx],
        vec![a_record("mx.army.ml.")],
    );
    p.on_dns(&DnsIn {
        ts_ns: 0,
        direction: Direction::Ingress,
        verdict: Verdict::WouldBlock,
        cgroup_id: 0,
        payload: &bytes,
        msg_len: bytes.len(),
        resolver: false,
        from_server: false,
    });
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["action"], "alert");
    assert_eq!(d[0]["verdict"], "allowed", "{d:?}");
}

/// The went-live line is evidence, never rate-limited: an answer naming 100 exchangers
/// made it list all 100 (3,000 from a 64 KiB answer: a line of 770 KB); it lists 32 and
/// says how many there were.
#[test]
fn a_lookalike_going_live_with_many_exchangers_is_one_bounded_line() {
    let (mut p, lines, _) = pipeline(ALERT);
    let mut nx = Message::response(1, OpCode::Query);
    nx.add_query(Query::query(name("army.ml."), RecordType::MX));
    nx.metadata.response_code = ResponseCode::NXDomain;
    dns(&mut p, &nx.to_vec().unwrap(), Direction::Ingress);
    let mx = (0..100)
        .map(|i| {
            let host = name(&format!("mx{i}.army.ml."));
            Record::from_rdata(name("army.ml."), 300, RData::MX(MX::new(10, host)))
        })
        .collect();
    let bytes = answer("army.ml.", RecordType::MX, mx, vec![]);
    dns(&mut p, &bytes, Direction::Ingress);
    let live = events(&lines, "lookalike_went_live");
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["mx"].as_array().map(Vec::len), Some(32));
    assert_eq!(live[0]["mx_total"], 100);
    assert_eq!(live[0]["addresses_total"], 0);
}

#[test]
fn a_lookalike_that_did_not_resolve_and_then_does_went_live() {
    let (mut p, lines, m) = pipeline(ALERT);
    let mut nx = Message::response(1, OpCode::Query);
    nx.add_query(Query::query(name("army.ml."), RecordType::MX));
    nx.metadata.response_code = ResponseCode::NXDomain;
    dns(&mut p, &nx.to_vec().unwrap(), Direction::Ingress);
    assert_eq!(m.lookalikes_pending.get(), 1);
    resolve_lookalike(&mut p);
    let live = events(&lines, "lookalike_went_live");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["severity"], "critical");
    assert_eq!(live[0]["addresses"][0], "192.0.2.25");
    assert_eq!(m.lookalikes_pending.get(), 0);
    // NODATA for MX alone is not "unresolved": the domain may still take mail by A.
    let nodata = answer("navy.ml.", RecordType::MX, vec![], vec![]);
    let (mut q, _, m2) = pipeline("[policy]\nprotect = [\"navy.mil\"]\n");
    dns(&mut q, &nodata, Direction::Ingress);
    assert_eq!(m2.lookalikes_pending.get(), 0);
    dns(
        &mut q,
        &answer("navy.ml.", RecordType::A, vec![], vec![]),
        Direction::Ingress,
    );
    assert_eq!(m2.lookalikes_pending.get(), 1);
}

#[test]
fn reload_applies_policy_to_cached_addresses_and_a_bad_one_changes_nothing() {
    let (mut p, lines, _) = pipeline(ALERT);
    resolve_lookalike(&mut p);
    assert!(p.enforcer().addrs.is_empty());
    p.reload(config(&format!("[agent]\nmode = \"enforce\"\n{BLOCK}")));
    // Already cached: blocked at once, without a new lookup.
    assert!(p.enforcer().addrs.contains_key(&MX_IP));
    connect(&mut p, MX_IP);
    assert_eq!(events(&lines, "block").len(), 1);
    // Back to alert: blocks are lifted.
    p.reload(config(ALERT));
    assert!(p.enforcer().addrs.is_empty());
    // A bad policy never becomes a `Loaded`, so it can never reach the pipeline.
    let mut bad = config(ALERT).config;
    bad.policy.words.push("not a word".into());
    assert!(Loaded::new(bad, std::path::Path::new("test.toml")).is_err());
    assert_eq!(p.protected(), 1);
}

#[test]
fn expired_answers_leave_the_cache_and_the_block_map() {
    let (mut p, _, m) = pipeline(
        "[cache]\nttl_floor_secs = 1\nttl_ceiling_secs = 2\n[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n",
    );
    resolve_lookalike(&mut p);
    assert!(p.enforcer().addrs.contains_key(&MX_IP));
    p.tick(Instant::now() + Duration::from_secs(3));
    assert!(p.enforcer().addrs.is_empty());
    // The route names a late connect's recipient a while longer (`ATTRIBUTION_GRACE`).
    assert_eq!(m.cache_entries.get(), 1);
    p.tick(Instant::now() + Duration::from_secs(3) + super::routes::ATTRIBUTION_GRACE);
    assert_eq!(m.cache_entries.get(), 0);
}

#[test]
fn the_cache_is_bounded_and_counts_evictions() {
    let (mut p, _, m) = pipeline("[cache]\nmax_entries = 2\n");
    for i in 1..=5u8 {
        let a = Record::from_rdata(
            name("h.example."),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
        );
        dns(
            &mut p,
            &answer("h.example.", RecordType::A, vec![a], vec![]),
            Direction::Ingress,
        );
    }
    assert_eq!(m.cache_entries.get(), 2);
    assert_eq!(m.cache_evictions.get(), 3);
}

#[test]
fn malformed_payloads_are_counted_by_reason() {
    let (mut p, _, m) = pipeline(BLOCK);
    p.on_dns(&DnsIn {
        ts_ns: 0,
        direction: Direction::Ingress,
        verdict: Verdict::Allowed,
        cgroup_id: 0,
        payload: &[1, 2],
        msg_len: 2,
        resolver: false,
        from_server: false,
    });
    let mut bytes = answer("army.ml.", RecordType::A, vec![], vec![]);
    bytes[5] = 0; // no question
    dns(&mut p, &bytes, Direction::Ingress);
    assert_eq!(
        m.dns_parse_errors
            .with_label_values(&["short_header"])
            .get(),
        1
    );
    assert_eq!(
        m.dns_parse_errors
            .with_label_values(&["question_count"])
            .get(),
        1
    );
}

#[test]
fn a_lookalike_domain_is_blocked_with_everything_under_it() {
    let (mut p, _lines, _m) = pipeline(BLOCK);
    p.enforcer_mut().mode = Some(crate::kernel::maps::Mode::Enforce);
    // The first lookup seen is of a mail host under the lookalike, not the domain.
    dns(
        &mut p,
        &query("mx.army.ml.", RecordType::A),
        Direction::Egress,
    );
    let h = |n: &str| name_hash(n).unwrap();
    let d = |n: &str| sensor_common::domain_hash(n).unwrap();
    // One entry for the whole lookalike domain, none for the name itself.
    assert_eq!(p.enforcer().names.get(&h("mx.army.ml")), None);
    assert!(p.enforcer().names.contains_key(&d("army.ml")));
    let before = p.enforcer().names.len();
    for i in 0..100 {
        let q = query(&format!("r{i}.army.ml."), RecordType::A);
        dns(&mut p, &q, Direction::Egress);
    }
    assert_eq!(
        p.enforcer().names.len(),
        before,
        "a flood of names took map entries"
    );
    // Another host under it, never looked up before: its answer is dropped too.
    let other = answer("mail.army.ml.", RecordType::A, vec![], vec![]);
    assert_eq!(p.enforcer().answer_verdict(&other), Verdict::Blocked);
    // The protected domain's own hosts are not.
    let protected = answer("mx.army.mil.", RecordType::A, vec![], vec![]);
    assert_eq!(p.enforcer().answer_verdict(&protected), Verdict::Allowed);
}

// The defect: Postfix's `reject_rhsbl_sender dbl.spamhaus.org` on mail from a protected
// domain asks `army.mil.dbl.spamhaus.org`; that was a lookalike lookup (reported), and in
// enforce mode the appended-suffix rule dropped the list's answer until it timed out.
#[test]
fn a_blocklist_lookup_about_a_protected_domain_is_no_lookalike_and_its_answer_passes() {
    let enforce = "[agent]\nmode = \"enforce\"\n";
    let (mut p, lines, _m) = pipeline(&format!("{enforce}{BLOCK}"));
    for list in ["army.mil.dbl.spamhaus.org.", "army.mil.multi.uribl.com."] {
        let a = answer(list, RecordType::A, vec![], vec![]);
        dns(&mut p, &query(list, RecordType::A), Direction::Egress);
        assert_eq!(p.enforcer().answer_verdict(&a), Verdict::Allowed, "{list}");
        dns(&mut p, &a, Direction::Ingress);
    }
    assert!(events(&lines, "lookalike_lookup").is_empty());
    // The same shape under a domain anyone can register stays the lookalike it is.
    let evil = "army.mil.dbl.spamhaus-lists.com.";
    dns(&mut p, &query(evil, RecordType::MX), Direction::Egress);
    let a = answer(evil, RecordType::MX, vec![], vec![]);
    assert_eq!(p.enforcer().answer_verdict(&a), Verdict::Blocked);
    assert_eq!(events(&lines, "lookalike_lookup").len(), 1);
}

// The defect: an entry written in Unicode was hashed as UTF-8 for the kernel, which
// hashes the A-labels on the wire, so its prefix rule and preloaded slips never matched.
#[test]
fn an_entry_written_in_unicode_blocks_in_the_kernel_as_on_the_wire() {
    let (p, _lines, _m) =
        pipeline("[policy]\nprotect = [{ entry = \"Bücher.de.\", action = \"block\" }]\n");
    let appended = answer("xn--bcher-kva.de.evil.com.", RecordType::MX, vec![], vec![]);
    assert_eq!(
        p.enforcer().answer_verdict(&appended),
        Verdict::WouldBlock,
        "the prefix rule of the A-label entry (monitor mode)"
    );
    let slips = crate::detect::candidates::candidates("xn--bcher-kva.de");
    assert!(
        slips.iter().any(|c| subtree(&p, c)),
        "no slip of the A-label preloaded"
    );
    let own = answer("mx.xn--bcher-kva.de.", RecordType::A, vec![], vec![]);
    assert_eq!(p.enforcer().answer_verdict(&own), Verdict::Allowed);
}

#[test]
fn likely_lookalikes_of_block_entries_are_blocked_before_any_query() {
    let d = |n: &str| sensor_common::domain_hash(n).unwrap();
    let (p, _lines, m) = pipeline(BLOCK);
    for name in ["army.ml", "army.mi", "army.mil.com", "armymil.com"] {
        assert!(subtree(&p, name), "{name}");
    }
    // Under .mil only the DoD registers: a lookalike there is reported, not blocked.
    assert!(!p.enforcer().names.contains_key(&d("arym.mil")));
    assert!(!p.enforcer().names.contains_key(&d("army.mil")));
    let slips = p
        .enforcer()
        .names
        .values()
        .filter(|e| e.flags & BLOCK_SUBTREE != 0)
        .count();
    assert_eq!(m.preloaded.get() as usize, slips);
    // Alert-only entries block nothing, in advance or otherwise.
    let (p, _lines, m) = pipeline(ALERT);
    assert!(p.enforcer().names.is_empty());
    assert_eq!(m.preloaded.get(), 0);
}

#[test]
fn every_detection_series_exists_at_zero_from_start_and_after_a_reload() {
    let (mut p, _, m) = pipeline(BLOCK);
    let text = m.render();
    assert!(
        text.contains(
            "mxsentry_detections_total{action=\"block\",rule=\"transposition\",target=\"army.mil\"} 0"
        ),
        "{text}"
    );
    assert!(text.contains("mxsentry_lookalikes_went_live_total{target=\"army.mil\"} 0"));
    // A target added by a reload is exported at zero too, with its own action.
    p.reload(config(
        "[policy]\nprotect = [\"army.mil\", { entry = \"navy.mil\", action = \"alert\" }]\n",
    ));
    let text = m.render();
    assert!(
        text.contains(
            "mxsentry_detections_total{action=\"alert\",rule=\"suffix-typo\",target=\"navy.mil\"} 0"
        ),
        "{text}"
    );
    assert!(text.contains("mxsentry_lookalikes_went_live_total{target=\"navy.mil\"} 0"));
}

#[test]
fn a_mail_host_shared_with_a_legitimate_domain_keeps_every_name_and_is_never_address_blocked() {
    let (mut p, lines, _) = pipeline(BLOCK);
    // A provider's host named by a lookalike's and a legitimate domain's MX answers.
    for d in ["army.ml.", "partner.org."] {
        dns(&mut p, &query(d, RecordType::MX), Direction::Egress);
        let mx = mx_record(d, "mx.provider.net.");
        dns(
            &mut p,
            &answer(d, RecordType::MX, vec![mx], vec![]),
            Direction::Ingress,
        );
    }
    dns(
        &mut p,
        &query("mx.provider.net.", RecordType::A),
        Direction::Egress,
    );
    let a = a_record("mx.provider.net.");
    dns(
        &mut p,
        &answer("mx.provider.net.", RecordType::A, vec![a], vec![]),
        Direction::Ingress,
    );
    assert!(
        p.enforcer().addrs.is_empty(),
        "a shared mail host was address-blocked"
    );
    // A delivery to that host is still reported for the lookalike among its names.
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["route"]["recipient_domain"], "army.ml");
    assert_eq!(d[0]["route"]["mx_host"], "mx.provider.net");
}

/// Resolves `domain`'s MX (`mx.<domain>`, glue MX_IP) as an MTA would.
fn resolve(p: &mut Pipeline<Simulated>, domain: &str) {
    let q = format!("{domain}.");
    let mx = format!("mx.{domain}.");
    dns(p, &query(&q, RecordType::MX), Direction::Egress);
    dns(
        p,
        &answer(
            &q,
            RecordType::MX,
            vec![mx_record(&q, &mx)],
            vec![a_record(&mx)],
        ),
        Direction::Ingress,
    );
}

#[test]
fn a_restricted_registry_lookalike_is_reported_at_info_and_never_blocked() {
    let (mut p, lines, m) = pipeline(&format!("[agent]\nmode = \"enforce\"\n{BLOCK}"));
    p.enforcer_mut().mode = Some(crate::kernel::maps::Mode::Enforce);
    // Only the DoD registers under .mil: arym.mil is somebody else's, not a trap.
    resolve(&mut p, "arym.mil");
    assert!(p.enforcer().addrs.is_empty(), "an address was blocked");
    let dh = |n: &str| sensor_common::domain_hash(n).unwrap();
    assert!(
        !p.enforcer().names.contains_key(&dh("arym.mil")),
        "its name was blocked"
    );
    assert_eq!(
        p.enforcer().names.get(&name_hash("arym.mil").unwrap()),
        None
    );
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["severity"], "info");
    assert_eq!(d[0]["registry"], "restricted");
    assert_eq!(d[0]["registry_suffix"], "mil");
    assert_eq!(d[0]["verdict"], "allowed");
    let text = m.render();
    assert!(
        text.contains(
            "mxsentry_restricted_lookalikes_total{registry=\"military\",seen=\"delivery\",target=\"army.mil\"} 1"
        ),
        "{text}"
    );
    assert!(!text.contains(
        "mxsentry_detections_total{action=\"block\",rule=\"transposition\",target=\"army.mil\"} 1"
    ));
    // A lookalike in an open registry is a typosquat, blocked in enforce (its answer
    // dropped: nobody received the address, so none is blocked; see
    // enforce_drops_the_answer_and_learns_no_address_from_it).
    resolve(&mut p, "army.ml");
    assert!(subtree(&p, "army.ml"));
    let b = events(&lines, "block");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["kind"], "dns_answer");
    assert_eq!(b[0]["target"], "army.mil");
}

// The defect: learning lifted an operator's `ctl block-addr` (a legitimate name resolved
// to the address) or wrote a learned entry over it (losing BLOCK_ENFORCE, then expiring
// with the attacker's TTL), and wrote learned name blocks over `ctl block-name` entries.
#[test]
fn an_operator_s_blocks_are_never_lifted_or_replaced_by_what_answers_teach() {
    use sensor_common::maps::BLOCK_ENFORCE;
    let (mut p, _lines, _m) = pipeline(BLOCK);
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));
    let op = BlockEntry::new(BLOCK_ENFORCE, 0, 0);
    p.enforcer_mut().addrs.insert(ip, op);
    // A legitimate domain whose mail host is at that address.
    resolve(&mut p, "partner.example");
    assert_eq!(
        p.enforcer().addrs.get(&ip),
        Some(&op),
        "lifted by a legitimate answer"
    );
    // A lookalike whose mail host is there, delivered in monitor mode.
    resolve_lookalike(&mut p);
    assert_eq!(
        p.enforcer().addrs.get(&ip),
        Some(&op),
        "replaced by a learned block"
    );
    // An operator's name block where a lookalike's query would put a learned one: the
    // entry that query learns on a fresh pipeline, then the same with the operator's first.
    let learned = |p: &Pipeline<Simulated>, before: &[u64]| {
        p.enforcer()
            .names
            .keys()
            .find(|h| !before.contains(h))
            .copied()
    };
    // The first of these lookalikes the policy did not preload.
    let (lookalike, h) = [
        "mx.arrmy.ml.",
        "mx.armyy.ml.",
        "mx.army.mil.co.",
        "mx.aarmy.mil.",
        "mx.army-mil.net.",
    ]
    .into_iter()
    .find_map(|l| {
        let (mut p, _lines, _m) = pipeline(BLOCK);
        let before: Vec<u64> = p.enforcer().names.keys().copied().collect();
        dns(&mut p, &query(l, RecordType::A), Direction::Egress);
        learned(&p, &before).map(|h| (l, h))
    })
    .expect("a lookalike's query learns a name block");
    let (mut p, _lines, _m) = pipeline(BLOCK);
    p.enforcer_mut().names.insert(h, op);
    let before: Vec<u64> = p.enforcer().names.keys().copied().collect();
    dns(&mut p, &query(lookalike, RecordType::A), Direction::Egress);
    assert_eq!(p.enforcer().names.get(&h), Some(&op), "{lookalike}");
    assert_eq!(learned(&p, &before), None);
}

/// An answer whose first record does not decode (its type says AAAA, its data is 4
/// bytes), written by whoever controls the lookalike's DNS. Before, the whole answer was
/// discarded and the delivery to its mail host went unattributed; stub resolvers step
/// over such a record, so the agent does too.
#[test]
fn a_record_that_does_not_decode_does_not_hide_the_mail_host_after_it() {
    let (mut p, lines, m) = pipeline(ALERT);
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    let decoy = Record::from_rdata(
        name("army.ml."),
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 66))),
    );
    let mut bytes = answer(
        "army.ml.",
        RecordType::MX,
        vec![decoy, mx_record("army.ml.", "mx.army.ml.")],
        vec![a_record("mx.army.ml.")],
    );
    // The first record's type, after the question and its owner's pointer.
    let at = 12 + 9 + 4 + 2;
    assert_eq!(bytes[at..at + 2], [0, 1]);
    bytes[at..at + 2].copy_from_slice(&[0, 28]);
    dns(&mut p, &bytes, Direction::Ingress);
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["domain"], "army.ml");
    assert_eq!(d[0]["route"]["mx_host"], "mx.army.ml");
    assert_eq!(
        m.dns_parse_errors.with_label_values(&["bad_record"]).get(),
        1
    );
}

/// A name under a lookalike with a label that is no host name's (`xn--zz` does not
/// decode) is `invalid` to the engine: it was judged as nothing, its MX answer released
/// and its delivery made with no event, in enforce mode.
#[test]
fn a_name_with_an_unreadable_label_under_a_lookalike_is_judged_by_the_lookalike() {
    let (mut p, lines, _) =
        pipeline("[policy]\nprotect = [{ entry = \"contoso.com\", action = \"block\" }]\n");
    p.enforcer_mut().mode = Some(crate::kernel::maps::Mode::Enforce);
    // A confusable digit: not among the slips preloaded into the kernel.
    assert!(!subtree(&p, "c0ntoso.com"));
    let q = "xn--zz.c0ntoso.com.";
    dns(&mut p, &query(q, RecordType::MX), Direction::Egress);
    assert!(
        subtree(&p, "c0ntoso.com"),
        "the lookalike above it was not blocked"
    );
    let mx = mx_record(q, "mx.xn--zz.c0ntoso.com.");
    let glue = a_record("mx.xn--zz.c0ntoso.com.");
    dns(
        &mut p,
        &answer(q, RecordType::MX, vec![mx], vec![glue]),
        Direction::Ingress,
    );
    connect(&mut p, MX_IP);
    let looked_up = events(&lines, "lookalike_lookup");
    assert_eq!(looked_up.len(), 1, "{looked_up:?}");
    let refused = events(&lines, "block");
    let detected = events(&lines, "detection");
    assert!(
        !refused.is_empty() || !detected.is_empty(),
        "the delivery went unreported"
    );
}

/// A lookalike blocked by its whole name is blocked under the kernel's hash of the wire
/// name: the decoder writes a byte no host name carries escaped (`a\032b`), and the hash
/// of that text was a key the kernel never looks up, so the answers passed.
#[test]
fn a_whole_name_block_is_keyed_as_the_kernel_hashes_the_question() {
    let (mut p, _, _) =
        pipeline("[policy]\nprotect = [{ entry = \"contoso.com\", action = \"block\" }]\n");
    let labels: [&[u8]; 7] = [b"contoso", b"com", b"w", b"x", b"a b", b"evil", b"net"];
    let qname = Name::from_labels(labels).unwrap();
    let mut m = Message::query();
    m.add_query(Query::query(qname, RecordType::MX));
    let bytes = m.to_vec().unwrap();
    dns(&mut p, &bytes, Direction::Egress);
    let full = sensor_common::qname::qname_hashes(&bytes).unwrap().full;
    assert!(
        p.enforcer().names.contains_key(&full),
        "not blocked under the kernel's key: {:?}",
        p.enforcer().names.keys().collect::<Vec<_>>()
    );
}

/// A learned block lapses in the kernel when its answer's TTL runs out, but leaves the
/// agent's ledger only at its next sweep (up to a second later). A question for the
/// lookalike in that gap found the block "present", released its held MX answer, and the
/// answer passed in enforce mode: whoever writes the lookalike's DNS sets that TTL, so
/// it knows when the gap opens.
#[test]
fn a_lookalike_asked_for_after_its_block_lapsed_is_blocked_again() {
    let (mut p, _lines, _m) = enforcing(BLOCK);
    let q = query("arrny-mil.com.", RecordType::MX);
    dns(&mut p, &q, Direction::Egress);
    let learned: Vec<u64> = p
        .blocks
        .names
        .iter()
        .filter(|(_, n)| n.flags & sensor_common::maps::BLOCK_LEARNED != 0)
        .map(|(k, _)| *k)
        .collect();
    let [key] = learned[..] else {
        panic!("one learned block: {learned:?}")
    };
    // Its TTL ran out; no sweep since.
    if let Some(n) = p.blocks.names.get_mut(&key) {
        n.expires_ns = 1;
    }
    if let Some(e) = p.enforcer_mut().names.get_mut(&key) {
        e.expires_ns = 1;
    }
    let reply = answer("arrny-mil.com.", RecordType::MX, vec![], vec![]);
    assert_eq!(p.enforcer().answer_verdict(&reply), Verdict::Allowed);
    dns(&mut p, &q, Direction::Egress);
    assert_eq!(
        p.enforcer().answer_verdict(&reply),
        Verdict::Blocked,
        "the lookalike's answer passes after its block lapsed"
    );
}

/// The kernel held an MX answer whose query record the agent never read (lost to a full
/// ring). Nothing judged the question: a lookalike got no block, and once the hold ran
/// out its retried answer passed in enforce mode; a legitimate name got no verdict, and
/// its retries were held until then too. A held answer's question is judged as its
/// query's would have been.
#[test]
fn a_held_answer_whose_query_the_agent_missed_still_gets_its_question_judged() {
    let (mut p, _lines, _m) = enforcing(BLOCK);
    for name in ["arrny-mil.com.", "fabrikam.example."] {
        // The kernel saw the query; the agent never read it.
        p.enforcer_mut().query_sent(&query(name, RecordType::MX));
        let reply = answer(name, RecordType::MX, vec![], vec![]);
        assert_eq!(
            p.enforcer().answer_verdict(&reply),
            Verdict::Blocked,
            "{name}: held"
        );
        dns(&mut p, &reply, Direction::Ingress);
        // The hold is over (the agent judged the question, or it ran out).
        p.enforcer_mut().pending.clear();
        let expected = if name.starts_with("arrny") {
            Verdict::Blocked
        } else {
            Verdict::Allowed
        };
        assert_eq!(
            p.enforcer().answer_verdict(&reply),
            expected,
            "{name}: the retry"
        );
    }
    // The legitimate name's verdict was written: its next query is not held.
    let h = name_hash("fabrikam.example").unwrap();
    assert!(
        p.enforcer().clean.contains_key(&h),
        "no clean verdict written"
    );
}

/// A pod's stub resolver with `ndots:5` asks for each search-list expansion of a
/// protected `block` name first. The kernel's appended-suffix rule held their answers
/// and the agent judged each a lookalike, so they stayed dropped: every lookup of the
/// protected name waited out the stub's timeout. Judged clean, the verdict lifts the
/// rule for that name.
#[test]
fn a_search_list_expansion_of_a_protected_name_is_answered_in_enforce_mode() {
    let policy = "[policy]\nprotect = [{ entry = \"contoso.com\", action = \"block\" }]\n";
    let (mut p, lines, _m) = enforcing(policy);
    let name = "contoso.com.svc.cluster.local.";
    let reply = answer(name, RecordType::A, vec![], vec![]);
    assert_eq!(
        p.enforcer().answer_verdict(&reply),
        Verdict::Blocked,
        "the prefix rule covers it before any verdict"
    );
    dns(&mut p, &query(name, RecordType::A), Direction::Egress);
    assert_eq!(p.enforcer().answer_verdict(&reply), Verdict::Allowed);
    dns(&mut p, &reply, Direction::Ingress);
    assert!(events(&lines, "lookalike_lookup").is_empty());
    assert!(events(&lines, "block").is_empty());
}

/// A previous agent (in enforce mode, `--keep-attached`) learned a block for a real
/// partner the engine took for a lookalike; the new agent keeps it with no name. The
/// operator allows the partner: the allow lifted nothing (only named blocks are
/// rebalanced), and every answer that met the block, the partner's own included,
/// extended it, so it never lapsed while the MTA retried. Now the names the operator
/// allows or declares lift such blocks under their keys at once; a question that meets
/// one names it while the policy blocks the name, and otherwise (an established
/// correspondent, say) no longer extends it, lifting it only when it is a whole-name
/// block with the question's own keyed tag. A hash match alone lifts nothing: a name
/// computed to share the key of its owner's lookalike block must not unblock it.
#[test]
fn a_previous_agent_s_block_of_a_name_the_policy_now_allows_is_lifted() {
    let protect = "[policy]\nprotect = [{ entry = \"contoso.com\", action = \"block\" }]\n";
    let allowed = format!("{protect}allow = [\"contoso.co\"]\n");
    let name = "contoso.co.";
    let reply = answer(
        name,
        RecordType::MX,
        vec![mx_record(name, "mx.contoso.co.")],
        vec![],
    );
    let until = crate::output::clock::monotonic_ns() + 3_600_000_000_000;
    let target = sensor_common::maps::target_id(b"contoso.com");
    let learned = sensor_common::maps::BLOCK_LEARNED;
    let domain = sensor_common::domain_hash("contoso.co").unwrap();
    let whole = name_hash("contoso.co").unwrap();
    let left = |key: u64, flags: u32, tag: Option<u64>| {
        let mut k = Simulated::default();
        k.names.insert(key, BlockEntry::new(flags, target, until));
        if let Some(t) = tag {
            k.tags.insert(key, t);
        }
        k
    };
    // Delivered to on four past days: an established correspondent, never blocked.
    let friend = |l: &mut crate::agent::learning::Learning| {
        let c = l.correspondents_mut();
        let today = c.now();
        for day in 1..=4 {
            for _ in 0..2 {
                c.ledger_mut().record("contoso.co", today - day * 86_400);
            }
        }
    };
    // Still blocked by the policy: the domain block takes the name and stays.
    let (mut p, _lines, m) =
        pipeline_over(protect, |_| {}, left(domain, learned | BLOCK_SUBTREE, None));
    p.enforcer_mut().mode = Some(Mode::Enforce);
    dns(&mut p, &reply, Direction::Ingress);
    assert_eq!(p.enforcer().answer_verdict(&reply), Verdict::Blocked);
    assert_eq!(
        p.blocks
            .names
            .get(&domain)
            .and_then(|n| n.name.clone())
            .as_deref(),
        Some("contoso.co")
    );
    assert_eq!(m.adopted_blocks_lifted.get(), 0);
    // Allowed by the operator: lifted at start.
    let (p, _lines, m) = pipeline_over(
        &allowed,
        |_| {},
        left(domain, learned | BLOCK_SUBTREE, None),
    );
    assert_eq!(m.adopted_blocks_lifted.get(), 1);
    assert!(!p.enforcer().names.contains_key(&domain));
    // An established correspondent now: its answers no longer extend a domain block,
    // which a hash match alone does not lift.
    let (mut p, _lines, m) =
        pipeline_over(protect, friend, left(domain, learned | BLOCK_SUBTREE, None));
    dns(&mut p, &reply, Direction::Ingress);
    assert_eq!(m.adopted_blocks_lifted.get(), 0, "lifted on a hash match");
    assert_eq!(
        p.enforcer().names.get(&domain).map(|e| e.expires_ns),
        Some(until),
        "extended"
    );
    // A whole-name block with the question's own keyed tag: lifted, the retry passes.
    let (mut p, _lines, _m) = pipeline_over(protect, friend, left(whole, learned, None));
    let own = sensor_common::tag::question_tag(p.blocks.name_key(), &reply);
    p.enforcer_mut().tags.insert(whole, own.expect("a tag"));
    // (Adopted before its tag was written here: adopted again, as by a restart.)
    let kernel = std::mem::take(p.enforcer_mut());
    let (mut p, _lines, m) = pipeline_over(protect, friend, kernel);
    p.enforcer_mut().mode = Some(Mode::Enforce);
    assert_eq!(p.enforcer().answer_verdict(&reply), Verdict::Blocked);
    dns(&mut p, &reply, Direction::Ingress);
    assert_eq!(m.adopted_blocks_lifted.get(), 1);
    assert_eq!(p.enforcer().answer_verdict(&reply), Verdict::Allowed);
    // Another name's tag under the partner's hash (a computed collision): neither lifted
    // nor extended.
    let (mut p, _lines, m) = pipeline_over(protect, friend, left(whole, learned, Some(7)));
    dns(&mut p, &reply, Direction::Ingress);
    assert_eq!(m.adopted_blocks_lifted.get(), 0);
    assert_eq!(
        p.enforcer().names.get(&whole).map(|e| e.expires_ns),
        Some(until)
    );
}

/// An operator enforces a block (`ctl block-addr --enforce`) on an address the agent
/// had learned for a lookalike. The lookalike's next answer extended the agent's block
/// by writing a learned entry over the operator's: its enforce flag and its lifetime
/// were gone, and the next connect there in monitor mode went through.
#[test]
fn an_operator_s_block_put_over_a_learned_one_is_not_written_over() {
    use sensor_common::maps::BLOCK_ENFORCE;
    let (mut p, _lines, m) = pipeline(BLOCK);
    resolve_lookalike(&mut p);
    let ip = MX_IP;
    assert!(p.enforcer().addrs.contains_key(&ip), "learned");
    let op = BlockEntry::new(BLOCK_ENFORCE, 0, 0);
    p.enforcer_mut().addrs.insert(ip, op);
    std::thread::sleep(std::time::Duration::from_millis(2));
    resolve_lookalike(&mut p);
    assert_eq!(p.enforcer().addrs.get(&ip), Some(&op), "written over");
    assert!(
        p.blocks.addr(&ip).is_none(),
        "the ledger still calls it its own"
    );
    connect(&mut p, ip);
    assert_eq!(m.blocked.with_label_values(&["connect"]).get(), 1);
}
