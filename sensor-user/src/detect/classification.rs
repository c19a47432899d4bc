//! What the engine says about a name.

use serde::Serialize;

use super::{name::InvalidName, policy::Action, registry::Registry, rule::Rule};

/// Why a name resembles a protected entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The protected entry it imitates.
    pub target: String,
    /// The rule that matched.
    pub rule: Rule,
    /// Character edits between the lookalike part and the target.
    pub distance: usize,
    /// Confidence in [0, 1].
    pub score: f32,
    /// One sentence for a person.
    pub explanation: String,
    /// What the target's policy says to do (`Alert` for a lookalike inside a restricted
    /// registry unless the entry sets `block_restricted`).
    pub action: Action,
    /// The restricted registry the name lies under, for a [`Classification::Lookalike`].
    pub registry: Option<Registry>,
}

/// The engine's answer for one name.
#[derive(Debug, Clone, PartialEq)]
pub enum Classification {
    /// The name is a protected entry or under one.
    Protected {
        /// The entry it falls under.
        target: String,
    },
    /// The name is on the allow list.
    Allowed {
        /// The allow-list entry it falls under.
        by: String,
    },
    /// Not protected, not a lookalike.
    Clean,
    /// Resembles a protected entry, in a registry anyone can register in.
    Typosquat(Finding),
    /// Resembles a protected entry, but lies under a restricted registry where only
    /// vetted bodies register: a misdirection risk, reported, not blocked by default.
    Lookalike(Finding),
    /// Not a domain.
    Invalid(InvalidName),
}

impl Classification {
    /// `protected`, `allowed`, `clean`, `typosquat`, `lookalike` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            Classification::Protected { .. } => "protected",
            Classification::Allowed { .. } => "allowed",
            Classification::Clean => "clean",
            Classification::Typosquat(_) => "typosquat",
            Classification::Lookalike(_) => "lookalike",
            Classification::Invalid(_) => "invalid",
        }
    }

    /// The finding of a typosquat or a lookalike.
    pub fn finding(&self) -> Option<&Finding> {
        match self {
            Classification::Typosquat(f) | Classification::Lookalike(f) => Some(f),
            _ => None,
        }
    }
}

/// The JSON line `mxsentry check --json` writes for one name.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The name as given (normalised when valid).
    pub domain: &'a str,
    /// See [`Classification::kind`].
    pub verdict: &'static str,
    /// Protected entry (typosquat, lookalike, protected) or allow entry (allowed).
    pub target: Option<&'a str>,
    /// Rule name for a typosquat or lookalike.
    pub rule: Option<&'static str>,
    /// Edit distance for a typosquat or lookalike.
    pub distance: Option<usize>,
    /// Confidence for a typosquat or lookalike (the scale is in docs/quality.md).
    pub score: Option<f32>,
    /// Why, in a sentence (also the reason a name is invalid).
    pub explanation: Option<String>,
    /// alert or block, for a typosquat or lookalike.
    pub action: Option<&'static str>,
    /// `restricted` for a lookalike (the name lies under a restricted registry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<&'static str>,
    /// The restricted registry's suffix, e.g. `mil.kr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_suffix: Option<&'a str>,
    /// Who may register there: military, government, education...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_kind: Option<&'static str>,
}

impl<'a> Report<'a> {
    /// Builds the report line for `domain` and its classification.
    pub fn new(domain: &'a str, verdict: &'a Classification) -> Self {
        let mut r = Report {
            domain,
            verdict: verdict.kind(),
            target: None,
            rule: None,
            distance: None,
            score: None,
            explanation: None,
            action: None,
            registry: None,
            registry_suffix: None,
            registry_kind: None,
        };
        match verdict {
            Classification::Protected { target } => {
                r.target = Some(target);
                r.explanation = Some(format!("{domain} is protected ({target})"));
            }
            Classification::Allowed { by } => {
                r.target = Some(by);
                r.explanation = Some(format!("{domain} is on the allow list ({by})"));
            }
            Classification::Clean => {}
            Classification::Typosquat(f) | Classification::Lookalike(f) => {
                r.target = Some(&f.target);
                r.rule = Some(f.rule.name());
                r.distance = Some(f.distance);
                r.score = Some((f.score * 100.0).round() / 100.0);
                r.explanation = Some(f.explanation.clone());
                r.action = Some(f.action.name());
                if let Some(reg) = &f.registry {
                    r.registry = Some("restricted");
                    r.registry_suffix = Some(&reg.suffix);
                    r.registry_kind = Some(reg.kind.name());
                }
            }
            Classification::Invalid(reason) => r.explanation = Some(reason.to_string()),
        }
        r
    }
}
