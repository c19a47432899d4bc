//! Routes no asker received (an answer the kernel dropped, or one seen only at a local
//! resolver's upstream socket): they never teach an address block, not even when a
//! policy change blocks cached addresses anew, never earn a delivery's credit, and never
//! make a delivery beside a received route a detection.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
use sensor_common::event::Direction;

use super::{
    DnsIn, Pipeline,
    tests::{
        MX_IP, a_record, answer, connect, dns, enforcing, events, mx_record, pipeline_seeded, query,
    },
};
use crate::{agent::enforcer::Simulated, kernel::maps::Mode};

/// An address a host delivers to with no DNS lookup (a relay host given by address).
const RELAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

const POLICY: &str = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";

/// `army.ml MX mx.army.ml` with the glue `mx.army.ml A RELAY_IP`.
fn lookalike_answer() -> Vec<u8> {
    let glue = relay_record("mx.army.ml.", 300);
    answer(
        "army.ml.",
        RecordType::MX,
        vec![mx_record("army.ml.", "mx.army.ml.")],
        vec![glue],
    )
}

/// `bytes` as a local resolver's upstream socket receives it (never dropped there).
fn at_resolver_upstream(p: &mut Pipeline<Simulated>, bytes: &[u8]) {
    p.on_dns(&DnsIn {
        ts_ns: 0,
        direction: Direction::Ingress,
        verdict: sensor_common::Verdict::Allowed,
        cgroup_id: 0,
        payload: bytes,
        msg_len: bytes.len(),
        resolver: true,
        from_server: false,
    });
}

/// Whoever writes a lookalike's DNS can give its exchanger any address, the victim's relay
/// host's among them. The resolver's client never gets that answer (its own is dropped,
/// or the resolver keeps the record back); the block rebalance after a policy change
/// still blocked the address, and every relayed delivery with it.
#[test]
fn a_route_seen_only_at_a_resolver_s_upstream_socket_is_never_blocked_at_a_rebalance() {
    let (mut p, _lines, _m) = enforcing(POLICY);
    at_resolver_upstream(&mut p, &lookalike_answer());
    assert!(!p.enforcer().addrs.contains_key(&RELAY_IP));
    p.rebalance_blocks();
    assert!(
        !p.enforcer().addrs.contains_key(&RELAY_IP),
        "an address no asker was told was blocked"
    );
}

/// A lookalike's answer the kernel dropped names the relay host's address; every
/// delivery through the relay (no lookup) was then credited to the lookalike, which
/// became an established correspondent in a few days (never blocked).
#[test]
fn a_route_from_a_dropped_answer_earns_no_credit() {
    let (mut p, _lines, _m) = enforcing(POLICY);
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    dns(&mut p, &lookalike_answer(), Direction::Ingress);
    for _ in 0..5 {
        connect(&mut p, RELAY_IP);
    }
    let ledger = p.learning.correspondents_mut().ledger_mut();
    assert!(
        ledger.get("army.ml").is_none(),
        "the lookalike was credited"
    );
}

/// The lookalike's MX answer names the relay host as its exchanger and is seen only at a
/// local resolver's upstream socket; the MTA then looks the relay host up itself. The
/// address answer reached the MTA, but not the MX answer that made the address the
/// lookalike's: blocking it refused every relayed delivery.
#[test]
fn an_address_whose_route_s_mx_answer_no_asker_received_is_never_blocked() {
    let (mut p, _lines, _m) = enforcing(POLICY);
    let mx = answer(
        "army.ml.",
        RecordType::MX,
        vec![mx_record("army.ml.", "relay.corp.example.")],
        vec![],
    );
    at_resolver_upstream(&mut p, &mx);
    relay_address_received(&mut p, "relay.corp.example.", 300);
    assert!(
        !p.enforcer().addrs.contains_key(&RELAY_IP),
        "an address no asker was told was the lookalike's was blocked"
    );
}

/// In enforce mode a lookalike's MX answer naming a provider's host is dropped; a
/// legitimate recipient on that host is then looked up and delivered to. That delivery
/// was reported as a detection of the lookalike, `allowed`: a page, in enforce mode, for
/// mail that went where it was meant to, as often as the lookalike's DNS owner likes.
#[test]
fn a_delivery_beside_a_lookalike_s_dropped_answer_is_no_detection() {
    let (mut p, lines, m) = enforcing(POLICY);
    for d in ["army.ml.", "partner.org."] {
        dns(&mut p, &query(d, RecordType::MX), Direction::Egress);
        let mx = mx_record(d, "mx.provider.net.");
        dns(
            &mut p,
            &answer(
                d,
                RecordType::MX,
                vec![mx],
                vec![a_record("mx.provider.net.")],
            ),
            Direction::Ingress,
        );
    }
    assert_eq!(
        events(&lines, "block").len(),
        1,
        "the lookalike's answer passed"
    );
    connect(&mut p, MX_IP);
    assert_no_detection(&lines);
    assert!(events(&lines, "unattributed_connect").is_empty());
    assert_eq!(m.lookalikes_not_received.get(), 1);
}

