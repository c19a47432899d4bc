//! A legitimate name meeting a lookalike's learned block under the same key.
//!
//! The key is set up as a computed collision leaves it: the lookalike's learned block
//! under the hash a legitimate name's question has. (A real 64-bit FNV-1a collision takes
//! a lattice or meet-in-the-middle search these tests do not carry; the ledger and the
//! kernel see nothing but the key, so the state is the same.)

use hickory_proto::rr::RecordType;
use sensor_common::{event::Direction, maps::target_id};

use super::{
    ledger::Put,
    tests::{MX_IP, a_record, answer, dns, events, pipeline_seeded, query},
};
use crate::kernel::maps::{Mode, name_hash};

const BLOCK: &str = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";
/// A lookalike of army.mil (appended suffix) whose name an attacker would choose.
const LOOKALIKE: &str = "army.mil.zq7v.com";
const FAR: u64 = u64::MAX / 2;

#[test]
fn a_legitimate_query_lifts_a_learned_block_it_collides_with_and_the_key_is_refused() {
    let (mut p, lines, m) = pipeline_seeded(BLOCK, |_| {});
    p.enforcer_mut().mode = Some(Mode::Enforce);
    let key = name_hash("mail.example.org").unwrap();
    let target = target_id(b"army.mil");
    assert_eq!(
        p.blocks.learn_name(key, LOOKALIKE, target, false, FAR),
        Put::Added
    );
    dns(
        &mut p,
        &query("mail.example.org.", RecordType::A),
        Direction::Egress,
    );
    assert!(
        !p.enforcer().names.contains_key(&key),
        "the legitimate name's answers would be dropped"
    );
    let lifted = events(&lines, "name_block_lifted");
    assert_eq!(lifted.len(), 1, "{lifted:?}");
    assert_eq!(lifted[0]["lookalike"], LOOKALIKE);
    assert_eq!(lifted[0]["legitimate"], "mail.example.org");
    assert_eq!(lifted[0]["severity"], "warning");
    assert_eq!(m.name_hash_collisions.get(), 1);
    // The lookalike asked again: its name block is not put back under that key.
    assert_eq!(
        p.blocks.learn_name(key, LOOKALIKE, target, false, FAR),
        Put::Collides
    );
    assert!(!p.enforcer().names.contains_key(&key));
}

#[test]
fn a_legitimate_answer_dropped_under_a_colliding_domain_block_lifts_it() {
    let (mut p, lines, _) = pipeline_seeded(BLOCK, |_| {});
    p.enforcer_mut().mode = Some(Mode::Enforce);
    // A learned lookalike domain whose domain hash is example.org's.
    let key = sensor_common::domain_hash("example.org").unwrap();
    let target = target_id(b"army.mil");
    p.blocks.learn_name(key, "arrny.mil.com", target, true, FAR);
    let reply = answer(
        "www.example.org.",
        RecordType::A,
        vec![a_record("www.example.org.")],
        vec![],
    );
    // The kernel drops the first answer (the key matches); the agent, seeing it
    // dropped for a name it judges legitimate, lifts the block; the retry passes.
    dns(&mut p, &reply, Direction::Ingress);
    assert_eq!(events(&lines, "name_block_lifted").len(), 1);
    assert!(!p.enforcer().names.contains_key(&key));
    let hashes = sensor_common::qname::qname_hashes(&reply);
    assert_eq!(
        p.enforcer().answer_verdict(hashes),
        sensor_common::Verdict::Allowed
    );
    // The address it gave is not blocked either.
    assert!(!p.enforcer().addrs.contains_key(&MX_IP));
}

#[test]
fn blocks_a_name_meets_by_right_and_other_keys_are_left_alone() {
    let (mut p, lines, _) = pipeline_seeded(BLOCK, |_| {});
    p.enforcer_mut().mode = Some(Mode::Enforce);
    let target = target_id(b"army.mil");
    // A learned lookalike name and domain, neither colliding with anything.
    let name_key = name_hash(LOOKALIKE).unwrap();
    p.blocks.learn_name(name_key, LOOKALIKE, target, false, FAR);
    let domain_key = sensor_common::domain_hash("army.ml").unwrap();
    p.blocks
        .learn_name(domain_key, "army.ml", target, true, FAR);
    // Names that meet them by right (had the agent come to judge them legitimate, by a
    // reload that allows them): the name itself, a name under the domain.
    for q in ["army.mil.zq7v.com.", "Mx.Army.ML."] {
        let hashes = sensor_common::qname::qname_hashes(&query(q, RecordType::MX)).unwrap();
        assert_eq!(p.blocks.collisions(q, &hashes), vec![], "{q}");
    }
    // Legitimate names ask; nothing they meet was learned for another name.
    for q in ["mail.example.org.", "army.mil.", "example.com."] {
        dns(&mut p, &query(q, RecordType::MX), Direction::Egress);
    }
    assert!(p.enforcer().names.contains_key(&name_key));
    assert!(p.enforcer().names.contains_key(&domain_key));
    assert!(events(&lines, "name_block_lifted").is_empty());
}
