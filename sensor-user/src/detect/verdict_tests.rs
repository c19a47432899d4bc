//! The behaviours of issue 15: restricted registries, an organisation's own domains,
//! calibrated scores, short labels, skeletons first, explanations that name the change.

use super::*;

fn engine_with(protect: Vec<ProtectEntry>) -> Engine {
    Engine::new(&Policy {
        protect,
        ..Policy::default()
    })
    .expect("valid policy")
}

fn engine(protect: &[&str]) -> Engine {
    engine_with(protect.iter().map(|e| ProtectEntry::new(*e)).collect())
}

fn lookalike(e: &Engine, name: &str) -> Finding {
    match e.classify(name) {
        Classification::Lookalike(f) => f,
        other => panic!("{name}: expected a lookalike, got {other:?}"),
    }
}

fn typosquat(e: &Engine, name: &str) -> Finding {
    match e.classify(name) {
        Classification::Typosquat(f) => f,
        other => panic!("{name}: expected a typosquat, got {other:?}"),
    }
}

fn kind(e: &Engine, name: &str) -> &'static str {
    e.classify(name).kind()
}

#[test]
fn names_in_restricted_registries_are_lookalikes_never_typosquats() {
    let e = engine_with(vec![
        ProtectEntry {
            action: Some(Action::Block),
            ..ProtectEntry::new("army.mil")
        },
        ProtectEntry::new("navy.mil"),
        ProtectEntry::new("mod.gov.uk"),
    ]);
    for (name, target, registry) in [
        ("army.mil.kr", "army.mil", "mil.kr"),
        ("army.mil.nz", "army.mil", "mil.nz"),
        ("army.mil.ph", "army.mil", "mil.ph"),
        ("navy.mil.kr", "navy.mil", "mil.kr"),
        ("pak.army.mil.pk", "army.mil", "mil.pk"),
        ("mod.gov.pk", "mod.gov.uk", "gov.pk"),
        ("mod.gov.ua", "mod.gov.uk", "gov.ua"),
    ] {
        let f = lookalike(&e, name);
        assert_eq!(f.target, target, "{name}");
        let reg = f.registry.as_ref().expect("registry named");
        assert_eq!(reg.suffix, registry, "{name}");
        // Reported, never blocked by default, even for an entry whose action is block.
        assert_eq!(f.action, Action::Alert, "{name}");
        assert!(
            f.explanation.contains(registry) && f.explanation.contains("restricted registry"),
            "{}",
            f.explanation
        );
    }
    assert_eq!(
        lookalike(&e, "army.mil.kr").registry.unwrap().kind,
        RegistryKind::Military
    );
    // The Mali case and its kin stay typosquats: .ml, .mi, .com are open registries.
    for name in [
        "army.ml",
        "army.mi",
        "armymil.com",
        "army.mil.ml",
        "army.mil.com",
        "mod.gov.uk.com",
    ] {
        assert_eq!(kind(&e, name), "typosquat", "{name}");
    }
    assert_eq!(typosquat(&e, "army.ml").action, Action::Block);
}

#[test]
fn block_restricted_lets_a_lookalike_take_the_entry_action() {
    let e = engine_with(vec![ProtectEntry {
        action: Some(Action::Block),
        block_restricted: true,
        ..ProtectEntry::new("army.mil")
    }]);
    assert_eq!(lookalike(&e, "army.mil.kr").action, Action::Block);
    assert_eq!(lookalike(&e, "arrmy.mil").action, Action::Block);
}

#[test]
fn configured_registries_extend_the_table() {
    let e = Engine::new(&Policy {
        protect: vec![ProtectEntry::new("army.mil")],
        restricted_registries: vec!["mil.xyz".into()],
        ..Policy::default()
    })
    .unwrap();
    assert_eq!(kind(&e, "army.mil.top"), "typosquat");
    let f = lookalike(&e, "army.mil.xyz");
    assert_eq!(f.registry.unwrap().kind, RegistryKind::Configured);
    assert!(matches!(
        Engine::new(&Policy {
            restricted_registries: vec!["not a suffix".into()],
            ..Policy::default()
        }),
        Err(PolicyError::BadRestricted { .. })
    ));
}

#[test]
fn universities_one_letter_apart_are_not_typosquats() {
    let e = engine(&["mit.edu", "ox.ac.uk", "cam.ac.uk"]);
    // Unrelated letters on a 3-letter label are other institutions, not slips.
    for name in ["rit.edu", "fit.edu", "man.ac.uk", "ram.ac.uk", "nl.edu"] {
        assert_eq!(kind(&e, name), "clean", "{name}");
    }
    // Likely slips inside .edu and ac.uk are reported as lookalikes.
    for name in ["kit.edu", "iit.edu", "acm.ac.uk", "mit.edu.au"] {
        assert_eq!(kind(&e, name), "lookalike", "{name}");
    }
    assert_eq!(
        lookalike(&e, "mit.edu.au").registry.unwrap().suffix,
        "edu.au"
    );
}

#[test]
fn homoglyphs_obey_the_edit_budget() {
    let e = Engine::new(&Policy {
        protect: vec![ProtectEntry::new("gmail.com")],
        builtin_allow: false,
        ..Policy::default()
    })
    .unwrap();
    // t for g and l for i: two changes on a five-letter label.
    assert_eq!(kind(&e, "tmall.com"), "clean");
    let d = engine(&["defense.gov", "state.gov"]);
    assert_ne!(kind(&d, "starnc.gov"), "typosquat");
    assert_eq!(kind(&d, "starnc.gov"), "clean");
}

