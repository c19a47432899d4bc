//! Checks of deploy/ and dashboards/ by the tools that consume them (the live dashboard
//! queries against a real Prometheus and the image's capability-limited run are privileged
//! tests in tests/). Says at the end which checks ran and which could not, and why.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{output, root, run},
    image,
};

/// Pinned PyPI checkers.
const PYPI: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "PyYAML==6.0.3",
];

/// Set to 1 to also build the registry-based Containerfile (it pulls its base images).
const REGISTRY_BUILD: &str = "MXSENTRY_REGISTRY_BUILD";

/// Cargo's target directory (`CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// What ran and what did not.
#[derive(Default)]
struct Report {
    ran: Vec<String>,
    skipped: Vec<String>,
}

/// Runs every deployment check; fails on the first failing tool.
pub fn check() -> anyhow::Result<()> {
    let mut report = Report::default();
    manifests(&mut report)?;
    prometheus(&mut report)?;
    systemd(&mut report)?;
    container(&mut report)?;
    registry_containerfile(&mut report)?;
    eprintln!("deployment checks run:");
    for r in &report.ran {
        eprintln!("  ran      {r}");
    }
    for s in &report.skipped {
        eprintln!("  not run  {s}");
    }
    Ok(())
}

fn manifests(report: &mut Report) -> anyhow::Result<()> {
    let root = root();
    let bin = crate::venv::ensure(&root.join("target/deploy-venv"), PYPI)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new(bin.join("python"))
        .arg(root.join("tests/deploy/check_deploy.py"))
        .arg(&root)
        .env("PATH", &path))?;
    report.ran.push(
        "kustomize overlays and components: kubernetes-validate (1.25-1.37), checkov, modes, \
         canary, pinning, NetworkPolicy, rules and runbook anchors, dashboard (check_deploy.py)"
            .into(),
    );
    Ok(())
}

fn prometheus(report: &mut Report) -> anyhow::Result<()> {
    let prom = root().join("deploy/prometheus");
    run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(prom.join("mxsentry-rules.yml")))?;
    run(Command::new("promtool")
        .args(["test", "rules"])
        .arg(prom.join("tests/mxsentry-rules-test.yml")))?;
    run(Command::new("promtool")
        .args(["check", "config"])
        .arg(prom.join("prometheus.yml")))?;
    run(Command::new("amtool")
        .args(["check-config"])
        .arg(prom.join("alertmanager.yml")))?;
    report.ran.push(
        "promtool check rules, promtool test rules, promtool check config, amtool check-config"
            .into(),
    );
    Ok(())
}

fn systemd(report: &mut Report) -> anyhow::Result<()> {
    let root = root();
    // systemd-analyze checks that ExecStart exists: point it at the binary just built.
    run(Command::new("cargo")
        .args(["build", "--release", "-p", "sensor-user"])
        .current_dir(&root))?;
    let unit = std::fs::read_to_string(root.join("deploy/systemd/mxsentry.service"))?;
    let built = target_dir().join("release/mxsentry");
    let dir = target_dir().join("deploy-check");
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join("mxsentry.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/mxsentry", &built.display().to_string()),
    )?;
    run(Command::new("systemd-analyze").arg("verify").arg(&copy))?;
    report.ran.push("systemd-analyze verify".into());
    Ok(())
}

/// Builds the offline image and checks that the digest it pins lands in the rendered
/// DaemonSets. (Its binary's capability-limited run is the privileged test image.rs.)
fn container(report: &mut Report) -> anyhow::Result<()> {
    if image::builder().is_none() {
        report.skipped.push(
            "offline image (cargo xtask image): neither podman nor buildah is installed \
             (cargo xtask setup installs podman)"
                .into(),
        );
        return Ok(());
    }
    let check = target_dir().join("image/check");
    let component = check.join("image");
    let built = image::image(&component)?;
    let overlay = check.join("overlay");
    std::fs::create_dir_all(&overlay)?;
    let canary = relative(&root().join("deploy/kubernetes/overlays/canary"), &overlay);
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {canary}\ncomponents:\n  - ../image\n"
        ),
    )?;
    let rendered = output(Command::new("kubectl").arg("kustomize").arg(&overlay))
        .context("kubectl kustomize with the built image's component")?;
    let want = format!("image: {}@{}", image::NAME, built.digest);
    let pinned = rendered.lines().filter(|l| l.trim() == want).count();
    if pinned != 2 {
        bail!("{pinned} of the canary's 2 DaemonSets run {want}:\n{rendered}");
    }
    report.ran.push(format!(
        "offline image built with {} ({} bytes unpacked, {}), its component pins both canary DaemonSets",
        image::builder().unwrap_or_default(),
        built.size,
        built.digest
    ));
    Ok(())
}

/// `path` relative to `from` (kustomize takes no absolute paths); both exist.
fn relative(path: &Path, from: &Path) -> String {
    let (path, from) = (
        path.canonicalize().unwrap_or(path.to_path_buf()),
        from.canonicalize().unwrap_or(from.to_path_buf()),
    );
    let common = path
        .components()
        .zip(from.components())
        .take_while(|(a, b)| a == b)
        .count();
    let up = from.components().count() - common;
    let mut rel: PathBuf = std::iter::repeat_n("..", up).collect();
    rel.extend(path.components().skip(common));
    rel.display().to_string()
}

/// The registry-based Containerfile pulls rust:1.95-bookworm and distroless/cc; it is
/// built only when asked (MXSENTRY_REGISTRY_BUILD=1), where those registries answer.
fn registry_containerfile(report: &mut Report) -> anyhow::Result<()> {
    let file = "deploy/container/Containerfile";
    let asked = std::env::var(REGISTRY_BUILD).is_ok_and(|v| v == "1");
    let Some(tool) = image::builder().filter(|_| asked) else {
        report.skipped.push(format!(
            "{file}: not built: it pulls its base images from docker.io and gcr.io \
             ({REGISTRY_BUILD}=1 builds it where they are reachable)"
        ));
        return Ok(());
    };
    let root = root();
    let tag = "localhost/mxsentry:registry-build";
    run(Command::new(tool)
        .args(if tool == "buildah" {
            &["bud"][..]
        } else {
            &["build"][..]
        })
        .args(["-t", tag, "-f"])
        .arg(root.join(file))
        .arg(&root))?;
    report
        .ran
        .push(format!("{file}: built with {tool} from its registries"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let tmp = std::env::temp_dir().join(format!("xtask-rel-{}", std::process::id()));
        let (a, b) = (tmp.join("x/y/z"), tmp.join("x/w"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(relative(&a, &b), "../y/z");
        assert_eq!(relative(&b, &a), "../../w");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
