//! The named rules a lookalike can match, and the words that explain each match.

use unicode_security::MixedScript as _;

use super::{
    edit::{Edit, single_edit},
    keyboard,
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

    /// Whether the rule is a character edit of the label (less telling on short labels).
    pub fn edits_the_label(self) -> bool {
        matches!(
            self,
            Rule::Addition
                | Rule::Bitsquatting
                | Rule::Hyphenation
                | Rule::Insertion
                | Rule::Omission
                | Rule::Plural
                | Rule::Repetition
                | Rule::Replacement
                | Rule::Subdomain
                | Rule::Transposition
                | Rule::VowelSwap
                | Rule::TwoEdits
        )
    }

    /// How sure a match by this rule is, before adjusting for the name's length.
    pub fn base_score(self) -> f32 {
        match self {
            Rule::Cyrillic | Rule::Homoglyph | Rule::MixedScript => 0.95,
            Rule::SuffixTypo | Rule::SuffixSwap | Rule::SuffixAppended => 0.9,
            Rule::ProtectedAsSubdomain | Rule::DotDropped | Rule::SuffixTruncated => 0.85,
            Rule::Transposition | Rule::Omission | Rule::Repetition | Rule::Insertion => 0.85,
            Rule::Replacement | Rule::VowelSwap | Rule::Hyphenation | Rule::Subdomain => 0.8,
            Rule::Addition | Rule::Plural | Rule::Bitsquatting => 0.75,
            Rule::Dictionary => 0.7,
            Rule::TwoEdits => 0.6,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn one_bit(a: char, b: char) -> bool {
    (a as u32 ^ b as u32).count_ones() == 1
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Names the rule for a label `q` one edit away from the protected label `p`, with the
/// phrase that explains it.
pub fn single_edit_rule(p: &[char], q: &[char]) -> Option<(Rule, String)> {
    let ps: String = p.iter().collect();
    let edit = single_edit(p, q)?;
    Some(match edit {
        Edit::Delete { ch, .. } => (Rule::Omission, format!("\"{ps}\" lost its \"{ch}\"")),
        Edit::Insert { at, ch } => {
            let prev = at.checked_sub(1).and_then(|i| p.get(i)).copied();
            let next = p.get(at).copied();
            let at_end = next.is_none() || next == Some('-');
            if ch == '-' {
                (Rule::Hyphenation, format!("a hyphen was put into \"{ps}\""))
            } else if prev == Some(ch) || next == Some(ch) {
                (
                    Rule::Repetition,
                    format!("the \"{ch}\" of \"{ps}\" is doubled"),
                )
            } else if at_end && ch == 's' {
                (Rule::Plural, format!("\"{ps}\" was made plural"))
            } else if at_end {
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
        Edit::Substitute { from, to, .. } => {
            if is_vowel(from) && is_vowel(to) {
                (
                    Rule::VowelSwap,
                    format!("the vowel \"{from}\" in \"{ps}\" became \"{to}\""),
                )
            } else if keyboard::adjacent(from, to) {
                (
                    Rule::Replacement,
                    format!(
                        "\"{from}\" in \"{ps}\" became \"{to}\", its neighbour on the keyboard"
                    ),
                )
            } else if super::fold::same_glyph(from, to) {
                (
                    Rule::Homoglyph,
                    format!("\"{to}\" stands in for \"{from}\" in \"{ps}\""),
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
        Edit::Transpose { at } => (
            Rule::Transposition,
            format!(
                "\"{}{}\" in \"{ps}\" was swapped to \"{}{}\"",
                p[at],
                p[at + 1],
                p[at + 1],
                p[at]
            ),
        ),
    })
}

/// Names the rule for a label `q` that looks like `p` (same visual key) but is spelt
/// differently.
pub fn lookalike_rule(p: &[char], q: &str) -> (Rule, String) {
    let ps: String = p.iter().collect();
    let qc: Vec<char> = q.chars().collect();
    let letters = || q.chars().filter(|c| c.is_alphabetic());
    let cyrillic = |c: char| ('\u{400}'..='\u{52f}').contains(&c);
    if letters().all(cyrillic) && letters().next().is_some() {
        return (
            Rule::Cyrillic,
            format!("\"{q}\" is written in Cyrillic letters that look like \"{ps}\""),
        );
    }
    if !q.is_single_script() {
        let foreign: Vec<String> = qc
            .iter()
            .filter(|c| !c.is_ascii())
            .map(|c| format!("\"{c}\""))
            .collect();
        return (
            Rule::MixedScript,
            format!(
                "\"{q}\" mixes scripts: {} among Latin letters",
                foreign.join(", ")
            ),
        );
    }
    if let Some(Edit::Substitute { from, to, .. }) = single_edit(p, &qc) {
        return (
            Rule::Homoglyph,
            format!("\"{to}\" stands in for \"{from}\" in \"{ps}\""),
        );
    }
    let odd: Vec<String> = qc
        .iter()
        .filter(|c| !p.contains(c))
        .map(|c| format!("\"{c}\""))
        .collect();
    let what = if odd.is_empty() {
        "rearranged letters".to_string()
    } else {
        odd.join(", ")
    };
    (
        Rule::Homoglyph,
        format!("\"{q}\" uses look-alike characters ({what}) for \"{ps}\""),
    )
}

/// Describes an edit inside a suffix: `the suffix "mil" lost its "i"`.
pub fn suffix_phrase(p: &[char], q: &[char]) -> String {
    let ps: String = p.iter().collect();
    let qs: String = q.iter().collect();
    match single_edit(p, q) {
        Some(Edit::Delete { ch, .. }) => format!("the suffix \"{ps}\" lost its \"{ch}\""),
        Some(Edit::Insert { ch, .. }) => format!("the suffix \"{ps}\" gained a \"{ch}\""),
        Some(Edit::Substitute { from, to, .. }) => {
            format!("the suffix \"{ps}\" has \"{to}\" where \"{from}\" belongs")
        }
        Some(Edit::Transpose { at }) => {
            format!("the suffix \"{ps}\" has \"{}{}\" swapped", p[at], p[at + 1])
        }
        None => format!("the suffix \"{ps}\" became \"{qs}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str, q: &str) -> Rule {
        let (p, q): (Vec<char>, Vec<char>) = (p.chars().collect(), q.chars().collect());
        single_edit_rule(&p, &q)
            .map(|(r, _)| r)
            .expect("one edit apart")
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
        let p: Vec<char> = "apple".chars().collect();
        assert_eq!(lookalike_rule(&p, "аррӏе").0, Rule::Cyrillic);
        assert_eq!(lookalike_rule(&p, "аpple").0, Rule::MixedScript);
        assert_eq!(lookalike_rule(&p, "ạpple").0, Rule::Homoglyph);
    }

    #[test]
    fn suffix_phrases_read_well() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(
            suffix_phrase(&c("mil"), &c("ml")),
            "the suffix \"mil\" lost its \"i\""
        );
        assert_eq!(
            suffix_phrase(&c("mil"), &c("mill")),
            "the suffix \"mil\" gained a \"l\""
        );
    }
}
