//! `mxsentry correspondents` and `check --correspondents` as an operator runs them: the
//! real binary seeds a ledger from a Postfix log, and `check` protects what it learned.

use std::{path::PathBuf, process::Command};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mxsentry"))
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxsentry-corr-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// A Postfix `status=sent` line to `rcpt` on day `day` of November.
fn sent(day: u32, n: u32, rcpt: &str) -> String {
    format!(
        "Nov {day:2} 10:{n:02}:00 mail postfix/smtp[4242]: 4XyZ{n}: to=<{rcpt}>, \
         relay=mx.example.net[192.0.2.1]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, \
         status=sent (250 2.0.0 Ok)"
    )
}

#[test]
fn a_seeded_ledger_protects_its_established_correspondents_in_check() {
    let dir = scratch("seed");
    let state = dir.join("state");
    // contoso.com on four days, twice a day: established (3 days, 5 deliveries). A
    // one-off correspondent is not.
    let mut log = String::new();
    for day in 10..14 {
        for n in 0..2 {
            log += &sent(day, n, "alice@contoso.com");
            log.push('\n');
        }
    }
    log += &sent(12, 9, "bob@oneoff.example");
    log.push('\n');
    let log_file = dir.join("mail.log");
    std::fs::write(&log_file, log).expect("log");
    let out = bin()
        .args(["correspondents", "--state-dir"])
        .arg(&state)
        .arg("import")
        .arg(&log_file)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export = dir.join("export.json");
    let out = bin()
        .args(["correspondents", "--state-dir"])
        .arg(&state)
        .args(["export", "--out"])
        .arg(&export)
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bin()
        .args(["check", "--json", "--correspondents"])
        .arg(&export)
        .args(["contoso-corp.com", "oneoff-example.com", "contoso.com"])
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["verdict"], "typosquat", "{lines:?}");
    assert_eq!(lines[0]["target"], "contoso.com");
    assert_eq!(lines[0]["source"], "learned");
    assert_eq!(lines[0]["action"], "alert");
    assert_eq!(lines[1]["verdict"], "clean", "a one-off is not protected");
    assert_eq!(lines[2]["verdict"], "protected");
    assert_eq!(lines[2]["source"], "learned");

    // Without the ledger nothing is protected.
    let out = bin()
        .args(["check", "--json", "contoso-corp.com"])
        .output()
        .expect("check");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one json line");
    assert_eq!(v["verdict"], "clean");
    assert!(v.get("source").is_none());
}

#[test]
fn a_ledger_that_is_not_one_is_a_clear_error() {
    let dir = scratch("bad");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{ not json").expect("write");
    let out = bin()
        .args(["check", "--correspondents"])
        .arg(&bad)
        .arg("contoso.com")
        .output()
        .expect("check");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--correspondents") && err.contains("bad.json"),
        "{err}"
    );
}
