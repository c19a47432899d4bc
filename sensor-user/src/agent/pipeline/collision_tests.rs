//! A legitimate name meeting a lookalike's learned block under the same key.
//!
//! The key is set up as a computed collision leaves it: the lookalike's learned block
//! under the hash a legitimate name's question has. (A real 64-bit FNV-1a collision takes
//! a meet-in-the-middle or lattice search these tests do not carry; the ledger and the
//! kernel see nothing but the key, so the state is the same.)

use hickory_proto::rr::{Record, RecordType};
use sensor_common::{event::Direction, maps::target_id};

use super::tests::{a_record, answer, dns, enforcing, events, query};
use crate::kernel::maps::name_hash;

const BLOCK: &str = "[policy]\nprotect = [{ entry = \"army.mil\", action = \"block\" }]\n";
/// A lookalike of army.mil (appended suffix) whose name an attacker would choose.
const LOOKALIKE: &str = "army.mil.zq7v.com";
const FAR: u64 = u64::MAX / 2;

/// `www.example.org A`, with a TTL of `ttl` seconds.
fn example_answer(ttl: u32) -> Vec<u8> {
    let mut r: Record = a_record("www.example.org.");
    r.ttl = ttl;
    answer("www.example.org.", RecordType::A, vec![r], vec![])
}

#[test]
fn a_legitimate_query_meeting_a_learned_block_is_reported_once_and_the_block_kept() {
    let (mut p, lines, m) = enforcing(BLOCK);
    let key = name_hash("mail.example.org").unwrap();
    p.blocks
        .learn_name(key, LOOKALIKE, target_id(b"army.mil"), (false, None), FAR);
    for _ in 0..3 {
        dns(
            &mut p,
            &query("mail.example.org.", RecordType::A),
            Direction::Egress,
        );
    }
    let reported = events(&lines, "name_hash_collision");
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0]["lookalike"], LOOKALIKE);
    assert_eq!(reported[0]["legitimate"], "mail.example.org");
    assert_eq!(reported[0]["severity"], "critical");
    assert_eq!(m.name_hash_collisions.get(), 1);
    // Kept: lifting it would let whoever computed the collision unblock the lookalike.
    assert!(p.enforcer().names.contains_key(&key));
}

#[test]
fn a_legitimate_answer_under_a_colliding_domain_block_never_extends_it() {
    let (mut p, lines, _) = enforcing(BLOCK);
    // A learned lookalike domain whose domain hash is example.org's, answered with a
    // short TTL already.
    let key = sensor_common::domain_hash("example.org").unwrap();
    p.blocks.learn_name(
        key,
        "arrny.mil.com",
        target_id(b"army.mil"),
        (true, None),
        FAR,
    );
    let short = p.settings.expiry_ns(60);
    let lookalike =
        sensor_common::qname::qname_hashes(&query("arrny.mil.com.", RecordType::A)).unwrap();
    p.blocks.answered(&lookalike, short);
    let before = p.enforcer().names[&key].expires_ns;
    // The legitimate name's answer, long-lived: dropped by the key, reported, and its
    // TTL not taken for the block's.
    dns(&mut p, &example_answer(86_400), Direction::Ingress);
    assert_eq!(events(&lines, "name_hash_collision").len(), 1);
    assert_eq!(p.enforcer().names[&key].expires_ns, before);
}

#[test]
fn blocks_a_name_meets_by_right_are_no_collision() {
    let (mut p, lines, _) = enforcing(BLOCK);
    let target = target_id(b"army.mil");
    let name_key = name_hash(LOOKALIKE).unwrap();
    p.blocks
        .learn_name(name_key, LOOKALIKE, target, (false, None), FAR);
    let domain_key = sensor_common::domain_hash("army.ml").unwrap();
    p.blocks
        .learn_name(domain_key, "army.ml", target, (true, None), FAR);
    // Names that meet them by right (had the agent come to judge them legitimate, by a
    // reload that allows them): the name itself, a name under the domain.
    for q in ["army.mil.zq7v.com.", "Mx.Army.ML."] {
        let hashes = sensor_common::qname::qname_hashes(&query(q, RecordType::MX)).unwrap();
        assert_eq!(p.blocks.collisions(q, &hashes, None), vec![], "{q}");
    }
    // Legitimate names ask; nothing they meet was learned for another name.
    for q in ["mail.example.org.", "army.mil.", "example.com."] {
        dns(&mut p, &query(q, RecordType::MX), Direction::Egress);
    }
    assert!(events(&lines, "name_hash_collision").is_empty());
}

