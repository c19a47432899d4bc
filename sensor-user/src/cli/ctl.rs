//! `mxsentry ctl`: operate on the pinned maps of a running sensor.

use anyhow::{Context as _, bail};
use sensor_common::{EventKind, maps::BLOCK_ENFORCE};

use super::args::{CtlAction, CtlArgs};
use crate::kernel::{KernelError, VerdictMaps, loader, maps::name_hash, preflight};

fn flags(enforce: bool) -> u32 {
    if enforce { BLOCK_ENFORCE } else { 0 }
}

fn hash(name: &str) -> anyhow::Result<u64> {
    match name_hash(name) {
        Some(h) => Ok(h),
        None => bail!("{name:?} is not a domain name (empty label or label over 63 bytes)"),
    }
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
        return loader::remove_pins(&args.pin_dir).context("removing pins");
    }
    let mut maps = VerdictMaps::open(&args.pin_dir).map_err(|e| open_error(&args.pin_dir, e))?;
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