/// The lookalike's dropped answer names the relay host (which the host delivers to by
/// address): every relayed delivery was reported as one to the lookalike.
#[test]
fn a_relayed_delivery_is_not_reported_as_the_lookalike_whose_dropped_answer_named_it() {
    let (mut p, lines, _m) = enforcing(POLICY);
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    dns(&mut p, &lookalike_answer(), Direction::Ingress);
    connect(&mut p, RELAY_IP);
    assert!(events(&lines, "detection").is_empty());
    let u = events(&lines, "unattributed_connect");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0]["unreceived_lookalikes"][0], "army.ml");
    assert_eq!(u[0]["severity"], "warning");
}

/// A host whose lookups the sensor sees only at its resolver's upstream socket (its MTA
/// asks the resolver through a local API) still has its lookalike deliveries reported.
#[test]
fn a_route_seen_only_upstream_still_explains_a_connect_with_no_other_route() {
    let (mut p, lines, _m) = pipeline_seeded(POLICY, |_| {});
    at_resolver_upstream(&mut p, &lookalike_answer());
    connect(&mut p, RELAY_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["route"]["recipient_domain"], "army.ml");
}

/// The same host, with the lookalike's server failing each attempt for a while (its
/// owner answers 4xx, so the MTA retries): the sixth connect made its address a direct
/// destination, a relay given by address, since no asker received a route to it, and
/// from then on its deliveries were unattributed. So was every busy mail host on such a
/// host: a route that explains a connect is evidence of DNS behind it.
#[test]
fn retried_deliveries_on_a_host_seen_only_upstream_stay_detections() {
    let (mut p, lines, m) = pipeline_seeded(POLICY, |_| {});
    at_resolver_upstream(&mut p, &lookalike_answer());
    for _ in 0..8 {
        connect(&mut p, RELAY_IP);
    }
    assert_eq!(events(&lines, "detection").len(), 8);
    assert_eq!(m.direct_destinations.get(), 0);
}

/// The same host in enforce mode: the resolver's upstream copy of the lookalike's answer
/// was taken as dropped at every asker, but no asker asked (its MTA asks through a local
/// API, and nothing is dropped there): the delivery was only an unattributed connect.
#[test]
fn on_a_host_seen_only_upstream_an_enforce_mode_delivery_is_still_a_detection() {
    let (mut p, lines, _m) = enforcing(POLICY);
    at_resolver_upstream(&mut p, &lookalike_answer());
    connect(&mut p, RELAY_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
}

/// A host whose askers the sensor sees, monitor mode: the lookalike's MX answer names the
/// relay host in glue that the local resolver keeps from its client (the client's copy,
/// without it, is not dropped in monitor mode). That upstream-only route explained the
/// relay's connects, so the relay never became a direct destination, and every relayed
/// delivery was a detection for as long as the lookalike's owner kept the glue fresh.
#[test]
fn glue_kept_from_the_asker_does_not_keep_the_relay_from_being_direct() {
    let (mut p, lines, m) = pipeline_seeded(POLICY, |_| {});
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    at_resolver_upstream(&mut p, &lookalike_answer());
    let client = answer(
        "army.ml.",
        RecordType::MX,
        vec![mx_record("army.ml.", "mx.army.ml.")],
        vec![],
    );
    dns(&mut p, &client, Direction::Ingress);
    for _ in 0..8 {
        connect(&mut p, RELAY_IP);
    }
    assert_eq!(m.direct_destinations.get(), 1);
    let d = events(&lines, "detection");
    assert!(
        d.len() < 8,
        "every relayed delivery was a detection: {}",
        d.len()
    );
}

/// Enforce mode: the host asks for `army.ml MX`; the lookalike answers with a CNAME to
/// `x.army.ml`, which its resolver follows upstream under that name, no asker having
/// asked it. That answer's glue names a provider's host (a day's TTL). Its routes were
/// not taken as dropped (only the very question an asker asked was), and every delivery
/// to the provider's host was a detection of `x.army.ml`.
#[test]
fn glue_of_a_cname_target_the_resolver_asked_upstream_explains_no_connect() {
    let (mut p, lines, _m) = enforcing(POLICY);
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    let glue = Record::from_rdata(
        Name::from_ascii("mx.provider.net.").unwrap(),
        86_400,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 25))),
    );
    let upstream = answer(
        "x.army.ml.",
        RecordType::MX,
        vec![mx_record("x.army.ml.", "mx.provider.net.")],
        vec![glue],
    );
    at_resolver_upstream(&mut p, &upstream);
    connect(&mut p, MX_IP);
    assert_no_detection(&lines);
}

