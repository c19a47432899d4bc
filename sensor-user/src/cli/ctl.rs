//! `mxsentry ctl`: operate on the pinned maps of a running sensor.

use anyhow::{Context as _, bail};
use sensor_common::{
    BlockEntry, EventKind,
    maps::{BLOCK_ENFORCE, BLOCK_LEARNED, BLOCK_POLICY, BLOCK_PREFIX, BLOCK_SUBTREE},
};

use super::args::{CtlAction, CtlArgs};
use crate::{
    kernel::{VerdictMaps, loader, maps::name_hash},
    output::clock::monotonic_ns,
};

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

/// Runs one `ctl` action.
pub fn ctl(args: CtlArgs) -> anyhow::Result<()> {
    if let CtlAction::Detach = args.action {
        return loader::remove_pins(&args.pin_dir).context("removing pins");
    }
    let mut maps = VerdictMaps::open(&args.pin_dir)
        .with_context(|| format!("no running sensor pinned at {}", args.pin_dir.display()))?;
    match args.action {
        CtlAction::Mode { mode } => maps.set_mode(mode)?,
        CtlAction::BlockAddr { cidr, enforce, ttl } => {
            maps.block_addr(cidr, entry(enforce, ttl))?
        }
        CtlAction::UnblockAddr { cidr } => maps.unblock_addr(cidr)?,
        CtlAction::BlockName { name, enforce, ttl } => {
            maps.block_name_hash(hash(&name)?, entry(enforce, ttl))?
        }
        CtlAction::UnblockName { name } => maps.unblock_name_hash(hash(&name)?)?,
        CtlAction::Status => {
            let mut lost = serde_json::Map::new();
            for k in EventKind::ALL {
                lost.insert(k.name().into(), maps.lost(k)?.into());
            }
            let v = serde_json::json!({ "mode": maps.mode()?.name(), "lost": lost });
            println!("{v}");
        }
        CtlAction::Blocks => list(&maps)?,
        CtlAction::Detach => unreachable!("handled above"),
    }
    Ok(())
}
