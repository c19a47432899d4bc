//! Starting the sensor on its pin directory: take the directory's lock, check every
//! pinned map against the contract, load this build's programs, and adopt, switch or
//! attach each program's link; detaching at the end.
//!
//! Order of a start (docs/architecture.md, "Pinning, upgrades and ownership"):
//! 1. lock the pin directory (one owner);
//! 2. check each pinned map (type, sizes, capacity, flags, layout record): adopt it,
//!    plan its replacement, or refuse naming the difference, before anything is loaded;
//! 3. if a map is replaced: a new map directory `maps-next/` holding the kept maps
//!    (pinned again) — the loader creates the new maps there;
//! 4. load and verify all programs against that directory;
//! 5. fill the new maps from the old ones (copied, or converted: migrate.rs);
//! 6. each link: kept if it runs this very program, else switched with
//!    `BPF_LINK_UPDATE` (upgrade.rs), or attached if there was none;
//! 7. copy what the old programs wrote meanwhile, swap `maps-next/` with `maps/`
//!    (`RENAME_EXCHANGE`, one step), and remove the old pins.
//!
//! A failure before step 7 puts every link back on its old program and removes what the
//! start made: nothing stays attached that was not attached before.

use std::{
    collections::BTreeMap,
    fs,
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Program},
};
use sensor_common::{Hook, PortSet, Program as Prog, TaskLayout, task::TASK_LAYOUT_GLOBAL};

use super::{
    KernelError,
    lock::PinLock,
    migrate::Carried,
    object::EBPF_OBJECT,
    pins::{self, PinSet, links_dir, maps_dir, remove_pins},
    port_builds,
    port_builds::{Builds, ConnectBuilds},
    task_layout::{self, VMLINUX_BTF},
    upgrade::{Journal, OldLink, ProgState},
};

/// How to load and attach.
#[derive(Clone, Debug)]
pub struct SensorOptions {
    /// Directory on bpffs for pins (`maps/` and `links/` below it).
    pub pin_dir: PathBuf,
    /// The cgroup v2 directory to attach to.
    pub cgroup: PathBuf,
    /// Let the connect programs read the caller from `task_struct` by the kernel's BTF
    /// (falls back to helper calls when the layout or the verifier says no).
    pub task_btf: bool,
    /// Which build of the connect programs to attach (`agent.smtp_ports`).
    pub ports: PortSet,
}

/// How the loaded connect programs learn who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerReads {
    /// Direct reads of `task_struct`, at offsets from the kernel's BTF.
    TaskBtf,
    /// Helper calls (slower; no BTF layout needed).
    Helpers,
    /// The programs were re-adopted from a previous agent, which chose.
    Adopted,
}

impl CallerReads {
    /// Stable name for logs and the start event.
    pub const fn name(self) -> &'static str {
        match self {
            Self::TaskBtf => "task_btf",
            Self::Helpers => "helpers",
            Self::Adopted => "adopted",
        }
    }
}

/// What a start found and did, for the start event.
#[derive(Clone, Debug, Default)]
pub struct StartReport {
    /// The maps' layout version now.
    pub layout: u32,
    /// Each program: adopted, upgraded or attached.
    pub programs: BTreeMap<&'static str, ProgState>,
    /// Maps recreated, with what was carried over.
    pub migrated: Vec<Carried>,
}

impl StartReport {
    /// How many programs are in `state`.
    pub fn count(&self, state: ProgState) -> usize {
        self.programs.values().filter(|s| **s == state).count()
    }
}

/// A loaded sensor: the pin directory's lock, its maps, and the pins it owns.
pub struct Sensor {
    ebpf: Ebpf,
    builds: Option<ConnectBuilds>,
    lock: PinLock,
    pins: PinSet,
    report: StartReport,
    caller_reads: CallerReads,
}

