//! `mxsentry ctl`: operate on the pinned maps of a running (or kept-attached) sensor.
//!
//! Lock semantics: `status`, `mode` and the block actions work on the pins beside a
//! running owner (they are map reads and writes, which the owner expects), and without
//! one. `detach` needs the pin directory: with no owner it takes the lock and removes
//! links, programs, maps and the directory itself; with an owner running it asks it
//! (the `detach` request in the pin directory) and waits for the acknowledgement: the
//! owner then detaches everything when it stops, whatever `--keep-attached` says.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use sensor_common::{
    BlockEntry, EventKind,
    maps::{BLOCK_ENFORCE, BLOCK_LEARNED, BLOCK_POLICY, BLOCK_PREFIX, BLOCK_SUBTREE},
};

use super::args::{CtlAction, CtlArgs};
use crate::{
    kernel::{
        KernelError, VerdictMaps,
        layout::Marker,
        lock::{PinLock, describe_holder, lock_holder},
        maps::name_hash,
        pins::{self, ACKNOWLEDGED, detach_request, maps_dir, write_detach_request},
        preflight,
    },
    output::clock::monotonic_ns,
};

/// How long `ctl detach` waits for a running owner to acknowledge (it looks every second).
const ACK_WAIT: Duration = Duration::from_secs(5);

/// An operator's entry: no origin flag, so no agent ever lifts or renews it; with `ttl`
/// it lapses in the kernel by itself.
fn entry(enforce: bool, ttl: Option<u64>) -> BlockEntry {
    let flags = if enforce { BLOCK_ENFORCE } else { 0 };
    let expires = ttl.map_or(0, |s| {
        monotonic_ns().saturating_add(s.saturating_mul(1_000_000_000))
    });
    BlockEntry::new(flags, 0, expires)
}

fn hash(name: &str) -> anyhow::Result<u64> {
    match name_hash(name) {
        Some(h) => Ok(h),
        None => bail!("{name:?} is not a domain name (empty label or label over 63 bytes)"),
    }
}

/// One entry as a JSON object.
fn describe(kind: &str, key: String, e: &BlockEntry, now: u64) -> serde_json::Value {
    let origin = if e.flags & BLOCK_LEARNED != 0 {
        "learned"
    } else if e.flags & BLOCK_POLICY != 0 {
        "policy"
    } else {
        "operator"
    };
    let name_kind = if e.flags & BLOCK_SUBTREE != 0 {
        "domain"
    } else if e.flags & BLOCK_PREFIX != 0 {
        "prefix"
    } else {
        "name"
    };
    let left = (e.expires_ns != 0).then(|| e.expires_ns.saturating_sub(now) as f64 / 1e9);
    serde_json::json!({
        "map": kind,
        "key": key,
        "kind": if kind == "names" { name_kind } else { "address" },
        "origin": origin,
        "flags": e.flags,
        "target": e.target,
        "in_force": e.in_force(now),
        "expires_in_secs": left,
    })
}

fn list(maps: &VerdictMaps) -> anyhow::Result<()> {
    let now = monotonic_ns();
    for (h, e) in maps.name_entries()? {
        println!("{}", describe("names", format!("{h:016x}"), &e, now));
    }
    for (cidr, e) in maps.addr_entries()? {
        println!("{}", describe("addresses", cidr.to_string(), &e, now));
    }
    Ok(())
}

/// What `ctl` lacks to touch pinned maps, said before trying: without CAP_BPF the kernel
/// answers "permission denied" for a map that is there, which reads like no sensor at all.
fn lacks_bpf() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let eff = preflight::cap_eff_in(&status)?;
    preflight::missing_capabilities(eff)
        .contains(&"CAP_BPF")
        .then(|| {
            "mxsentry ctl needs CAP_BPF (or CAP_SYS_ADMIN) to use the sensor's pinned maps: \
             run it as root, or grant it with setpriv/capsh"
                .to_string()
        })
}