#[test]
fn short_labels_get_likely_slips_at_a_lower_score() {
    let e = engine(&["af.mil", "washington.com"]);
    for name in ["aff.mil", "a.mil", "af1.mil", "fa.mil"] {
        let f = lookalike(&e, name);
        assert_eq!(f.target, "af.mil", "{name}");
        assert_eq!(f.registry.as_ref().unwrap().suffix, "mil");
    }
    for name in ["xf.mil", "paf.mil", "axf.mil"] {
        assert_eq!(kind(&e, name), "clean", "{name}");
    }
    let short = lookalike(&e, "aff.mil");
    let long = typosquat(&e, "washingtonn.com");
    assert_eq!(short.rule, Rule::Repetition);
    assert_eq!(long.rule, Rule::Repetition);
    assert!(short.score < long.score, "{} {}", short.score, long.score);
}

#[test]
fn confusables_compose_with_every_suffix_rule() {
    let e = engine(&["army.mil", "mod.gov.uk"]);
    // Cyrillic а in army.
    for (name, rule) in [
        ("аrmy.ml", Rule::SuffixTypo),
        ("аrmy.mi", Rule::SuffixTypo),
        ("аrmy.mil.com", Rule::SuffixAppended),
        ("аrmymil.com", Rule::DotDropped),
        ("mоd.gov.uk.com", Rule::SuffixAppended),
        ("mоd.uk", Rule::SuffixTruncated),
    ] {
        let f = e.classify(name);
        let f = f.finding().unwrap_or_else(|| panic!("{name}: {f:?}"));
        assert_eq!(f.rule, rule, "{name}");
    }
    let plain = typosquat(&e, "army.ml");
    let f = typosquat(&e, "аrmy.ml");
    assert_eq!(f.score, plain.score);
    assert!(
        f.explanation.contains("Cyrillic \"а\" stands in for \"a\"")
            && f.explanation.contains("the suffix \"mil\" lost its \"i\""),
        "{}",
        f.explanation
    );
}

#[test]
fn an_organisations_own_domains_are_protected_with_the_entry() {
    let e = engine_with(vec![ProtectEntry {
        also: vec!["mod.uk".into(), "fco.gov.uk".into()],
        ..ProtectEntry::new("mod.gov.uk")
    }]);
    for name in [
        "fco.gov.uk",
        "mail.fco.gov.uk",
        "mod.uk",
        "army.mod.uk",
        "raf.mod.uk",
    ] {
        match e.classify(name) {
            Classification::Protected { target } => assert_eq!(target, "mod.gov.uk", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // Lookalikes of an own domain are lookalikes of the entry.
    let f = typosquat(&e, "fco.gov.uk.com");
    assert_eq!(f.target, "mod.gov.uk");
    assert!(
        f.explanation
            .contains("fco.gov.uk (declared with mod.gov.uk)"),
        "{}",
        f.explanation
    );
    assert_eq!(lookalike(&e, "fcoo.gov.uk").target, "mod.gov.uk");
    let bad = Engine::new(&Policy {
        protect: vec![ProtectEntry {
            also: vec!["bad..name".into()],
            ..ProtectEntry::new("mod.gov.uk")
        }],
        ..Policy::default()
    });
    assert!(matches!(bad, Err(PolicyError::BadAlso { .. })));
}

#[test]
fn mail_provider_families_are_allowed() {
    let e = engine(&["outlook.com", "gmail.com"]);
    for name in [
        "outlook.com.au",
        "outlook.com.br",
        "outlook.com.gr",
        "outlook.com.tr",
        "outlook.com.vn",
        "outlook.de",
        "hotmail.co.uk",
        "live.co.uk",
        "yahoo.co.uk",
        "gmx.ch",
    ] {
        assert_eq!(kind(&e, name), "allowed", "{name}");
    }
    // Not a family member: a lookalike all the same.
    assert_eq!(kind(&e, "outlok.com"), "typosquat");
}

#[test]
fn explanations_name_the_real_change() {
    let e = engine(&["example.com", "army.mil"]);
    for (name, words) in [
        ("example-login.com", &["\"login\""][..]),
        ("secureexample.com", &["\"secure\""]),
        ("examplemail.com", &["\"mail\""]),
        ("cloud-example.com", &["\"cloud\""]),
        ("exanple.com", &["\"m\" in \"example\" became \"n\""]),
    ] {
        let f = e.classify(name);
        let text = &f.finding().expect(name).explanation;
        for w in words {
            assert!(text.contains(w), "{name}: {text}");
        }
        for bad in ["logln", "seeure", "nall", "doud"] {
            assert!(!text.contains(bad), "{name}: {text}");
        }
    }
}

#[test]
fn scores_fall_with_every_change() {
    let e = engine(&["paypal.com", "washington.com"]);
    let s = |n: &str| e.classify(n).finding().map(|f| f.score).expect(n);
    // Renders the same > one change > two changes.
    assert!(s("paypa1.com") > s("paypall.com"));
    assert!(s("washingtonn.com") > s("waahingron.com"));
    assert!(s("paypa1.com") > s("paypal.co"));
}

#[test]
fn the_report_names_the_registry() {
    let e = engine(&["army.mil"]);
    let c = e.classify("army.mil.kr");
    let r = Report::new("army.mil.kr", &c);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["verdict"], "lookalike");
    assert_eq!(json["registry"], "restricted");
    assert_eq!(json["registry_suffix"], "mil.kr");
    assert_eq!(json["registry_kind"], "military");
    let c = e.classify("army.ml");
    let json = serde_json::to_value(Report::new("army.ml", &c)).unwrap();
    assert!(json.get("registry").is_none());
}
