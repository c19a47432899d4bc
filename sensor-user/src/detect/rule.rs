//! The named rules a lookalike can match, and the words that explain each match.

use unicode_security::MixedScript as _;

use super::{
    align::{Alignment, Step, align, at_end, one_bit},
    fold, keyboard,
};

/// How a lookalike was made from the protected name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A character added at the end of the name (or of a hyphenated part).
    Addition,
    /// One bit of one character flipped (memory or transmission errors).
    Bitsquatting,
    /// Every letter written in Cyrillic look-alikes.
    Cyrillic,
    /// Look-alike characters (other scripts, accents, `rn` for `m`, `1` for `l`).
    Homoglyph,
    /// Look-alike characters from more than one script in one label.
    MixedScript,
    /// A hyphen put into the name.
    Hyphenation,
    /// A character slipped in next to a neighbouring key.
    Insertion,
    /// A character left out.
    Omission,
    /// An `s` or `es` added.
    Plural,
    /// A character typed twice.
    Repetition,
    /// A character replaced by another (often a neighbouring key).
    Replacement,
    /// A dot put into the name, making a subdomain of a shorter name.
    Subdomain,
    /// Two neighbouring characters swapped.
    Transposition,
    /// One vowel swapped for another.
    VowelSwap,
    /// A word (login, secure, mail...) added to the name.
    Dictionary,
    /// Two typing slips in a long name.
    TwoEdits,
    /// A typo inside the public suffix (`mil` → `ml`).
    SuffixTypo,
    /// The suffix replaced by one it is often confused with (`com` → `co`).
    SuffixSwap,
    /// A multi-label suffix cut short (`gov.uk` → `uk`).
    SuffixTruncated,
    /// A public suffix appended after the real name (`army.mil.com`).
    SuffixAppended,
    /// The dot between name and suffix dropped or made a hyphen (`armymil.com`).
    DotDropped,
    /// The real name used as a subdomain of someone else's domain.
    ProtectedAsSubdomain,
}

impl Rule {
    /// Every rule, for reports and tests.
    pub const ALL: [Rule; 22] = [
        Rule::Addition,
        Rule::Bitsquatting,
        Rule::Cyrillic,
        Rule::Homoglyph,
        Rule::MixedScript,
        Rule::Hyphenation,
        Rule::Insertion,
        Rule::Omission,
        Rule::Plural,
        Rule::Repetition,
        Rule::Replacement,
        Rule::Subdomain,
        Rule::Transposition,
        Rule::VowelSwap,
        Rule::Dictionary,
        Rule::TwoEdits,
        Rule::SuffixTypo,
        Rule::SuffixSwap,
        Rule::SuffixTruncated,
        Rule::SuffixAppended,
        Rule::DotDropped,
        Rule::ProtectedAsSubdomain,
    ];

