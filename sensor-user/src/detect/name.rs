//! Normalising a name as it appears on the wire into a checked domain.

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Why a name is not a domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// Nothing but dots or whitespace.
    #[error("empty name")]
    Empty,
    /// Two dots in a row, or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than DNS allows.
    #[error("label over 63 bytes")]
    LabelTooLong,
    /// A name longer than DNS allows.
    #[error("name over 253 bytes")]
    NameTooLong,
    /// A control character, space or other byte no host name carries.
    #[error("character {0:?} is not allowed in a domain")]
    BadCharacter(char),
    /// Punycode that does not decode, or Unicode that UTS #46 rejects.
    #[error("not a valid internationalised name (bad punycode or disallowed character)")]
    Idna,
}

/// A checked, normalised domain: lower-case ASCII (punycode) and its Unicode form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Lower-case A-label form without the trailing dot, e.g. `xn--rmy-pla.mil`.
    pub ascii: String,
    /// The same name with punycode decoded, e.g. `ärmy.mil`.
    pub unicode: String,
}

impl Name {
    /// Normalises `raw` (any case, optional trailing dot, punycode or Unicode).
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        let trimmed = raw.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if let Some(c) = name.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(InvalidName::BadCharacter(c));
        }
        let ascii = if name.is_ascii() && !has_punycode(name) {
            // Fast path: plain LDH names only need lower-casing.
            name.to_ascii_lowercase()
        } else {
            Uts46::new()
                .to_ascii(
                    name.as_bytes(),
                    AsciiDenyList::EMPTY,
                    Hyphens::Allow,
                    DnsLength::Ignore,
                )
                .map_err(|_| InvalidName::Idna)?
                .into_owned()
        };
        check_shape(&ascii)?;
        let unicode = if has_punycode(&ascii) {
            let (u, res) =
                Uts46::new().to_unicode(ascii.as_bytes(), AsciiDenyList::EMPTY, Hyphens::Allow);
            res.map_err(|_| InvalidName::Idna)?;
            u.into_owned()
        } else {
            ascii.clone()
        };
        Ok(Self { ascii, unicode })
    }

    /// Labels of the ASCII form, left to right.
    pub fn ascii_labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.ascii.split('.')
    }
}

fn has_punycode(name: &str) -> bool {
    name.split('.')
        .any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"))
}

/// DNS length limits and host-name characters (letters, digits, hyphen; underscore
/// for service labels such as `_dmarc`).
fn check_shape(ascii: &str) -> Result<(), InvalidName> {
    if ascii.len() > 253 {
        return Err(InvalidName::NameTooLong);
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(InvalidName::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(InvalidName::LabelTooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(InvalidName::BadCharacter(c));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_trailing_dot_and_punycode_normalise() {
        let n = Name::parse("ARMY.Mil.").unwrap();
        assert_eq!(n.ascii, "army.mil");
        let n = Name::parse("xn--rmy-pla.mil").unwrap();
        assert_eq!(n.unicode, "ärmy.mil");
        let n = Name::parse("ÄRMY.mil").unwrap();
        assert_eq!(n.ascii, "xn--rmy-pla.mil");
        assert_eq!(n.unicode, "ärmy.mil");
    }

    #[test]
    fn bad_names_say_why() {
        assert_eq!(Name::parse(""), Err(InvalidName::Empty));
        assert_eq!(Name::parse("."), Err(InvalidName::Empty));
        assert_eq!(Name::parse("a..mil"), Err(InvalidName::EmptyLabel));
        assert_eq!(Name::parse(".a.mil"), Err(InvalidName::EmptyLabel));
        assert_eq!(
            Name::parse(&format!("{}.com", "a".repeat(64))),
            Err(InvalidName::LabelTooLong)
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(Name::parse(&long), Err(InvalidName::NameTooLong));
        assert_eq!(Name::parse("xn--zz.com"), Err(InvalidName::Idna));
        assert_eq!(Name::parse("a b.com"), Err(InvalidName::BadCharacter(' ')));
        assert_eq!(
            Name::parse("a\u{7}b.com"),
            Err(InvalidName::BadCharacter('\u{7}'))
        );
        assert_eq!(Name::parse("a/b.com"), Err(InvalidName::BadCharacter('/')));
        assert!(Name::parse("_dmarc.example.com").is_ok());
    }

    #[test]
    fn maximal_sizes_pass() {
        let label = "a".repeat(63);
        assert!(Name::parse(&format!("{label}.com")).is_ok());
        let name = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(name.len(), 253);
        assert!(Name::parse(&name).is_ok());
    }
}
