//! Behaviour of the whole engine, one test per rule and per policy promise.

use super::*;

fn engine(protect: &[&str]) -> Engine {
    let policy = Policy {
        protect: protect.iter().map(|e| ProtectEntry::new(*e)).collect(),
        ..Policy::default()
    };
    Engine::new(&policy).expect("valid policy")
}

/// The finding for `name`, a typosquat or a lookalike.
fn finding_of(e: &Engine, name: &str) -> Finding {
    match e.classify(name) {
        Classification::Typosquat(f) | Classification::Lookalike(f) => f,
        other => panic!("{name}: expected a finding, got {other:?}"),
    }
}

fn rule_of(e: &Engine, name: &str) -> Rule {
    finding_of(e, name).rule
}

fn assert_rule(e: &Engine, rule: Rule, names: &[&str]) {
    for n in names {
        assert_eq!(rule_of(e, n), rule, "{n}");
    }
}

fn common() -> Engine {
    engine(&[
        "army.mil",
        "example.com",
        "mod.gov.uk",
        "bbc.co.uk",
        "bank-of-america.com",
        "washington.com",
    ])
}

#[test]
fn the_mil_ml_case_is_explained() {
    let e = engine(&["army.mil"]);
    let Classification::Typosquat(f) = e.classify("army.ml") else {
        panic!("not flagged")
    };
    assert_eq!(f.target, "army.mil");
    assert_eq!(f.rule, Rule::SuffixTypo);
    assert_eq!(f.distance, 1);
    assert_eq!(
        f.explanation,
        "army.ml looks like army.mil: the suffix \"mil\" lost its \"i\""
    );
    assert!(f.score > 0.5 && f.score <= 1.0);
}

#[test]
fn protected_names_and_their_subdomains_are_protected() {
    let e = common();
    for n in [
        "army.mil",
        "ARMY.MIL.",
        "mail.army.mil",
        "a.b.example.com",
        "mod.gov.uk",
    ] {
        assert!(
            matches!(e.classify(n), Classification::Protected { .. }),
            "{n}"
        );
    }
    assert!(matches!(e.classify("wikipedia.org"), Classification::Clean));
    assert!(matches!(e.classify("navy.mil"), Classification::Clean));
}

#[test]
fn protecting_a_suffix_leaves_real_siblings_alone() {
    // dia.mil and dla.mil are both real and one letter apart.
    let e = engine(&["mil", "dia.mil"]);
    assert!(matches!(
        e.classify("dla.mil"),
        Classification::Protected { .. }
    ));
    assert!(matches!(
        e.classify("dia.mil"),
        Classification::Protected { .. }
    ));
    assert_eq!(rule_of(&e, "army.ml"), Rule::SuffixTypo);
    assert_eq!(rule_of(&e, "army.mi"), Rule::SuffixTypo);
    assert_eq!(rule_of(&e, "army.mill"), Rule::SuffixTypo);
    assert_eq!(rule_of(&e, "army.mil.com"), Rule::SuffixAppended);
    assert_eq!(
        rule_of(&e, "army.mil.attacker.com"),
        Rule::ProtectedAsSubdomain
    );
    let g = engine(&["gov.uk"]);
    assert_eq!(rule_of(&g, "mod.gv.uk"), Rule::SuffixTypo);
    assert_eq!(rule_of(&g, "mod.gov.u"), Rule::SuffixTypo);
    assert!(matches!(
        g.classify("hmrc.gov.uk"),
        Classification::Protected { .. }
    ));
}

#[test]
fn suffix_typos_of_a_domain() {
    let e = common();
    assert_rule(
        &e,
        Rule::SuffixTypo,
        &[
            "army.ml",
            "army.mi",
            "army.mill",
            "mod.gov.u",
            "mod.gv.uk",
            "bbc.co.k",
        ],
    );
}

#[test]
fn suffix_swaps_from_the_table_and_from_the_user() {
    let e = common();
    assert_rule(&e, Rule::SuffixSwap, &["bbc.com", "example.net"]);
    let policy = Policy {
        protect: vec![ProtectEntry::new("example.com")],
        suffix_swaps: vec![("com".into(), "cc".into())],
        ..Policy::default()
    };
    let e = Engine::new(&policy).unwrap();
    // "cc" is also one edit from "com"... pick a pair that is not.
    assert_eq!(rule_of(&e, "example.cc"), Rule::SuffixSwap);
}

#[test]
fn suffix_truncated_appended_dot_dropped_and_borrowed() {
    let e = common();
    assert_rule(&e, Rule::SuffixTruncated, &["mod.uk"]);
    assert_rule(
        &e,
        Rule::SuffixAppended,
        &["army.mil.com", "army.mil.ml", "example.com.co"],
    );
    assert_rule(
        &e,
        Rule::DotDropped,
        &[
            "armymil.com",
            "army-mil.com",
            "armymil.mil",
            "modgov.uk",
            "examplecom.net",
        ],
    );
    assert_rule(
        &e,
        Rule::ProtectedAsSubdomain,
        &["army.mil.attacker.com", "www.example.com.evil.org"],
    );
}

