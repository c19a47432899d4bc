//! The correspondents ledger under criterion (`sensor-user/benches/correspondents.rs`):
//! the cost a delivery adds, an MTA log's import speed, and a full ledger's memory.

use std::fmt::Write as _;

use super::engine::{criterion, median_ns, reported};

/// Runs the ledger benchmarks; returns the report section.
pub fn run() -> anyhow::Result<String> {
    let stdout = criterion("correspondents")?;
    // "ledger memory: N domains, +X MB RSS (...)".
    let (memory, rss) = reported(&stdout, "ledger memory:", "+");
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
    let _ = writeln!(
        s,
        "False `typosquat` verdicts on the real populations before and after a learned \
         ledger of each population's frequent names: docs/quality.md, \
         \"With a learned correspondents ledger\" (`cargo xtask quality`, checked by \
         `cargo xtask test`).\n"
    );
    Ok(s)
}
