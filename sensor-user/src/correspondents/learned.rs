//! Protection learned from the ledger: the configured policy plus the most established
//! correspondents, added as entries that the same engine reviews (restricted registries,
//! the entries' own domains, the allow list).

use std::collections::BTreeSet;

use super::Correspondents;
use crate::detect::{Action, Classification, Engine, Policy, PolicyError, ProtectEntry};

/// The entries learned from the ledger, and the engine that protects them with the
/// configured ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The learned entries (registrable domains), sorted.
    pub names: BTreeSet<String>,
}

impl Learned {
    /// The established correspondents to protect now: the most established, skipping
    /// any the configured policy already has a word for (protected, allowed, or itself a
    /// lookalike of a configured entry: an old friend, not a target).
    pub fn choose(c: &Correspondents, configured: &Engine) -> Self {
        let names = c
            .to_protect(|d| !matches!(configured.classify(d), Classification::Clean))
            .into_iter()
            .collect();
        Self { names }
    }

    /// Whether `target` (an entry as findings name it) was learned.
    pub fn has(&self, target: &str) -> bool {
        self.names.contains(target)
    }

    /// Number of learned entries.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// `configured` with the learned entries added, each with `action`.
    pub fn policy(&self, configured: &Policy, action: Action) -> Policy {
        let mut p = configured.clone();
        p.protect.extend(self.names.iter().map(|n| ProtectEntry {
            action: Some(action),
            ..ProtectEntry::new(n.clone())
        }));
        p
    }

    /// The engine for `configured` plus these entries.
    pub fn engine(&self, configured: &Policy, action: Action) -> Result<Engine, PolicyError> {
        Engine::new(&self.policy(configured, action))
    }

    /// `configured` or `learned`, for a finding's target.
    pub fn source(&self, target: &str) -> &'static str {
        if self.has(target) {
            "learned"
        } else {
            "configured"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LearnSection;

    fn ledger_with(tag: &str, deliveries: &[(&str, u64, u64)]) -> Correspondents {
        let dir =
            std::env::temp_dir().join(format!("mxsentry-learned-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut c, problems) = Correspondents::open(&dir, &LearnSection::default());
        assert!(problems.is_empty());
        for (domain, days, per_day) in deliveries {
            for day in 0..*days {
                for _ in 0..*per_day {
                    c.ledger.record(domain, 1_700_000_000 + day * 86_400);
                }
            }
        }
        c
    }

    #[test]
    fn established_correspondents_are_protected_and_their_lookalikes_found() {
        let c = ledger_with("chosen", &[("contoso.com", 4, 3), ("oneoff.example", 1, 9)]);
        let configured = Policy::default();
        let learned = Learned::choose(&c, &Engine::new(&configured).expect("engine"));
        assert_eq!(learned.names, BTreeSet::from(["contoso.com".to_string()]));
        let engine = learned
            .engine(&configured, Action::Alert)
            .expect("learned engine");
        match engine.classify("contoso-corp.com") {
            Classification::Typosquat(f) => {
                assert_eq!(f.target, "contoso.com");
                assert_eq!(f.action, Action::Alert);
                assert_eq!(learned.source(&f.target), "learned");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_configured_policy_names_is_never_learned() {
        // hpe.com resembles a configured hp.com: an old friend, not a new target; the
        // configured entry itself and allowed providers are not learned twice.
        let c = ledger_with(
            "named",
            &[("hpe.com", 5, 2), ("hp.com", 5, 2), ("gmail.com", 5, 2)],
        );
        let configured = Policy {
            protect: vec![ProtectEntry::new("hp.com")],
            ..Policy::default()
        };
        let learned = Learned::choose(&c, &Engine::new(&configured).expect("engine"));
        assert!(learned.is_empty(), "{learned:?}");
    }
}