pub(super) fn pin_err(path: &Path, e: impl std::fmt::Display) -> KernelError {
    KernelError::Pin {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn prog_err(name: &str, source: aya::programs::ProgramError) -> KernelError {
    KernelError::Program {
        name: name.to_string(),
        source,
    }
}

/// Checks, before anything is bound or attached, that loading can work: the preflight
/// checks and the cgroup directory.
pub fn check_before_load(opts: &SensorOptions) -> Result<(), KernelError> {
    super::preflight::check(&opts.pin_dir)?;
    fs::File::open(&opts.cgroup)
        .map(drop)
        .map_err(|reason| KernelError::Cgroup {
            path: opts.cgroup.clone(),
            reason,
        })
}

/// What a start needs once the directory is locked.
pub(super) struct Target<'a> {
    pub opts: &'a SensorOptions,
    pub cgroup: fs::File,
    pub cgroup_id: u64,
}

impl Sensor {
    /// On the pin directory `lock` holds: checks its maps, loads this build's programs
    /// and adopts, switches or attaches each link (see the module's steps). On failure
    /// nothing this start attached stays attached, and pins it made in a fresh directory
    /// are removed.
    pub fn load(opts: &SensorOptions, lock: PinLock) -> Result<Self, KernelError> {
        super::preflight::check(&opts.pin_dir)?;
        let cgroup = fs::File::open(&opts.cgroup).map_err(|reason| KernelError::Cgroup {
            path: opts.cgroup.clone(),
            reason,
        })?;
        let cgroup_id =
            cgroup
                .metadata()
                .map(|m| m.ino())
                .map_err(|reason| KernelError::Cgroup {
                    path: opts.cgroup.clone(),
                    reason,
                })?;
        let fresh = !maps_dir(&opts.pin_dir).exists() && !links_dir(&opts.pin_dir).exists();
        let target = Target {
            opts,
            cgroup,
            cgroup_id,
        };
        match super::start::start(&target) {
            Ok((ebpf, builds, report, caller_reads)) => {
                let pins = PinSet::collect(&opts.pin_dir)?;
                Ok(Self {
                    ebpf,
                    builds: Some(builds),
                    lock,
                    pins,
                    report,
                    caller_reads,
                })
            }
            Err(e) => {
                let _ = pins::remove_dir_pins(&pins::staging_dir(&opts.pin_dir));
                if fresh {
                    let _ = remove_pins(&opts.pin_dir);
                } else {
                    lock.release();
                }
                Err(e)
            }
        }
    }

    /// What this start adopted, upgraded, attached and migrated.
    pub fn report(&self) -> &StartReport {
        &self.report
    }

    /// How many programs were found attached by a previous agent and kept as they were.
    pub fn adopted(&self) -> usize {
        self.report.count(ProgState::Adopted)
    }

    /// How the connect programs read the caller.
    pub fn caller_reads(&self) -> CallerReads {
        self.caller_reads
    }

    /// How many programs are attached.
    pub fn attached(&self) -> usize {
        self.report.programs.len()
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        self.lock.path()
    }

    /// Both builds of the connect programs, for switching between them on a reload
    /// (once: the pipeline's verdict maps take them).
    pub fn take_connect_builds(&mut self) -> Option<ConnectBuilds> {
        self.builds.take()
    }

    /// The loaded object, for taking maps.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Checks that the pin directory is still ours and complete, putting back what
    /// someone removed (making and locking the directory again if it went); returns
    /// what was put back. An error means another agent took the directory meanwhile.
    pub fn keep_pins(&mut self) -> Result<Vec<String>, KernelError> {
        let mut restored = Vec::new();
        if !self.lock.still_ours() {
            self.lock.relock()?;
            restored.push("the pin directory (locked again)".to_string());
        }
        if !self.pins.missing().is_empty() {
            restored.extend(self.pins.restore()?);
        }
        Ok(restored)
    }

    /// Leaves programs attached and maps pinned for the next agent (`--keep-attached`),
    /// and gives up the lock.
    pub fn keep_attached(self) {
        let Self {
            ebpf, lock, pins, ..
        } = self;
        // Our descriptors close; the pins keep the links and maps alive.
        drop(pins);
        drop(ebpf);
        lock.release();
    }

    /// Leaves the pin directory alone: another agent owns it now. Our links, whose pins
    /// are gone, detach as our descriptors close.
    pub fn abandon(self) {
        drop(self);
    }

    /// Detaches every program and removes every pin, the notes and the directory.
    pub fn detach(self) -> Result<(), KernelError> {
        let Self {
            ebpf, lock, pins, ..
        } = self;
        let dir = lock.path().to_path_buf();
        // Links first: each program detaches as the last reference to its link goes.
        pins::remove_dir_pins(&links_dir(&dir))?;
        drop(pins);
        drop(ebpf);
        remove_pins(&dir)?;
        drop(lock);
        Ok(())
    }
}

/// Parses the kernel object against the maps pinned in `maps`, with the connect
/// programs' `TASK_LAYOUT` set to `layout`.
fn parse_object(maps: &Path, layout: &TaskLayout) -> Result<Ebpf, KernelError> {
    Ok(EbpfLoader::new()
        // The verifier's own error and its statistics, not every instruction: the full
        // trace of a large program is cut at its start on kernels before 6.4, where the
        // error is at its end.
        .verifier_log_level(aya::VerifierLogLevel::STATS)
        .default_map_pin_directory(maps)
        .override_global(TASK_LAYOUT_GLOBAL, layout, true)
        .load(EBPF_OBJECT)?)
}

/// Parses the kernel object against the maps in `maps` and loads (verifies) every
/// program, choosing how the connect programs read the caller: by the kernel's BTF where
/// its layout is found and the verifier accepts the reads, by helper calls otherwise.
pub(super) fn open_object(
    opts: &SensorOptions,
    maps: &Path,
) -> Result<(Ebpf, CallerReads), KernelError> {
    // The connect program is the one that reads the caller: ask the verifier with it.
    let first = Prog::Connect4.build_name(opts.ports);
    let mut chosen = None;
    if opts.task_btf {
        match task_layout::from_file(Path::new(VMLINUX_BTF)) {
            Ok(layout) => {
                let mut ebpf = parse_object(maps, &layout)?;
                match load(&mut ebpf, first) {
                    Ok(()) => chosen = Some((ebpf, CallerReads::TaskBtf)),
                    Err(e) => log::warn!(
                        "the verifier refused reading the caller by BTF ({e}); \
                         the connect programs use helper calls"
                    ),
                }
            }
            Err(e) => {
                log::warn!("no task_struct layout ({e}); the connect programs use helper calls")
            }
        }
    }
    let (mut ebpf, reads) = match chosen {
        Some(c) => c,
        None => (
            parse_object(maps, &TaskLayout::HELPERS)?,
            CallerReads::Helpers,
        ),
    };
    // Every build, the connect programs' unattached one too: a reload may switch to it.
    for (name, _) in Prog::builds() {
        load(&mut ebpf, name)?;
    }
    Ok((ebpf, reads))
}

/// The object's program called `name` (a build name, `Prog::build_name`).
fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Program, KernelError> {
    ebpf.program_mut(name)
        .ok_or(KernelError::MissingProgram(name))
}

/// Loads (verifies) program `name` unless it is loaded already.
fn load(ebpf: &mut Ebpf, name: &'static str) -> Result<(), KernelError> {
    match program(ebpf, name)? {
        Program::CgroupSkb(p) if p.fd().is_err() => p.load(),
        Program::CgroupSockAddr(p) if p.fd().is_err() => p.load(),
        Program::CgroupSkb(_) | Program::CgroupSockAddr(_) => Ok(()),
        _ => return Err(KernelError::MissingProgram(name)),
    }
    .map_err(|e| prog_err(name, e))
}

/// Unloads program `name` (this build's copy of a program whose link was kept).
pub(super) fn unload(ebpf: &mut Ebpf, name: &'static str) -> Result<(), KernelError> {
    match program(ebpf, name)? {
        Program::CgroupSkb(p) => p.unload(),
        Program::CgroupSockAddr(p) => p.unload(),
        _ => return Err(KernelError::MissingProgram(name)),
    }
    .map_err(|e| prog_err(name, e))
}

/// The loaded program `name`'s descriptor.
fn loaded_fd<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<std::os::fd::BorrowedFd<'a>, KernelError> {
    let fd = program(ebpf, name)?.fd().map_err(|e| prog_err(name, e))?;
    Ok(fd.as_fd())
}

