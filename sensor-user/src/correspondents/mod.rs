//! Correspondents: who this host delivers mail to, learned from its own attributed SMTP
//! connects (and seeded from its MTA's log), kept on the host as registrable domains with
//! counts and dates only. They tell a first contact from an old friend, and the most
//! established of them can be protected without any configuration.

pub mod learned;
pub mod ledger;
pub mod maillog;
pub mod store;

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use self::{
    ledger::{Established, Ledger},
    store::{Problem, Store},
};
use crate::config::LearnSection;

/// Shifts the ledger's clock (seconds, may be negative) so tests can play several days
/// in minutes. Read once at start; never set it in production.
pub const CLOCK_OFFSET_ENV: &str = "MXSENTRY_CLOCK_OFFSET_SECS";

/// What the ledger says about a recipient domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Never delivered to before.
    pub first_contact: bool,
    /// An established correspondent.
    pub established: bool,
}

/// The ledger, its store and the rules that read it.
pub struct Correspondents {
    ledger: Ledger,
    store: Store,
    bar: Established,
    top: usize,
    forget_after: u64,
    offset: i64,
    enabled: bool,
    /// Whether the ledger lives in the state directory (false: replay and tests).
    persist: bool,
}

/// The name the ledger keeps for a recipient domain however a source writes it (a
/// snapshot's `Partner.Example.`, a log's `mail.partner.example` or Unicode): its
/// registrable domain in lower-case ASCII; `None` when it names none.
pub fn ledger_key(raw: &str) -> Option<String> {
    let name = crate::detect::Name::parse(raw).ok()?;
    crate::dns::registrable_of(&name.ascii).map(str::to_string)
}

impl Correspondents {
    /// Opens the ledger under `state_dir` as `learn` says; problems with its files are
    /// returned to be reported (the agent runs on with what could be read).
    pub fn open(state_dir: &Path, learn: &LearnSection) -> (Self, Vec<Problem>) {
        let mut c = Self::unopened(state_dir, learn);
        let mut problems: Vec<Problem> = c.store.load(&mut c.ledger).into_iter().collect();
        problems.extend(c.take_drops(Instant::now()).1);
        (c, problems)
    }

    /// The ledger's settings, with nothing read yet.
    fn unopened(state_dir: &Path, learn: &LearnSection) -> Self {
        let offset = std::env::var(CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            ledger: Ledger::new(learn.max_domains),
            store: Store::new(state_dir, Duration::from_secs(learn.save_every_secs)),
            bar: Established {
                min_days: learn.min_days,
                min_attempts: learn.min_deliveries,
            },
            top: learn.protect_top,
            forget_after: learn.forget_after_days * 86_400,
            offset,
            enabled: learn.enabled,
            persist: true,
        }
    }

    /// A ledger that starts empty and is never read or written (replay, tests).
    pub fn in_memory(learn: &LearnSection) -> Self {
        Self {
            persist: false,
            ..Self::unopened(Path::new("."), learn)
        }
    }

    /// The ledger as it would be now, read-only: the saved file and the waiting drop-ins,
    /// merged in memory and left where they are (for `mxsentry correspondents`).
    pub fn view(state_dir: &Path, learn: &LearnSection) -> (Self, Vec<Problem>) {
        let mut c = Self::unopened(state_dir, learn);
        let mut problems: Vec<Problem> = c.store.load(&mut c.ledger).into_iter().collect();
        problems.extend(c.store.merge_drops(&mut c.ledger).1);
        (c, problems)
    }

