//! The score of a finding: how sure the engine is that the name imitates the protected
//! one, from the evidence alone. It is monotone: more changes never score higher than
//! fewer, and a confusable character (one that renders like the original) is no change.
//!
//! | score | evidence |
//! |---|---|
//! | 0.95 | renders like the protected name: only confusable characters differ |
//! | 0.90 | the protected label spelt exactly (or by confusables) with one change to what follows it: suffix typo, swap, appended, cut short, dot dropped; label of 6+ letters |
//! | 0.85 | one likely slip in a label of 6+ letters (neighbouring key, doubled or dropped letter, swapped pair, vowel, similar glyph, hyphen), or the real name as someone else's subdomain |
//! | 0.75 | one less likely change in a label of 6+ letters (an unrelated letter, a word or a dot added, a bit flipped) |
//! | −0.05 per letter under 6 | the same single change on a shorter label (a 2-letter label loses 0.20) |
//! | 0.50 | two likely slips in a label of 8+ letters (never more than any single change) |
//! | 0.45 | two slips, one of them unlikely, in a label of 8+ letters |

use super::rule::Rule;

/// Highest score: only confusable characters differ.
pub const CONFUSABLE: f32 = 0.95;
/// A single change never scores below this, two changes never above it.
pub const ONE_CHANGE_FLOOR: f32 = 0.5;
/// Labels shorter than this lose [`SHORT_PENALTY`] per missing letter.
pub const FULL_LEN: usize = 6;
/// What each letter under [`FULL_LEN`] costs a single change.
pub const SHORT_PENALTY: f32 = 0.05;

/// The evidence behind one finding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The rule that matched.
    pub rule: Rule,
    /// Visible changes (0 when only confusables differ).
    pub changes: usize,
    /// Whether every change is a likely slip.
    pub likely: bool,
    /// Letters in the protected label.
    pub label_len: usize,
}

/// The calibrated score of `e` (see the module table).
pub fn score(e: Evidence) -> f32 {
    match e.changes {
        0 => CONFUSABLE,
        1 => {
            let base = if e.rule.is_suffix_change() {
                0.9
            } else if e.rule == Rule::ProtectedAsSubdomain || e.likely {
                0.85
            } else {
                0.75
            };
            let short = FULL_LEN.saturating_sub(e.label_len) as f32 * SHORT_PENALTY;
            (base - short).max(ONE_CHANGE_FLOOR)
        }
        2 if e.likely => ONE_CHANGE_FLOOR,
        _ => ONE_CHANGE_FLOOR - 0.05,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(rule: Rule, changes: usize, likely: bool, label_len: usize) -> f32 {
        score(Evidence {
            rule,
            changes,
            likely,
            label_len,
        })
    }

    #[test]
    fn more_changes_never_score_higher() {
        let mut by_changes: Vec<Vec<f32>> = vec![Vec::new(); 3];
        for rule in Rule::ALL {
            for likely in [true, false] {
                for len in 1..20 {
                    for (changes, scores) in by_changes.iter_mut().enumerate() {
                        scores.push(ev(rule, changes, likely, len));
                    }
                }
            }
        }
        let min = |v: &[f32]| v.iter().copied().fold(f32::MAX, f32::min);
        let max = |v: &[f32]| v.iter().copied().fold(f32::MIN, f32::max);
        assert!(min(&by_changes[0]) > max(&by_changes[1]));
        assert!(min(&by_changes[1]) >= max(&by_changes[2]));
    }

    #[test]
    fn shorter_labels_and_unlikely_changes_score_lower() {
        let long = ev(Rule::Repetition, 1, true, 8);
        let short = ev(Rule::Repetition, 1, true, 2);
        assert!(short < long, "{short} {long}");
        assert!(ev(Rule::Replacement, 1, false, 8) < ev(Rule::Replacement, 1, true, 8));
        assert_eq!(ev(Rule::SuffixTypo, 1, true, 8), 0.9);
    }
}
