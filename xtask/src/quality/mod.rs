//! `cargo xtask quality`: recall on a dnstwist lookalike corpus, and `typosquat` verdicts
//! on real domain populations under realistic configurations, measured through the real
//! `mxsentry check`.

mod fixtures;
mod populations;
mod report;

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::cmd::{root, run};

/// Lowest recall any rule class may have.
pub const MIN_RECALL: f64 = 0.99;
/// Highest share of a real population any configuration may call `typosquat`.
pub const MAX_FP_RATE: f64 = 0.0001;
/// The configuration that must call no military or government name a typosquat.
pub const DEFENCE: &str = "defence";
/// The populations it must leave without a typosquat.
pub const OFFICIAL: [&str; 2] = ["military", "government"];
/// Populations reported but not held to [`MAX_FP_RATE`]: lists that record the typo
/// domains people mistakenly send to, so many of their typosquats are true ones.
pub const WITH_TYPO_DOMAINS: [&str; 1] = ["mail-domains"];

/// One corpus line from `tests/quality/corpus.py`.
#[derive(Deserialize)]
pub struct Case {
    /// The lookalike.
    pub domain: String,
    /// Its class (dnstwist's fuzzer name, or the suffix case).
    pub class: String,
    /// The protected domain it imitates.
    pub target: String,
    /// `dnstwist`, or `mxsentry` for the suffix cases dnstwist does not generate.
    pub source: String,
}

/// One line of `mxsentry check --json`.
#[derive(Deserialize)]
struct Verdict {
    domain: String,
    verdict: String,
    target: Option<String>,
    rule: Option<String>,
    score: Option<f32>,
}

/// `typosquat`, or `lookalike` (the name lies under a restricted registry): either way
/// the engine found the resemblance.
fn found(verdict: &str) -> bool {
    verdict == "typosquat" || verdict == "lookalike"
}

/// Where cargo puts the release binary (`CARGO_TARGET_DIR` when set).
fn release_bin(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("release/mxsentry")
}

/// Counts for one rule class.
#[derive(Default)]
pub struct ClassStats {
    total: usize,
    detected: usize,
    /// Of `detected`, those found as `lookalike` (in a restricted registry).
    lookalikes: usize,
    excluded: usize,
    misses: Vec<String>,
}

/// Everything the report shows.
pub struct Results {
    protected: Vec<String>,
    classes: BTreeMap<(String, String), ClassStats>,
    populations: Vec<populations::Population>,
    configs: Vec<populations::Config>,
    /// Per configuration name, per population name.
    scored: BTreeMap<String, BTreeMap<String, populations::Scored>>,
}

#[derive(Deserialize)]
struct PolicyFile {
    policy: PolicyProtect,
}

#[derive(Deserialize)]
struct PolicyProtect {
    protect: Vec<String>,
}

/// Runs `mxsentry check --json` with `policy` over `names`.
fn classify(bin: &Path, policy: &Path, names: &[String]) -> anyhow::Result<Vec<Verdict>> {
    let mut child = Command::new(bin)
        .args(["check", "--json", "--config"])
        .arg(policy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut stdin = child.stdin.take().context("stdin of mxsentry check")?;
    let input = names.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("stdin writer panicked"))??;
    if !out.status.success() {
        bail!("mxsentry check failed: {}", out.status);
    }
    let verdicts: Vec<Verdict> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("parsing mxsentry check output")?;
    if verdicts.len() != names.len() {
        bail!(
            "mxsentry check answered {} of {} names",
            verdicts.len(),
            names.len()
        );
    }
    Ok(verdicts)
}

/// The quality corpus and what produced it, for the comparison benchmark.
pub struct Corpus {
    /// The release agent binary.
    pub bin: PathBuf,
    /// The policy file (`tests/quality/policy.toml`).
    pub policy: PathBuf,
    /// Its protected domains.
    pub protected: Vec<String>,
    /// The lookalikes.
    pub cases: Vec<Case>,
    /// The venv's python, which has dnstwist.
    pub python: PathBuf,
    /// The dictionary words the corpus used.
    pub words: PathBuf,
}

/// Builds the release binary and the corpus, as the quality report does.
pub fn corpus() -> anyhow::Result<Corpus> {
    let root = root();
    let work = root.join("target/quality");
    std::fs::create_dir_all(&work)?;
    let policy = root.join("tests/quality/policy.toml");
    let text = std::fs::read_to_string(&policy).context("reading tests/quality/policy.toml")?;
    let protected = toml::from_str::<PolicyFile>(&text)?.policy.protect;
    run(Command::new("cargo")
        .args(["build", "--quiet", "--release", "-p", "sensor-user"])
        .current_dir(&root))?;
    let text = fixtures::corpus(&work, &root.join("tests/quality"), &protected)?;
    let cases = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("parsing the corpus")?;
    Ok(Corpus {
        bin: release_bin(&root),
        policy,
        protected,
        cases,
        python: fixtures::python(&work)?,
        words: root.join("tests/quality/words.txt"),
    })
}

/// For each name, the target mxsentry names it a lookalike of (None when it does not).
pub fn targets(c: &Corpus, names: &[String]) -> anyhow::Result<Vec<Option<String>>> {
    Ok(classify(&c.bin, &c.policy, names)?
        .into_iter()
        .map(|v| found(&v.verdict).then_some(v.target).flatten())
        .collect())
}

/// Recall per (source, class) of the corpus.
fn recall(c: &Corpus) -> anyhow::Result<BTreeMap<(String, String), ClassStats>> {
    let names: Vec<String> = c.cases.iter().map(|c| c.domain.clone()).collect();
    let verdicts = classify(&c.bin, &c.policy, &names)?;
    let mut classes: BTreeMap<(String, String), ClassStats> = BTreeMap::new();
    for (case, v) in c.cases.iter().zip(&verdicts) {
        let s = classes
            .entry((case.source.clone(), case.class.clone()))
            .or_default();
        if v.verdict == "protected" || v.verdict == "allowed" {
            s.excluded += 1;
            continue;
        }
        s.total += 1;
        if found(&v.verdict) && v.target.as_deref() == Some(&case.target) {
            s.detected += 1;
            if v.verdict == "lookalike" {
                s.lookalikes += 1;
            }
        } else if s.misses.len() < 8 {
            s.misses
                .push(format!("{} ({}: {})", case.domain, case.target, v.verdict));
        }
    }
    Ok(classes)
}

/// Generates the corpus and the populations, classifies them, checks the targets; with
/// `write`, also rewrites `docs/quality.md`.
pub fn quality(write: bool) -> anyhow::Result<()> {
    let root = root();
    let work = root.join("target/quality");
    let c = corpus()?;
    let classes = recall(&c)?;
    let fixtures = root.join("tests/quality");
    let npm = fixtures::npm(&work)?;
    let populations = populations::load(&c.python, &fixtures, &npm)?;
    let configs = populations::configs(&fixtures.join("configs"))?;
    let mut scored = BTreeMap::new();
    for cfg in &configs {
        scored.insert(
            cfg.name.clone(),
            populations::score(&c.bin, cfg, &populations)?,
        );
    }
    let results = Results {
        protected: c.protected,
        classes,
        populations,
        configs,
        scored,
    };
    let text = report::markdown(&results);
    print!("{text}");
    if write {
        std::fs::write(root.join("docs/quality.md"), &text)?;
        eprintln!("wrote docs/quality.md");
    }
    report::check(&results)
}
