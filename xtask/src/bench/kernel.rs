//! Measurements with the real kernel, namespaces and agent (`tests/src/bin/mxbench.rs`),
//! on release builds.

use std::{fmt::Write as _, process::Command};

use anyhow::{Context as _, bail};

use crate::cmd::{root, run as sh};

fn mxbench(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let bin = root().join("target/release/mxbench");
    eprintln!("+ {} {}", bin.display(), args.join(" "));
    let out = Command::new(&bin)
        .args(args)
        .env("MXSENTRY_BIN", root().join("target/release/mxsentry"))
        .output()?;
    if !out.status.success() {
        bail!(
            "mxbench {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().context("mxbench printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

/// Runs the kernel-side measurements; returns the report section.
pub fn run() -> anyhow::Result<String> {
    sh(Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "sensor-user",
            "-p",
            "mxsentry-tests",
            "--bins",
        ])
        .current_dir(root()))?;
    let lat = mxbench(&["latency", "5000"])?;
    let mut s = String::new();
    let _ = writeln!(s, "## Decision latency\n");
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench latency 5000` (built by `cargo build --release -p \
         sensor-user -p mxsentry-tests --bins`, run as root). A client in a network namespace \
         sends 5,000 A queries for distinct names under `ml`, 1 ms apart, with the suffix `mil` \
         protected (action block), so each query is a lookalike whose name goes into \
         `BLOCKED_NAMES`. The agent's `mxsentry_map_update_latency_seconds{{map=\"blocked_names\"}}` \
         histogram measures each, from the kernel's timestamp of the query packet to the return \
         of the map update; quantiles are interpolated in its buckets as `histogram_quantile` does.\n"
    );
    let _ = writeln!(s, "| what | p50 | p99 | target |\n|---|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| query event → `BLOCKED_NAMES` update ({} samples) | {} µs | {} µs | p99 ≤ 200 µs |\n",
        lat["samples"], lat["p50_us"], lat["p99_us"]
    );
    Ok(s)
}
