//! Loading the programs, pinning maps and links, re-adopting a previous agent's
//! pins, and detaching.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Program,
        links::{FdLink, PinnedLink},
    },
};
use sensor_common::{Hook, Program as Prog, TaskLayout, task::TASK_LAYOUT_GLOBAL};

use super::{
    KernelError,
    object::EBPF_OBJECT,
    task_layout::{self, VMLINUX_BTF},
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

/// A loaded sensor: its maps, and the pinned links that keep the programs attached.
pub struct Sensor {
    ebpf: Ebpf,
    links: Vec<PinnedLink>,
    adopted: usize,
    caller_reads: CallerReads,
    pin_dir: PathBuf,
}

fn pin_err(path: &Path, e: impl std::fmt::Display) -> KernelError {
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

/// Directory of pinned maps under `pin_dir`.
pub fn maps_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("maps")
}

/// Directory of pinned links under `pin_dir`.
pub fn links_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("links")
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

impl Sensor {
    /// Loads the object (re-using pinned maps), then for each program re-adopts
    /// its pinned link or attaches it afresh and pins the new link.
    pub fn load(opts: &SensorOptions) -> Result<Self, KernelError> {
        super::preflight::check(&opts.pin_dir)?;
        let cgroup = fs::File::open(&opts.cgroup).map_err(|reason| KernelError::Cgroup {
            path: opts.cgroup.clone(),
            reason,
        })?;
        let maps = maps_dir(&opts.pin_dir);
        let links = links_dir(&opts.pin_dir);
        for d in [&opts.pin_dir, &maps, &links] {
            fs::create_dir_all(d).map_err(|e| pin_err(d, e))?;
        }
        let (mut ebpf, caller_reads) = open_object(opts, &maps, &links)?;
        let mut pinned = Vec::new();
        let mut adopted = 0;
        for prog in Prog::ALL {
            let link_path = links.join(prog.name());
            if link_path.exists() {
                let link = PinnedLink::from_pin(&link_path).map_err(|e| pin_err(&link_path, e))?;
                pinned.push((link, false));
                adopted += 1;
                continue;
            }
            let attached = attach_one(&mut ebpf, prog, &cgroup)
                .and_then(|link| link.pin(&link_path).map_err(|e| pin_err(&link_path, e)));
            match attached {
                Ok(link) => pinned.push((link, true)),
                Err(e) => {
                    // Half an attach is worse than none: undo what this start attached.
                    for (link, ours) in pinned {
                        if ours {
                            let _ = link.unpin();
                        }
                    }
                    return Err(e);
                }
            }
        }
        let pinned = pinned.into_iter().map(|(l, _)| l).collect();
        Ok(Self {
            ebpf,
            links: pinned,
            adopted,
            caller_reads,
            pin_dir: opts.pin_dir.clone(),
        })
    }

    /// How many programs were found attached by a previous agent and re-adopted.
    pub fn adopted(&self) -> usize {
        self.adopted
    }

    /// How the connect programs read the caller.
    pub fn caller_reads(&self) -> CallerReads {
        self.caller_reads
    }

    /// How many programs are attached.
    pub fn attached(&self) -> usize {
        self.links.len()
    }

    /// The loaded object, for taking maps.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Leaves programs attached and maps pinned for the next agent (`--keep-attached`).
    pub fn keep_attached(self) {
        // Dropping a PinnedLink closes our fd; the pin keeps the link alive.
        drop(self.links);
    }

    /// Detaches every program and removes the pins.
    pub fn detach(self) -> Result<(), KernelError> {
        let Self {
            ebpf,
            links,
            pin_dir,
            ..
        } = self;
        for link in links {
            let fd: FdLink = link.unpin().map_err(|e| pin_err(&pin_dir, e))?;
            // The link is detached when its last fd closes.
            drop(fd);
        }
        drop(ebpf);
        remove_pins(&pin_dir)
    }
}

/// Parses the kernel object with the connect programs' `TASK_LAYOUT` set to `layout`.
fn parse_object(maps: &Path, layout: &TaskLayout) -> Result<Ebpf, KernelError> {
    Ok(EbpfLoader::new()
        .default_map_pin_directory(maps)
        .override_global(TASK_LAYOUT_GLOBAL, layout, true)
        .load(EBPF_OBJECT)?)
}

/// Parses the kernel object, choosing how the connect programs read the caller: by the
/// kernel's BTF where its layout is found and the verifier accepts the reads (the
/// connect programs are loaded here to ask it), by helper calls otherwise.
fn open_object(
    opts: &SensorOptions,
    maps: &Path,
    links: &Path,
) -> Result<(Ebpf, CallerReads), KernelError> {
    // The connect program is the one that reads the caller: ask the verifier with it.
    const FIRST: Prog = Prog::Connect4;
    if links.join(FIRST.name()).exists() {
        return Ok((
            parse_object(maps, &TaskLayout::HELPERS)?,
            CallerReads::Adopted,
        ));
    }
    if opts.task_btf {
        match task_layout::from_file(Path::new(VMLINUX_BTF)) {
            Ok(layout) => {
                let mut ebpf = parse_object(maps, &layout)?;
                match loaded_sock_addr(&mut ebpf, FIRST).map(drop) {
                    Ok(()) => return Ok((ebpf, CallerReads::TaskBtf)),
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
    Ok((
        parse_object(maps, &TaskLayout::HELPERS)?,
        CallerReads::Helpers,
    ))
}

/// Program `prog` of the object.
fn program(ebpf: &mut Ebpf, prog: Prog) -> Result<&mut Program, KernelError> {
    ebpf.program_mut(prog.name())
        .ok_or(KernelError::MissingProgram(prog.name()))
}

/// Sock_addr program `prog`, loaded (verified) unless it was already.
fn loaded_sock_addr(ebpf: &mut Ebpf, prog: Prog) -> Result<&mut CgroupSockAddr, KernelError> {
    let name = prog.name();
    let p: &mut CgroupSockAddr = program(ebpf, prog)?
        .try_into()
        .map_err(|e| prog_err(name, e))?;
    if p.fd().is_err() {
        p.load().map_err(|e| prog_err(name, e))?;
    }
    Ok(p)
}

/// Removes every pin under `pin_dir` (maps and links) and the directories.
pub fn remove_pins(pin_dir: &Path) -> Result<(), KernelError> {
    for d in [links_dir(pin_dir), maps_dir(pin_dir)] {
        match fs::read_dir(&d) {
            Ok(entries) => {
                for e in entries.flatten() {
                    fs::remove_file(e.path()).map_err(|err| pin_err(&e.path(), err))?;
                }
                fs::remove_dir(&d).map_err(|e| pin_err(&d, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(pin_err(&d, e)),
        }
    }
    match fs::remove_dir(pin_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(pin_err(pin_dir, e)),
    }
}

/// Loads and attaches one program with multi-attach, returning its link.
fn attach_one(ebpf: &mut Ebpf, prog: Prog, cgroup: &fs::File) -> Result<FdLink, KernelError> {
    // aya attaches through bpf_link_create on kernels >= 5.7, and the kernel always
    // attaches cgroup links as multi-attach (beside systemd's or Cilium's programs)
    // and rejects an explicit BPF_F_ALLOW_MULTI flag with EINVAL; so no flag here.
    let mode = CgroupAttachMode::Single;
    let name = prog.name();
    let skb = match prog.hook() {
        Hook::SkbEgress => Some(CgroupSkbAttachType::Egress),
        Hook::SkbIngress => Some(CgroupSkbAttachType::Ingress),
        // The sock_addr programs carry their hook in their ELF section.
        _ => None,
    };
    let link: FdLink = match skb {
        Some(at) => {
            let p: &mut CgroupSkb = program(ebpf, prog)?
                .try_into()
                .map_err(|e| prog_err(name, e))?;
            p.load().map_err(|e| prog_err(name, e))?;
            let id = p.attach(cgroup, at, mode).map_err(|e| prog_err(name, e))?;
            p.take_link(id)
                .map_err(|e| prog_err(name, e))?
                .try_into()
                .map_err(|e| pin_err(Path::new(name), e))?
        }
        None => {
            let p = loaded_sock_addr(ebpf, prog)?;
            let id = p.attach(cgroup, mode).map_err(|e| prog_err(name, e))?;
            p.take_link(id)
                .map_err(|e| prog_err(name, e))?
                .try_into()
                .map_err(|e| pin_err(Path::new(name), e))?
        }
    };
    Ok(link)
}
