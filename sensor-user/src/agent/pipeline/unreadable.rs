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

/// `name` without the labels that are no host name's, when it had some and something
/// is left; `None` otherwise (a valid name, or nothing readable).
pub fn readable_part(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    let kept: Vec<&str> = labels
        .iter()
        .copied()
        .filter(|l| !l.is_empty() && Name::parse(l).is_ok_and(|n| !n.ascii.contains('.')))
        .collect();
    (!kept.is_empty() && kept.len() < labels.len()).then(|| kept.join("."))
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
        assert_eq!(readable_part("army.ml"), None);
        assert_eq!(readable_part("xn--zz"), None);
    }
}
