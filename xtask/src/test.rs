//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure.

use std::process::Command;

use crate::{
    cmd::{root, run},
    setup,
};

fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.args(args).current_dir(root());
    c
}

/// Runs set-up, formatting and lint checks, unit tests and privileged tests.
pub fn test() -> anyhow::Result<()> {
    setup::setup()?;
    // Nightly rustfmt: rustfmt.toml's import grouping is not stable yet.
    run(&mut cargo(&["+nightly", "fmt", "--all", "--check"]))?;
    crate::structure::check()?;
    run(&mut cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        "sensor-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The bpf crate only builds for the BPF target, with the nightly's build-std.
    run(&mut cargo(&[
        "+nightly",
        "clippy",
        "-p",
        "sensor-ebpf",
        "--bins",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(&mut cargo(&[
        "test",
        "--workspace",
        "--exclude",
        "sensor-ebpf",
        "--exclude",
        "mxsentry-tests",
    ]))?;
    // Recall per rule class on the dnstwist corpus, false positives on real domains.
    crate::quality::quality(false)?;
    // The privileged tests run the agent as shipped: enforcement races the DNS answer
    // (query seen -> name blocked before the answer arrives), which a debug build loses.
    // The upgrade test's other build (tests/tests/upgrade.rs), into its own file; cargo
    // keeps both builds' artifacts, so the plain build after it only relinks.
    run(&mut cargo(&[
        "build",
        "--release",
        "-p",
        "sensor-user",
        "--features",
        "upgrade-variant",
    ]))?;
    let target = root().join("target");
    std::fs::create_dir_all(target.join("upgrade-variant"))?;
    std::fs::copy(
        target.join("release/mxsentry"),
        target.join("upgrade-variant/mxsentry"),
    )?;
    run(&mut cargo(&["build", "--release", "-p", "sensor-user"]))?;
    // Deployment files, checked by the tools that consume them.
    crate::deploy::check()?;
    // Privileged tests share the kernel: one at a time.
    run(&mut cargo(&[
        "test",
        "-p",
        "mxsentry-tests",
        "--",
        "--test-threads=1",
    ]))?;
    // The kernel-sensor, agent-pipeline and DNS-capture tests again, on the kernel Debian
    // 12 ships.
    let vm = std::time::Instant::now();
    crate::vm::vm_tests()?;
    eprintln!("VM step: {:.0} s", vm.elapsed().as_secs_f64());
    Ok(())
}
