//! `mxsentry run --check-config`: validates without privileges and says where it is wrong.

use std::process::Command;

fn check(text: &str, tag: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("mxsentry-runcfg-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mxsentry.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mxsentry"))
        .args(["run", "--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_config_passes() {
    let (ok, out, err) = check(
        r#"
[agent]
mode = "enforce"
smtp_ports = [25, 587]
state_dir = "/var/lib/mxsentry"

[policy]
protect = ["example.com", { entry = "army.mil", action = "block" }]

[metrics]
listen = "127.0.0.1:9464"

[events]
file = "/var/log/mxsentry/events.jsonl"
max_bytes = 1048576
keep = 3

[alertmanager]
url = "http://alertmanager.monitoring:9093"

[cache]
max_entries = 5000
ttl_floor_secs = 10
ttl_ceiling_secs = 3600
"#,
        "full",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("config ok") && out.contains("2 protected entries"),
        "{out}"
    );
}

#[test]
fn each_mistake_names_its_key_and_line() {
    for (text, want) in [
        ("[agent]\nmode = \"block\"\n", "line 2"),
        ("[agent]\nsmtp_port = [25]\n", "smtp_port"),
        ("[metrics]\nlisten = \"nowhere\"\n", "line 2"),
        (
            "[cache]\nttl_floor_secs = 100\nttl_ceiling_secs = 10\n",
            "ttl_floor_secs",
        ),
        ("[alertmanager]\nurl = \"ftp://x\"\n", "alertmanager.url"),
        (
            "[policy]\nallow = [\"ok.com\",\n \"bad domain.com\"]\n",
            "line 3",
        ),
        ("[polcy]\n", "polcy"),
    ] {
        let (ok, _, err) = check(text, &want.replace(' ', "_"));
        assert!(!ok, "accepted: {text}");
        assert!(err.contains(want), "{text}: {err}");
        assert!(err.starts_with("mxsentry: config"), "{err}");
    }
}

#[test]
fn an_explicit_config_that_is_missing_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_mxsentry"))
        .args([
            "run",
            "--check-config",
            "--config",
            "/nonexistent/mxsentry.toml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read config /nonexistent/mxsentry.toml")
    );
}