    /// A ledger file (the agent's or an export) as the agent would read it, for
    /// `mxsentry check --correspondents`; never written back.
    pub fn from_file(path: &Path, learn: &LearnSection) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let snapshot =
            store::Snapshot::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c = Self::unopened(path.parent().unwrap_or(Path::new(".")), learn);
        let m = snapshot.merge_into(&mut c.ledger);
        if m.skipped > 0 {
            log::warn!(
                "{}: skipped {} entries that name no registrable domain",
                path.display(),
                m.skipped
            );
        }
        Ok(c)
    }

    /// Merges waiting drop-ins, saves at once, and removes them only once saved (a
    /// crash in between merges them again, which the day bitmaps make harmless but for
    /// the delivery counts).
    fn take_drops(&mut self, now: Instant) -> (usize, Vec<Problem>) {
        let (merged, mut problems, done) = self.store.merge_drops(&mut self.ledger);
        if !done.is_empty() {
            match self.store.save_if_due(&self.ledger, now, true) {
                None => problems.extend(self.store.remove_drops(&done)),
                Some(p) => problems.push(p),
            }
        }
        (merged, problems)
    }

    /// Applies a reloaded `[learn]` section (the state directory is fixed at start).
    pub fn configure(&mut self, learn: &LearnSection) {
        self.ledger.set_max(learn.max_domains);
        self.bar = Established {
            min_days: learn.min_days,
            min_attempts: learn.min_deliveries,
        };
        self.top = learn.protect_top;
        self.forget_after = learn.forget_after_days * 86_400;
        self.enabled = learn.enabled;
    }

    /// The ledger's clock: Unix seconds (with the test offset).
    pub fn now(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        real.saturating_add_signed(self.offset)
    }

    /// What the ledger says about `domain` now (before this delivery is counted).
    pub fn signals(&self, domain: &str) -> Signals {
        match self.ledger.get(domain) {
            None => Signals {
                first_contact: true,
                established: false,
            },
            Some(e) => Signals {
                first_contact: false,
                established: self.bar.holds(e),
            },
        }
    }

    /// Counts a delivery to `domain` (a registrable domain).
    pub fn record(&mut self, domain: &str) {
        if self.enabled {
            let now = self.now();
            self.ledger.record(domain, now);
            self.store.touch();
        }
    }

    /// The established correspondents to protect, most established first: at most
    /// `protect_top`, skipping those `skip` rejects (already protected, or themselves a
    /// lookalike of a configured entry).
    pub fn to_protect(&self, skip: impl Fn(&str) -> bool) -> Vec<String> {
        if !self.enabled || self.top == 0 {
            return Vec::new();
        }
        self.ledger
            .top_established(self.bar, usize::MAX)
            .into_iter()
            .map(|(d, _)| d)
            .filter(|d| !skip(d))
            .take(self.top)
            .map(String::from)
            .collect()
    }

    /// Housekeeping: merge dropped-in snapshots, forget the long unseen, save when due.
    pub fn tick(&mut self, now: Instant) -> (usize, Vec<Problem>) {
        if !self.persist {
            let cutoff = self.now().saturating_sub(self.forget_after);
            self.ledger.forget_before(cutoff);
            return (0, Vec::new());
        }
        let (merged, mut problems) = self.take_drops(now);
        let cutoff = self.now().saturating_sub(self.forget_after);
        if self.ledger.forget_before(cutoff) > 0 {
            self.store.touch();
        }
        problems.extend(self.store.save_if_due(&self.ledger, now, false));
        (merged, problems)
    }

    /// Saves whatever changed (at stop).
    pub fn flush(&mut self) -> Option<Problem> {
        if !self.persist {
            return None;
        }
        self.store.save_if_due(&self.ledger, Instant::now(), true)
    }

    /// The ledger, for tests that play deliveries at chosen times.
    #[cfg(test)]
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Established correspondents in the ledger.
    pub fn established(&self) -> usize {
        self.ledger
            .iter()
            .filter(|(_, e)| self.bar.holds(e))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::ledger_key;

    #[test]
    fn every_source_writes_a_domain_as_the_ledger_keeps_it() {
        for raw in [
            "Partner.Example.",
            "mail.partner.example",
            "PARTNER.example",
        ] {
            assert_eq!(ledger_key(raw).as_deref(), Some("partner.example"), "{raw}");
        }
        assert_eq!(
            ledger_key("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(ledger_key("com"), None);
        assert_eq!(ledger_key("not a name"), None);
    }
}
