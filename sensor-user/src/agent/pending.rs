//! Lookalikes that were looked up and did not resolve, remembered across restarts: if one
//! later resolves, someone registered the trap (as happened with `.ml`).
//!
//! Built to be flooded: changes stay in memory and are saved at most once per
//! [`SAVE_EVERY`] (write a temporary file, fsync, rename: a crash leaves the old file or
//! the new one, never half of one), so a flood of NXDOMAIN answers costs no disk write
//! each. The set is bounded in total and per protected target; when full, names only
//! queried go before names with a delivery attempt (an MX lookup), the least recently
//! seen first. What is forgotten, and every save or load that fails, is counted.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Most often the file is written.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
/// Names kept as examples of what one bound forgot, per report.
const EXAMPLES: usize = 10;

/// What is remembered about one unresolved lookalike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// The protected entry it imitates.
    pub target: String,
    /// The rule that matched.
    pub rule: String,
    /// First seen unresolved (Unix seconds).
    pub first_seen: u64,
    /// Last seen unresolved (Unix seconds).
    pub last_seen: u64,
    /// A delivery was attempted (an MX lookup), not only a name queried.
    #[serde(default)]
    pub attempted: bool,
}

/// Eviction order: names only queried first, then the least recently seen.
type Rank = (bool, u64, String);

/// Names forgotten under one bound since the last report.
#[derive(Debug, Default, PartialEq)]
pub struct Forgotten {
    /// How many.
    pub count: u64,
    /// A few of them.
    pub examples: Vec<String>,
}

/// The bounded, persisted set of unresolved lookalikes (registrable domain → entry).
pub struct Pending {
    path: Option<PathBuf>,
    max: usize,
    per_target: usize,
    items: HashMap<String, (PendingEntry, u64)>,
    rank: BTreeSet<Rank>,
    by_target: HashMap<String, BTreeSet<Rank>>,
    seq: u64,
    dirty: bool,
    saved_at: Option<Instant>,
    forgotten: BTreeMap<&'static str, Forgotten>,
    load_problem: Option<String>,
}

