//! The pipeline with a correspondents ledger: learned protection, first contacts, and
//! old friends that are never blocked.

use hickory_proto::rr::RecordType;
use sensor_common::event::Direction;

use super::tests::{
    MX_IP, a_record, answer, connect, dns, events, mx_record, pipeline_seeded, query,
};
use crate::{agent::learning::Learning, kernel::maps::Mode};

/// Deliveries to `domain` on `days` past days, `per_day` each.
fn delivered(l: &mut Learning, domain: &str, days: u64, per_day: u64) {
    let c = l.correspondents_mut();
    let today = c.now();
    for day in 1..=days {
        for _ in 0..per_day {
            c.ledger_mut().record(domain, today - day * 86_400);
        }
    }
}

/// MX `domain` → mx.`domain` with its address MX_IP in the glue, then a connect to it.
fn deliver(p: &mut super::Pipeline<crate::agent::enforcer::Simulated>, domain: &str) {
    let (q, mx) = (format!("{domain}."), format!("mx.{domain}."));
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
    connect(p, MX_IP);
}

#[test]
fn a_host_with_no_policy_protects_whom_it_mails_and_flags_a_first_contact_as_critical() {
    let (mut p, lines, m) = pipeline_seeded("[policy]\nintentionally_empty = true\n", |l| {
        delivered(l, "contoso.com", 4, 2)
    });
    assert_eq!(p.learned(), 1);
    assert_eq!(m.protected_entries.with_label_values(&["learned"]).get(), 1);
    deliver(&mut p, "contoso-corp.com");
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["target"], "contoso.com");
    assert_eq!(d[0]["source"], "learned");
    assert_eq!(d[0]["action"], "alert");
    assert_eq!(d[0]["first_contact"], true);
    assert_eq!(d[0]["target_established"], true);
    assert_eq!(d[0]["established"], false);
    assert_eq!(d[0]["severity"], "critical");
    assert_eq!(
        m.first_contacts
            .with_label_values(&["contoso.com", "true"])
            .get(),
        1
    );
    // Delivered once: the next one is no first contact, and no longer critical.
    connect(&mut p, MX_IP);
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 2);
    assert_eq!(d[1]["first_contact"], false);
    assert_eq!(d[1]["severity"], "warning");
}

#[test]
fn an_established_correspondent_that_resembles_a_block_entry_is_info_and_never_blocked() {
    let policy = "[policy]\nprotect = [{ entry = \"hp.com\", action = \"block\" }]\n";
    let (mut p, lines, _) = pipeline_seeded(policy, |l| delivered(l, "hpe.com", 5, 2));
    p.enforcer_mut().mode = Some(Mode::Enforce);
    // Not learned: the configured policy already has a word for it.
    assert_eq!(p.learned(), 0);
    deliver(&mut p, "hpe.com");
    assert!(
        !p.enforcer().addrs.contains_key(&MX_IP),
        "an old friend's address is never blocked"
    );
    let hash = sensor_common::domain_hash("hpe.com").expect("a domain hash");
    assert!(
        !p.enforcer().names.contains_key(&hash),
        "an old friend is neither preloaded nor blocked on lookup"
    );
    let d = events(&lines, "detection");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["established"], true);
    assert_eq!(d[0]["severity"], "info");
    assert_eq!(d[0]["action"], "alert");
    assert_eq!(d[0]["verdict"], "allowed");
    assert!(d[0]["advice"].as_str().is_some_and(|a| a.contains("also")));
    // A lookalike nobody mails is still refused: its answers dropped by name (its
    // address, shared with the old friend's host, is not refused).
    deliver(&mut p, "hpp.com");
    let hash = sensor_common::domain_hash("hpp.com").expect("a domain hash");
    assert!(p.enforcer().names.contains_key(&hash));
}

/// `r` with its TTL set to `ttl`.
fn with_ttl(mut r: hickory_proto::rr::Record, ttl: u32) -> hickory_proto::rr::Record {
    r.ttl = ttl;
    r
}

