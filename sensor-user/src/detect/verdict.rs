//! What the engine says about a name.

use serde::Serialize;

use super::{name::InvalidName, policy::Action, rule::Rule};

/// Why a name is a lookalike.
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
    /// What the target's policy says to do.
    pub action: Action,
}

/// The engine's answer for one name.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
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
    /// A lookalike of a protected entry.
    Typosquat(Finding),
    /// Not a domain.
    Invalid(InvalidName),
}

impl Verdict {
    /// `protected`, `allowed`, `clean`, `typosquat` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Protected { .. } => "protected",
            Verdict::Allowed { .. } => "allowed",
            Verdict::Clean => "clean",
            Verdict::Typosquat(_) => "typosquat",
            Verdict::Invalid(_) => "invalid",
        }
    }

    /// The lookalike finding, if any.
    pub fn finding(&self) -> Option<&Finding> {
        match self {
            Verdict::Typosquat(f) => Some(f),
            _ => None,
        }
    }
}

/// The JSON line `mxsentry check --json` writes for one name.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The name as given (normalised when valid).
    pub domain: &'a str,
    /// See [`Verdict::kind`].
    pub verdict: &'static str,
    /// Protected entry (typosquat, protected) or allow entry (allowed).
    pub target: Option<&'a str>,
    /// Rule name for a typosquat.
    pub rule: Option<&'static str>,
    /// Edit distance for a typosquat.
    pub distance: Option<usize>,
    /// Confidence for a typosquat.
    pub score: Option<f32>,
    /// Why, in a sentence (also the reason a name is invalid).
    pub explanation: Option<String>,
    /// alert or block, for a typosquat.
    pub action: Option<&'static str>,
}

impl<'a> Report<'a> {
    /// Builds the report line for `domain` and its verdict.
    pub fn new(domain: &'a str, verdict: &'a Verdict) -> Self {
        let mut r = Report {
            domain,
            verdict: verdict.kind(),
            target: None,
            rule: None,
            distance: None,
            score: None,
            explanation: None,
            action: None,
        };
        match verdict {
            Verdict::Protected { target } => {
                r.target = Some(target);
                r.explanation = Some(format!("{domain} is protected ({target})"));
            }
            Verdict::Allowed { by } => {
                r.target = Some(by);
                r.explanation = Some(format!("{domain} is on the allow list ({by})"));
            }
            Verdict::Clean => {}
            Verdict::Typosquat(f) => {
                r.target = Some(&f.target);
                r.rule = Some(f.rule.name());
                r.distance = Some(f.distance);
                r.score = Some((f.score * 100.0).round() / 100.0);
                r.explanation = Some(f.explanation.clone());
                r.action = Some(f.action.name());
            }
            Verdict::Invalid(reason) => r.explanation = Some(reason.to_string()),
        }
        r
    }
}
