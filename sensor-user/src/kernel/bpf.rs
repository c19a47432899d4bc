//! The few bpf(2) commands aya 0.14 does not expose: pinning and opening objects by path
//! with our own descriptors, what the kernel says about a program, map or link, raw
//! map elements (for copying a map whatever its key and value types), and
//! `BPF_LINK_UPDATE` (swapping a link's program atomically).
//!
//! Each command's attribute is its own `#[repr(C)]` prefix of `union bpf_attr`, passed
//! with its own size: the kernel zero-extends a shorter attribute.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_UPDATE: libc::c_long = 29;

/// `BPF_F_REPLACE`: update the link only if it still runs the program named.
const BPF_F_REPLACE: u32 = 4;
/// `BPF_NOEXIST`: insert only a key the map does not hold.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_ANY`: insert or overwrite.
pub const BPF_ANY: u64 = 0;
/// `BPF_LINK_TYPE_CGROUP`.
pub const LINK_TYPE_CGROUP: u32 = 3;

/// Runs bpf(2) command `cmd` with attribute `attr`.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable #[repr(C)] prefix of `union bpf_attr` for `cmd`,
    // and its size is passed with it; the kernel reads (and for some commands writes)
    // only that many bytes. Pointers inside it point at buffers the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A bpf(2) result that is a new file descriptor.
fn owned_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(r).map_err(|_| io::Error::other(format!("bpf(2) returned {r}")))?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))
}

#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// Opens the object (map, program or link) pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: p.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    owned_fd(sys_bpf(BPF_OBJ_GET, &mut attr)?)
}

/// Pins the object behind `fd` at `path` (which must not exist).
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let p = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: p.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    sys_bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Fills `info` (a prefix of a `bpf_*_info` struct) for the object behind `fd`.
fn info_by_fd<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: std::ptr::from_mut(info) as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// What the kernel says about a map (`struct bpf_map_info`'s first fields).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// `enum bpf_map_type`.
    pub map_type: u32,
    /// The map's id.
    pub id: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub map_flags: u32,
    /// The name, NUL-padded (see [`MapInfo::name`]).
    pub name_bytes: [u8; 16],
}

impl MapInfo {
    /// The map's name as the kernel keeps it (at most 15 bytes).
    pub fn name(&self) -> String {
        c_name(&self.name_bytes)
    }
}

fn c_name(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// What the kernel says about the map behind `fd`.
pub fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    let mut info = MapInfo::default();
    info_by_fd(fd, &mut info)?;
    Ok(info)
}

/// `struct bpf_prog_info`'s first fields, up to the name.
#[repr(C)]
#[derive(Default)]
struct RawProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// What the kernel says about a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    /// The program's id.
    pub id: u32,
    /// The kernel's hash of its instructions (map references zeroed).
    pub tag: [u8; 8],
    /// Its name (at most 15 bytes).
    pub name: String,
    /// Ids of the maps it uses.
    pub map_ids: Vec<u32>,
}

impl ProgInfo {
    /// The tag as `bpftool` prints it.
    pub fn tag_hex(&self) -> String {
        self.tag.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the kernel says about the program behind `fd`, with the maps it uses.
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    let mut info = RawProgInfo::default();
    info_by_fd(fd, &mut info)?;
    // Ask again with room for the map ids (the first answer said how many).
    let mut ids = vec![0u32; info.nr_map_ids as usize];
    if !ids.is_empty() {
        info = RawProgInfo {
            nr_map_ids: ids.len() as u32,
            map_ids: ids.as_mut_ptr() as u64,
            ..RawProgInfo::default()
        };
        info_by_fd(fd, &mut info)?;
        ids.truncate(info.nr_map_ids as usize);
    }
    Ok(ProgInfo {
        id: info.id,
        tag: info.tag,
        name: c_name(&info.name),
        map_ids: ids,
    })
}

/// `struct bpf_link_info`'s first fields, with the cgroup member of its union.
#[repr(C)]
#[derive(Default)]
struct RawLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    cgroup_id: u64,
    attach_type: u32,
    _pad2: u32,
}

/// What the kernel says about a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `enum bpf_link_type`.
    pub link_type: u32,
    /// The program it runs now.
    pub prog_id: u32,
    /// For a cgroup link, the cgroup's id (its directory's inode number).
    pub cgroup_id: u64,
}

