//! Real, public domain populations (government, military, academic, banks, the web, mail
//! providers) scored under realistic configurations: how many names each configuration
//! calls `typosquat` or `lookalike`, and the worst of them.

use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::{Verdict, classify};

/// One population: its name, where it comes from, its names.
pub struct Population {
    /// e.g. `military`.
    pub name: String,
    /// The source and version, for the report.
    pub source: String,
    /// Registrable domains, deduplicated.
    pub names: Vec<String>,
}

/// A configuration the populations are scored under.
pub struct Config {
    /// File stem, e.g. `defence`.
    pub name: String,
    /// The TOML file.
    pub path: std::path::PathBuf,
    /// Its first comment line, for the report.
    pub about: String,
}

/// One flagged name.
pub struct Flagged {
    /// The name.
    pub domain: String,
    /// The protected entry it resembles.
    pub target: String,
    /// The rule.
    pub rule: String,
    /// The score.
    pub score: f32,
}

/// One population under one configuration.
#[derive(Default)]
pub struct Scored {
    /// Names in the population.
    pub names: usize,
    /// Names the configuration protects or allows (not counted as findings).
    pub excluded: usize,
    /// `typosquat` verdicts, worst (highest score) first.
    pub typosquats: Vec<Flagged>,
    /// `lookalike` verdicts, worst first.
    pub lookalikes: Vec<Flagged>,
}

#[derive(Deserialize)]
struct Line {
    population: String,
    source: Option<String>,
    domain: Option<String>,
}

/// Runs `tests/quality/populations.py` in the venv; returns the populations in order.
pub fn load(python: &Path, fixtures: &Path, npm: &Path) -> anyhow::Result<Vec<Population>> {
    let out = Command::new(python)
        .arg(fixtures.join("populations.py"))
        .arg(npm)
        .output()
        .context("running populations.py")?;
    if !out.status.success() {
        bail!(
            "populations.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut pops: Vec<Population> = Vec::new();
    for l in String::from_utf8(out.stdout)?.lines() {
        let line: Line = serde_json::from_str(l).context("a populations.py line")?;
        match (line.source, line.domain) {
            (Some(source), _) => pops.push(Population {
                name: line.population,
                source,
                names: Vec::new(),
            }),
            (None, Some(d)) => match pops.last_mut() {
                Some(p) if p.name == line.population => p.names.push(d),
                _ => bail!("populations.py: {d} before its population's source line"),
            },
            (None, None) => bail!("populations.py: empty line for {}", line.population),
        }
    }
    Ok(pops)
}

/// The configurations under `tests/quality/configs`, by name.
pub fn configs(dir: &Path) -> anyhow::Result<Vec<Config>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let about = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim())
            .collect::<Vec<_>>()
            .join(" ");
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Config { name, path, about });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn flagged(v: &Verdict) -> Flagged {
    Flagged {
        domain: v.domain.clone(),
        target: v.target.clone().unwrap_or_default(),
        rule: v.rule.clone().unwrap_or_default(),
        score: v.score.unwrap_or_default(),
    }
}

/// Classifies every population under `config` in one `mxsentry check` run.
pub fn score(
    bin: &Path,
    config: &Config,
    pops: &[Population],
) -> anyhow::Result<BTreeMap<String, Scored>> {
    let all: Vec<String> = pops.iter().flat_map(|p| p.names.iter().cloned()).collect();
    let verdicts = classify(bin, &config.path, &all)?;
    let mut out = BTreeMap::new();
    let mut it = verdicts.iter();
    for p in pops {
        let mut s = Scored {
            names: p.names.len(),
            ..Scored::default()
        };
        for v in it.by_ref().take(p.names.len()) {
            match v.verdict.as_str() {
                "typosquat" => s.typosquats.push(flagged(v)),
                "lookalike" => s.lookalikes.push(flagged(v)),
                "protected" | "allowed" => s.excluded += 1,
                _ => {}
            }
        }
        let worst = |a: &Flagged, b: &Flagged| b.score.total_cmp(&a.score);
        s.typosquats.sort_by(worst);
        s.lookalikes.sort_by(worst);
        out.insert(p.name.clone(), s);
    }
    Ok(out)
}
