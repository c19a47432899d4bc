//! The ledger on disk, in the agent's state directory: `correspondents.json`, written in
//! batches (at most once per interval while it changed, and at stop) with crash-safe
//! writes; `correspondents.d/*.json`, snapshots dropped in by `mxsentry correspondents
//! import` (or copied from another node), merged by the running agent and removed. A file
//! that cannot be read is kept aside as `.bad` and reported; the agent runs on.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::ledger::{Entry, Ledger};
use crate::state::persist::{read_no_follow, sibling, write_atomic};

/// The ledger's file under the state directory.
pub const FILE: &str = "correspondents.json";
/// Snapshots waiting to be merged, under the state directory.
pub const DROP_DIR: &str = "correspondents.d";
/// The snapshot format's version.
pub const VERSION: u32 = 1;

/// The ledger as a file: the agent's own state, an export, and a drop-in all share it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Format version (`VERSION`).
    pub version: u32,
    /// Registrable domain → what is known about it.
    pub domains: BTreeMap<String, Entry>,
}

impl Snapshot {
    /// The snapshot of `ledger`.
    pub fn of(ledger: &Ledger) -> Self {
        Self {
            version: VERSION,
            domains: ledger.iter().map(|(d, e)| (d.to_string(), *e)).collect(),
        }
    }

    /// Parses a snapshot, checking its version.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let s: Snapshot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if s.version != VERSION {
            return Err(format!(
                "version {} (this build reads {VERSION})",
                s.version
            ));
        }
        Ok(s)
    }

    /// Folds every entry into `ledger` (whose bound holds) under its registrable domain
    /// in lower-case ASCII, as deliveries are recorded (a hand-made or older export may
    /// say `Partner.Example.` or `mail.partner.example`); returns how many were merged
    /// and how many skipped because they name no registrable domain.
    pub fn merge_into(&self, ledger: &mut Ledger) -> Merged {
        let mut m = Merged::default();
        for (d, e) in &self.domains {
            match super::ledger_key(d) {
                Some(d) => {
                    ledger.merge(&d, e);
                    m.merged += 1;
                }
                None => m.skipped += 1,
            }
        }
        m
    }
}

/// What [`Snapshot::merge_into`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// Entries folded in.
    pub merged: usize,
    /// Entries that name no registrable domain, skipped.
    pub skipped: usize,
}

/// The entries of `path` that were skipped, as a problem to report (none skipped: none).
fn skipped(path: &Path, m: Merged) -> Option<Problem> {
    (m.skipped > 0).then(|| {
        problem(
            path,
            "skipped_names",
            format!(
                "{} entries name no registrable domain and were skipped ({} merged)",
                m.skipped, m.merged
            ),
        )
    })
}

/// Something wrong with a state file, reported once as an event and a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// `corrupt`, `unreadable`, `skipped_names` or `save_failed`.
    pub kind: &'static str,
    /// What happened, for a person.
    pub detail: String,
}

/// Where the ledger lives and when it is next saved.
pub struct Store {
    path: PathBuf,
    drops: PathBuf,
    every: Duration,
    dirty: bool,
    last_save: Option<Instant>,
}

impl Store {
    /// The ledger's store under `state_dir`, saving at most once per `every`.
    pub fn new(state_dir: &Path, every: Duration) -> Self {
        Self {
            path: state_dir.join(FILE),
            drops: state_dir.join(DROP_DIR),
            every,
            dirty: false,
            last_save: None,
        }
    }

    /// Reads the saved ledger into `ledger`; an unusable file is kept aside and reported.
    pub fn load(&self, ledger: &mut Ledger) -> Option<Problem> {
        let bytes = match read_no_follow(&self.path) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                return Some(Problem {
                    path: self.path.clone(),
                    kind: "unreadable",
                    detail: e.to_string(),
                });
            }
        };
        match Snapshot::parse(&bytes) {
            Ok(s) => skipped(&self.path, s.merge_into(ledger)),
            Err(e) => {
                let bad = sibling(&self.path, "bad");
                let kept = std::fs::rename(&self.path, &bad).map_or_else(
                    |r| format!("could not be moved aside ({r})"),
                    |()| format!("kept as {}", bad.display()),
                );
                Some(Problem {
                    path: self.path.clone(),
                    kind: "corrupt",
                    detail: format!("{e}; {kept}; starting with an empty ledger"),
                })
            }
        }
    }

    /// Notes that the ledger changed.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Saves when the ledger changed and the interval has passed (or `force`).
    pub fn save_if_due(&mut self, ledger: &Ledger, now: Instant, force: bool) -> Option<Problem> {
        let due = self
            .last_save
            .is_none_or(|t| now.duration_since(t) >= self.every);
        if !self.dirty || !(due || force) {
            return None;
        }
        self.last_save = Some(now);
        let result = serde_json::to_vec(&Snapshot::of(ledger))
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomic(&self.path, &bytes));
        match result {
            Ok(()) => {
                self.dirty = false;
                None
            }
            // Still dirty: the next interval tries again.
            Err(e) => Some(Problem {
                path: self.path.clone(),
                kind: "save_failed",
                detail: e.to_string(),
            }),
        }
    }

    /// Merges every waiting snapshot into `ledger`; returns the domains merged, the
    /// problems (a bad snapshot is set aside as `.bad`) and the files merged, which the
    /// caller removes with `remove_drops` once the ledger holding them is saved.
    pub fn merge_drops(&mut self, ledger: &mut Ledger) -> (usize, Vec<Problem>, Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(&self.drops) else {
            return (0, Vec::new(), Vec::new());
        };
        let (mut merged, mut problems, mut done) = (0, Vec::new(), Vec::new());
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for p in files {
            match read_no_follow(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| Snapshot::parse(&b.unwrap_or_default()))
            {
                Ok(s) => {
                    let m = s.merge_into(ledger);
                    merged += m.merged;
                    problems.extend(skipped(&p, m));
                    self.dirty = true;
                    done.push(p);
                }
                Err(e) => {
                    let _ = std::fs::rename(&p, sibling(&p, "bad"));
                    problems.push(problem(&p, "corrupt", format!("{e}; kept as .bad")));
                }
            }
        }
        (merged, problems, done)
    }

    /// Removes drop-ins whose contents are saved in the ledger's file.
    pub fn remove_drops(&self, done: &[PathBuf]) -> Vec<Problem> {
        done.iter()
            .filter_map(|p| {
                std::fs::remove_file(p)
                    .err()
                    .map(|e| problem(p, "unreadable", format!("merged, not removed: {e}")))
            })
            .collect()
    }

    /// Writes `snapshot` as a new drop-in for the agent to merge.
    pub fn drop_in(&self, snapshot: &Snapshot, tag: &str) -> std::io::Result<PathBuf> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = self.drops.join(format!("{now}-{tag}.json"));
        let bytes = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
        write_atomic(&p, &bytes)?;
        Ok(p)
    }
}