/// What the kernel says about the link behind `fd`.
pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut info = RawLinkInfo::default();
    info_by_fd(fd, &mut info)?;
    Ok(LinkInfo {
        link_type: info.link_type,
        prog_id: info.prog_id,
        cgroup_id: if info.link_type == LINK_TYPE_CGROUP {
            info.cgroup_id
        } else {
            0
        },
    })
}

#[repr(C)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Opens the program or map (per `cmd`) with id `id`.
fn fd_by_id(cmd: libc::c_long, id: u32) -> io::Result<OwnedFd> {
    let mut attr = IdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    owned_fd(sys_bpf(cmd, &mut attr)?)
}

/// Opens program `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_PROG_GET_FD_BY_ID, id)
}

/// Opens map `id`.
pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_MAP_GET_FD_BY_ID, id)
}

#[repr(C)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Makes `link` run `new` instead of `old`, atomically: the kernel swaps the program in
/// the cgroup's program array in one step, so every packet or connect is seen by one of
/// the two. Fails (and changes nothing) if the link no longer runs `old`.
pub fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new.as_raw_fd() as u32,
        flags: BPF_F_REPLACE,
        old_prog_fd: old.as_raw_fd() as u32,
    };
    sys_bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `enum bpf_map_type` values whose lookups return one value per possible CPU.
const PER_CPU_TYPES: [u32; 4] = [5, 6, 10, 21];

/// A map opened for raw element access, whatever its key and value types. Every call
/// checks buffer lengths against the map's sizes, so the kernel never writes past them.
pub struct RawMap {
    fd: OwnedFd,
    /// What the kernel says about the map.
    pub info: MapInfo,
    value_len: usize,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl RawMap {
    /// Opens the map pinned at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::from_fd(obj_get(path)?)
    }

    /// Wraps the map behind `fd`.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let info = map_info(fd.as_fd())?;
        let mut value_len = info.value_size as usize;
        if PER_CPU_TYPES.contains(&info.map_type) {
            let cpus = aya::util::nr_cpus()
                .map_err(|(what, e)| io::Error::other(format!("{what}: {e}")))?;
            value_len = value_len.next_multiple_of(8) * cpus;
        }
        Ok(Self {
            fd,
            info,
            value_len,
        })
    }

    /// The map's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes of one looked-up value: every CPU's slot (each rounded up to 8 bytes) for a
    /// per-CPU map.
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    /// Whether values are per CPU.
    pub fn per_cpu(&self) -> bool {
        PER_CPU_TYPES.contains(&self.info.map_type)
    }

    fn check_key(&self, key: &[u8]) -> io::Result<()> {
        if key.len() != self.info.key_size as usize {
            return Err(invalid(format!(
                "key of {} bytes for a map with {}-byte keys",
                key.len(),
                self.info.key_size
            )));
        }
        Ok(())
    }

    fn attr(&self, key: *const u8, value: *const u8, flags: u64) -> ElemAttr {
        ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: key as u64,
            value: value as u64,
            flags,
        }
    }

    /// The key after `key` (the first key for `None`); `None` at the end.
    pub fn next_key(&self, key: Option<&[u8]>) -> io::Result<Option<Vec<u8>>> {
        if let Some(k) = key {
            self.check_key(k)?;
        }
        let mut next = vec![0u8; self.info.key_size as usize];
        let k = key.map_or(std::ptr::null(), <[u8]>::as_ptr);
        let mut attr = self.attr(k, next.as_mut_ptr(), 0);
        match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => Ok(Some(next)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `key` (all CPUs' slots for a per-CPU map); `None` if absent.
    pub fn lookup(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_len];
        let mut attr = self.attr(key.as_ptr(), value.as_mut_ptr(), 0);
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets `key` to `value` (all CPUs' slots for a per-CPU map), with `BPF_ANY` or
    /// `BPF_NOEXIST`.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_len {
            return Err(invalid(format!(
                "value of {} bytes for a map whose values take {}",
                value.len(),
                self.value_len
            )));
        }
        let mut attr = self.attr(key.as_ptr(), value.as_ptr(), flags);
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }
}
