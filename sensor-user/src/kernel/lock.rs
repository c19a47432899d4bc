//! One owner per pin directory: an exclusive `flock` on the pin directory itself, held for
//! the agent's life.
//!
//! The lock lives on bpffs, beside the pins, because that is what every agent sharing the
//! pins shares: two pods on one node (a rolling update, the canary overlay) have their own
//! `/run` but the same `/sys/fs/bpf`. bpffs has no regular files, but directories take
//! `flock` and symlinks carry text: `owner` says who holds the lock (informative; the
//! lock itself is the truth, and dies with its process).

use std::{
    fs::File,
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
};

use super::KernelError;

/// The symlink in the pin directory naming the agent that holds the lock.
pub const OWNER_LINK: &str = "owner";

/// The exclusive lock on a pin directory.
pub struct PinLock {
    dir: File,
    path: PathBuf,
}

fn pin_err(path: &Path, e: impl std::fmt::Display) -> KernelError {
    KernelError::Pin {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `(device, inode)` of `path`, or of the open directory `f`.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// Opens `path` as a directory, for locking.
fn open_dir(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

/// Tries an exclusive, non-blocking `flock` on `f`: `Ok(false)` when another holds it.
fn try_flock(f: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl PinLock {
    /// Creates `pin_dir` if needed and takes its lock, or says who holds it.
    pub fn acquire(pin_dir: &Path) -> Result<Self, KernelError> {
        // A directory removed and made again between our open and our lock would leave
        // us holding the lock of a directory nobody sees: check, and try again.
        for _ in 0..5 {
            std::fs::create_dir_all(pin_dir).map_err(|e| pin_err(pin_dir, e))?;
            let dir = open_dir(pin_dir).map_err(|e| pin_err(pin_dir, e))?;
            if !try_flock(&dir).map_err(|e| pin_err(pin_dir, e))? {
                return Err(KernelError::Owned {
                    pin_dir: pin_dir.to_path_buf(),
                    holder: describe_holder(pin_dir),
                });
            }
            let lock = Self {
                dir,
                path: pin_dir.to_path_buf(),
            };
            if lock.still_ours() {
                lock.write_owner();
                return Ok(lock);
            }
        }
        Err(pin_err(pin_dir, "kept changing while being locked"))
    }

    /// Takes the lock only if no one holds it (for `ctl detach`): `None` when an agent
    /// owns the directory or it does not exist.
    pub fn try_existing(pin_dir: &Path) -> Result<Option<Self>, KernelError> {
        let dir = match open_dir(pin_dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(pin_err(pin_dir, e)),
        };
        if !try_flock(&dir).map_err(|e| pin_err(pin_dir, e))? {
            return Ok(None);
        }
        Ok(Some(Self {
            dir,
            path: pin_dir.to_path_buf(),
        }))
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the directory at our path is still the one we locked (not removed, not
    /// removed and made again).
    pub fn still_ours(&self) -> bool {
        match (std::fs::metadata(&self.path), self.dir.metadata()) {
            (Ok(now), Ok(ours)) => identity(&now) == identity(&ours),
            _ => false,
        }
    }

    /// After the directory was removed: makes it again and locks the new one.
    pub fn relock(&mut self) -> Result<(), KernelError> {
        *self = Self::acquire(&self.path)?;
        Ok(())
    }

    /// Says who holds the lock, in the `owner` symlink (replaced atomically).
    fn write_owner(&self) {
        let text = format!(
            "pid {} on {} since {}",
            std::process::id(),
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            crate::output::clock::rfc3339(std::time::SystemTime::now())
        );
        let tmp = self
            .path
            .join(format!("{OWNER_LINK}-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let written = std::os::unix::fs::symlink(&text, &tmp)
            .and_then(|()| std::fs::rename(&tmp, self.path.join(OWNER_LINK)));
        if let Err(e) = written {
            log::warn!("cannot record the owner in {}: {e}", self.path.display());
        }
    }

    /// Removes the `owner` note (on exit, keeping the pins for the next agent).
    pub fn release(self) {
        let _ = std::fs::remove_file(self.path.join(OWNER_LINK));
    }
}

/// Who holds the lock on `pin_dir`, for an error line: the process the kernel lists in
/// `/proc/locks` (with its command, when visible from our pid namespace) and the `owner`
/// note.
pub fn describe_holder(pin_dir: &Path) -> String {
    let note = std::fs::read_link(pin_dir.join(OWNER_LINK))
        .ok()
        .map(|t| t.display().to_string());
    match (lock_holder(pin_dir), note) {
        (Some(pid), _) if pid != 0 => {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .split('\0')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            format!("pid {pid}: {cmd}")
        }
        (_, Some(note)) => note,
        (_, None) => "a process in another pid namespace".to_string(),
    }
}

/// The pid holding the `flock` on `pin_dir` (0: a process our pid namespace cannot see),
/// from `/proc/locks`; `None` when no one holds it. Reads only: never takes the lock.
pub fn lock_holder(pin_dir: &Path) -> Option<u32> {
    let m = std::fs::metadata(pin_dir).ok()?;
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = (libc::major(m.dev()), libc::minor(m.dev()));
    holder_in(&text, dev, m.ino())
}

/// The pid of the `FLOCK` line on device `dev` (major, minor) and inode `ino`.
fn holder_in(text: &str, dev: (u32, u32), ino: u64) -> Option<u32> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 10701 fe:00:10019340 0 EOF" (a waiter has "->" in
        // the second field; this lock is never waited for).
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let major = u32::from_str_radix(id.next()?, 16).ok()?;
        let minor = u32::from_str_radix(id.next()?, 16).ok()?;
        let file_ino = id.next()?.parse::<u64>().ok()?;
        let pid = f.get(4)?.parse::<u32>().ok()?;
        ((major, minor) == dev && file_ino == ino).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_flock_holder_of_a_file() {
        let locks = "1: POSIX  ADVISORY  WRITE 77 00:19:12 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 10701 fe:00:10019340 0 EOF\n\
                     3: -> FLOCK  ADVISORY  WRITE 99 fe:00:10019340 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 0 00:2b:55 0 EOF\n";
        assert_eq!(holder_in(locks, (0xfe, 0), 10019340), Some(10701));
        assert_eq!(
            holder_in(locks, (0xfe, 1), 10019340),
            None,
            "another device"
        );
        assert_eq!(
            holder_in(locks, (0, 0x19), 12),
            None,
            "a POSIX lock is not ours"
        );
        assert_eq!(
            holder_in(locks, (0, 0x2b), 55),
            Some(0),
            "held, not visible here"
        );
        assert_eq!(holder_in(locks, (0xfe, 0), 1), None);
    }
}
