//! Keys a reload cannot apply: what they set up (the attached cgroup, the pins, the
//! listening socket, the open log files, the push task, the state file) is made once at
//! start. A reload that changes one says so, instead of a silent `ok`.

use super::Config;

/// The restart-only keys whose values differ between `running` and `new`, as
/// `section.key`.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (running, new);
    let checks: [(&'static str, bool); 13] = [
        ("agent.cgroup", a.agent.cgroup != b.agent.cgroup),
        ("agent.pin_dir", a.agent.pin_dir != b.agent.pin_dir),
        ("agent.state_dir", a.agent.state_dir != b.agent.state_dir),
        ("agent.proc_root", a.agent.proc_root != b.agent.proc_root),
        ("metrics.listen", a.metrics.listen != b.metrics.listen),
        ("metrics.path", a.metrics.path != b.metrics.path),
        ("events.file", a.events.file != b.events.file),
        (
            "events.evidence_file",
            a.events.evidence_path() != b.events.evidence_path(),
        ),
        (
            "events.max_bytes, events.keep",
            (a.events.max_bytes, a.events.keep) != (b.events.max_bytes, b.events.keep),
        ),
        (
            "events.rate_limit, events.repeat_window_secs",
            (a.events.rate_limit, a.events.repeat_window_secs)
                != (b.events.rate_limit, b.events.repeat_window_secs),
        ),
        ("alertmanager.url", a.alertmanager.url != b.alertmanager.url),
        (
            "alertmanager.attempts",
            a.alertmanager.attempts != b.alertmanager.attempts,
        ),
        (
            "alertmanager.backoff_ms",
            a.alertmanager.backoff_ms != b.alertmanager.backoff_ms,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn names_each_changed_restart_only_key() {
        let parse = |t: &str| Config::parse(t, Path::new("t.toml")).unwrap();
        let a = parse("[agent]\nmode = \"monitor\"\n");
        let b = parse(
            "[agent]\nmode = \"enforce\"\ncgroup = \"/sys/fs/cgroup/x\"\n[metrics]\nlisten = \"127.0.0.1:1\"\n[events]\nfile = \"/tmp/e.jsonl\"\n",
        );
        assert_eq!(
            restart_only_changes(&a, &b),
            vec![
                "agent.cgroup",
                "metrics.listen",
                "events.file",
                "events.evidence_file"
            ]
        );
        assert!(restart_only_changes(&a, &a).is_empty());
    }
}
