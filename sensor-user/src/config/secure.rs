//! Whether a config file is safe to obey, as sshd's StrictModes decides: the file and
//! every directory on the way to it, through every symlink, belong to root (or to the
//! user running the command) and no one else can write them. Otherwise anyone who can
//! write there can switch enforcement off.
//!
//! Two exceptions keep real layouts working: a directory others may write but with the
//! sticky bit (`/tmp`), where only an entry's owner can replace it; and a read-only
//! mount (a Kubernetes ConfigMap volume, whose directories are 0777 but read-only).

use std::{
    ffi::OsString,
    os::unix::fs::MetadataExt as _,
    path::{Component, Path, PathBuf},
};

/// Most symlinks followed, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Why a path is unsafe, with the path at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    /// The file or directory at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path.display(), self.why)
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn read_only_mount(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statvfs is plain old data, valid when zeroed.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into the struct we own; the path is NUL-terminated.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_flag & libc::ST_RDONLY != 0
}

/// Checks owner and mode of one directory or file on the way.
fn check(p: &Path, m: &std::fs::Metadata, dir: bool) -> Result<(), Unsafe> {
    let fail = |why: String| {
        Err(Unsafe {
            path: p.to_path_buf(),
            why,
        })
    };
    let me = euid();
    if m.uid() != 0 && m.uid() != me {
        return fail(format!("is owned by uid {}, not root", m.uid()));
    }
    let mode = m.mode();
    let others_write = mode & 0o022 != 0;
    let sticky = dir && mode & 0o1000 != 0;
    if others_write && !sticky && !read_only_mount(p) {
        let who = if mode & 0o002 != 0 {
            "anyone"
        } else {
            "its group"
        };
        return fail(format!(
            "is writable by {who} (mode {:o}): refusing it, as sshd's StrictModes does; chmod go-w it",
            mode & 0o7777
        ));
    }
    Ok(())
}

fn meta(p: &Path) -> Result<std::fs::Metadata, Unsafe> {
    std::fs::symlink_metadata(p).map_err(|e| Unsafe {
        path: p.to_path_buf(),
        why: format!("cannot be inspected: {e}"),
    })
}

/// Checks `path` as described in the module docs; `Ok` with the file's real path.
pub fn check_file(path: &Path) -> Result<PathBuf, Unsafe> {
    let start = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Unsafe {
                path: path.to_path_buf(),
                why: format!("has no absolute form: {e}"),
            })?
            .join(path)
    };
    let mut todo: Vec<OsString> = components(&start);
    todo.reverse();
    let mut at = PathBuf::from("/");
    check(&at, &meta(&at)?, true)?;
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&c);
        let m = meta(&next)?;
        if m.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Unsafe {
                    path: next,
                    why: "has too many levels of symbolic links".into(),
                });
            }
            let target = std::fs::read_link(&next).map_err(|e| Unsafe {
                path: next.clone(),
                why: format!("cannot be read as a link: {e}"),
            })?;
            if target.is_absolute() {
                at = PathBuf::from("/");
            }
            let mut more = components(&target);
            more.reverse();
            todo.extend(more);
            continue;
        }
        let last = todo.is_empty();
        check(&next, &m, !last)?;
        if last && !m.is_file() {
            return Err(Unsafe {
                path: next,
                why: "is not a regular file".into(),
            });
        }
        at = next;
    }
    Ok(at)
}

/// The normal and `..` components of `p` (root and `.` dropped).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn modes_links_and_sticky_directories() {
        let d = std::env::temp_dir().join(format!("mxsentry-secure-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        chmod(&d, 0o755);
        chmod(&d.join("sub"), 0o755);
        let f = d.join("sub/c.toml");
        std::fs::write(&f, "x").unwrap();
        chmod(&f, 0o644);
        assert_eq!(check_file(&f).unwrap(), f);
        chmod(&f, 0o664);
        assert!(check_file(&f).unwrap_err().why.contains("its group"));
        chmod(&f, 0o644);
        chmod(&d.join("sub"), 0o777);
        assert_eq!(check_file(&f).unwrap_err().path, d.join("sub"));
        // Sticky: only an entry's owner may replace it.
        chmod(&d.join("sub"), 0o1777);
        assert!(check_file(&f).is_ok());
        chmod(&d.join("sub"), 0o755);
        // A relative link, resolved against its own directory, and a loop.
        std::os::unix::fs::symlink("sub/c.toml", d.join("l.toml")).unwrap();
        assert_eq!(check_file(&d.join("l.toml")).unwrap(), f);
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        assert!(
            check_file(&d.join("loop"))
                .unwrap_err()
                .why
                .contains("levels")
        );
        assert!(
            check_file(&d.join("sub"))
                .unwrap_err()
                .why
                .contains("regular")
        );
        assert!(check_file(&d.join("none")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
