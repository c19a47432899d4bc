//! The whole file through `Config::parse` and `Loaded::parse`: empty files, nonsense
//! values and conflicts.

use std::path::Path;

use super::{Config, ConfigError, Loaded};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("t.toml"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted: {text}"),
    }
}

#[test]
fn empty_blank_and_comment_only_files_are_errors() {
    for text in ["", "\n\n", "# just a comment\n"] {
        assert!(
            matches!(parse(text), Err(ConfigError::Empty { .. })),
            "{text:?}"
        );
    }
    assert!(parse("[policy]\nintentionally_empty = true\n").is_ok());
}

#[test]
fn values_that_parse_but_make_no_sense_name_their_line() {
    let e = err("[events]\nmax_bytes = 0\nkeep = 0\n");
    assert!(
        e.contains("line 2: events.max_bytes = 0") && e.contains("line 3: events.keep = 0"),
        "{e}"
    );
    let e = err("\n[alertmanager]\nattempts = 4294967295\n");
    assert!(e.contains("line 3: alertmanager.attempts"), "{e}");
    let e = err("[agent]\nsmtp_ports = []\n");
    assert!(e.contains("line 2: agent.smtp_ports = []"), "{e}");
    let e = err("[agent]\nsmtp_ports = [\n  25,\n  0,\n]\n");
    assert!(e.contains("line 4: agent.smtp_ports: port 0"), "{e}");
    let e = err("[cache]\npending_max = 10\npending_per_target = 11\n");
    assert!(e.contains("line 3: cache.pending_per_target = 11"), "{e}");
    let e = err("[cache]\nttl_floor_secs = 10\nttl_ceiling_secs = 5\n");
    assert!(e.contains("line 2: cache.ttl_floor_secs"), "{e}");
    let e = err("[events]\nrate_limit = 0\n");
    assert!(e.contains("line 2: events.rate_limit"), "{e}");
    let e = err("[metrics]\npath = \"metrics\"\n");
    assert!(
        e.contains("line 2") && e.contains("must start with /"),
        "{e}"
    );
}

#[test]
fn conflicts_are_warnings_with_lines() {
    let l = Loaded::parse(
        "[agent]\nsmtp_ports = [25, 25]\n[policy]\nprotect = [\"army.mil\", { entry = \"ARMY.mil\", action = \"block\" }, \"a.example.org\"]\nallow = [\n \"army.mil\",\n \"example.org\",\n \"example.org\",\n]\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let w = l.warnings.join("\n");
    for want in [
        "t.toml: line 2: agent.smtp_ports lists port 25 twice",
        "line 4: policy.protect lists army.mil twice (also at line 4), with different actions",
        "line 6: army.mil is both protected and allowed",
        "line 7: allow entry example.org covers protected a.example.org",
        "line 8: policy.allow lists example.org twice",
    ] {
        assert!(w.contains(want), "{want:?} missing from:\n{w}");
    }
}

#[test]
fn the_evidence_file_sits_beside_the_event_log() {
    let c = parse("[events]\nfile = \"/var/log/mxsentry/events.jsonl\"\n").unwrap();
    assert_eq!(
        c.events.evidence_path().unwrap(),
        Path::new("/var/log/mxsentry/events.evidence.jsonl")
    );
    let c = parse("[events]\nfile = \"/var/log/ev\"\nevidence_file = \"/srv/e\"\n").unwrap();
    assert_eq!(c.events.evidence_path().unwrap(), Path::new("/srv/e"));
    assert!(
        parse("[agent]\nmode = \"monitor\"\n")
            .unwrap()
            .events
            .evidence_path()
            .is_none()
    );
}
