//! The correspondents ledger under criterion (`sensor-user/benches/correspondents.rs`):
//! the cost a delivery adds, an MTA log's import speed, and a full ledger's memory.

use std::{fmt::Write as _, process::Command};

use anyhow::bail;

use super::engine::median_ns;
use crate::cmd::root;

/// Runs the ledger benchmarks; returns the report section.
pub fn run() -> anyhow::Result<String> {
    let cmd = [
        "bench",
        "-p",
        "sensor-user",
        "--bench",
        "correspondents",
        "--",
        "--noplot",
    ];
    eprintln!("+ cargo {}", cmd.join(" "));
    let out = Command::new("cargo")
        .args(cmd)
        .current_dir(root())
        .output()?;
    if !out.status.success() {
        bail!(
            "cargo bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let memory = stdout
        .lines()
        .find(|l| l.starts_with("ledger memory:"))
        .unwrap_or("ledger memory: (not reported)")
        .to_string();
    let rss: f64 = memory
        .split("RSS +")
        .nth(1)
        .or_else(|| memory.split('+').nth(1))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let record = median_ns("correspondents/record_100k")?;
    let import = median_ns("correspondents/import_1m_lines")?;
    let mut s = String::new();
    let _ = writeln!(s, "## Correspondents ledger\n");
    let _ = writeln!(
        s,
        "Command: `cargo bench -p sensor-user --bench correspondents` (criterion, one core). \
         The ledger holds 100,000 domains; the log is 1,000,000 Postfix `status=sent` lines \
         to 250 domains. Benchmark output: `{memory}`.\n"
    );
    let _ = writeln!(s, "| what | measured | target |\n|---|---:|---:|");
    let _ = writeln!(
        s,
        "| record one delivery (an attributed connect), 100,000 domains | {record:.0} ns median | ≤ 1 µs |"
    );
    let _ = writeln!(
        s,
        "| import a Postfix log | {:.2} M lines/s | ≥ 1 M lines/s |",
        1e6 / import * 1e3
    );
    let _ = writeln!(
        s,
        "| memory, 100,000 domains | +{rss:.1} MB RSS | ≤ 20 MB |\n"
    );
    Ok(s)
}