/// `name A RELAY_IP` with `ttl`.
fn relay_record(name: &str, ttl: u32) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        ttl,
        RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
    )
}

/// `name A RELAY_IP`, as a local resolver's upstream socket receives it.
fn relay_address_upstream(p: &mut Pipeline<Simulated>, name: &str) {
    let a = relay_record(name, 86_400);
    at_resolver_upstream(p, &answer(name, RecordType::A, vec![a], vec![]));
}

/// The host looks up `name` and receives `name A RELAY_IP` with `ttl`.
fn relay_address_received(p: &mut Pipeline<Simulated>, name: &str, ttl: u32) {
    dns(p, &query(name, RecordType::A), Direction::Egress);
    let a = relay_record(name, ttl);
    dns(
        p,
        &answer(name, RecordType::A, vec![a], vec![]),
        Direction::Ingress,
    );
}

/// A resolver's own lookup (the address of a name server a lookalike's owner set up for
/// another of their zones) names the relay host: no MX answer behind it, nobody on this
/// host asked. Every relayed delivery was reported as one to the lookalike.
#[test]
fn a_resolver_s_own_address_lookup_explains_no_connect() {
    let (mut p, lines, m) = pipeline_seeded(POLICY, |_| {});
    relay_address_upstream(&mut p, "ns1.army.ml.");
    connect(&mut p, RELAY_IP);
    assert!(events(&lines, "detection").is_empty());
    assert_eq!(m.lookalikes_not_received.get(), 1);
}

/// The MTA's lookups show only at the resolver's upstream socket (it asks through a
/// local API); the lookalike's owner also has the host receive a clean name's answer
/// naming the same address. The delivery to the lookalike was hidden behind it.
#[test]
fn a_received_clean_route_does_not_hide_an_upstream_only_lookalike_route() {
    let (mut p, lines, _m) = pipeline_seeded(POLICY, |_| {});
    at_resolver_upstream(&mut p, &lookalike_answer());
    relay_address_received(&mut p, "neutral.example.", 300);
    connect(&mut p, RELAY_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["route"]["recipient_domain"], "army.ml");
}

/// The host sends everything through a relay given by address. Whoever owns a lookalike
/// mails the host from it; the sender check looks the lookalike up, and its A record names
/// the relay. In monitor mode every relayed delivery was then reported as one to the
/// lookalike, and the address learned as the lookalike's: enforce mode, once switched on,
/// refused all relayed mail until the lookalike's TTL ran out.
#[test]
fn a_lookalike_naming_the_relay_host_neither_blocks_it_nor_owns_its_deliveries() {
    let (mut p, lines, _m) = pipeline_seeded(POLICY, |_| {});
    for _ in 0..super::direct::DIRECT_AFTER {
        connect(&mut p, RELAY_IP);
    }
    relay_address_received(&mut p, "army.ml.", 86_400);
    assert!(
        !p.enforcer().addrs.contains_key(&RELAY_IP),
        "the relay host was learned as the lookalike's"
    );
    connect(&mut p, RELAY_IP);
    assert!(events(&lines, "detection").is_empty());
    let u = events(&lines, "unattributed_connect");
    let last = u.last().unwrap();
    assert_eq!(last["unreceived_lookalikes"][0], "army.ml", "{u:?}");
    p.enforcer_mut().mode = Some(Mode::Enforce);
    p.rebalance_blocks();
    assert!(!p.enforcer().addrs.contains_key(&RELAY_IP));
}