    /// The stable name used in events, metrics and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Addition => "addition",
            Rule::Bitsquatting => "bitsquatting",
            Rule::Cyrillic => "cyrillic",
            Rule::Homoglyph => "homoglyph",
            Rule::MixedScript => "mixed-script",
            Rule::Hyphenation => "hyphenation",
            Rule::Insertion => "insertion",
            Rule::Omission => "omission",
            Rule::Plural => "plural",
            Rule::Repetition => "repetition",
            Rule::Replacement => "replacement",
            Rule::Subdomain => "subdomain",
            Rule::Transposition => "transposition",
            Rule::VowelSwap => "vowel-swap",
            Rule::Dictionary => "dictionary",
            Rule::TwoEdits => "two-edits",
            Rule::SuffixTypo => "suffix-typo",
            Rule::SuffixSwap => "suffix-swap",
            Rule::SuffixTruncated => "suffix-truncated",
            Rule::SuffixAppended => "suffix-appended",
            Rule::DotDropped => "dot-dropped",
            Rule::ProtectedAsSubdomain => "protected-as-subdomain",
        }
    }

    /// Whether the rule changes what follows the protected label, the label itself intact.
    pub fn is_suffix_change(self) -> bool {
        matches!(
            self,
            Rule::SuffixTypo
                | Rule::SuffixSwap
                | Rule::SuffixTruncated
                | Rule::SuffixAppended
                | Rule::DotDropped
        )
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Names the rule for one change from protected label `p`, with the phrase for it.
pub fn change_rule(p: &[char], step: &Step) -> (Rule, String) {
    let ps: String = p.iter().collect();
    match *step {
        Step::Delete { ch, .. } => (Rule::Omission, format!("\"{ps}\" lost its \"{ch}\"")),
        Step::Insert { at, ch } => insert_rule(p, &ps, at, ch),
        Step::Substitute { from, to, .. } => substitute_rule(&ps, from, to),
        Step::Transpose { at } => (
            Rule::Transposition,
            format!(
                "\"{}{}\" in \"{ps}\" was swapped to \"{}{}\"",
                p[at],
                p[at + 1],
                p[at + 1],
                p[at]
            ),
        ),
        Step::Confusable { ref from, ref to } => (
            Rule::Homoglyph,
            format!("\"{to}\" stands in for \"{from}\" in \"{ps}\""),
        ),
        Step::Resembles { ref from, ref to } => (
            Rule::Homoglyph,
            format!("\"{to}\", which resembles \"{from}\", replaced it in \"{ps}\""),
        ),
    }
}

/// The rule and phrase for `ch` inserted at `at` in `p`.
fn insert_rule(p: &[char], ps: &str, at: usize, ch: char) -> (Rule, String) {
    let prev = at.checked_sub(1).and_then(|i| p.get(i)).copied();
    let next = p.get(at).copied();
    if ch == '-' {
        (Rule::Hyphenation, format!("a hyphen was put into \"{ps}\""))
    } else if prev == Some(ch) || next == Some(ch) {
        (
            Rule::Repetition,
            format!("the \"{ch}\" of \"{ps}\" is doubled"),
        )
    } else if at_end(p, at) && ch == 's' {
        (Rule::Plural, format!("\"{ps}\" was made plural"))
    } else if at_end(p, at) {
        (
            Rule::Addition,
            format!("\"{ch}\" was added to the end of \"{ps}\""),
        )
    } else if [prev, next]
        .into_iter()
        .flatten()
        .any(|n| keyboard::adjacent(ch, n))
    {
        (
            Rule::Insertion,
            format!("\"{ch}\" was slipped into \"{ps}\" from a neighbouring key"),
        )
    } else {
        (
            Rule::Insertion,
            format!("\"{ch}\" was slipped into \"{ps}\""),
        )
    }
}

/// The rule and phrase for `from` replaced by `to` in `ps`.
fn substitute_rule(ps: &str, from: char, to: char) -> (Rule, String) {
    if is_vowel(from) && is_vowel(to) {
        (
            Rule::VowelSwap,
            format!("the vowel \"{from}\" in \"{ps}\" became \"{to}\""),
        )
    } else if keyboard::adjacent(from, to) {
        (
            Rule::Replacement,
            format!("\"{from}\" in \"{ps}\" became \"{to}\", its neighbour on the keyboard"),
        )
    } else if fold::similar(from, to) {
        (
            Rule::Homoglyph,
            format!("\"{to}\", which resembles \"{from}\", replaced it in \"{ps}\""),
        )
    } else if one_bit(from, to) {
        (
            Rule::Bitsquatting,
            format!("\"{from}\" in \"{ps}\" became \"{to}\", one flipped bit away"),
        )
    } else {
        (
            Rule::Replacement,
            format!("\"{from}\" in \"{ps}\" became \"{to}\""),
        )
    }
}

fn script_of(c: char) -> Option<&'static str> {
    Some(match c as u32 {
        0x370..=0x3ff | 0x1f00..=0x1fff => "Greek",
        0x400..=0x52f | 0x1c80..=0x1c8f | 0x2de0..=0x2dff | 0xa640..=0xa69f => "Cyrillic",
        0x530..=0x58f => "Armenian",
        _ => return None,
    })
}

/// Describes the characters of `q` that only look like those of protected label `p`,
/// and names the rule such a name matches: `Cyrillic` when every letter is Cyrillic,
/// `MixedScript` when scripts are mixed, `Homoglyph` otherwise. `None` when nothing
/// stands in for anything.
pub fn confusables(p: &[char], q: &str, steps: &[Step]) -> Option<(Rule, String)> {
    let ps: String = p.iter().collect();
    let subs: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Confusable { from, to } => {
                let script = to.chars().find_map(script_of);
                Some(match script {
                    Some(sc) => format!("{sc} \"{to}\" stands in for \"{from}\""),
                    None => format!("\"{to}\" stands in for \"{from}\""),
                })
            }
            _ => None,
        })
        .collect();
    if subs.is_empty() {
        return None;
    }
    let letters = || q.chars().filter(|c| c.is_alphabetic());
    let cyrillic = |c: char| script_of(c) == Some("Cyrillic");
    if letters().next().is_some() && letters().all(cyrillic) {
        return Some((
            Rule::Cyrillic,
            format!("\"{q}\" is written in Cyrillic letters that look like \"{ps}\""),
        ));
    }
    let rule = if q.is_single_script() {
        Rule::Homoglyph
    } else {
        Rule::MixedScript
    };
    Some((rule, format!("{} in \"{ps}\"", subs.join(", "))))
}

