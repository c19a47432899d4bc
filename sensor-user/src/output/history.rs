//! The correspondents part of a detection: what this host's delivery history says about
//! the lookalike and its target.

use serde::Serialize;

/// A lookalike's place in the correspondents ledger.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct History {
    /// Never delivered to before.
    pub first_contact: bool,
    /// Itself an established correspondent (reported at info, never blocked).
    pub established: bool,
    /// The protected entry it resembles is an established correspondent.
    pub target_established: bool,
    /// What an operator might do about an established correspondent that looks like a
    /// protected entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl History {
    /// The history of `domain` (a lookalike of `target`), from the two ledger lookups.
    pub fn new(
        domain: &str,
        target: &str,
        first_contact: bool,
        established: bool,
        target_established: bool,
    ) -> Self {
        let advice = established.then(|| {
            format!(
                "{domain} is an established correspondent of this host: if it belongs to the \
                 organisation of {target}, add it to that entry's `also`; otherwise add it to \
                 `allow`"
            )
        });
        Self {
            first_contact,
            established,
            target_established,
            advice,
        }
    }
}
