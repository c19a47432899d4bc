//! The inputs of the quality report, fetched from the registries at pinned versions:
//! dnstwist (PyPI) for the lookalike corpus, two npm lists of real domains.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::cmd::run;

const PYPI: &[&str] = &["dnstwist==20250130", "tld==0.13.2"];
const NPM: &[(&str, &str)] = &[("top-sites", "1.1.222"), ("email-providers", "2.26.0")];

/// The private venv's python, with dnstwist and tld installed at pinned versions.
pub fn python(work: &Path) -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::venv::ensure(&work.join("venv"), PYPI)?.join("python"))
}

/// Runs `tests/quality/corpus.py` in a private venv; returns its JSON lines.
pub fn corpus(work: &Path, fixtures: &Path, protected: &[String]) -> anyhow::Result<String> {
    let python = python(work)?;
    let out = Command::new(&python)
        .arg(fixtures.join("corpus.py"))
        .arg(fixtures.join("words.txt"))
        .args(protected)
        .output()
        .context("running corpus.py")?;
    if !out.status.success() {
        bail!("corpus.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[derive(Deserialize)]
struct Site {
    #[serde(rename = "rootDomain")]
    root_domain: String,
}

/// Domains from the npm packages `top-sites` and `email-providers`, deduplicated.
pub fn real_domains(work: &Path) -> anyhow::Result<Vec<String>> {
    let npm = work.join("npm");
    std::fs::create_dir_all(&npm)?;
    for (name, version) in NPM {
        let dir = npm.join(name);
        if dir.join("package/package.json").exists() {
            continue;
        }
        let spec = format!("{name}@{version}");
        run(Command::new("npm")
            .args(["pack", "--silent", &spec, "--pack-destination"])
            .arg(&npm))?;
        std::fs::create_dir_all(&dir)?;
        let tgz = npm.join(format!("{name}-{version}.tgz"));
        run(Command::new("tar").arg("xzf").arg(&tgz).arg("-C").arg(&dir))?;
    }
    let read =
        |p: &str| std::fs::read_to_string(npm.join(p)).with_context(|| format!("reading {p}"));
    let sites: Vec<Site> = serde_json::from_str(&read("top-sites/package/top-sites.json")?)?;
    let mut all: Vec<String> = sites.into_iter().map(|s| s.root_domain).collect();
    for f in [
        "email-providers/package/all.json",
        "email-providers/package/common.json",
    ] {
        let list: Vec<String> = serde_json::from_str(&read(f)?)?;
        all.extend(list);
    }
    all.sort();
    all.dedup();
    Ok(all)
}
