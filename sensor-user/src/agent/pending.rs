//! Lookalikes that were looked up and did not resolve, remembered across restarts: if one
//! later resolves, someone registered the trap (as happened with `.ml`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

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
}

/// The bounded, persisted set of unresolved lookalikes (registrable domain → entry).
pub struct Pending {
    path: Option<PathBuf>,
    max: usize,
    items: BTreeMap<String, PendingEntry>,
}

/// File name under the state directory.
pub const FILE: &str = "pending-lookalikes.json";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Pending {
    /// Loads `dir/pending-lookalikes.json` (created on first change). A file that cannot
    /// be read is set aside as `.bad` and reported; the agent starts with an empty set.
    pub fn load(dir: &Path, max: usize) -> (Self, Option<String>) {
        let path = dir.join(FILE);
        let mut p = Self {
            path: Some(path.clone()),
            max: max.max(1),
            items: BTreeMap::new(),
        };
        let warning = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, PendingEntry>>(&bytes) {
                Ok(items) => {
                    p.items = items;
                    p.trim();
                    None
                }
                Err(e) => {
                    let bad = path.with_extension("json.bad");
                    let _ = std::fs::rename(&path, &bad);
                    Some(format!(
                        "{} is not valid ({e}); moved to {}",
                        path.display(),
                        bad.display()
                    ))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        };
        (p, warning)
    }

    /// A set that is never written to disk (replay, tests).
    pub fn in_memory(max: usize) -> Self {
        Self {
            path: None,
            max: max.max(1),
            items: BTreeMap::new(),
        }
    }

    /// Changes the bound.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        self.trim();
    }

    fn trim(&mut self) {
        while self.items.len() > self.max {
            let oldest = self
                .items
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.items.remove(&k),
                None => break,
            };
        }
    }

    fn save(&self) -> Result<(), std::io::Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.items)?)?;
        std::fs::rename(&tmp, path)
    }

    /// Remembers `domain` as unresolved; returns a save error to report.
    pub fn remember(
        &mut self,
        domain: &str,
        target: &str,
        rule: &str,
    ) -> Result<(), std::io::Error> {
        let now = unix_now();
        let e = self
            .items
            .entry(domain.to_string())
            .or_insert_with(|| PendingEntry {
                target: target.into(),
                rule: rule.into(),
                first_seen: now,
                last_seen: now,
            });
        e.last_seen = now;
        self.trim();
        self.save()
    }

    /// Forgets `domain` because it resolved; returns what was remembered.
    pub fn resolved(&mut self, domain: &str) -> (Option<PendingEntry>, Result<(), std::io::Error>) {
        match self.items.remove(domain) {
            Some(e) => (Some(e), self.save()),
            None => (None, Ok(())),
        }
    }

    /// Number remembered.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_is_bounded() {
        let dir = std::env::temp_dir().join(format!("mxsentry-pending-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut p, warn) = Pending::load(&dir, 2);
        assert!(warn.is_none());
        p.remember("army.ml", "army.mil", "suffix-typo").unwrap();
        p.remember("navy.ml", "navy.mil", "suffix-typo").unwrap();
        let (mut again, _) = Pending::load(&dir, 2);
        assert_eq!(again.len(), 2);
        let (gone, saved) = again.resolved("army.ml");
        saved.unwrap();
        assert_eq!(gone.map(|e| e.target), Some("army.mil".into()));
        let (third, _) = Pending::load(&dir, 2);
        assert_eq!(third.len(), 1);
        std::fs::write(dir.join(FILE), b"not json").unwrap();
        let (fresh, warn) = Pending::load(&dir, 2);
        assert!(fresh.is_empty());
        assert!(warn.unwrap().contains("not valid"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
