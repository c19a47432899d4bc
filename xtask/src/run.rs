//! `cargo xtask run`: set up what building needs, build in release, run the sensor.

use std::process::Command;

use crate::{
    cmd::{root, run as sh},
    setup,
};

/// Builds and runs `mxsentry run ARGS`, as root.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    setup::toolchain()?;
    setup::bpffs()?;
    sh(Command::new("cargo")
        .args(["build", "--release", "-p", "sensor-user"])
        .current_dir(root()))?;
    sh(Command::new(root().join("target/release/mxsentry"))
        .arg("run")
        .args(args))
}
