//! The typosquat engine under criterion (`sensor-user/benches/detect.rs`).

use std::{fmt::Write as _, process::Command};

use anyhow::{Context as _, bail};

use crate::cmd::root;

/// The median (ns) of criterion benchmark `id` (its directory under target/criterion).
pub(super) fn median_ns(id: &str) -> anyhow::Result<f64> {
    let path = root()
        .join("target/criterion")
        .join(id)
        .join("new/estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["median"]["point_estimate"]
        .as_f64()
        .context("median in estimates.json")
}

/// Runs `cargo bench -p sensor-user --bench NAME` (criterion, no plots); its stdout.
pub(super) fn criterion(name: &str) -> anyhow::Result<String> {
    let cmd = [
        "bench",
        "-p",
        "sensor-user",
        "--bench",
        name,
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
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The line of a benchmark's output starting with `prefix` (or that it was not
/// reported), and the number right after `before` in it (NaN when absent).
pub fn reported(stdout: &str, prefix: &str, before: &str) -> (String, f64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .map_or_else(|| format!("{prefix} (not reported)"), str::to_string);
    let value = line
        .split(before)
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    (line, value)
}

/// Runs the criterion benchmarks; returns the report section.
pub fn run() -> anyhow::Result<String> {
    let stdout = criterion("detect")?;
    let (index, rss) = reported(&stdout, "index:", "RSS +");
    let clean = median_ns("classify_10k_protected/clean_x1000")? / 1000.0;
    let look = median_ns("classify_10k_protected/lookalike_x1000")? / 1000.0;
    let small = median_ns("classify_20_protected/clean_x1000")? / 1000.0;
    let build = median_ns("build_index/10k_protected")?;
    let mut s = String::new();
    let _ = writeln!(s, "## Typosquat engine\n");
    let _ = writeln!(
        s,
        "Command: `cargo bench -p sensor-user --bench detect` (criterion, one core). Each sample \
         classifies a batch of 1,000 names; per-name figures are the batch median / 1,000. Names \
         are synthetic but shaped like real ones (pronounceable labels of 5–14 letters, some \
         hyphenated, under common suffixes), from a fixed seed; lookalikes are one typing slip of \
         a protected name. Benchmark output: `{index}`.\n"
    );
    let _ = writeln!(s, "| what | measured | target |\n|---|---:|---:|");
    let _ = writeln!(
        s,
        "| clean name, 10,000 protected | {:.2} µs median | ≤ 2 µs |",
        clean / 1000.0
    );
    let _ = writeln!(
        s,
        "| lookalike, 10,000 protected | {:.2} µs median | ≤ 10 µs |",
        look / 1000.0
    );
    let _ = writeln!(
        s,
        "| clean names, 20 protected | {:.2} M names/s ({:.2} µs each) | ≥ 1 M/s |",
        1e3 / small,
        small / 1000.0
    );
    let _ = writeln!(
        s,
        "| build the index, 10,000 protected | {:.0} ms median | ≤ 2 s |",
        build / 1e6
    );
    let _ = writeln!(
        s,
        "| index memory, 10,000 protected | +{rss:.1} MB RSS | ≤ 200 MB |\n"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::reported;

    #[test]
    fn reads_the_reported_line_and_its_figure() {
        let out = "noise\nindex: 9999 protected, 542111 keys, built in 0.060 s, RSS +42.7 MB\n";
        let (line, rss) = reported(out, "index:", "RSS +");
        assert!(line.starts_with("index: 9999"));
        assert_eq!(rss, 42.7);
        let (line, rss) = reported("", "ledger memory:", "+");
        assert_eq!(line, "ledger memory: (not reported)");
        assert!(rss.is_nan());
    }
}
