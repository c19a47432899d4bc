//! Builds the kernel programs (`sensor-ebpf`) with the nightly toolchain so a plain
//! `cargo build` of the agent produces a binary with its eBPF object embedded.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let pkg = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "sensor-ebpf")
        .ok_or_else(|| anyhow!("sensor-ebpf package not found in the workspace"))?;
    let root = pkg
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", pkg.manifest_path))?;
    // The upgrade test's variant build passes its feature on to the kernel programs.
    let features: &[&str] = if std::env::var_os("CARGO_FEATURE_UPGRADE_VARIANT").is_some() {
        &["upgrade-variant"]
    } else {
        &[]
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: pkg.name.as_str(),
            root_dir: root.as_str(),
            features,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
