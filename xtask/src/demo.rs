//! `cargo xtask demo`: set up, build, and run the narrated Postfix scenario (`mxdemo`).

use std::process::Command;

use crate::cmd::{root, run};

/// Builds what is missing and runs the demo as root.
pub fn demo() -> anyhow::Result<()> {
    crate::setup::setup()?;
    run(Command::new("cargo")
        .args([
            "build",
            "--quiet",
            "-p",
            "sensor-user",
            "-p",
            "mxsentry-tests",
            "--bins",
        ])
        .current_dir(root()))?;
    run(Command::new(root().join("target/debug/mxdemo"))
        .env("MXSENTRY_BIN", root().join("target/debug/mxsentry")))
}