/// A whole-name block learned from the lookalike's own question carries its keyed tag: a
/// legitimate name that shares the 64-bit hash (which whoever picks the lookalike's name
/// can compute) does not meet it, in the kernel's rule or as a reported collision, while
/// the lookalike's own answers are still dropped.
#[test]
fn a_tagged_whole_name_block_is_met_by_its_own_name_only() {
    let (mut p, lines, _m) = enforcing(BLOCK);
    let key = p.blocks.name_key();
    assert_ne!(key, 0, "no tag key was drawn");
    // The lookalike's question, as the query path blocks it (its own tag), but under
    // the hash of the legitimate name: the state a computed collision leaves.
    let lookalike_q = query(&format!("{LOOKALIKE}."), RecordType::A);
    let tag = sensor_common::tag::question_tag(key, &lookalike_q);
    let shared = name_hash("www.example.org").unwrap();
    p.blocks
        .learn_name(shared, LOOKALIKE, target_id(b"army.mil"), (false, tag), FAR);
    dns(
        &mut p,
        &query("www.example.org.", RecordType::A),
        Direction::Egress,
    );
    assert!(events(&lines, "name_hash_collision").is_empty());
    assert_eq!(
        p.enforcer().answer_verdict(&example_answer(300)),
        sensor_common::Verdict::Allowed,
        "a name sharing the hash met the tagged block"
    );
    // With the lookalike's own name under that key, the block applies.
    let own = answer(&format!("{LOOKALIKE}."), RecordType::A, vec![], vec![]);
    let entry = *p.enforcer().names.get(&shared).unwrap();
    p.enforcer_mut()
        .names
        .insert(name_hash(LOOKALIKE).unwrap(), entry);
    p.enforcer_mut()
        .tags
        .insert(name_hash(LOOKALIKE).unwrap(), tag.unwrap());
    assert_eq!(
        p.enforcer().answer_verdict(&own),
        sensor_common::Verdict::Blocked
    );
}

/// The query path tags the whole-name blocks it learns.
#[test]
fn the_query_path_tags_a_whole_name_block() {
    let (mut p, _lines, _m) = enforcing(BLOCK);
    // More labels after the protected name than the kernel's stems cover, under a
    // registrable domain that is no lookalike: blocked by its whole name.
    let name = "army.mil.a.b.c.zq7v.com";
    let q = query(&format!("{name}."), RecordType::MX);
    dns(&mut p, &q, Direction::Egress);
    let h = name_hash(name).unwrap();
    assert!(p.enforcer().names.contains_key(&h), "not blocked by name");
    assert_eq!(
        p.enforcer().tags.get(&h).copied(),
        sensor_common::tag::question_tag(p.blocks.name_key(), &q)
    );
    let own = answer(&format!("{name}."), RecordType::MX, vec![], vec![]);
    assert_eq!(
        p.enforcer().answer_verdict(&own),
        sensor_common::Verdict::Blocked
    );
}

/// A clean verdict under a lookalike's key (written by a name computed to share the hash
/// of `army.mil.zq7v.net`, looked up and judged clean, before or after the lookalike's
/// question) lifted the kernel's prefix rule for the lookalike: the agent, seeing the
/// prefix rule cover it, learns no block of its own, so its answers passed in enforce
/// mode. A clean verdict now lifts the prefix rule only with the name's own tag beside it.
#[test]
fn a_clean_verdict_of_another_name_under_a_lookalike_s_key_does_not_lift_its_block() {
    let l = "army.mil.zq7v.net";
    let own = answer(&format!("{l}."), RecordType::MX, vec![], vec![]);
    let key = name_hash(l).unwrap();
    for twin_tag in [None, Some(7u64)] {
        for clean_first in [true, false] {
            let (mut p, _lines, _m) = enforcing(BLOCK);
            // The twin's verdict: no tag (it is no name the prefix rule covers), or its own
            // (its tag keeps the hash both share).
            let twin = |p: &mut super::Pipeline<crate::agent::enforcer::Simulated>| {
                p.enforcer_mut().clean.insert(key, u64::MAX);
                if let Some(t) = twin_tag {
                    p.enforcer_mut().tags.insert(t, key);
                }
            };
            if clean_first {
                twin(&mut p);
            }
            dns(
                &mut p,
                &query(&format!("{l}."), RecordType::MX),
                Direction::Egress,
            );
            if !clean_first {
                twin(&mut p);
            }
            assert_eq!(
                p.enforcer().answer_verdict(&own),
                sensor_common::Verdict::Blocked,
                "twin tag {twin_tag:?}, its verdict first: {clean_first}"
            );
        }
    }
}

