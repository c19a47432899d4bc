//! Checks of values that parse but make no sense (each an error naming its line), and of
//! conflicts that may be meant (each a warning naming its line).

use std::collections::HashMap;

use super::{Config, ProtectItem, spans::Spans};
use crate::detect::Name;

/// Smallest `events.max_bytes`: a log rotated every few lines keeps nothing.
pub const MIN_EVENT_BYTES: u64 = 64 * 1024;
/// Most rotated event files.
pub const MAX_KEEP: u32 = 1000;
/// Most push attempts per alert: more only holds the queue behind one dead endpoint.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest first retry delay (it doubles per attempt, to at most 30 s).
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// Longest repeat window for the event log.
pub const MAX_REPEAT_WINDOW: u64 = 3600;

/// Every value error in `cfg`, as "line N: key = value: why" (no line for values not in
/// the file). Empty when the values make sense.
pub fn errors(cfg: &Config, s: &Spans) -> Vec<String> {
    let mut out = Vec::new();
    outputs(cfg, s, &mut out);
    ports(cfg, s, &mut out);
    cache(cfg, s, &mut out);
    if let Err((key, why)) = cfg.learn.validate() {
        out.push(format!("{}{why}", s.at("learn", key)));
    }
    out
}

/// `[events]` and `[alertmanager]`.
fn outputs(cfg: &Config, s: &Spans, out: &mut Vec<String>) {
    let mut bad = |section: &str, key: &str, value: &dyn std::fmt::Display, why: &str| {
        out.push(format!(
            "{}{section}.{key} = {value}: {why}",
            s.at(section, key)
        ));
    };
    let (e, a) = (&cfg.events, &cfg.alertmanager);
    if e.max_bytes < MIN_EVENT_BYTES {
        bad(
            "events",
            "max_bytes",
            &e.max_bytes,
            "must be at least 65536 (64 KiB)",
        );
    }
    if e.keep == 0 || e.keep > MAX_KEEP {
        bad(
            "events",
            "keep",
            &e.keep,
            "must be 1 to 1000 (0 deletes the log at every rotation)",
        );
    }
    if e.rate_limit == 0 {
        bad(
            "events",
            "rate_limit",
            &0,
            "must be at least 1 line per second",
        );
    }
    if e.repeat_window_secs > MAX_REPEAT_WINDOW {
        bad(
            "events",
            "repeat_window_secs",
            &e.repeat_window_secs,
            "must be 0 to 3600",
        );
    }
    if a.attempts == 0 || a.attempts > MAX_ATTEMPTS {
        bad(
            "alertmanager",
            "attempts",
            &a.attempts,
            "must be 1 to 10 (more holds every later alert behind a dead endpoint)",
        );
    }
    if a.backoff_ms > MAX_BACKOFF_MS {
        bad(
            "alertmanager",
            "backoff_ms",
            &a.backoff_ms,
            "must be at most 60000",
        );
    }
    if a.resolve_after_secs < 60 {
        bad(
            "alertmanager",
            "resolve_after_secs",
            &a.resolve_after_secs,
            "must be at least 60",
        );
    }
}

/// `[cache]`.
fn cache(cfg: &Config, s: &Spans, out: &mut Vec<String>) {
    let c = &cfg.cache;
    if c.max_entries == 0 {
        out.push(format!(
            "{}cache.max_entries = 0: must be at least 1",
            s.at("cache", "max_entries")
        ));
    }
    if c.ttl_floor_secs > c.ttl_ceiling_secs {
        out.push(format!(
            "{}cache.ttl_floor_secs ({}) is above cache.ttl_ceiling_secs ({})",
            s.at("cache", "ttl_floor_secs"),
            c.ttl_floor_secs,
            c.ttl_ceiling_secs
        ));
    }
    if c.pending_max == 0 {
        out.push(format!(
            "{}cache.pending_max = 0: must be at least 1",
            s.at("cache", "pending_max")
        ));
    }
    match c.pending_per_target {
        Some(0) => out.push(format!(
            "{}cache.pending_per_target = 0: must be at least 1",
            s.at("cache", "pending_per_target")
        )),
        Some(n) if n > c.pending_max => out.push(format!(
            "{}cache.pending_per_target = {n}: must not exceed cache.pending_max ({})",
            s.at("cache", "pending_per_target"),
            c.pending_max
        )),
        _ => {}
    }
}

fn ports(cfg: &Config, s: &Spans, out: &mut Vec<String>) {
    let ports = &cfg.agent.smtp_ports;
    if ports.is_empty() {
        out.push(format!(
            "{}agent.smtp_ports = []: no port would be watched (the default is [25, 465, 587])",
            s.at("agent", "smtp_ports")
        ));
    }
    if let Some(i) = ports.iter().position(|p| *p == 0) {
        out.push(format!(
            "{}agent.smtp_ports: port 0 is not a port a connect can go to",
            s.at_item("agent", "smtp_ports", i)
        ));
    }
}

/// Conflicts worth a word: duplicates, and allow entries that cover protected ones.
pub fn warnings(cfg: &Config, s: &Spans) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen_ports = HashMap::new();
    for (i, p) in cfg.agent.smtp_ports.iter().enumerate() {
        if seen_ports.insert(*p, i).is_some() {
            out.push(format!(
                "{}agent.smtp_ports lists port {p} twice",
                s.at_item("agent", "smtp_ports", i)
            ));
        }
    }
    let norm = |d: &str| Name::parse(d).map_or_else(|_| d.to_lowercase(), |n| n.ascii);
    let protect: Vec<(String, Option<&str>)> = cfg
        .policy
        .protect
        .iter()
        .map(|p| match p {
            ProtectItem::Bare(d) => (norm(&d.0), None),
            ProtectItem::Full(f) => (norm(&f.entry.0), f.action.map(|a| a.name())),
        })
        .collect();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, (name, action)) in protect.iter().enumerate() {
        match first.get(name.as_str()) {
            Some(&j) => out.push(format!(
                "{}policy.protect lists {name} twice (also at {}){}",
                s.at_item("policy", "protect", i),
                s.at_item("policy", "protect", j).trim_end_matches(": "),
                if protect[j].1 != *action {
                    ", with different actions"
                } else {
                    ""
                }
            )),
            None => {
                first.insert(name, i);
            }
        }
    }
    let mut allowed: HashMap<String, usize> = HashMap::new();
    for (i, a) in cfg.policy.allow.iter().enumerate() {
        let a = norm(&a.0);
        let at = s.at_item("policy", "allow", i);
        if allowed.insert(a.clone(), i).is_some() {
            out.push(format!("{at}policy.allow lists {a} twice"));
        }
        for (p, _) in &protect {
            if *p == a {
                out.push(format!(
                    "{at}{a} is both protected and allowed: it stays protected, the allow entry does nothing"
                ));
            } else if p.ends_with(&format!(".{a}")) {
                out.push(format!(
                    "{at}allow entry {a} covers protected {p}: its lookalikes under {a} are never reported"
                ));
            }
        }
    }
    if cfg.policy.intentionally_empty && !protect.is_empty() {
        out.push(format!(
            "{}policy.intentionally_empty is set, but {} entries are protected",
            s.at("policy", "intentionally_empty"),
            protect.len()
        ));
    }
    out
}
