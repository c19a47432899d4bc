//! The pin directory's layout, the pins an agent owns (kept as descriptors so they can be
//! put back if someone removes them), the detach request `ctl` leaves for a running
//! owner, and removing everything.
//!
//! ```text
//! <pin dir>/            flock'ed by the owner (lock.rs); `owner` names it
//!   links/<program>     the cgroup links, one per program
//!   maps/<MAP>          the pinned maps; maps/_layout records their layout (layout.rs)
//!   maps-next/          a migration's new map directory, swapped with maps/ at its end
//!   detach              `mxsentry ctl detach`'s request to a running owner
//! ```
//!
//! (bpffs refuses names with a dot, so none has one.)

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use sensor_common::{
    Program,
    maps::{MAPS, MapSpec},
};

use super::{KernelError, bpf, bpf::MapInfo, layout::LAYOUT_LINK};

/// The request `ctl detach` leaves for a running owner, and its acknowledgement.
pub const DETACH_LINK: &str = "detach";
/// How an acknowledged request's text starts.
pub const ACKNOWLEDGED: &str = "acknowledged by";

/// Directory of pinned maps under `pin_dir`.
pub fn maps_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("maps")
}

/// Directory of pinned links under `pin_dir`.
pub fn links_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("links")
}

/// Where a migration builds its new map directory.
pub fn staging_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("maps-next")
}

fn pin_err(path: &Path, e: impl std::fmt::Display) -> KernelError {
    KernelError::Pin {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Removes every entry of `dir` and `dir` itself (absent is fine).
pub fn remove_dir_pins(dir: &Path) -> Result<(), KernelError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(pin_err(&e.path(), err)),
                }
            }
            match std::fs::remove_dir(dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(pin_err(dir, e)),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(pin_err(dir, e)),
    }
}

/// Removes every pin under `pin_dir` (links first: the programs detach as their last
/// reference goes), the maps, a migration left half done, the notes, and the directory.
pub fn remove_pins(pin_dir: &Path) -> Result<(), KernelError> {
    for d in [links_dir(pin_dir), maps_dir(pin_dir), staging_dir(pin_dir)] {
        remove_dir_pins(&d)?;
    }
    remove_dir_pins(pin_dir)
}

/// Swaps directories `a` and `b` in one step (`renameat2(RENAME_EXCHANGE)`): a reader
/// sees either the old map directory or the new one, never a mix or none.
pub fn exchange_dirs(a: &Path, b: &Path) -> Result<(), KernelError> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| pin_err(p, e))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // The raw syscall, because the musl the static image links has no renameat2 wrapper.
    // SAFETY: two NUL-terminated paths that outlive the call; no other memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r != 0 {
        return Err(pin_err(a, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Every contract map's pin path under `maps_dir`, with what the kernel says about the
/// map pinned there (`None`: not pinned).
pub fn pinned_maps(
    maps_dir: &Path,
    specs: &[MapSpec],
) -> Result<Vec<(PathBuf, Option<MapInfo>)>, KernelError> {
    specs
        .iter()
        .map(|spec| {
            let path = maps_dir.join(spec.name);
            let info = match bpf::obj_get(&path) {
                Ok(fd) => {
                    use std::os::fd::AsFd as _;
                    let info = bpf::map_info(fd.as_fd());
                    Some(info.map_err(|e| KernelError::MapMismatch {
                        name: spec.name.to_string(),
                        path: path.clone(),
                        difference: format!("not a map ({})", super::error::plain(&e)),
                    })?)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(KernelError::MapMismatch {
                        name: spec.name.to_string(),
                        path,
                        difference: format!("cannot open it ({})", super::error::plain(&e)),
                    });
                }
            };
            Ok((path, info))
        })
        .collect()
}

/// Every pin an agent owns, with a descriptor of its object, so that a pin removed under
/// the agent can be put back (and the object stays alive meanwhile).
pub struct PinSet {
    pins: Vec<(PathBuf, OwnedFd)>,
    /// Symlink notes (the layout record) and their text.
    notes: Vec<(PathBuf, PathBuf)>,
}

impl PinSet {
    /// Opens every link and map pinned under `pin_dir`, and reads the layout record.
    pub fn collect(pin_dir: &Path) -> Result<Self, KernelError> {
        let links = Program::ALL
            .iter()
            .map(|p| links_dir(pin_dir).join(p.name()));
        let maps = MAPS
            .iter()
            .filter(|m| m.pinned)
            .map(|m| maps_dir(pin_dir).join(m.name));
        let pins = links
            .chain(maps)
            .map(|path| {
                let fd = bpf::obj_get(&path).map_err(|e| pin_err(&path, e))?;
                Ok((path, fd))
            })
            .collect::<Result<_, KernelError>>()?;
        let layout = maps_dir(pin_dir).join(LAYOUT_LINK);
        let notes = std::fs::read_link(&layout)
            .map(|text| vec![(layout, text)])
            .unwrap_or_default();
        Ok(Self { pins, notes })
    }

    /// The pins (and notes) no longer found at their paths.
    pub fn missing(&self) -> Vec<&Path> {
        let paths = self
            .pins
            .iter()
            .map(|(p, _)| p)
            .chain(self.notes.iter().map(|(p, _)| p));
        paths
            .filter(|p| std::fs::symlink_metadata(p).is_err())
            .map(PathBuf::as_path)
            .collect()
    }

    /// Pins again whatever is missing, making its directory if needed; returns the names
    /// of what was put back.
    pub fn restore(&self) -> Result<Vec<String>, KernelError> {
        let mut restored = Vec::new();
        for (path, fd) in &self.pins {
            if std::fs::symlink_metadata(path).is_ok() {
                continue;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| pin_err(dir, e))?;
            }
            bpf::obj_pin(fd.as_fd(), path).map_err(|e| pin_err(path, e))?;
            restored.push(short(path));
        }
        for (path, text) in &self.notes {
            if std::fs::symlink_metadata(path).is_err() {
                std::os::unix::fs::symlink(text, path).map_err(|e| pin_err(path, e))?;
                restored.push(short(path));
            }
        }
        Ok(restored)
    }
}

/// `links/mx_connect4`, `maps/MODE`: a pin's path below the pin directory.
fn short(path: &Path) -> String {
    let mut parts: Vec<_> = path.iter().rev().take(2).collect();
    parts.reverse();
    parts.iter().collect::<PathBuf>().display().to_string()
}

/// The detach request in `pin_dir`, if any: its text.
pub fn detach_request(pin_dir: &Path) -> Option<String> {
    std::fs::read_link(pin_dir.join(DETACH_LINK))
        .ok()
        .map(|t| t.display().to_string())
}

/// Leaves (or, as the owner, acknowledges) a detach request in `pin_dir`.
pub fn write_detach_request(pin_dir: &Path, text: &str) -> Result<(), KernelError> {
    let path = pin_dir.join(DETACH_LINK);
    let tmp = pin_dir.join(format!("{DETACH_LINK}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(text, &tmp)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| pin_err(&path, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_names_keep_the_directory() {
        let p = std::path::Path::new("/sys/fs/bpf/mxsentry/links/mx_connect4");
        assert_eq!(super::short(p), "links/mx_connect4");
    }
}
