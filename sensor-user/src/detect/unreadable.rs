//! Names that are not domains but still resolve.
//!
//! A label that is no host name's (punycode that does not decode, a byte no host name
//! carries, which the DNS decoder writes escaped) makes the whole name `invalid` to the
//! engine. Any resolver still serves it, and whoever writes a lookalike's DNS decides
//! what lies under the lookalike: `xn--zz.examp1e.com` judged as nothing was delivered
//! in enforce mode with no event, and its deliveries made `examp1e.com` an established
//! correspondent. Such a name is judged by its other labels, so it is never cleaner than
//! the name it sits in.

use crate::detect::Name;

/// `name` without the labels that are no host name's, when it had some and what is left
/// is a name; `None` otherwise (a valid name, or nothing readable). Labels that are each
/// valid can still make an invalid name together (IDNA's rules on right-to-left labels
/// apply to the whole name): then its internationalised labels go too.
pub fn readable_part(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    let readable = |l: &&str| !l.is_empty() && Name::parse(l).is_ok_and(|n| !n.ascii.contains('.'));
    let mut kept: Vec<&str> = labels.iter().copied().filter(readable).collect();
    if Name::parse(&kept.join(".")).is_err() {
        kept.retain(|l| !(l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--")));
    }
    let part = kept.join(".");
    (!kept.is_empty() && kept.len() < labels.len() && Name::parse(&part).is_ok()).then_some(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_labels_are_left_out() {
        assert_eq!(
            readable_part("xn--zz.examp1e.com").as_deref(),
            Some("examp1e.com")
        );
        assert_eq!(
            readable_part("example.com.xn--zz.evil.net.").as_deref(),
            Some("example.com.evil.net")
        );
        // hickory writes a byte no host name carries escaped.
        assert_eq!(
            readable_part("mx\\032a.army.ml").as_deref(),
            Some("army.ml")
        );
        // Each label valid, the whole not (a right-to-left label beside one that starts
        // with a digit).
        assert!(Name::parse("xn--4dbrk0ce.1.c0ntoso.com").is_err());
        assert_eq!(
            readable_part("xn--4dbrk0ce.1.c0ntoso.com").as_deref(),
            Some("1.c0ntoso.com")
        );
        assert_eq!(readable_part("army.ml"), None);
        assert_eq!(readable_part("xn--zz"), None);
    }
}
