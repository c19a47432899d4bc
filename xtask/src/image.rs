//! `cargo xtask image`: the agent as a static (musl) binary in a `FROM scratch` OCI image,
//! built offline with podman or buildah, with OCI labels and a CycloneDX SBOM, saved as an
//! OCI archive whose digest is pinned in the kustomize image component.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{output, root, run},
    deploy::target_dir,
    setup::MUSL,
};

/// The image name the manifests use (the kustomize `images:` entry rewrites nothing else).
pub const NAME: &str = "ghcr.io/mxsentry/mxsentry";
/// The image in local container storage; the privileged image test exports it.
pub fn local_tag() -> String {
    format!("localhost/mxsentry:{}", env!("CARGO_PKG_VERSION"))
}

/// What was built.
pub struct Built {
    /// Manifest digest of the OCI archive (`sha256:…`).
    pub digest: String,
    /// The OCI archive (gzip layers; the digest survives copying it as it is).
    pub archive: PathBuf,
    /// The image's unpacked size, as the builder reports it.
    pub size: u64,
    /// The git revision it was built from (`-dirty` when the tree had changes).
    pub revision: String,
}

/// The builder installed here: podman, else buildah.
pub fn builder() -> Option<&'static str> {
    ["podman", "buildah"]
        .into_iter()
        .find(|t| output(Command::new(t).arg("--version")).is_some())
}

/// `cargo xtask image`: builds, then pins the digest in `component` (a kustomize
/// Component directory) and prints what was built.
pub fn image(component: &Path) -> anyhow::Result<Built> {
    let Some(tool) = builder() else {
        bail!("neither podman nor buildah is installed (cargo xtask setup installs podman)");
    };
    crate::setup::image_tools()?;
    let built = build(tool)?;
    write_component(component, &built)?;
    println!(
        "image {} ({NAME}@{}), revision {}: {} bytes unpacked, {} bytes as {}; pinned in {}",
        local_tag(),
        built.digest,
        built.revision,
        built.size,
        std::fs::metadata(&built.archive)?.len(),
        built.archive.display(),
        component.join("kustomization.yaml").display(),
    );
    Ok(built)
}

fn build(tool: &str) -> anyhow::Result<Built> {
    let root = root();
    let out = target_dir().join("image");
    let ctx = out.join("context");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx)?;
    let binary = static_binary()?;
    std::fs::copy(&binary, ctx.join("mxsentry"))?;
    std::fs::copy(
        root.join("deploy/config/mxsentry.toml"),
        ctx.join("mxsentry.toml"),
    )?;
    let revision = revision()?;
    let epoch = output(
        Command::new("git")
            .args(["log", "-1", "--format=%ct"])
            .current_dir(&root),
    )
    .context("git log")?;
    let epoch = epoch.trim();
    let created = output(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{epoch}"),
        "+%Y-%m-%dT%H:%M:%SZ",
    ]))
    .context("date")?;
    sbom(&ctx.join("sbom.cdx.json"), created.trim())?;
    let tag = local_tag();
    // --timestamp: layer mtimes and the created time are the commit's, so the same source
    // and toolchain build the same digest.
    run(Command::new(tool)
        .args(if tool == "buildah" {
            &["bud"][..]
        } else {
            &["build"][..]
        })
        .args(["--timestamp", epoch, "-t", &tag])
        .arg(format!("--build-arg=VERSION={}", env!("CARGO_PKG_VERSION")))
        .arg(format!("--build-arg=REVISION={revision}"))
        .arg(format!("--build-arg=CREATED={}", created.trim()))
        .arg("-f")
        .arg(root.join("deploy/container/Containerfile.scratch"))
        .arg(&ctx))?;
    let archive = out.join(format!("mxsentry-{}.oci.tar", env!("CARGO_PKG_VERSION")));
    let digest_file = out.join("digest");
    let _ = std::fs::remove_file(&archive);
    run(Command::new(tool)
        .args(["push", "--digestfile"])
        .arg(&digest_file)
        .arg(&tag)
        .arg(format!(
            "oci-archive:{}:{NAME}:{}",
            archive.display(),
            env!("CARGO_PKG_VERSION")
        )))?;
    let digest = std::fs::read_to_string(&digest_file)?.trim().to_string();
    if !is_digest(&digest) {
        bail!("{tool} push wrote no sha256 digest: {digest:?}");
    }
    let size = output(Command::new(tool).args(["image", "inspect", "--format", "{{.Size}}", &tag]))
        .context("image inspect")?
        .trim()
        .parse()
        .context("image size")?;
    Ok(Built {
        digest,
        archive,
        size,
        revision,
    })
}

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The agent built for musl: statically linked, so it runs in an empty image.
fn static_binary() -> anyhow::Result<PathBuf> {
    run(Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "sensor-user",
            "--target",
            MUSL,
        ])
        // Symbols are most of the binary and nothing reads them in a container.
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .current_dir(root()))?;
    Ok(target_dir().join(MUSL).join("release/mxsentry"))
}