/// Why the maps at `pin_dir` cannot be opened, pointing the right way.
fn open_error(pin_dir: &std::path::Path, e: KernelError) -> anyhow::Error {
    let denied = matches!(&e, KernelError::Map { source: aya::maps::MapError::SyscallError(s), .. }
        if matches!(s.io_error.raw_os_error(), Some(libc::EPERM | libc::EACCES)));
    if denied {
        anyhow::anyhow!(
            "permission denied opening the pinned maps under {}: mxsentry ctl needs CAP_BPF \
             and read-write access to that bpffs directory ({e})",
            pin_dir.display()
        )
    } else if !pin_dir.exists() {
        anyhow::anyhow!(
            "no running sensor pinned at {} (nothing there)",
            pin_dir.display()
        )
    } else {
        anyhow::anyhow!("no usable sensor pinned at {}: {e}", pin_dir.display())
    }
}

/// Runs one `ctl` action.
pub fn ctl(args: CtlArgs) -> anyhow::Result<()> {
    if let Some(why) = lacks_bpf() {
        bail!(why);
    }
    if let CtlAction::Detach = args.action {
        return detach(&args.pin_dir);
    }
    let mut maps = VerdictMaps::open(&args.pin_dir).map_err(|e| open_error(&args.pin_dir, e))?;
    match args.action {
        CtlAction::Mode { mode } => maps.set_mode(mode)?,
        CtlAction::BlockAddr { cidr, enforce, ttl } => {
            maps.block_addr(cidr, entry(enforce, ttl))?
        }
        CtlAction::UnblockAddr { cidr } => maps.unblock_addr(cidr)?,
        // An operator's block applies to the name's hash as such: a tag a learned block
        // left under it would narrow it to another name.
        CtlAction::BlockName { name, enforce, ttl } => {
            let h = hash(&name)?;
            maps.untag_name_hash(h)?;
            maps.block_name_hash(h, entry(enforce, ttl))?
        }
        CtlAction::UnblockName { name } => {
            let h = hash(&name)?;
            maps.unblock_name_hash(h)?;
            maps.untag_name_hash(h)?
        }
        CtlAction::Status => status(&args.pin_dir, &maps)?,
        CtlAction::Blocks => list(&maps)?,
        CtlAction::Detach => unreachable!("handled above"),
    }
    Ok(())
}

/// The mode, the loss counters, the owner and the maps' layout, as one JSON line.
fn status(pin_dir: &Path, maps: &VerdictMaps) -> anyhow::Result<()> {
    let mut lost = serde_json::Map::new();
    for k in EventKind::ALL {
        lost.insert(k.name().into(), maps.lost(k)?.into());
    }
    // Read from /proc/locks: taking the lock, even for a moment, could turn away an
    // agent starting just then.
    let owner = lock_holder(pin_dir).map(|_| describe_holder(pin_dir));
    let layout = Marker::read(&maps_dir(pin_dir))?.map(|m| m.version);
    let v = serde_json::json!({
        "mode": maps.mode()?.name(),
        "lost": lost,
        "owner": owner,
        "layout": layout,
    });
    println!("{v}");
    Ok(())
}

/// Removes everything pinned at `pin_dir`, or asks its running owner to.
fn detach(pin_dir: &Path) -> anyhow::Result<()> {
    if let Some(lock) = PinLock::try_existing(pin_dir)? {
        // No owner: the lock is ours while we remove the directory it is on.
        pins::remove_pins(pin_dir).context("removing pins")?;
        drop(lock);
        return Ok(());
    }
    if !pin_dir.exists() {
        return Ok(());
    }
    let holder = describe_holder(pin_dir);
    write_detach_request(pin_dir, &format!("requested by pid {}", std::process::id()))?;
    let deadline = Instant::now() + ACK_WAIT;
    while Instant::now() < deadline {
        match detach_request(pin_dir) {
            Some(t) if t.starts_with(ACKNOWLEDGED) => {
                println!(
                    "{}: owned by a running mxsentry ({holder}), which will detach everything \
                     when it stops ({t}); stop it now (systemctl stop mxsentry, or delete its pod)",
                    pin_dir.display()
                );
                return Ok(());
            }
            // The owner stopped and removed the directory with the request.
            None => return Ok(()),
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    bail!(
        "{} is owned by a running mxsentry ({holder}) that did not acknowledge the detach \
         request within {}s; the request stays there and is honoured when it is seen",
        pin_dir.display(),
        ACK_WAIT.as_secs()
    )
}
