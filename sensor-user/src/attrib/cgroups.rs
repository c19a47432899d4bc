//! cgroup id → path, for events that carry only the id (DNS packets have no process).
//!
//! On cgroup v2 the id is the inode number of the cgroup's directory, so one walk of the
//! hierarchy maps every id; the walk is repeated on a miss, at most every few seconds.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Paths are relative to the cgroup v2 mount, as `/proc/PID/cgroup` shows them.
pub struct CgroupPaths {
    root: PathBuf,
    known: HashMap<u64, String>,
    last_walk: Option<Instant>,
}

/// Least time between two walks.
const REWALK: Duration = Duration::from_secs(5);
/// Most cgroups mapped (a walk stops there).
const MAX: usize = 100_000;

impl CgroupPaths {
    /// Maps ids under the cgroup v2 mount at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            known: HashMap::new(),
            last_walk: None,
        }
    }

    /// The path of cgroup `id`, walking the hierarchy again if it is new.
    pub fn path(&mut self, id: u64) -> Option<&str> {
        if !self.known.contains_key(&id) && self.last_walk.is_none_or(|t| t.elapsed() >= REWALK) {
            self.walk();
        }
        self.known.get(&id).map(String::as_str)
    }

    fn walk(&mut self) {
        self.last_walk = Some(Instant::now());
        self.known.clear();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            if self.known.len() >= MAX {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = dir
                .strip_prefix(&self.root)
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_default();
            self.known.insert(meta.ino(), rel);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_directory_inodes() {
        let dir = std::env::temp_dir().join(format!("mxsentry-cg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let ino = std::fs::metadata(dir.join("a/b")).unwrap().ino();
        let mut paths = CgroupPaths::new(&dir);
        assert_eq!(paths.path(ino), Some("/a/b"));
        assert_eq!(paths.path(u64::MAX), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
