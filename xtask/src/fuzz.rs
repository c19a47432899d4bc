//! `cargo xtask fuzz`: the DNS parser path under libFuzzer (cargo-fuzz, nightly).

use std::process::Command;

use crate::cmd::{root, run};

/// Installs cargo-fuzz if missing, then fuzzes `dns_parse` for `seconds`.
pub fn fuzz(seconds: u64) -> anyhow::Result<()> {
    crate::setup::toolchain()?;
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    let fuzz = root().join("fuzz");
    // New inputs go to corpus/ (ignored by git); the committed seeds are read too.
    std::fs::create_dir_all(fuzz.join("corpus/dns_parse"))?;
    run(Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "run",
            "dns_parse",
            "corpus/dns_parse",
            "seeds/dns_parse",
            "--",
        ])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .current_dir(&fuzz))
}
