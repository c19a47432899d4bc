//! `cargo xtask run`: set up what building needs, build in release, run the sensor.

use std::process::Command;

use crate::{
    cmd::{root, run as sh},
    setup,
};

/// Builds and runs `mxsentry run ARGS`, as root. Without `--config`, and with no
/// `/etc/mxsentry/mxsentry.toml`, the repository's example config is used.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    setup::toolchain()?;
    setup::bpffs()?;
    sh(Command::new("cargo")
        .args(["build", "--release", "-p", "sensor-user"])
        .current_dir(root()))?;
    let mut cmd = Command::new(root().join("target/release/mxsentry"));
    cmd.arg("run");
    let has_config = args
        .iter()
        .any(|a| a == "--config" || a.starts_with("--config="));
    if !has_config && !std::path::Path::new("/etc/mxsentry/mxsentry.toml").exists() {
        cmd.arg("--config")
            .arg(root().join("deploy/config/mxsentry.toml"));
    }
    sh(cmd.args(args))
}