/// File name under the state directory.
pub const FILE: &str = "pending-lookalikes.json";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pending {
    fn empty(path: Option<PathBuf>, max: usize) -> Self {
        Self {
            path,
            max: max.max(1),
            per_target: max.max(1),
            items: HashMap::new(),
            rank: BTreeSet::new(),
            by_target: HashMap::new(),
            seq: 0,
            dirty: false,
            saved_at: None,
            forgotten: BTreeMap::new(),
            load_problem: None,
        }
    }

    /// Loads `dir/pending-lookalikes.json` (created on first save). A file that cannot be
    /// read or parsed is set aside as `.bad-<time>` and reported (also as
    /// [`Pending::take_load_problem`]); the agent starts with an empty set.
    pub fn load(dir: &Path, max: usize) -> (Self, Option<String>) {
        let path = dir.join(FILE);
        let mut p = Self::empty(Some(path.clone()), max);
        let problem = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, PendingEntry>>(&bytes) {
                Ok(items) => {
                    let mut items: Vec<_> = items.into_iter().collect();
                    items.sort_by_key(|(_, e)| e.last_seen);
                    for (domain, e) in items {
                        p.insert(domain, e);
                    }
                    p.trim();
                    None
                }
                Err(e) => Some(set_aside(&path, &format!("is not valid ({e})"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(set_aside(&path, &format!("cannot be read ({e})"))),
        };
        p.load_problem = problem.clone();
        (p, problem)
    }

    /// A set that is never written to disk (replay, tests).
    pub fn in_memory(max: usize) -> Self {
        Self::empty(None, max)
    }

    /// Changes the bounds (total, and per protected target).
    pub fn set_bounds(&mut self, max: usize, per_target: usize) {
        self.max = max.max(1);
        self.per_target = per_target.clamp(1, self.max);
        self.trim();
    }

    fn insert(&mut self, domain: String, e: PendingEntry) {
        self.seq += 1;
        let rank = (e.attempted, self.seq, domain.clone());
        self.rank.insert(rank.clone());
        self.by_target
            .entry(e.target.clone())
            .or_default()
            .insert(rank);
        self.items.insert(domain, (e, self.seq));
    }

    fn remove(&mut self, domain: &str) -> Option<PendingEntry> {
        let (e, seq) = self.items.remove(domain)?;
        let rank = (e.attempted, seq, domain.to_string());
        self.rank.remove(&rank);
        if let Some(t) = self.by_target.get_mut(&e.target) {
            t.remove(&rank);
            if t.is_empty() {
                self.by_target.remove(&e.target);
            }
        }
        self.dirty = true;
        Some(e)
    }

    fn forget(&mut self, bound: &'static str, domain: String) {
        let f = self.forgotten.entry(bound).or_default();
        f.count += 1;
        if f.examples.len() < EXAMPLES {
            f.examples.push(domain);
        }
    }

    /// Evicts until both bounds hold.
    fn trim(&mut self) {
        let over_target = self
            .by_target
            .iter()
            .filter(|(_, s)| s.len() > self.per_target)
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>();
        for t in over_target {
            while let Some(victim) = self
                .by_target
                .get(&t)
                .filter(|s| s.len() > self.per_target)
                .and_then(|s| s.first().cloned())
            {
                self.remove(&victim.2);
                self.forget("pending_per_target", victim.2);
            }
        }
        while self.items.len() > self.max {
            let Some(victim) = self.rank.first().cloned() else {
                break;
            };
            self.remove(&victim.2);
            self.forget("pending_max", victim.2);
        }
    }

    /// Remembers `domain` as unresolved (`attempted`: an MX lookup, a delivery on its
    /// way). In memory only; [`Pending::flush`] saves.
    pub fn remember(&mut self, domain: &str, target: &str, rule: &str, attempted: bool) {
        let now = unix_now();
        let e = match self.remove(domain) {
            Some(mut e) => {
                e.last_seen = now;
                e.attempted |= attempted;
                e
            }
            None => PendingEntry {
                target: target.into(),
                rule: rule.into(),
                first_seen: now,
                last_seen: now,
                attempted,
            },
        };
        self.insert(domain.to_string(), e);
        self.dirty = true;
        self.trim();
    }

    /// Forgets `domain` because it resolved; returns what was remembered.
    pub fn resolved(&mut self, domain: &str) -> Option<PendingEntry> {
        self.remove(domain)
    }

    /// What the bounds forgot since the last call, by bound.
    pub fn take_forgotten(&mut self) -> BTreeMap<&'static str, Forgotten> {
        std::mem::take(&mut self.forgotten)
    }

    /// Why the file could not be loaded at start, once.
    pub fn take_load_problem(&mut self) -> Option<String> {
        self.load_problem.take()
    }

    /// Saves when something changed and the last save is [`SAVE_EVERY`] old: `None` when
    /// nothing was due, else how the save went (a failed one is tried again later).
    pub fn flush(&mut self, now: Instant) -> Option<Result<(), String>> {
        if !self.dirty
            || self
                .saved_at
                .is_some_and(|t| now.duration_since(t) < SAVE_EVERY)
        {
            return None;
        }
        self.saved_at = Some(now);
        Some(self.save_now())
    }

    /// Saves now if anything changed (at exit).
    pub fn save_now(&mut self) -> Result<(), String> {
        let Some(path) = &self.path else {
            self.dirty = false;
            return Ok(());
        };
        let sorted: BTreeMap<&str, &PendingEntry> = self
            .items
            .iter()
            .map(|(d, (e, _))| (d.as_str(), e))
            .collect();
        let bytes = serde_json::to_vec(&sorted).map_err(|e| e.to_string())?;
        write_atomically(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        self.dirty = false;
        Ok(())
    }

    /// Where it is saved, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Number remembered.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether `domain` is remembered.
    pub fn contains(&self, domain: &str) -> bool {
        self.items.contains_key(domain)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.dirty
            && let Err(e) = self.save_now()
        {
            log::error!("saving unresolved lookalikes at exit: {e}");
        }
    }
}

/// Moves an unusable file aside, keeping it for a person to look at.
fn set_aside(path: &Path, why: &str) -> String {
    let bad = PathBuf::from(format!("{}.bad-{}", path.display(), unix_now()));
    match std::fs::rename(path, &bad) {
        Ok(()) => format!("{} {why}; moved to {}", path.display(), bad.display()),
        Err(e) => format!("{} {why}; could not move it aside: {e}", path.display()),
    }
}

/// Writes `bytes` to `path` through `path.tmp` (0600, never through a symlink), fsynced
/// and renamed over `path`, then the directory fsynced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests;
