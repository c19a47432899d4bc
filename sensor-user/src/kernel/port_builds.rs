//! The two builds of the connect programs (`sensor_common::PortSet`), and switching the
//! connect links between them when a reloaded config moves `agent.smtp_ports` to or from
//! the standard ports.
//!
//! A start loads both builds and attaches the one its config asks for; this keeps both
//! loaded (our own descriptors, so an adopted link's copy being unloaded does not lose
//! one) for as long as the agent runs. The switch is `BPF_LINK_UPDATE`, one step per
//! link: every connect is seen by one build or the other.

use std::{
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use sensor_common::{PortSet, Program};

use super::{
    KernelError, bpf,
    error::bpf_err,
    pins::{self, links_dir, programs_dir},
};

/// The programs that come in two builds.
pub const SLOTS: [Program; 2] = [Program::Connect4, Program::Connect6];

/// One connect program's two builds, loaded.
pub struct Builds {
    /// Which program.
    pub prog: Program,
    /// The build for `PortSet::Standard`.
    pub standard: OwnedFd,
    /// The build for `PortSet::Configured`.
    pub configured: OwnedFd,
}

/// Both builds of every connect program, and the pin directory whose links run them.
pub struct ConnectBuilds {
    pin_dir: PathBuf,
    builds: Vec<Builds>,
}

impl ConnectBuilds {
    /// Holds `builds` for the links pinned under `pin_dir`.
    pub fn new(pin_dir: &Path, builds: Vec<Builds>) -> Self {
        Self {
            pin_dir: pin_dir.to_path_buf(),
            builds,
        }
    }

    /// Makes every connect link run its build for `ports` (each switch is logged). A link
    /// already running that build (or an earlier agent's identical program: same tag) is
    /// left alone.
    pub fn select(&self, ports: PortSet) -> Result<(), KernelError> {
        for b in &self.builds {
            let want = match ports {
                PortSet::Standard => b.standard.as_fd(),
                PortSet::Configured => b.configured.as_fd(),
            };
            self.switch(b.prog, want)?;
        }
        Ok(())
    }

    /// Makes `prog`'s link run `want`, unless it runs a program with `want`'s tag.
    fn switch(&self, prog: Program, want: BorrowedFd<'_>) -> Result<(), KernelError> {
        let path = links_dir(&self.pin_dir).join(prog.name());
        let link = bpf::obj_get(&path).map_err(bpf_err(format!("opening {}", path.display())))?;
        let running = bpf::link_info(link.as_fd())
            .map_err(bpf_err(format!("reading {}", path.display())))?
            .prog_id;
        let want_info =
            bpf::prog_info(want).map_err(bpf_err(format!("reading a build of {}", prog.name())))?;
        let old = self.running(prog, running)?;
        let old_info = bpf::prog_info(old.as_fd()).map_err(bpf_err(format!(
            "reading the program of {}",
            path.display()
        )))?;
        if old_info.tag == want_info.tag {
            return Ok(());
        }
        bpf::link_update(link.as_fd(), want, old.as_fd()).map_err(bpf_err(format!(
            "switching {} to {}",
            path.display(),
            want_info.name
        )))?;
        // The program pin says what the link runs, for the next agent's upgrade check.
        pins::pin_program(&self.pin_dir, prog.name(), want)?;
        log::info!(
            "{}: switched from {} to {} (agent.smtp_ports)",
            prog.name(),
            old_info.name,
            want_info.name
        );
        Ok(())
    }

    /// The program `prog`'s link runs (kernel id `id`): one of our builds, its pin, or
    /// opened by id (CAP_SYS_ADMIN) for a program an earlier agent attached.
    fn running(&self, prog: Program, id: u32) -> Result<OwnedFd, KernelError> {
        let is = |fd: BorrowedFd<'_>| bpf::prog_info(fd).is_ok_and(|i| i.id == id);
        let ours = self
            .builds
            .iter()
            .filter(|b| b.prog == prog)
            .flat_map(|b| [&b.standard, &b.configured])
            .find(|fd| is(fd.as_fd()));
        if let Some(fd) = ours {
            return fd
                .try_clone()
                .map_err(bpf_err(format!("duplicating {}", prog.name())));
        }
        let pin = programs_dir(&self.pin_dir).join(prog.name());
        if let Ok(fd) = bpf::obj_get(&pin)
            && is(fd.as_fd())
        {
            return Ok(fd);
        }
        bpf::prog_fd_by_id(id).map_err(bpf_err(format!(
            "opening program {id}, which {} runs",
            prog.name()
        )))
    }
}