/// A CycloneDX SBOM of the agent's crates for the musl target, written to `to`, stamped
/// `created` and without the random serial number (so the image's digest is reproducible).
fn sbom(to: &Path, created: &str) -> anyhow::Result<()> {
    let root = root();
    const STEM: &str = "mxsentry.cdx";
    // The tool writes one file beside every workspace member's manifest.
    let written = |m: &str| root.join(m).join(format!("{STEM}.json"));
    let members = [
        "sensor-common",
        "sensor-ebpf",
        "sensor-user",
        "xtask",
        "tests",
    ];
    let result = run(Command::new("cargo")
        .args(["cyclonedx", "--manifest-path", "sensor-user/Cargo.toml"])
        .args([
            "--format",
            "json",
            "--spec-version",
            "1.5",
            "--no-build-deps",
        ])
        .args(["--target", MUSL, "--override-filename", STEM])
        .current_dir(&root))
    .and_then(|()| {
        let text =
            std::fs::read_to_string(written("sensor-user")).context("the SBOM of sensor-user")?;
        let mut bom: serde_json::Value = serde_json::from_str(&text).context("the SBOM's JSON")?;
        if let Some(b) = bom.as_object_mut() {
            b.remove("serialNumber");
        }
        bom["metadata"]["timestamp"] = created.into();
        Ok(std::fs::write(to, serde_json::to_string_pretty(&bom)?)?)
    });
    for m in members {
        let _ = std::fs::remove_file(written(m));
    }
    result
}

/// `git rev-parse HEAD`, with `-dirty` when the work tree has changes.
fn revision() -> anyhow::Result<String> {
    let root = root();
    let head = output(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&root),
    )
    .context("git rev-parse HEAD")?;
    let dirty = output(
        Command::new("git")
            .args(["status", "--porcelain"])
            .current_dir(&root),
    )
    .is_some_and(|s| !s.trim().is_empty());
    Ok(format!(
        "{}{}",
        head.trim(),
        if dirty { "-dirty" } else { "" }
    ))
}

/// Writes the kustomize Component that pins the image by digest.
pub fn write_component(dir: &Path, built: &Built) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = format!(
        "# The agent's image, pinned by digest (a tag can be moved; a digest cannot).\n\
         # Written by `cargo xtask image`: the manifest digest of target/image/{archive},\n\
         # whose layers keep that digest when it is copied to a registry or a node as it is\n\
         # (see README \"Container image\"). Built from revision\n\
         # {rev}\n\
         apiVersion: kustomize.config.k8s.io/v1alpha1\n\
         kind: Component\n\
         images:\n  - name: {NAME}\n    digest: {digest}\n",
        rev = built.revision,
        archive = built
            .archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        digest = built.digest,
    );
    std::fs::write(dir.join("kustomization.yaml"), text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex() {
        assert!(is_digest(&format!("sha256:{}", "a1".repeat(32))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha512:{}", "a1".repeat(32))));
        assert!(!is_digest(""));
    }
}
