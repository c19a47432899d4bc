//! An append-only file rotated by size, created 0640 and never through a symlink: a link
//! planted where the log goes would otherwise redirect the agent's (root's) writes.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

/// Mode of a new log file: the agent writes, its group (a log shipper) reads.
pub const FILE_MODE: u32 = 0o640;
/// Mode of a directory the agent creates for its files.
pub const DIR_MODE: u32 = 0o750;

/// Creates `dir` (and its parents) with [`DIR_MODE`] when missing.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Opens `path` to append, creating it with `mode`; a symlink there is an error.
pub fn open_nofollow(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other(format!(
                    "{} is a symbolic link: refusing to write through it",
                    path.display()
                ))
            } else {
                e
            }
        })
}

/// A log file rotated to `path.1`..`path.keep` past `max_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: u32,
}

impl RotatingFile {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        let file = open_nofollow(path, FILE_MODE)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes,
            keep: keep.max(1),
        })
    }

    /// Appends one line; rotates after it when the file is full.
    pub fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.file.write_all(line)?;
        self.written += line.len() as u64;
        if self.written >= self.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Shifts `path.N-1` → `path.N` ... `path` → `path.1` and opens a fresh `path`.
    fn rotate(&mut self) -> std::io::Result<()> {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..self.keep).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.file = open_nofollow(&self.path, FILE_MODE)?;
        self.written = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn created_0640_and_never_through_a_symlink() {
        let dir = std::env::temp_dir().join(format!("mxsentry-rotfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("logs/events.jsonl");
        let mut f = RotatingFile::open(&path, 1 << 20, 1).unwrap();
        f.write(b"{}\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let dmode = std::fs::metadata(dir.join("logs"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o750);
        let target = dir.join("victim");
        std::fs::write(&target, "untouched").unwrap();
        let link = dir.join("logs/link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = RotatingFile::open(&link, 1 << 20, 1).err().unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
