//! `mxsentry ctl`: operate on the pinned maps of a running sensor.

use anyhow::{Context as _, bail};
use sensor_common::{EventKind, maps::BLOCK_ENFORCE};

use super::args::{CtlAction, CtlArgs};
use crate::kernel::{VerdictMaps, loader, maps::name_hash};

fn flags(enforce: bool) -> u32 {
    if enforce { BLOCK_ENFORCE } else { 0 }
}

fn hash(name: &str) -> anyhow::Result<u64> {
    match name_hash(name) {
        Some(h) => Ok(h),
        None => bail!("{name:?} is not a domain name (empty label or label over 63 bytes)"),
    }
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
        CtlAction::BlockAddr { cidr, enforce } => maps.block_addr(cidr, flags(enforce))?,
        CtlAction::UnblockAddr { cidr } => maps.unblock_addr(cidr)?,
        CtlAction::BlockName { name, enforce } => {
            maps.block_name_hash(hash(&name)?, flags(enforce))?
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
        CtlAction::Detach => unreachable!("handled above"),
    }
    Ok(())
}
