//! The populations again, through `mxsentry check --correspondents` with the ledger of a
//! host that mails each population's most frequent domains: false `typosquat` verdicts
//! on established correspondents become old friends (info, never blocked), and the
//! learned entries protect what the configuration did not.

use std::{collections::BTreeMap, path::Path};

use super::{
    classify_with,
    populations::{Config, Flagged, Population, flagged},
};

/// The names of each population this host is taken to mail: its first ones, in the
/// source's own order (ranked lists put the most used first).
pub const FREQUENT: usize = 2_000;

/// One population under one configuration, with the ledger.
#[derive(Default)]
pub struct WithLedger {
    /// `typosquat` verdicts against configured entries the agent would still raise (the
    /// name is not itself an established correspondent).
    pub configured: usize,
    /// `typosquat` verdicts on established correspondents (reported at info instead).
    pub established: usize,
    /// `typosquat` verdicts against learned entries, worst first.
    pub learned: Vec<Flagged>,
}

/// Writes the ledger: each population's first [`FREQUENT`] names, each delivered to
/// on the last seven days, ten times in all (established by the default bar).
pub fn write_ledger(pops: &[Population], path: &Path) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let entry = serde_json::json!({
        "attempts": 10,
        "first_seen": now - 6 * 86_400,
        "last_seen": now,
        "last_day": now / 86_400,
        "day_bits": 0b111_1111,
        "older_days": 0,
    });
    let domains: serde_json::Map<String, serde_json::Value> = pops
        .iter()
        .flat_map(|p| p.names.iter().take(FREQUENT))
        .map(|d| (d.clone(), entry.clone()))
        .collect();
    let ledger = serde_json::json!({ "version": 1, "domains": domains });
    std::fs::write(path, serde_json::to_vec(&ledger)?)?;
    Ok(())
}

/// Classifies every population under `config` with `ledger`, in one run.
pub fn score(
    bin: &Path,
    config: &Config,
    pops: &[Population],
    ledger: &Path,
) -> anyhow::Result<BTreeMap<String, WithLedger>> {
    let all: Vec<String> = pops.iter().flat_map(|p| p.names.iter().cloned()).collect();
    let verdicts = classify_with(bin, &config.path, Some(ledger), &all)?;
    let mut out = BTreeMap::new();
    let mut it = verdicts.iter();
    for p in pops {
        let mut s = WithLedger::default();
        for v in it.by_ref().take(p.names.len()) {
            if v.verdict != "typosquat" {
                continue;
            }
            if v.established == Some(true) {
                s.established += 1;
            } else if v.source.as_deref() == Some("learned") {
                s.learned.push(flagged(v));
            } else {
                s.configured += 1;
            }
        }
        s.learned.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.insert(p.name.clone(), s);
    }
    Ok(out)
}
