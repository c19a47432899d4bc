//! What the kernel holds of mxsentry, as `bpftool` sees it (a witness independent of the
//! agent): programs on a cgroup with their tags, maps and their entries; planting maps;
//! running the agent to its exit; the upgrade test's other build.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::sh;

/// Runs `bpftool -j CMD`: its JSON, or its `{"error": ...}` as the error.
fn json(cmd: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new("bpftool").arg("-j").args(cmd).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Nothing to list (an empty cgroup) prints nothing.
    if text.trim().is_empty() && out.status.success() {
        return Ok(Value::Array(Vec::new()));
    }
    let v: Value = serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "bpftool {cmd:?} printed {text:?} ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if let Some(e) = v["error"].as_str() {
        bail!("bpftool {cmd:?}: {e}");
    }
    Ok(v)
}

/// An mxsentry program attached to a cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Program id.
    pub id: u64,
    /// Program name (`mx_connect4`).
    pub name: String,
    /// The kernel's tag of its instructions.
    pub tag: String,
}

/// The `mx_*` programs attached to `cgroup`, sorted by name.
pub fn programs_on(cgroup: &Path) -> anyhow::Result<Vec<Attached>> {
    let v = json(&["cgroup", "show", &cgroup.display().to_string()])?;
    let mut found = Vec::new();
    for p in v.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        if !name.starts_with("mx_") {
            continue;
        }
        let id = p["id"].as_u64().context("program id")?;
        let tag = prog(id)?
            .and_then(|p| p["tag"].as_str().map(String::from))
            .unwrap_or_default();
        found.push(Attached { id, name, tag });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// `bpftool prog show id ID`, or `None` when the program is gone.
pub fn prog(id: u64) -> anyhow::Result<Option<Value>> {
    match json(&["prog", "show", "id", &id.to_string()]) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.to_string().contains("No such file") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ids of the maps program `id` uses.
pub fn prog_maps(id: u64) -> anyhow::Result<Vec<u64>> {
    let p = prog(id)?.context("program gone")?;
    Ok(p["map_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect())
}

/// Whether map `id` still exists.
pub fn map_exists(id: u64) -> bool {
    json(&["map", "show", "id", &id.to_string()]).is_ok()
}

/// Waits up to 3 s (the kernel frees programs and maps after an RCU grace period) until
/// none of `progs` and `maps` exists; names what is left otherwise.
pub fn wait_gone(progs: &[u64], maps: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut left = Vec::new();
        for id in progs {
            if prog(*id)?.is_some() {
                left.push(format!("program {id}"));
            }
        }
        left.extend(
            maps.iter()
                .filter(|id| map_exists(**id))
                .map(|id| format!("map {id}")),
        );
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("still in the kernel: {}", left.join(", "));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every entry of the map pinned at `path`, as bpftool prints them (sorted).
pub fn entries(path: &Path) -> anyhow::Result<Vec<String>> {
    let v = json(&["map", "dump", "pinned", &path.display().to_string()])?;
    let mut e: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{} = {}", e["key"], e["value"]))
        .collect();
    e.sort();
    Ok(e)
}

/// Pins a new map at `path`: `kind` as bpftool names it, sizes, capacity and flags.
pub fn plant(
    path: &Path,
    name: &str,
    kind: &str,
    key: u32,
    value: u32,
    max: u32,
    flags: u32,
) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let (key, value, max, flags) = (
        key.to_string(),
        value.to_string(),
        max.to_string(),
        flags.to_string(),
    );
    let p = path.display().to_string();
    let args = [
        "map", "create", &p, "type", kind, "key", &key, "value", &value, "entries", &max, "name",
        name, "flags", &flags,
    ];
    sh("bpftool", &args).map(drop)
}

/// How a run of the agent ended.
pub struct Exited {
    /// Whether it exited 0.
    pub success: bool,
    /// Its event lines.
    pub stdout: String,
    /// Its error lines.
    pub stderr: String,
}

/// Runs `mxsentry` with `args` to its exit (killed after `timeout`).
pub fn run_to_exit(bin: &Path, args: &[&str], timeout: Duration) -> anyhow::Result<Exited> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            bail!("{} {args:?} still running after {timeout:?}", bin.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout)?;
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr)?;
    }
    Ok(Exited {
        success: status.success(),
        stdout,
        stderr,
    })
}

/// The upgrade test's other build of the agent: `MXSENTRY_VARIANT_BIN`, else
/// `target/upgrade-variant/mxsentry`, which `cargo xtask test` builds (the agent with
/// `--features upgrade-variant`: other connect programs, another map capacity).
pub fn variant_bin() -> anyhow::Result<PathBuf> {
    crate::agent::built(
        "MXSENTRY_VARIANT_BIN",
        "upgrade-variant/mxsentry",
        "`cargo xtask test` builds it (by hand: cargo build --release -p sensor-user \
         --features upgrade-variant, copy target/release/mxsentry there, then cargo build \
         --release -p sensor-user again)",
    )
}

/// Runs `mxsentry ctl --pin-dir PIN detach` to its exit.
pub fn ctl_detach(pin: &Path) -> anyhow::Result<Exited> {
    let pin = pin.display().to_string();
    let bin = crate::agent::agent_bin()?;
    run_to_exit(
        &bin,
        &["ctl", "--pin-dir", &pin, "detach"],
        Duration::from_secs(20),
    )
}