/// An MX answer for `domain` naming `exchanger`, whose address (MX_IP) is in the glue,
/// both with `ttl`; the query before it.
fn resolve_mx(
    p: &mut super::Pipeline<crate::agent::enforcer::Simulated>,
    domain: &str,
    exchanger: &str,
    ttl: u32,
) {
    dns(p, &query(domain, RecordType::MX), Direction::Egress);
    let mx = with_ttl(mx_record(domain, exchanger), ttl);
    let glue = with_ttl(a_record(exchanger), ttl);
    dns(
        p,
        &answer(domain, RecordType::MX, vec![mx], vec![glue]),
        Direction::Ingress,
    );
}

/// Whoever writes a lookalike's DNS can name a provider's shared mail host in its MX
/// answer, with a TTL of a day. The ledger credited each delivery to the longest-lived
/// route, so every delivery to that provider's other customers went to the lookalike,
/// which after a few days counted as an established correspondent (never blocked).
#[test]
fn a_lookalike_naming_a_shared_host_takes_no_credit_for_its_other_customers() {
    let policy = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";
    let (mut p, _lines, m) = pipeline_seeded(policy, |_| {});
    let shared = "mx.provider.net.";
    resolve_mx(&mut p, "army.ml.", shared, 86_400);
    for _ in 0..5 {
        resolve_mx(&mut p, "fabrikam.com.", shared, 300);
        connect(&mut p, MX_IP);
    }
    let ledger = p.learning.correspondents_mut().ledger_mut();
    assert!(
        ledger.get("army.ml").is_none(),
        "the lookalike was credited"
    );
    assert_eq!(ledger.get("fabrikam.com").map(|e| e.attempts), Some(5));
    assert_eq!(m.credits_withheld.get(), 0);
}

/// The lookalike's answer arriving between the legitimate recipient's lookup and the
/// connect (it mails this host, whose sender checks look it up) takes no credit either.
#[test]
fn a_lookalike_asked_for_right_after_a_legitimate_recipient_of_its_host_takes_no_credit() {
    let policy = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";
    let (mut p, _lines, m) = pipeline_seeded(policy, |_| {});
    let shared = "mx.provider.net.";
    resolve_mx(&mut p, "fabrikam.com.", shared, 300);
    resolve_mx(&mut p, "army.ml.", shared, 300);
    connect(&mut p, MX_IP);
    let ledger = p.learning.correspondents_mut().ledger_mut();
    assert!(
        ledger.get("army.ml").is_none(),
        "the lookalike was credited"
    );
    assert!(ledger.get("fabrikam.com").is_none());
    assert_eq!(m.credits_withheld.get(), 1);
    // A lookalike on a host of its own: a real delivery to it (monitor mode), counted.
    let (mut p, _lines, m) = pipeline_seeded(policy, |_| {});
    resolve_mx(&mut p, "army.ml.", "mx.army.ml.", 300);
    connect(&mut p, MX_IP);
    let ledger = p.learning.correspondents_mut().ledger_mut();
    assert_eq!(ledger.get("army.ml").map(|e| e.attempts), Some(1));
    assert_eq!(m.credits_withheld.get(), 0);
}

/// Monitor mode, the documented first step: deliveries to a `block` entry's lookalike
/// count (a real partner resembling a protected name becomes an old friend that way), but
/// its owner can have this host bounce to it for days to get there. The moment it
/// becomes established (never blocked from then on) is said loudly, once.
#[test]
fn a_block_lookalike_becoming_an_old_friend_is_reported() {
    let policy = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";
    // Two earlier days of deliveries; today's make it established.
    let (mut p, _lines, m) = pipeline_seeded(policy, |l| delivered(l, "army.ml", 2, 2));
    for _ in 0..3 {
        resolve_mx(&mut p, "army.ml.", "mx.army.ml.", 300);
        connect(&mut p, MX_IP);
    }
    let ledger = p.learning.correspondents_mut().ledger_mut();
    assert_eq!(ledger.get("army.ml").map(|e| e.attempts), Some(7));
    assert_eq!(m.lookalikes_established.get(), 1);
}
