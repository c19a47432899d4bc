//! The populations again, through `mxsentry check --correspondents`, each with the ledger
//! of a host that mails its frequent names: false `typosquat` verdicts on established
//! correspondents become old friends (info, never blocked), and the learned entries
//! protect what the configuration did not.

use std::{collections::BTreeMap, path::Path};

use super::{
    classify_with,
    populations::{Config, Flagged, Population, flagged},
};

/// One population under one configuration, with the ledger.
#[derive(Default)]
pub struct WithLedger {
    /// `typosquat` verdicts against configured entries the agent would still raise (the
    /// name is not itself an established correspondent).
    pub configured: usize,
    /// `typosquat` verdicts against configured entries on established correspondents
    /// (reported at info instead: the false verdicts the ledger takes away).
    pub established: usize,
    /// `typosquat` verdicts against learned entries, worst first.
    pub learned: Vec<Flagged>,
    /// `typosquat` verdicts against learned entries on established correspondents (info).
    pub learned_established: usize,
    /// Domains in the ledger.
    pub ledger: usize,
}

/// The most domains one ledger holds: the agent's default `learn.max_domains`.
pub const LEDGER_MAX: usize = 100_000;

/// Writes the ledger of a host that mails `pop`'s frequent names on each of the last
/// seven days: the ranked ones first, ten deliveries plus more the higher their rank
/// (so the learned entries are the most used), then the others, ten deliveries each,
/// sampled evenly when they are more than [`LEDGER_MAX`]. Returns its size.
pub fn write_ledger(pop: &Population, path: &Path) -> anyhow::Result<usize> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let entry = |attempts: u64| {
        serde_json::json!({
            "attempts": attempts,
            "first_seen": now - 6 * 86_400,
            "last_seen": now,
            "last_day": now / 86_400,
            "day_bits": 0b111_1111,
            "older_days": 0,
        })
    };
    let mut domains = serde_json::Map::new();
    for (d, rank) in &pop.frequent {
        if let Some(r) = rank {
            domains.insert(
                d.clone(),
                entry(10 + 1_000_u64.saturating_sub(u64::from(*r))),
            );
        }
    }
    let rest: Vec<&String> = pop
        .frequent
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(d, _)| d)
        .collect();
    let room = LEDGER_MAX.saturating_sub(domains.len());
    let stride = rest.len().div_ceil(room.max(1)).max(1);
    for d in rest.iter().step_by(stride).take(room) {
        domains.insert((*d).clone(), entry(10));
    }
    let size = domains.len();
    let ledger = serde_json::json!({ "version": 1, "domains": domains });
    std::fs::write(path, serde_json::to_vec(&ledger)?)?;
    Ok(size)
}

/// Classifies every population under `config`, each with the ledger of a host that
/// mails it (written under `work`).
pub fn score(
    bin: &Path,
    config: &Config,
    pops: &[Population],
    work: &Path,
) -> anyhow::Result<BTreeMap<String, WithLedger>> {
    let mut out = BTreeMap::new();
    for p in pops {
        let ledger = work.join(format!("ledger-{}.json", p.name));
        let mut s = WithLedger {
            ledger: write_ledger(p, &ledger)?,
            ..WithLedger::default()
        };
        for v in classify_with(bin, &config.path, Some(&ledger), &p.names)? {
            if v.verdict != "typosquat" {
                continue;
            }
            match (
                v.source.as_deref() == Some("learned"),
                v.established == Some(true),
            ) {
                (false, true) => s.established += 1,
                (false, false) => s.configured += 1,
                (true, true) => s.learned_established += 1,
                (true, false) => s.learned.push(flagged(&v)),
            }
        }
        s.learned.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.insert(p.name.clone(), s);
    }
    Ok(out)
}