/// This build's loaded program `name`: its descriptor's information.
pub(super) fn loaded_info(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<super::bpf::ProgInfo, KernelError> {
    super::bpf::prog_info(loaded_fd(ebpf, name)?)
        .map_err(super::error::bpf_err(format!("reading program {name}")))
}

/// Pins this build's loaded program `name` as `prog`'s, under the pin directory's
/// programs (see [`pins::programs_dir`]).
pub(super) fn pin_loaded(
    ebpf: &mut Ebpf,
    prog: Prog,
    name: &'static str,
    pin_dir: &Path,
) -> Result<(), KernelError> {
    pins::pin_program(pin_dir, prog.name(), loaded_fd(ebpf, name)?)
}

/// Switches `old`'s link to this build's program `name`.
pub(super) fn switch(
    ebpf: &mut Ebpf,
    name: &'static str,
    old: OldLink,
    journal: &mut Journal,
) -> Result<(), KernelError> {
    journal.switch(old, loaded_fd(ebpf, name)?)
}

/// Both builds of each connect program, held beyond the start (see port_builds.rs).
pub(super) fn connect_builds(
    ebpf: &mut Ebpf,
    pin_dir: &Path,
) -> Result<ConnectBuilds, KernelError> {
    let mut builds = Vec::new();
    for prog in port_builds::SLOTS {
        let mut own = |ports: PortSet| {
            let name = prog.build_name(ports);
            loaded_fd(ebpf, name)?
                .try_clone_to_owned()
                .map_err(super::error::bpf_err(format!("duplicating program {name}")))
        };
        builds.push(Builds {
            prog,
            standard: own(PortSet::Standard)?,
            configured: own(PortSet::Configured)?,
        });
    }
    Ok(ConnectBuilds::new(pin_dir, builds))
}

/// Attaches this build's program `name` as `prog` to `cgroup` and pins its link in
/// `links`.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    prog: Prog,
    name: &'static str,
    cgroup: &fs::File,
    links: &Path,
    journal: &mut Journal,
) -> Result<(), KernelError> {
    // aya attaches through bpf_link_create on kernels >= 5.7, and the kernel always
    // attaches cgroup links as multi-attach (beside systemd's or Cilium's programs)
    // and rejects an explicit BPF_F_ALLOW_MULTI flag with EINVAL; so no flag here.
    let mode = CgroupAttachMode::Single;
    let path = links.join(prog.name());
    let skb = match prog.hook() {
        Hook::SkbEgress => Some(CgroupSkbAttachType::Egress),
        Hook::SkbIngress => Some(CgroupSkbAttachType::Ingress),
        // The sock_addr programs carry their hook in their ELF section.
        _ => None,
    };
    let link: aya::programs::links::FdLink = match (program(ebpf, name)?, skb) {
        (Program::CgroupSkb(p), Some(at)) => {
            let p: &mut CgroupSkb = p;
            let id = p.attach(cgroup, at, mode).map_err(|e| prog_err(name, e))?;
            p.take_link(id).map_err(|e| prog_err(name, e))?.try_into()
        }
        (Program::CgroupSockAddr(p), None) => {
            let p: &mut CgroupSockAddr = p;
            let id = p.attach(cgroup, mode).map_err(|e| prog_err(name, e))?;
            p.take_link(id).map_err(|e| prog_err(name, e))?.try_into()
        }
        _ => return Err(KernelError::MissingProgram(name)),
    }
    .map_err(|e| pin_err(Path::new(name), e))?;
    // Dropping the pinned link closes aya's descriptor; the pin keeps the link.
    drop(link.pin(&path).map_err(|e| pin_err(&path, e))?);
    journal.attached(path);
    Ok(())
}
