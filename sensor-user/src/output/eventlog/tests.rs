//! The log under floods: rotation, repeats folded, routine lines limited, evidence kept.

use std::time::{Duration, Instant, SystemTime};

use super::{
    gate::{Admit, Gate, GateSettings},
    *,
};
use crate::output::schema::{BlockKind, Lookalike, Severity, SocketOwner};

fn lookup(domain: &str) -> Event {
    Event::LookalikeLookup {
        severity: Severity::Info,
        qtype: "A",
        lookalike: Lookalike {
            domain: domain.into(),
            target: "army.mil".into(),
            rule: "suffix-typo",
            explanation: String::new(),
            action: "block",
            score: 0.9,
            registry: None,
            registry_suffix: None,
            registry_kind: None,
        },
        name_blocked: true,
        local_resolver_upstream: false,
        socket: SocketOwner::default(),
    }
}

fn dropped_answer() -> Event {
    Event::Block {
        severity: Severity::Warning,
        kind: BlockKind::DnsAnswer,
        lookalike: None,
        address: None,
        port: None,
        route: None,
        process: None,
        socket: Some(SocketOwner::default()),
    }
}

fn detection() -> Event {
    Event::StateError {
        op: "save",
        file: "x".into(),
        error: "evidence stand-in".into(),
    }
}

#[test]
fn rotates_by_size_and_keeps_n_files() {
    let dir = std::env::temp_dir().join(format!("mxsentry-evlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("events.jsonl");
    let metrics = Metrics::new("test").unwrap();
    let mut log = EventLog::file(&path, 100, 2, metrics.clone()).unwrap();
    for i in 0..20 {
        log.write(&serde_json::json!({ "event": "test", "n": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }));
    }
    assert!(path.exists());
    assert!(dir.join("events.jsonl.1").exists());
    assert!(dir.join("events.jsonl.2").exists());
    assert!(!dir.join("events.jsonl.3").exists());
    let last = std::fs::read_to_string(dir.join("events.jsonl.1")).unwrap();
    assert!(
        last.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    assert_eq!(metrics.event_log_errors.get(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

const SETTINGS: GateSettings = GateSettings {
    rate_limit: 100,
    repeat_window: Duration::from_secs(10),
};

#[test]
fn repeats_within_the_window_are_one_line_and_a_count() {
    let t0 = Instant::now();
    let mut g = Gate::new(SETTINGS, t0);
    let mut out = Vec::new();
    let now = SystemTime::now();
    assert_eq!(g.admit(&dropped_answer(), now, t0, &mut out), Admit::Write);
    for i in 1..=40 {
        let t = t0 + Duration::from_millis(i * 100);
        assert_eq!(g.admit(&dropped_answer(), now, t, &mut out), Admit::Folded);
    }
    g.due(t0 + Duration::from_secs(5), false, &mut out);
    assert!(out.is_empty(), "window still open");
    g.due(t0 + Duration::from_secs(11), false, &mut out);
    match out.as_slice() {
        [
            Event::Repeated {
                count, of, kept, ..
            },
        ] => {
            assert_eq!(*count, 40);
            assert_eq!(of["event"], "block");
            assert!(*kept, "a dropped answer's repeats are evidence");
        }
        other => panic!("{other:?}"),
    }
    // After the window, the next one is written again.
    out.clear();
    let later = t0 + Duration::from_secs(12);
    assert_eq!(
        g.admit(&dropped_answer(), now, later, &mut out),
        Admit::Write
    );
}

#[test]
fn a_lookup_flood_is_limited_and_counted_but_evidence_always_passes() {
    let t0 = Instant::now();
    let mut g = Gate::new(SETTINGS, t0);
    let mut out = Vec::new();
    let now = SystemTime::now();
    let (mut written, mut suppressed) = (0, 0);
    // 30 s of 20,000 distinct lookups a second, evidence among them.
    for i in 0..600_000u64 {
        let t = t0 + Duration::from_micros(i * 50);
        match g.admit(&lookup(&format!("q{i}.army.ml")), now, t, &mut out) {
            Admit::Write => written += 1,
            Admit::Suppressed => suppressed += 1,
            Admit::Folded => panic!("distinct names do not fold"),
        }
        if i % 1000 == 0 {
            assert_eq!(g.admit(&detection(), now, t, &mut out), Admit::Write);
        }
        if i % 20_000 == 0 {
            g.due(t, false, &mut out);
        }
    }
    assert!(
        written <= 100 * 30 + 1000 + 1,
        "{written} routine lines written"
    );
    assert_eq!(written + suppressed, 600_000);
    g.due(t0 + Duration::from_secs(40), true, &mut out);
    let total: u64 = out
        .iter()
        .filter_map(|e| match e {
            Event::EventsSuppressed { counts, .. } => counts.get("lookalike_lookup").copied(),
            _ => None,
        })
        .sum();
    assert_eq!(total, suppressed, "every suppressed line is in a summary");
}

#[test]
fn evidence_goes_to_its_own_file_which_lookups_never_rotate() {
    let dir = std::env::temp_dir().join(format!("mxsentry-evidence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = LogOptions {
        file: Some(dir.join("events.jsonl")),
        evidence: Some(dir.join("events.evidence.jsonl")),
        max_bytes: 64 * 1024,
        keep: 1,
        gate: GateSettings {
            rate_limit: 1_000_000,
            repeat_window: Duration::ZERO,
        },
    };
    let metrics = Metrics::new("test").unwrap();
    let mut log = EventLog::open(&opts, metrics.clone()).unwrap();
    log.event(SystemTime::now(), "h", &detection());
    for i in 0..20_000 {
        log.event(SystemTime::now(), "h", &lookup(&format!("q{i}.army.ml")));
    }
    let main = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(
        !main.contains("evidence stand-in"),
        "rotated out of the main log"
    );
    let ev = std::fs::read_to_string(dir.join("events.evidence.jsonl")).unwrap();
    assert_eq!(ev.lines().count(), 1);
    assert!(ev.contains("evidence stand-in"));
    assert_eq!(metrics.event_log_errors.get(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
