//! Live program upgrades: a link pinned by an earlier agent keeps running its program
//! only if that program is the one this build would load (same tag, same pinned maps);
//! otherwise the link is switched to this build's program with `BPF_LINK_UPDATE`, which
//! swaps the program in the cgroup's array in one step: no connect or packet goes
//! unchecked. Every switch is journalled so that a start failing half-way puts the old
//! programs back.

use std::{
    collections::BTreeMap,
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use sensor_common::{Program, maps::MAPS};

use super::{
    KernelError,
    bpf::{self, LINK_TYPE_CGROUP, ProgInfo},
    error::bpf_err,
};

/// A link an earlier agent pinned, with the program it runs.
pub struct OldLink {
    /// Its pin.
    pub path: PathBuf,
    /// The link.
    pub link: OwnedFd,
    /// The program it runs.
    pub prog: ProgInfo,
    /// That program, held so that a failed start can switch back to it.
    pub prog_fd: OwnedFd,
}

/// How a program came to run, for the start event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgState {
    /// Its pinned link runs the same program this build has: kept.
    Adopted,
    /// Its pinned link ran another build's program (or one using replaced maps): switched.
    Upgraded,
    /// Not attached before: attached and pinned now.
    Attached,
}

impl ProgState {
    /// Its name in the start event.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Adopted => "adopted",
            Self::Upgraded => "upgraded",
            Self::Attached => "attached",
        }
    }
}

/// The kernel's name for a map or program name (at most 15 bytes).
fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(15)]
}

/// Opens `prog`'s link pinned in `links_dir`, if any, and checks that it is one this
/// agent may adopt or switch: a cgroup link on `cgroup_id`, running a program of that name.
pub fn inspect(
    links_dir: &Path,
    programs_dir: &Path,
    prog: Program,
    cgroup_id: u64,
) -> Result<Option<OldLink>, KernelError> {
    let path = links_dir.join(prog.name());
    let link = match bpf::obj_get(&path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bpf_err(format!("opening {}", path.display()))(e)),
    };
    let mismatch = |reason: String| KernelError::LinkMismatch {
        path: path.clone(),
        reason,
    };
    let info = bpf::link_info(link.as_fd())
        .map_err(|e| mismatch(format!("not a link ({})", super::error::plain(&e))))?;
    if info.link_type != LINK_TYPE_CGROUP {
        return Err(mismatch(format!(
            "link type {}, not a cgroup link",
            info.link_type
        )));
    }
    if info.cgroup_id != cgroup_id {
        return Err(mismatch(format!(
            "attached to cgroup id {}, not the configured cgroup (id {cgroup_id})",
            info.cgroup_id
        )));
    }
    let prog_fd = program_of(programs_dir, prog, info.prog_id).map_err(bpf_err(format!(
        "opening the program of {} (no pin of it under {}, and opening a program by id \
         needs CAP_SYS_ADMIN)",
        path.display(),
        programs_dir.display()
    )))?;
    let prog_info = bpf::prog_info(prog_fd.as_fd()).map_err(bpf_err(format!(
        "reading the program of {}",
        path.display()
    )))?;
    // Either build of it (port_builds.rs).
    if Program::from_name(&prog_info.name) != Some(prog) {
        return Err(mismatch(format!("runs program {:?}", prog_info.name)));
    }
    Ok(Some(OldLink {
        path,
        link,
        prog: prog_info,
        prog_fd,
    }))
}

/// The program with kernel id `id`: its pin under `programs_dir` when that pin is still
/// the one the link runs, else opened by id (which needs CAP_SYS_ADMIN).
fn program_of(programs_dir: &Path, prog: Program, id: u32) -> std::io::Result<OwnedFd> {
    if let Ok(fd) = bpf::obj_get(&programs_dir.join(prog.name()))
        && bpf::prog_info(fd.as_fd()).is_ok_and(|i| i.id == id)
    {
        return Ok(fd);
    }
    bpf::prog_fd_by_id(id)
}

/// Whether the old program can stay: the same instructions (the kernel's tag ignores
/// which maps they point at) and, of the contract's pinned maps, the very maps pinned
/// now (`pinned`: kernel name → map id), not ones a migration replaced. Compared as the
/// pinned ids each program uses, so no map has to be opened by id (CAP_SYS_ADMIN).
pub fn can_adopt(old: &ProgInfo, new: &ProgInfo, pinned: &BTreeMap<String, u32>) -> bool {
    let uses = |p: &ProgInfo| {
        let mut ids: Vec<u32> = p
            .map_ids
            .iter()
            .copied()
            .filter(|id| pinned.values().any(|p| p == id))
            .collect();
        ids.sort_unstable();
        ids
    };
    old.tag == new.tag && old.name == new.name && uses(old) == uses(new)
}

/// The ids of the contract's pinned maps in `dir`, by kernel name.
pub fn pinned_ids(dir: &Path) -> Result<BTreeMap<String, u32>, KernelError> {
    MAPS.iter()
        .filter(|m| m.pinned)
        .map(|m| {
            let path = dir.join(m.name);
            let fd = bpf::obj_get(&path).map_err(bpf_err(format!("opening {}", path.display())))?;
            let info = bpf::map_info(fd.as_fd())
                .map_err(bpf_err(format!("reading {}", path.display())))?;
            Ok((kernel_name(m.name).to_string(), info.id))
        })
        .collect()
}

/// The link changes a start made, to put back if it fails.
#[derive(Default)]
pub struct Journal {
    /// (link, its old program, its new program).
    switched: Vec<(OwnedFd, OwnedFd, OwnedFd)>,
    /// Links attached and pinned by this start.
    attached: Vec<PathBuf>,
}

impl Journal {
    /// Switches `old`'s link to program `new`, atomically.
    pub fn switch(&mut self, old: OldLink, new: BorrowedFd<'_>) -> Result<(), KernelError> {
        bpf::link_update(old.link.as_fd(), new, old.prog_fd.as_fd()).map_err(bpf_err(format!(
            "switching {} to the new program",
            old.path.display()
        )))?;
        let new = new
            .try_clone_to_owned()
            .map_err(bpf_err("keeping the new program's descriptor"))?;
        self.switched.push((old.link, old.prog_fd, new));
        Ok(())
    }

    /// Notes a link this start attached and pinned at `path`.
    pub fn attached(&mut self, path: PathBuf) {
        self.attached.push(path);
    }

    /// Puts every switched link back on its old program and detaches what was attached.
    pub fn undo(self) {
        for (link, old, new) in self.switched {
            if let Err(e) = bpf::link_update(link.as_fd(), old.as_fd(), new.as_fd()) {
                log::error!("putting back a program after a failed start: {e}");
            }
        }
        for path in self.attached {
            // Our link descriptor is gone already: removing the pin detaches it.
            let _ = std::fs::remove_file(path);
        }
    }
}
