//! Checks of deploy/ and dashboards/ by the tools that consume them (the live dashboard
//! queries against a real Prometheus are a privileged test in tests/).

use std::process::Command;

use crate::cmd::{root, run};

/// Pinned PyPI checkers.
const PYPI: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "PyYAML==6.0.3",
];

/// Runs every static deployment check; fails on the first failing tool.
pub fn check() -> anyhow::Result<()> {
    let root = root();
    let bin = crate::venv::ensure(&root.join("target/deploy-venv"), PYPI)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new(bin.join("python"))
        .arg(root.join("tests/deploy/check_deploy.py"))
        .arg(&root)
        .env("PATH", &path))?;
    let prom = root.join("deploy/prometheus");
    run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(prom.join("mxsentry-rules.yml")))?;
    run(Command::new("promtool")
        .args(["test", "rules"])
        .arg(prom.join("tests/mxsentry-rules-test.yml")))?;
    run(Command::new("promtool")
        .args(["check", "config"])
        .arg(prom.join("prometheus.yml")))?;
    run(Command::new("amtool")
        .args(["check-config"])
        .arg(prom.join("alertmanager.yml")))?;
    // systemd-analyze checks that ExecStart exists: point it at the binary just built.
    let unit = std::fs::read_to_string(root.join("deploy/systemd/mxsentry.service"))?;
    let built = root.join("target/release/mxsentry");
    let dir = root.join("target/deploy-check");
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join("mxsentry.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/mxsentry", &built.display().to_string()),
    )?;
    run(Command::new("systemd-analyze").arg("verify").arg(&copy))?;
    container(&root)
}

/// Builds the image and runs `mxsentry --version` in it when a builder is installed.
fn container(root: &std::path::Path) -> anyhow::Result<()> {
    let have = |c: &str| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let Some(tool) = ["podman", "buildah"].into_iter().find(|t| have(t)) else {
        eprintln!(
            "container image: not built here: neither podman nor buildah is installed, and this \
             machine reaches no container registry for the base images (see README \"Container image\")"
        );
        return Ok(());
    };
    let file = root.join("deploy/container/Containerfile");
    run(Command::new(tool)
        .args(["build", "-t", "localhost/mxsentry:test", "-f"])
        .arg(&file)
        .arg(root))?;
    let runner = if tool == "podman" {
        "podman"
    } else {
        "buildah"
    };
    if runner == "podman" {
        run(Command::new("podman").args(["run", "--rm", "localhost/mxsentry:test", "--version"]))?;
    }
    Ok(())
}
