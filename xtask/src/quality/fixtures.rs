//! The inputs of the quality report, fetched from the registries at pinned versions:
//! dnstwist (PyPI) for the lookalike corpus; the MISP warning lists (PyPI) and three npm
//! lists for the real domain populations.

use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::cmd::run;

const PYPI: &[&str] = &[
    "dnstwist==20250130",
    "tld==0.13.2",
    "pymispwarninglists==1.7.0",
];
const NPM: &[(&str, &str)] = &[
    ("top-sites", "1.1.222"),
    ("email-providers", "2.26.0"),
    ("free-email-domains", "1.12.6"),
];

/// The private venv's python, with the PyPI packages installed at pinned versions.
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

/// Unpacks the npm packages (without running their install scripts) under `work/npm`;
/// returns that directory.
pub fn npm(work: &Path) -> anyhow::Result<std::path::PathBuf> {
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
    Ok(npm)
}