#[test]
fn character_edit_rules() {
    let e = common();
    assert_rule(
        &e,
        Rule::Addition,
        &["examplex.com", "bank-of-americax.com"],
    );
    assert_rule(&e, Rule::Bitsquatting, &["exaople.com"]);
    assert_rule(&e, Rule::Hyphenation, &["exam-ple.com"]);
    assert_rule(&e, Rule::Insertion, &["exsample.com"]);
    assert_rule(&e, Rule::Omission, &["exmple.com", "amy.mil"]);
    assert_rule(&e, Rule::Plural, &["examples.com"]);
    assert_rule(&e, Rule::Repetition, &["exxample.com", "arrmy.mil"]);
    assert_rule(&e, Rule::Replacement, &["ezample.com", "arny.mil"]);
    assert_rule(&e, Rule::Subdomain, &["exa.mple.com", "ar.my.mil"]);
    assert_rule(&e, Rule::Transposition, &["exmaple.com", "amry.mil"]);
    assert_rule(&e, Rule::VowelSwap, &["exampla.com", "ermy.mil"]);
}

#[test]
fn homoglyphs_of_any_script() {
    let e = engine(&["apple.com", "example.com", "paypal.com"]);
    assert_rule(
        &e,
        Rule::Homoglyph,
        &["paypa1.com", "ẹxample.com", "xn--xample-oh8b.com"],
    );
    assert_rule(&e, Rule::Cyrillic, &["аррӏе.com", "xn--80ak6aa92e.com"]);
    assert_rule(&e, Rule::MixedScript, &["аpple.com", "pаypal.com"]);
    // Greek omicron and Armenian oh stand in for Latin o through the UTS #39 skeleton.
    let g = engine(&["google.com"]);
    assert_rule(&g, Rule::MixedScript, &["gοogle.com", "goօgle.com"]);
    assert_rule(&g, Rule::Homoglyph, &["g00gle.com", "googIe.com"]);
    let m = engine(&["microsoft.com"]);
    assert_rule(&m, Rule::Homoglyph, &["rnicrosoft.com"]);
}

#[test]
fn dictionary_words_and_user_words() {
    let e = common();
    assert_rule(
        &e,
        Rule::Dictionary,
        &[
            "example-login.com",
            "secureexample.com",
            "login-example.com",
            "examplesupport.com",
            "bank-of-login.com",
            "secure-of-america.com",
        ],
    );
    let policy = Policy {
        protect: vec![ProtectEntry::new("army.mil")],
        words: vec!["recruiting".into()],
        ..Policy::default()
    };
    let e = Engine::new(&policy).unwrap();
    assert_eq!(rule_of(&e, "army-recruiting.mil"), Rule::Dictionary);
}

#[test]
fn two_slips_only_on_long_names_and_only_likely_ones() {
    let e = common();
    // s→a and t→r are both neighbouring keys.
    assert_rule(&e, Rule::TwoEdits, &["waahingron.com"]);
    // Two unlikely substitutions are not enough.
    assert!(matches!(
        e.classify("wqxhingzon.com"),
        Classification::Clean
    ));
    // Short names never get two edits.
    assert!(matches!(e.classify("xamplx.com"), Classification::Clean));
}

#[test]
fn blocklist_zones_about_a_protected_domain_are_allowed_and_only_theirs() {
    let e = engine(&["army.mil", "example.com"]);
    for n in [
        "army.mil.dbl.spamhaus.org",
        "example.com.dwl.spamhaus.org",
        "example.com.k3y.dbl.dq.spamhaus.net",
        "army.mil.multi.uribl.com",
        "army.mil.multi.surbl.org",
        "example.com.dwl.dnswl.org",
        "army.mil.rhsbl.sorbs.net",
    ] {
        assert!(
            matches!(e.classify(n), Classification::Allowed { .. }),
            "{n}"
        );
    }
    for n in [
        "army.mil.dbl.spamhaus-lists.org",
        "army.mil.spamhaus.org.evil.com",
    ] {
        assert!(
            matches!(
                e.classify(n),
                Classification::Typosquat(_) | Classification::Lookalike(_)
            ),
            "{n}: {:?}",
            e.classify(n)
        );
    }
    for l in defaults::dns_lists() {
        assert!(Name::parse(l).is_ok_and(|n| n.ascii == l), "{l}");
        assert_eq!(
            crate::dns::registrable(l),
            l,
            "{l} is not a registrable domain"
        );
    }
}