/// `contoso.com` is a `block` entry and `contoso.com.au` protected beside it: the prefix
/// rule covers the latter, and only its clean verdict, kept under its tag, lets its
/// answers through. A name computed to share its hash (`contoso.com.a.b.c.d.evil.net`),
/// looked up once, got a whole-name block whose tag took the verdict's place in
/// `NAME_TAGS` (one entry per hash for both): every answer for the organisation's own
/// `contoso.com.au` was dropped from then on, with no collision reported.
#[test]
fn a_block_under_a_protected_name_s_hash_does_not_undo_its_clean_verdict() {
    let policy = "[policy]\nprotect = [{ entry = \"contoso.com\", action = \"block\" }, \
                  \"contoso.com.au\"]\n";
    let (mut p, _lines, _m) = enforcing(policy);
    let au = "contoso.com.au.";
    let reply = answer(au, RecordType::MX, vec![], vec![]);
    dns(&mut p, &query(au, RecordType::MX), Direction::Egress);
    assert_eq!(
        p.enforcer().answer_verdict(&reply),
        sensor_common::Verdict::Allowed,
        "judged clean"
    );
    let key = p.blocks.name_key();
    let twin = "contoso.com.a.b.c.d.evil.net.";
    let tag = sensor_common::tag::question_tag(key, &query(twin, RecordType::A));
    let shared = name_hash("contoso.com.au").unwrap();
    p.blocks
        .learn_name(shared, twin, target_id(b"contoso.com"), (false, tag), FAR);
    assert_eq!(
        p.enforcer().answer_verdict(&reply),
        sensor_common::Verdict::Allowed,
        "the twin's block took the clean verdict's tag"
    );
}

/// A restarted agent finds the tags its predecessor kept for clean verdicts. With the
/// same policy the verdicts stand, and so must their tags (else those names' answers are
/// dropped again), bounded as its own; with another policy both go. Before, they stayed
/// in `NAME_TAGS` for good, one more set each restart, until tags could not be written.
#[test]
fn a_previous_agent_s_clean_verdict_tags_are_taken_over_or_removed() {
    let listed = "army.mil.dbl.spamhaus.org.";
    let (mut p, _lines, _m) = enforcing(BLOCK);
    dns(&mut p, &query(listed, RecordType::A), Direction::Egress);
    let left = p.enforcer().tags.clone();
    // The protected entry's own verdict and the listed name's.
    assert_eq!(left.len(), 2, "clean verdicts' tags: {left:?}");
    let restart = |policy: &str| {
        let old = p.enforcer();
        let kernel = crate::agent::enforcer::Simulated {
            names: old.names.clone(),
            clean: old.clean.clone(),
            tags: old.tags.clone(),
            agent: old.agent,
            ..Default::default()
        };
        super::tests::pipeline_over(policy, |_| {}, kernel).0
    };
    let same = restart(BLOCK);
    assert_eq!(
        same.enforcer().tags,
        left,
        "the same policy's verdict lost its tag"
    );
    assert_eq!(same.blocks.clean_tags.len(), 2, "not taken over");
    let other = restart("[policy]\nprotect = [{ entry = \"navy.mil\", action = \"block\" }]\n");
    // Only the new policy's own entry's tag is left.
    let kept: Vec<_> = left
        .keys()
        .filter(|k| other.enforcer().tags.contains_key(k))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
}
