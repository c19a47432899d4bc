//! What to protect, what to allow, and what to do about a lookalike.

use serde::{Deserialize, Serialize};

use super::name::{InvalidName, Name};

/// What a lookalike of an entry triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Report it (event, metric, alert); mail still flows.
    Alert,
    /// Report it and, in enforce mode, refuse the delivery.
    Block,
}

impl Action {
    /// The name used in events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Block => "block",
        }
    }
}

/// One protected domain or public suffix, with its own action if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtectEntry {
    /// Domain (`army.mil`) or public suffix (`mil`, `gov.uk`), as written by the user.
    pub entry: String,
    /// Overrides the policy's default action.
    pub action: Option<Action>,
    /// The organisation's own other domains (`mod.uk` for `mod.gov.uk`): protected with
    /// their subdomains, and their lookalikes reported against this entry.
    pub also: Vec<String>,
    /// Whether a `lookalike` (a resemblance inside a restricted registry) takes this
    /// entry's action; otherwise it is only reported.
    pub block_restricted: bool,
}

impl ProtectEntry {
    /// An entry with no action of its own, no other domains, lookalikes reported only.
    pub fn new(entry: impl Into<String>) -> Self {
        Self {
            entry: entry.into(),
            ..Self::default()
        }
    }
}

/// Everything the engine needs to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The protected entries.
    pub protect: Vec<ProtectEntry>,
    /// Names (and everything under them) never reported.
    pub allow: Vec<String>,
    /// Whether the built-in list of major mail providers is allowed too.
    pub builtin_allow: bool,
    /// Action for entries that name none.
    pub default_action: Action,
    /// Words, besides the built-in ones, that lookalikes add to a name.
    pub words: Vec<String>,
    /// Suffix pairs, besides the built-in ones, that people confuse.
    pub suffix_swaps: Vec<(String, String)>,
    /// Suffixes, besides the built-in table, where only vetted bodies can register.
    pub restricted_registries: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            protect: Vec::new(),
            allow: Vec::new(),
            builtin_allow: true,
            default_action: Action::Alert,
            words: Vec::new(),
            suffix_swaps: Vec::new(),
            restricted_registries: Vec::new(),
        }
    }
}

/// A policy the engine cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A protected entry is not a domain.
    #[error("protected entry {entry:?} is not a domain: {reason}")]
    BadProtected {
        /// The entry as given.
        entry: String,
        /// Why.
        reason: InvalidName,
    },
    /// One of an entry's own other domains (`also`) is not a domain.
    #[error("{domain:?} in `also` of {entry:?} is not a domain: {reason}")]
    BadAlso {
        /// The protected entry it belongs to.
        entry: String,
        /// The domain as given.
        domain: String,
        /// Why.
        reason: InvalidName,
    },
    /// An allow-list entry is not a domain.
    #[error("allow-list entry {entry:?} is not a domain: {reason}")]
    BadAllowed {
        /// The entry as given.
        entry: String,
        /// Why.
        reason: InvalidName,
    },
    /// A dictionary word is empty or has characters no label carries.
    #[error("dictionary word {0:?} must be letters, digits or hyphens")]
    BadWord(String),
    /// A suffix in the swap table is not a domain.
    #[error("suffix {entry:?} in suffix_swaps is not a domain: {reason}")]
    BadSuffix {
        /// The suffix as given.
        entry: String,
        /// Why.
        reason: InvalidName,
    },
    /// A restricted registry is not a domain.
    #[error("restricted registry {entry:?} is not a domain: {reason}")]
    BadRestricted {
        /// The suffix as given.
        entry: String,
        /// Why.
        reason: InvalidName,
    },
}

/// Normalises a protected entry, saying which one failed.
pub fn protected_name(entry: &str) -> Result<Name, PolicyError> {
    Name::parse(entry).map_err(|reason| PolicyError::BadProtected {
        entry: entry.into(),
        reason,
    })
}