/// Names the rule for seen label `q` aligned with protected label `p`: the change when
/// there is one (with any confusables named too), else the kind of look-alike.
pub fn label_rule(p: &[char], q: &str, a: &Alignment) -> (Rule, String) {
    let look = confusables(p, q, &a.steps);
    let changes: Vec<&Step> = a.changes().collect();
    let (rule, phrase) = match changes.as_slice() {
        [] => return look.unwrap_or((Rule::Homoglyph, format!("\"{q}\" looks like it"))),
        [one] => change_rule(p, one),
        _ => {
            let ps: String = p.iter().collect();
            let each: Vec<String> = changes.iter().map(|s| change_rule(p, s).1).collect();
            (
                Rule::TwoEdits,
                format!(
                    "\"{q}\" is two slips away from \"{ps}\": {}",
                    each.join(", and ")
                ),
            )
        }
    };
    match look {
        Some((_, l)) => (rule, format!("{l}, and {phrase}")),
        None => (rule, phrase),
    }
}

/// Describes an edit inside a suffix: `the suffix "mil" lost its "i"`.
pub fn suffix_phrase(p: &[char], q: &[char]) -> String {
    let ps: String = p.iter().collect();
    let qs: String = q.iter().collect();
    let a = align(p, q);
    let changes: Vec<&Step> = a.steps.iter().collect();
    match changes.as_slice() {
        [Step::Delete { ch, .. }] => format!("the suffix \"{ps}\" lost its \"{ch}\""),
        [Step::Insert { ch, .. }] => format!("the suffix \"{ps}\" gained a \"{ch}\""),
        [Step::Substitute { from, to, .. }] => {
            format!("the suffix \"{ps}\" has \"{to}\" where \"{from}\" belongs")
        }
        [Step::Transpose { at }] => {
            format!(
                "the suffix \"{ps}\" has \"{}{}\" swapped",
                p[*at],
                p[*at + 1]
            )
        }
        _ => format!("the suffix \"{ps}\" became \"{qs}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::align::align;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    fn rule(p: &str, q: &str) -> Rule {
        label_rule(&c(p), q, &align(&c(p), &c(q))).0
    }

    #[test]
    fn each_single_edit_gets_its_rule() {
        assert_eq!(rule("example", "exmple"), Rule::Omission);
        assert_eq!(rule("example", "exxample"), Rule::Repetition);
        assert_eq!(rule("example", "ex-ample"), Rule::Hyphenation);
        assert_eq!(rule("example", "examples"), Rule::Plural);
        assert_eq!(rule("example", "examplez"), Rule::Addition);
        assert_eq!(rule("my-bank", "myz-bank"), Rule::Addition);
        assert_eq!(rule("example", "exsample"), Rule::Insertion);
        assert_eq!(rule("example", "exampla"), Rule::VowelSwap);
        assert_eq!(rule("example", "exanple"), Rule::Replacement);
        assert_eq!(rule("example", "ezample"), Rule::Replacement);
        assert_eq!(rule("example", "exaople"), Rule::Bitsquatting);
        assert_eq!(rule("paypal", "paypa1"), Rule::Homoglyph);
        assert_eq!(rule("example", "exmaple"), Rule::Transposition);
    }

    #[test]
    fn scripts_are_named() {
        assert_eq!(rule("apple", "аррӏе"), Rule::Cyrillic);
        assert_eq!(rule("apple", "аpple"), Rule::MixedScript);
        assert_eq!(rule("apple", "ạpple"), Rule::Homoglyph);
    }

    #[test]
    fn explanations_name_the_real_change() {
        let say = |p: &str, q: &str| label_rule(&c(p), q, &align(&c(p), &c(q))).1;
        assert_eq!(
            say("army", "аrmy"),
            "Cyrillic \"а\" stands in for \"a\" in \"army\""
        );
        assert_eq!(
            say("army", "аrmyy"),
            "Cyrillic \"а\" stands in for \"a\" in \"army\", and the \"y\" of \"army\" is doubled"
        );
        assert_eq!(
            say("login", "logln"),
            "\"l\", which resembles \"i\", replaced it in \"login\""
        );
    }

    #[test]
    fn suffix_phrases_read_well() {
        assert_eq!(
            suffix_phrase(&c("mil"), &c("ml")),
            "the suffix \"mil\" lost its \"i\""
        );
        assert_eq!(
            suffix_phrase(&c("mil"), &c("mill")),
            "the suffix \"mil\" gained a \"l\""
        );
        assert_eq!(
            suffix_phrase(&c("gov.uk"), &c("gov.pk")),
            "the suffix \"gov.uk\" has \"p\" where \"u\" belongs"
        );
        assert_eq!(
            suffix_phrase(&c("mil"), &c("mli")),
            "the suffix \"mil\" has \"il\" swapped"
        );
    }
}
