//! Private Python virtual environments for the fixtures and checkers fetched from PyPI.

use std::{path::Path, process::Command};

use crate::cmd::run;

/// Creates (once per package list) a venv at `dir` with `packages` installed; returns its
/// `bin` directory.
pub fn ensure(dir: &Path, packages: &[&str]) -> anyhow::Result<std::path::PathBuf> {
    let python = dir.join("bin/python");
    let marker = dir.join(".mxsentry-installed");
    let want = packages.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(want.as_str()) {
        run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages))?;
        std::fs::write(&marker, &want)?;
    }
    Ok(dir.join("bin"))
}
