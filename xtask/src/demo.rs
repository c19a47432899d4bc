//! `cargo xtask demo`: set up, build, and run the narrated Postfix scenario (`mxdemo`).

use std::process::Command;

use crate::cmd::{root, run};

/// Builds what is missing and runs the demo as root.
pub fn demo() -> anyhow::Result<()> {
    crate::setup::setup()?;
    // The agent as shipped (release): enforcement races the DNS answer, and a debug
    // build loses that race.
    run(Command::new("cargo")
        .args(["build", "--quiet", "--release", "-p", "sensor-user"])
        .current_dir(root()))?;
    run(Command::new("cargo")
        .args(["build", "--quiet", "-p", "mxsentry-tests", "--bins"])
        .current_dir(root()))?;
    run(Command::new(root().join("target/debug/mxdemo"))
        .env("MXSENTRY_BIN", root().join("target/release/mxsentry")))
}
