//! Protection learned from the ledger: the configured policy plus the most established
//! correspondents, added as entries that the same engine reviews (restricted registries,
//! the entries' own domains, the allow list).

use std::collections::BTreeSet;

use super::Correspondents;
use crate::detect::{Action, Classification, Engine, Policy, PolicyError, ProtectEntry};

/// The shortest registrable label learned as an entry. Nobody reviews a learned entry,
/// and a label of one to three letters (`ac.cd`, `edu.na`, `hp.com`) is one slip away
/// from hundreds of real names under every suffix: the quality step showed learned
/// `ac.cd` and `edu.na` flagging 460 real universities. An operator who wants such a
/// name protected lists it.
pub const MIN_LABEL: usize = 4;

/// Whether `domain` (registrable) has a label long enough to learn.
fn distinctive(domain: &str) -> bool {
    domain
        .split('.')
        .next()
        .is_some_and(|l| l.len() >= MIN_LABEL)
}

/// The entries learned from the ledger, and the engine that protects them with the
/// configured ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LearnedProtection {
    /// The learned entries (registrable domains), sorted.
    pub names: BTreeSet<String>,
}

impl LearnedProtection {
    /// The established correspondents to protect now: the most established, skipping
    /// any the configured policy already protects or calls a lookalike of one of its
    /// entries (an old friend, not a target), and any too short to be told from the
    /// names around it (see [`MIN_LABEL`]). An allowed name (`gmail.com` on the built-in
    /// list) is learned: allowing it means never flagging it, and its own lookalikes
    /// (`gmial.com`) are exactly what a host that mails it needs caught.
    pub fn choose(c: &Correspondents, configured: &Engine) -> Self {
        let names = c
            .to_protect(|d| {
                !distinctive(d)
                    || !matches!(
                        configured.classify(d),
                        Classification::Clean | Classification::Allowed { .. }
                    )
            })
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
        let learned = LearnedProtection::choose(&c, &Engine::new(&configured).expect("engine"));
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
    fn what_the_configured_policy_protects_or_resembles_is_never_learned() {
        // hpefs.com resembles a configured hpefs.co.uk: an old friend, not a new target;
        // the configured entry itself is not learned twice.
        let c = ledger_with("named", &[("hpefs.com", 5, 2), ("hpefs.co.uk", 5, 2)]);
        let configured = Policy {
            protect: vec![ProtectEntry::new("hpefs.co.uk")],
            ..Policy::default()
        };
        let learned = LearnedProtection::choose(&c, &Engine::new(&configured).expect("engine"));
        assert!(learned.is_empty(), "{learned:?}");
    }

    #[test]
    fn an_allowed_provider_mailed_every_day_is_learned() {
        // The example: a host with no protect list that really mails gmail.com
        // (on the built-in allow list) catches gmial.com.
        let c = ledger_with("allowed", &[("gmail.com", 5, 2)]);
        let configured = Policy::default();
        let learned = LearnedProtection::choose(&c, &Engine::new(&configured).expect("engine"));
        assert_eq!(learned.names, BTreeSet::from(["gmail.com".to_string()]));
        let engine = learned.engine(&configured, Action::Alert).expect("engine");
        match engine.classify("gmial.com") {
            Classification::Typosquat(f) => assert_eq!(f.target, "gmail.com"),
            other => panic!("{other:?}"),
        }
        assert!(!matches!(
            engine.classify("gmail.com"),
            Classification::Typosquat(_) | Classification::Lookalike(_)
        ));
    }

    #[test]
    fn short_labels_are_not_learned() {
        // Seen in the quality step: learned `ac.cd` made every `ac.XX` university a
        // suffix typo of it.
        let c = ledger_with(
            "short",
            &[("ac.cd", 5, 2), ("ibm.com", 5, 2), ("contoso.com", 5, 2)],
        );
        let learned =
            LearnedProtection::choose(&c, &Engine::new(&Policy::default()).expect("engine"));
        assert_eq!(learned.names, BTreeSet::from(["contoso.com".to_string()]));
    }
}
