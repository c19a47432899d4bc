//! Idempotent set-up: nightly `rust-src`, bpf-linker built against the nightly's
//! own LLVM, the musl target and the SBOM tool for the image, the Debian packages the
//! tests use, and a mounted bpffs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::cmd::{output, run};

/// Debian packages the test suite runs (command to probe, package to install).
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bpftool", "bpftool"),
    // The detection-quality fixtures: dnstwist from PyPI, domain lists from npm.
    ("python3", "python3"),
    ("npm", "npm"),
    // The agent's Alertmanager push is tested against the real thing.
    ("prometheus-alertmanager", "prometheus-alertmanager"),
    // Deployment checks and the live dashboard test.
    ("kubectl", "kubernetes-client"),
    ("promtool", "prometheus"),
    ("systemd-analyze", "systemd"),
    // The real mail path: resolver, MTA (with smtp-sink, sendmail, postqueue), injector.
    ("unbound", "unbound"),
    ("postfix", "postfix"),
    ("swaks", "swaks"),
    // Throughput with the sensor attached vs not (cargo xtask bench).
    ("iperf3", "iperf3"),
    // The agent's image, built FROM scratch with no registry (cargo xtask image).
    ("podman", "podman"),
    // Debian 12's kernel under QEMU for the VM tests: the emulator, kmod to resolve and
    // index the unpacked kernel's modules (busybox-static for the initramfs, below).
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("modprobe", "kmod"),
    ("depmod", "kmod"),
];

/// Whether `path` is a statically linked executable (no ELF interpreter): what an
/// initramfs can run with no libc beside it.
fn is_static(path: &str) -> bool {
    output(Command::new("ldd").arg(path)).is_none()
        && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The static target the image's binary is built for.
pub const MUSL: &str = "x86_64-unknown-linux-musl";

/// The SBOM tool, pinned (crates.io).
const CYCLONEDX: (&str, &str) = ("cargo-cyclonedx", "0.5.9");

/// Everything: toolchain pieces, packages, bpffs.
pub fn setup() -> anyhow::Result<()> {
    toolchain()?;
    image_tools()?;
    packages()?;
    bpffs()
}

/// What `cargo xtask image` needs besides the builder: the musl target and the SBOM tool.
pub fn image_tools() -> anyhow::Result<()> {
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup target list --installed")?;
    if !targets.lines().any(|t| t.trim() == MUSL) {
        run(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    let (name, version) = CYCLONEDX;
    let have = output(Command::new("cargo").args(["cyclonedx", "--version"]));
    if have.is_none_or(|v| v.split_whitespace().last() != Some(version)) {
        run(Command::new("cargo").args(["install", name, "--locked", "--version", version]))?;
    }
    Ok(())
}

/// What building the sensor needs: nightly rust-src and bpf-linker.
pub fn toolchain() -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context("the nightly toolchain is not installed (rustup toolchain list)")?;
    // rust-src for the eBPF crate's build-std; rustfmt for the import grouping of
    // rustfmt.toml, whose options are nightly-only.
    for component in ["rust-src", "rustfmt"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            run(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                "nightly",
            ]))?;
        }
    }
    Ok(())
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// The nightly's own libLLVM, e.g. `.../lib/libLLVM.so.22.1-rust-1.97.0-nightly`.
fn nightly_llvm() -> anyhow::Result<PathBuf> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot")?;
    let lib = Path::new(sysroot.trim()).join("lib");
    std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))
}

/// The LLVM major version from a libLLVM file name (`libLLVM.so.22.1-rust-…` → 22).
fn llvm_major(lib: &Path) -> anyhow::Result<u32> {
    let name = lib.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let ver = name.trim_start_matches("libLLVM.so.");
    let major = ver.split(['.', '-']).next().unwrap_or_default();
    major
        .parse()
        .with_context(|| format!("no LLVM version in {name}"))
}

fn bpf_linker() -> anyhow::Result<()> {
    if output(Command::new("bpf-linker").arg("--version")).is_some() {
        return Ok(());
    }
    let lib = nightly_llvm()?;
    let major = llvm_major(&lib)?;
    // bpf-linker's rpath points into this prefix, so it must outlive the build.
    let prefix = home().join(".local/share/mxsentry/llvm");
    let libdir = prefix.join("lib");
    std::fs::create_dir_all(&libdir)?;
    let file_name = lib.file_name().context("libLLVM name")?;
    for link in [libdir.join("libLLVM.so"), libdir.join(file_name)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link)
            .with_context(|| format!("symlink {}", link.display()))?;
    }
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))?;
    if output(Command::new("bpf-linker").arg("--version")).is_none() {
        bail!("bpf-linker installed but does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

fn have(cmd: &str) -> bool {
    output(Command::new("sh").args(["-c", &format!("command -v {cmd}")])).is_some()
}

fn packages() -> anyhow::Result<()> {
    let mut missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(c, _)| !have(c))
        .map(|(_, p)| *p)
        .collect();
    missing.dedup();
    if !is_static("/bin/busybox") {
        missing.push("busybox-static");
    }
    // Debian splits venv (and the pip it bootstraps) out of python3.
    let venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output();
    if !venv.is_ok_and(|o| o.status.success()) {
        missing.push("python3-venv");
    }
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there.
pub fn bpffs() -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts.lines().any(|l| {
        l.split_whitespace().nth(1) == Some("/sys/fs/bpf")
            && l.split_whitespace().nth(2) == Some("bpf")
    }) {
        return Ok(());
    }
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_file_name() {
        assert_eq!(
            llvm_major(Path::new("/x/libLLVM.so.22.1-rust-1.97.0-nightly")).unwrap(),
            22
        );
        assert_eq!(llvm_major(Path::new("libLLVM.so.21")).unwrap(), 21);
        assert!(llvm_major(Path::new("libLLVM.so.")).is_err());
    }
}