/// Enforce mode. The lookalike's MX answer carries out-of-zone glue naming a provider's
/// host; the local resolver keeps the glue from its client, whose copy (without it) is
/// dropped. The resolver's upstream copy left a route to the provider's host that no
/// dropped copy ever marked, so every legitimate delivery there was reported as one to
/// the lookalike.
#[test]
fn out_of_zone_glue_the_resolver_kept_from_a_dropped_answer_explains_no_connect() {
    let (mut p, lines, _m) = enforcing(POLICY);
    glue_kept_from_a_dropped_copy(&mut p, 300);
    assert_eq!(events(&lines, "block").len(), 1, "the client's copy passed");
    // A legitimate recipient on that host, delivered to.
    dns(
        &mut p,
        &query("partner.org.", RecordType::MX),
        Direction::Egress,
    );
    dns(
        &mut p,
        &answer(
            "partner.org.",
            RecordType::MX,
            vec![mx_record("partner.org.", "mx.provider.net.")],
            vec![a_record("mx.provider.net.")],
        ),
        Direction::Ingress,
    );
    connect(&mut p, MX_IP);
    assert_no_detection(&lines);
}

/// Enforce mode, the host asks for `army.ml MX`; the local resolver's upstream socket
/// receives the answer with the glue `mx.other.example A MX_IP` (a day's TTL), the client
/// its copy without the glue, dropped. The MX record's TTL is `mx_ttl`.
fn glue_kept_from_a_dropped_copy(p: &mut Pipeline<Simulated>, mx_ttl: u32) {
    dns(p, &query("army.ml.", RecordType::MX), Direction::Egress);
    let mut mx = mx_record("army.ml.", "mx.other.example.");
    mx.ttl = mx_ttl;
    let glue = Record::from_rdata(
        Name::from_ascii("mx.other.example.").unwrap(),
        86_400,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 25))),
    );
    let upstream = answer("army.ml.", RecordType::MX, vec![mx.clone()], vec![glue]);
    at_resolver_upstream(p, &upstream);
    let client = answer("army.ml.", RecordType::MX, vec![mx], vec![]);
    dns(p, &client, Direction::Ingress);
}

/// No detection event was written.
fn assert_no_detection(lines: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let d = events(lines, "detection");
    assert!(d.is_empty(), "{d:?}");
}

/// As above, with the lookalike's MX record at the TTL floor and its glue at a day: once
/// the MX answer's own memory lapsed, the glue route from the resolver's copy explained
/// every delivery to the provider's host again, for the day.
#[test]
fn a_dropped_mx_answer_is_remembered_as_long_as_its_glue() {
    let (mut p, lines, _m) = enforcing(POLICY);
    glue_kept_from_a_dropped_copy(&mut p, 1);
    // The MX answer's memory lapses (TTL floor 30 s); the glue's route does not.
    p.tick(std::time::Instant::now() + std::time::Duration::from_secs(60));
    connect(&mut p, MX_IP);
    assert_no_detection(&lines);
}

/// As above, then whoever owns the lookalike has this host look up sub-names of it, each
/// dropped MX answer naming a thousand exchangers: the dropped answers' memory (bounded)
/// lost the first one, and every delivery to the provider's host was a detection of the
/// lookalike again, for the day its glue lives. The resolver's copy of an answer the
/// kernel drops at its askers now teaches routes as dropped as theirs.
#[test]
fn a_flood_of_dropped_mx_answers_does_not_revive_the_glue_of_an_earlier_one() {
    let (mut p, lines, _m) = enforcing(POLICY);
    glue_kept_from_a_dropped_copy(&mut p, 1);
    for i in 0..20 {
        let q = format!("x{i}.army.ml.");
        let mx: Vec<Record> = (0..1000)
            .map(|j| mx_record(&q, &format!("junk{j}.x{i}.army.ml.")))
            .collect();
        dns(&mut p, &query(&q, RecordType::MX), Direction::Egress);
        dns(
            &mut p,
            &answer(&q, RecordType::MX, mx, vec![]),
            Direction::Ingress,
        );
    }
    p.tick(std::time::Instant::now() + std::time::Duration::from_secs(60));
    connect(&mut p, MX_IP);
    assert_no_detection(&lines);
}

/// Enforce mode: a lookalike's dropped answer names the relay host, and keeps naming it
/// (its owner refreshes it). Its route kept the relay's connects from ever counting as a
/// direct destination's, so the relay could be address-blocked after one lost race.
#[test]
fn a_dropped_lookalike_route_does_not_keep_a_relay_from_being_direct() {
    let (mut p, _lines, m) = enforcing(POLICY);
    dns(
        &mut p,
        &query("army.ml.", RecordType::MX),
        Direction::Egress,
    );
    dns(&mut p, &lookalike_answer(), Direction::Ingress);
    for _ in 0..super::direct::DIRECT_AFTER {
        connect(&mut p, RELAY_IP);
    }
    assert_eq!(m.direct_destinations.get(), 1);
}