#[test]
fn allow_list_wins_and_builtin_mail_providers_ship() {
    let e = engine(&["gmail.com", "yahoo.com"]);
    for n in [
        "mail.com",
        "gmx.com",
        "outlook.com",
        "icloud.com",
        "proton.me",
        "aol.com",
        "yandex.ru",
        "qq.com",
        "163.com",
    ] {
        assert!(
            matches!(e.classify(n), Classification::Allowed { .. }),
            "{n}"
        );
    }
    assert_eq!(rule_of(&e, "gmial.com"), Rule::Transposition);
    let off = Engine::new(&Policy {
        protect: vec![ProtectEntry::new("gmail.com")],
        builtin_allow: false,
        ..Policy::default()
    })
    .unwrap();
    assert!(matches!(
        off.classify("gmaill.com"),
        Classification::Typosquat(_)
    ));
    // Without the built-in list, mail.com is one letter from gmail.com.
    assert_eq!(rule_of(&off, "mail.com"), Rule::Omission);
    let user = Engine::new(&Policy {
        protect: vec![ProtectEntry::new("army.mil")],
        allow: vec!["army.ml".into()],
        ..Policy::default()
    })
    .unwrap();
    assert!(matches!(
        user.classify("mx.army.ml"),
        Classification::Allowed { .. }
    ));
}

#[test]
fn actions_per_entry_with_a_default() {
    let policy = Policy {
        protect: vec![
            ProtectEntry {
                action: Some(Action::Block),
                ..ProtectEntry::new("army.mil")
            },
            ProtectEntry::new("example.com"),
        ],
        default_action: Action::Alert,
        ..Policy::default()
    };
    let e = Engine::new(&policy).unwrap();
    assert_eq!(
        e.classify("army.ml").finding().map(|f| f.action),
        Some(Action::Block)
    );
    assert_eq!(
        e.classify("exmple.com").finding().map(|f| f.action),
        Some(Action::Alert)
    );
}

#[test]
fn bad_input_never_panics() {
    let e = common();
    for n in [
        "",
        ".",
        "..",
        "a..b",
        "xn--",
        "xn--zz.com",
        "\u{0}",
        "-",
        "a.-",
        "é",
        "ß.de",
        "x".repeat(300).as_str(),
        "a b",
        "💩.la",
    ] {
        let _ = e.classify(n);
    }
    assert!(matches!(
        e.classify("xn--zz.com"),
        Classification::Invalid(InvalidName::Idna)
    ));
    let bad = Engine::new(&Policy {
        protect: vec![ProtectEntry::new("not a domain")],
        ..Policy::default()
    });
    assert!(matches!(bad, Err(PolicyError::BadProtected { .. })));
}

#[test]
fn never_flags_protected_or_builtin_allowed() {
    let set = [
        "army.mil",
        "navy.mil",
        "dia.mil",
        "mod.gov.uk",
        "hmrc.gov.uk",
        "example.com",
        "paypal.com",
        "microsoft.com",
        "bbc.co.uk",
        "barclays.co.uk",
        "bank-of-america.com",
        "state.gov",
    ];
    let e = engine(&set);
    for p in set {
        for n in [
            p.to_string(),
            format!("www.{p}"),
            format!("mx1.mail.{p}"),
            p.to_uppercase() + ".",
        ] {
            assert!(
                matches!(e.classify(&n), Classification::Protected { .. }),
                "{n}"
            );
        }
    }
    for m in defaults::mail_providers() {
        for n in [m.to_string(), format!("mx.{m}")] {
            assert!(
                matches!(e.classify(&n), Classification::Allowed { .. }),
                "{n}"
            );
        }
    }
    // Protecting every provider at once: each is protected, none a lookalike of another.
    let all = engine(&defaults::mail_providers().collect::<Vec<_>>());
    for m in defaults::mail_providers() {
        assert!(
            matches!(all.classify(m), Classification::Protected { .. }),
            "{m}"
        );
    }
}

/// With `ndots:5` (Kubernetes) a stub resolver asks for `contoso.com.svc.cluster.local`
/// before `contoso.com`. That was the protected name "only a subdomain of
/// svc.cluster.local": a lookalike report per lookup, and in enforce mode the kernel's
/// appended-suffix rule dropped the cluster resolver's answer, so the stub waited out its
/// timeout (glibc) or failed (musl). No registry delegates `.local` or `.internal`:
/// nobody outside the site registers there. Under a real suffix the rule still holds.
#[test]
fn search_list_expansions_under_an_undelegated_suffix_are_no_lookalikes() {
    let e = engine(&["contoso.com", "mil"]);
    for name in [
        "contoso.com.svc.cluster.local",
        "contoso.com.cluster.local",
        "contoso.com.default.svc.cluster.local",
        "contoso.com.corp.internal",
        "c0ntoso.com.svc.cluster.local",
        "army.mil.svc.cluster.local",
        "contoso.com.local",
    ] {
        assert!(
            matches!(e.classify(name), Classification::Clean),
            "{name}: {:?}",
            e.classify(name)
        );
    }
    assert_eq!(
        rule_of(&e, "contoso.com.evil.net"),
        Rule::ProtectedAsSubdomain
    );
    assert_eq!(rule_of(&e, "contoso.com.net"), Rule::SuffixAppended);
    assert_eq!(
        rule_of(&e, "army.mil.attacker.com"),
        Rule::ProtectedAsSubdomain
    );
}