fn problem(path: &Path, kind: &'static str, detail: String) -> Problem {
    Problem {
        path: path.to_path_buf(),
        kind,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mxsentry-corr-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn saves_in_batches_and_survives_a_restart() {
        let d = dir("save");
        let mut store = Store::new(&d, Duration::from_secs(60));
        let mut l = Ledger::new(10);
        l.record("partner.example", 1_790_000_000);
        store.touch();
        let t = Instant::now();
        assert_eq!(store.save_if_due(&l, t, false), None);
        l.record("other.example", 1_790_000_001);
        store.touch();
        // Within the interval: not written yet.
        assert_eq!(
            store.save_if_due(&l, t + Duration::from_secs(1), false),
            None
        );
        let mut again = Ledger::new(10);
        assert_eq!(Store::new(&d, Duration::ZERO).load(&mut again), None);
        assert_eq!(again.len(), 1);
        // At stop: written whatever the interval.
        store.save_if_due(&l, t + Duration::from_secs(2), true);
        let mut again = Ledger::new(10);
        Store::new(&d, Duration::ZERO).load(&mut again);
        assert_eq!(again.len(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_reported() {
        let d = dir("corrupt");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(FILE), b"{\"version\":1,\"domains\":{\"a\":").unwrap();
        let mut l = Ledger::new(10);
        let p = Store::new(&d, Duration::ZERO).load(&mut l).unwrap();
        assert_eq!(p.kind, "corrupt");
        assert!(l.is_empty());
        assert!(d.join("correspondents.json.bad").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn drop_ins_are_merged_once_and_bad_ones_set_aside() {
        let d = dir("drops");
        let mut store = Store::new(&d, Duration::ZERO);
        let mut other = Ledger::new(10);
        other.record("seeded.example", 1_790_000_000);
        store.drop_in(&Snapshot::of(&other), "import").unwrap();
        std::fs::write(d.join(DROP_DIR).join("zz-bad.json"), b"junk").unwrap();
        let mut l = Ledger::new(10);
        let (n, problems, done) = store.merge_drops(&mut l);
        assert_eq!((n, problems.len(), done.len()), (1, 1, 1));
        assert!(l.get("seeded.example").is_some());
        // Kept until the caller removes them (after saving the ledger).
        assert_eq!(store.merge_drops(&mut Ledger::new(10)).0, 1);
        assert!(store.remove_drops(&done).is_empty());
        assert_eq!(store.merge_drops(&mut l).0, 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_export_is_merged_under_registrable_lower_case_names() {
        // Found by the quality step: a ledger file saying `EihBank.com` made a protected
        // entry the engine knew as `eihbank.com` and findings name it `configured`.
        let entry = |attempts| Entry {
            attempts,
            ..Entry::default()
        };
        let mut s = Snapshot {
            version: VERSION,
            domains: BTreeMap::new(),
        };
        for (d, n) in [
            ("Partner.Example.", 3),
            ("mail.partner.example", 4),
            ("com", 1),
            ("not a name", 1),
        ] {
            s.domains.insert(d.to_string(), entry(n));
        }
        let mut l = Ledger::new(10);
        let m = s.merge_into(&mut l);
        assert_eq!((m.merged, m.skipped), (2, 2));
        assert_eq!(l.len(), 1);
        assert_eq!(l.get("partner.example").map(|e| e.attempts), Some(7));

        let d = dir("skipped");
        let mut store = Store::new(&d, Duration::ZERO);
        store.drop_in(&s, "import").unwrap();
        let (n, problems, _) = store.merge_drops(&mut Ledger::new(10));
        assert_eq!(n, 2);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, "skipped_names");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
