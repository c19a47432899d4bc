//! Registrable domains (the Public Suffix List's view of who registered a name).

/// The registrable domain of `name` (`army.ml` for `mx.army.ml`), or `name` itself when
/// the list has none (a public suffix, or not a name).
pub fn registrable(name: &str) -> &str {
    psl::domain(name.as_bytes())
        .and_then(|d| std::str::from_utf8(d.as_bytes()).ok())
        .map_or(name, |d| &name[name.len() - d.len()..])
}

/// The registrable domain of `name` when it has one.
pub fn registrable_of(name: &str) -> Option<&str> {
    psl::domain(name.as_bytes())
        .and_then(|d| std::str::from_utf8(d.as_bytes()).ok())
        .map(|d| &name[name.len() - d.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("mx.army.ml"), "army.ml");
        assert_eq!(registrable("a.b.mod.gov.uk"), "mod.gov.uk");
        assert_eq!(registrable("mil"), "mil");
        assert_eq!(registrable_of("mil"), None);
        assert_eq!(
            registrable_of("mail.partner.example"),
            Some("partner.example")
        );
    }
}
