//! `[learn]`: the correspondents ledger and the protection learned from it.

use serde::Deserialize;

use crate::detect::Action;

/// `[learn]` as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LearnSection {
    /// Keep the ledger of domains this host delivers to.
    pub enabled: bool,
    /// Most domains in the ledger; the least valuable are evicted first.
    pub max_domains: usize,
    /// An established correspondent was delivered to on at least this many distinct days…
    pub min_days: u32,
    /// …with at least this many delivery attempts.
    pub min_deliveries: u64,
    /// The most established correspondents protected automatically (0: none).
    pub protect_top: usize,
    /// What a lookalike of a learned entry triggers.
    pub action: Action,
    /// Domains not delivered to for this many days are forgotten.
    pub forget_after_days: u64,
    /// The ledger is written at most once per this many seconds (and at stop).
    pub save_every_secs: u64,
}

impl Default for LearnSection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_domains: 100_000,
            // Three separate days is a relationship, not one thread or one bad day; five
            // deliveries keeps a single conversation on three days out. See docs/learning.md.
            min_days: 3,
            min_deliveries: 5,
            protect_top: 50,
            action: Action::Alert,
            forget_after_days: 400,
            save_every_secs: 60,
        }
    }
}

impl LearnSection {
    /// Checks the values make sense; on error, the key at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("learn.max_domains", self.max_domains as u64),
            ("learn.min_days", u64::from(self.min_days)),
            ("learn.forget_after_days", self.forget_after_days),
            ("learn.save_every_secs", self.save_every_secs),
        ];
        for (key, v) in positive {
            if v == 0 {
                let field = key.trim_start_matches("learn.");
                return Err((field, format!("{key} = 0: must be at least 1")));
            }
        }
        if u64::from(self.min_days) > self.forget_after_days {
            return Err((
                "min_days",
                format!(
                    "learn.min_days ({}) can never be reached when domains are forgotten after {} days",
                    self.min_days, self.forget_after_days
                ),
            ));
        }
        if self.protect_top > self.max_domains {
            return Err((
                "protect_top",
                format!(
                    "learn.protect_top ({}) is above learn.max_domains ({})",
                    self.protect_top, self.max_domains
                ),
            ));
        }
        Ok(())
    }
}
