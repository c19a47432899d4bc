//! `mxsentry check` as a user runs it: the real binary, real stdin and stdout.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mxsentry"))
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("child status");
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("VmHWM line")
}

#[test]
fn names_on_the_command_line_give_json_lines() {
    let out = bin()
        .args([
            "check",
            "--protect",
            "army.mil=block",
            "--json",
            "army.ml",
            "navy.mil",
            "not a domain",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["verdict"], "typosquat");
    assert_eq!(lines[0]["target"], "army.mil");
    assert_eq!(lines[0]["rule"], "suffix-typo");
    assert_eq!(lines[0]["action"], "block");
    assert_eq!(
        lines[0]["explanation"],
        "army.ml looks like army.mil: the suffix \"mil\" lost its \"i\""
    );
    assert_eq!(lines[1]["verdict"], "clean");
    assert_eq!(lines[2]["verdict"], "invalid");
    for key in [
        "domain",
        "verdict",
        "target",
        "rule",
        "distance",
        "score",
        "explanation",
    ] {
        assert!(lines[0].get(key).is_some(), "missing {key}");
    }
}

#[test]
fn lookalikes_in_restricted_registries_name_the_registry() {
    let dir = std::env::temp_dir().join(format!("mxsentry-lookalike-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("mod.toml");
    std::fs::write(
        &cfg,
        r#"[policy]
protect = [
  { entry = "mod.gov.uk", also = ["mod.uk", "fco.gov.uk"], action = "block" },
  { entry = "army.mil", action = "block", block_restricted = true },
]
restricted_registries = ["gov.xyz"]
"#,
    )
    .unwrap();
    let out = bin()
        .args(["check", "--json", "--config"])
        .arg(&cfg)
        .args([
            "mod.gov.pk",
            "army.mil.kr",
            "fco.gov.uk",
            "army.mod.uk",
            "mod.gov.uk.com",
            "mod.gov.uk.gov.xyz",
        ])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Pakistan's Ministry of Defence: reported, named, never blocked by default.
    assert_eq!(lines[0]["verdict"], "lookalike");
    assert_eq!(lines[0]["target"], "mod.gov.uk");
    assert_eq!(lines[0]["registry"], "restricted");
    assert_eq!(lines[0]["registry_suffix"], "gov.pk");
    assert_eq!(lines[0]["registry_kind"], "government");
    assert_eq!(lines[0]["action"], "alert");
    let why = lines[0]["explanation"].as_str().unwrap();
    assert!(
        why.contains("gov.pk") && why.contains("restricted registry"),
        "{why}"
    );
    // block_restricted lets the entry's own action through.
    assert_eq!(lines[1]["verdict"], "lookalike");
    assert_eq!(lines[1]["action"], "block");
    assert_eq!(lines[1]["registry_suffix"], "mil.kr");
    // The organisation's own domains, and under them, are protected.
    assert_eq!(lines[2]["verdict"], "protected");
    assert_eq!(lines[2]["target"], "mod.gov.uk");
    assert_eq!(lines[3]["verdict"], "protected");
    // In an open registry it stays a typosquat, with no registry named.
    assert_eq!(lines[4]["verdict"], "typosquat");
    assert!(lines[4].get("registry").is_none());
    // A configured restricted registry.
    assert_eq!(lines[5]["verdict"], "lookalike");
    assert_eq!(lines[5]["registry_kind"], "configured");
}

#[test]
fn the_table_is_aligned_for_people() {
    let out = bin()
        .args([
            "check",
            "--protect",
            "army.mil",
            "army.ml",
            "army.mil",
            "army.mil.kr",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("DOMAIN"));
    let col = lines[0].find("VERDICT").unwrap();
    assert_eq!(&lines[1][col..col + 9], "typosquat");
    assert_eq!(&lines[2][col..col + 9], "protected");
    assert_eq!(&lines[3][col..col + 9], "lookalike");
}

#[test]
fn bad_arguments_and_configs_fail_with_a_clear_line() {
    let out = bin()
        .args(["check", "--protect", "a..b", "x.com"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"a..b\" is not a domain: empty label"),
        "{err}"
    );

    let out = bin()
        .args(["check", "--protect", "army.mil=drop", "x.com"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("action must be alert or block"));

    let out = bin()
        .args(["check", "--config", "/nonexistent.toml", "x.com"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config /nonexistent.toml"));

    let dir = std::env::temp_dir().join(format!("mxsentry-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[policy]\nprotect = [\"army.mil\"]\nallow = [\"ok.com\", \"-bad-.com\", 7]\n",
    )
    .unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .arg("x.com")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdin_streams_a_million_lines_in_constant_memory() {
    const TOTAL: usize = 1_000_000;
    const WARM: usize = 20_000;
    let mut child = bin()
        .args([
            "check",
            "--json",
            "--protect",
            "army.mil",
            "--protect",
            "example.com",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let typosquats = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (seen, typosquats) = (seen.clone(), typosquats.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if line.unwrap().contains("\"typosquat\"") {
                    typosquats.fetch_add(1, Ordering::Relaxed);
                }
                seen.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} lines answered",
                seen.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut batch = String::new();
    let mut write = |from: usize, to: usize, stdin: &mut std::process::ChildStdin| {
        for i in from..to {
            batch.clear();
            // Every tenth name is a lookalike; the rest are distinct clean names.
            if i % 10 == 0 {
                batch.push_str("army.ml\n");
            } else {
                batch.push_str(&format!("host{i}.domain{}.net\n", i % 977));
            }
            stdin.write_all(batch.as_bytes()).unwrap();
        }
    };
    write(0, WARM, &mut stdin);
    stdin.flush().unwrap();
    wait_for(WARM);
    let warm = peak_rss_kib(pid);
    write(WARM, TOTAL, &mut stdin);
    stdin.flush().unwrap();
    wait_for(TOTAL);
    let end = peak_rss_kib(pid);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), TOTAL);
    assert_eq!(typosquats.load(Ordering::Relaxed), TOTAL / 10);
    // Buffering the input or the output would grow by tens of MB over 980,000 lines.
    assert!(
        end <= warm + 2048,
        "peak RSS grew from {warm} KiB to {end} KiB"
    );
    eprintln!("peak RSS after {WARM} lines: {warm} KiB, after {TOTAL}: {end} KiB");
}
