//! The `[policy]` section: protected entries (with their own other domains), allow list,
//! words, suffix swaps, restricted registries.

use serde::{
    Deserialize, Deserializer,
    de::{
        MapAccess, Visitor,
        value::{MapAccessDeserializer, StrDeserializer},
    },
};

use crate::detect::{Action, Name, Policy, PolicyError, ProtectEntry};

/// A domain checked while the file is parsed, so the error carries its line; kept in its
/// normal form (lower-case A-labels, no trailing dot), the form names have on the wire and
/// in the kernel's hashes: `Bücher.de.` is `xn--bcher-kva.de`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(pub String);

// Checked inside the visitor, so toml attaches the element's own line to the error.
impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Domain;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a domain name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Domain, E> {
                match Name::parse(s) {
                    Ok(n) => Ok(Domain(n.ascii)),
                    Err(e) => Err(E::custom(format!("{s:?} is not a domain: {e}"))),
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// A protected entry: a bare domain, or a table with its own action and domains.
#[derive(Debug, Clone)]
pub enum ProtectItem {
    /// `"army.mil"`
    Bare(Domain),
    /// `{ entry = "mod.gov.uk", also = ["mod.uk"], action = "block", block_restricted = false }`
    Full(FullEntry),
}

// Written by hand: serde's untagged enums hide the inner error (and its line).
impl<'de> Deserialize<'de> for ProtectItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProtectItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a domain, or { entry = \"domain\", also = [\"domain\"...], \
                     action = \"alert\" | \"block\", block_restricted = true | false }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ProtectItem, E> {
                Domain::deserialize(StrDeserializer::<E>::new(s)).map(ProtectItem::Bare)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ProtectItem, A::Error> {
                FullEntry::deserialize(MapAccessDeserializer::new(map)).map(ProtectItem::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// The table form of a protected entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullEntry {
    /// Domain or public suffix.
    pub entry: Domain,
    /// alert or block.
    pub action: Option<Action>,
    /// The organisation's own other domains: protected, and their lookalikes reported
    /// against this entry.
    #[serde(default)]
    pub also: Vec<Domain>,
    /// Let a lookalike inside a restricted registry take this entry's action (by default
    /// it is only reported).
    #[serde(default)]
    pub block_restricted: bool,
}

/// `[policy]` as written in the file; a missing key takes its value from `Default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Protected domains and public suffixes.
    pub protect: Vec<ProtectItem>,
    /// Names never reported (each covers its subdomains).
    pub allow: Vec<Domain>,
    /// Allow the built-in list of major mail providers.
    pub builtin_allow: bool,
    /// Action for entries that name none.
    pub default_action: Action,
    /// Extra dictionary words.
    pub words: Vec<String>,
    /// Extra pairs of suffixes people confuse.
    pub suffix_swaps: Vec<(Domain, Domain)>,
    /// Extra suffixes where only vetted bodies can register (beside the built-in table).
    pub restricted_registries: Vec<Domain>,
    /// A config that protects nothing is meant so: without it, a reload that would drop
    /// every protected entry (an emptied or cut-short file) is refused.
    pub intentionally_empty: bool,
}

impl Default for PolicySection {
    fn default() -> Self {
        // The engine's defaults, with nothing protected.
        let p = Policy::default();
        Self {
            protect: Vec::new(),
            allow: Vec::new(),
            builtin_allow: p.builtin_allow,
            default_action: p.default_action,
            words: Vec::new(),
            suffix_swaps: Vec::new(),
            restricted_registries: Vec::new(),
            intentionally_empty: false,
        }
    }
}

impl PolicySection {
    /// The engine's policy (checked when the engine is built from it).
    pub fn to_policy(&self) -> Result<Policy, PolicyError> {
        let policy = Policy {
            protect: self
                .protect
                .iter()
                .map(|p| match p {
                    ProtectItem::Bare(d) => ProtectEntry::new(d.0.clone()),
                    ProtectItem::Full(f) => ProtectEntry {
                        entry: f.entry.0.clone(),
                        action: f.action,
                        also: f.also.iter().map(|d| d.0.clone()).collect(),
                        block_restricted: f.block_restricted,
                    },
                })
                .collect(),
            allow: self.allow.iter().map(|d| d.0.clone()).collect(),
            builtin_allow: self.builtin_allow,
            default_action: self.default_action,
            words: self.words.clone(),
            suffix_swaps: self
                .suffix_swaps
                .iter()
                .map(|(a, b)| (a.0.clone(), b.0.clone()))
                .collect(),
            restricted_registries: self
                .restricted_registries
                .iter()
                .map(|d| d.0.clone())
                .collect(),
        };
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError, Loaded};
    use crate::detect::Action;

    #[test]
    fn entries_bare_or_with_action() {
        let cfg = Config::parse(
            r#"
[policy]
default_action = "alert"
protect = ["example.com", { entry = "army.mil", action = "block" }, "mil"]
allow = ["partner.example"]
words = ["recruiting"]
suffix_swaps = [["com", "cc"]]
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let p = cfg.policy.to_policy().unwrap();
        assert_eq!(p.protect.len(), 3);
        assert_eq!(p.protect[1].action, Some(Action::Block));
        assert_eq!(p.allow, vec!["partner.example".to_string()]);
        let cfg = Config::parse(
            "[policy]\nprotect = [\"Bücher.DE.\"]\nallow = [\"Partner.Example.\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let p = cfg.policy.to_policy().unwrap();
        assert_eq!(p.protect[0].entry, "xn--bcher-kva.de");
        assert_eq!(p.allow, vec!["partner.example".to_string()]);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let err = |text: &str| match Loaded::parse(text, Path::new("t.toml")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        };
        let e = err("[policy]\nprotect = [\"ok.com\",\n  \"bad..name\"]\n");
        assert!(
            e.contains("line 3") && e.contains("bad..name") && e.contains("empty label"),
            "{e}"
        );
        let e = err("[policy]\nprotekt = []\n");
        assert!(e.contains("line 2") && e.contains("protekt"), "{e}");
        let e = err("[policy]\ndefault_action = \"drop\"\n");
        assert!(e.contains("line 2") && e.contains("drop"), "{e}");
        let e = err("[policy]\nwords = [\"a b\"]\n");
        assert!(e.contains("dictionary word"), "{e}");
        assert!(matches!(
            Config::load(Path::new("/nonexistent/mxsentry.toml")),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn own_domains_block_restricted_and_restricted_registries() {
        let cfg = Config::parse(
            r#"
[policy]
protect = [
  { entry = "mod.gov.uk", also = ["mod.uk", "fco.gov.uk"], action = "block", block_restricted = false },
  { entry = "army.mil", block_restricted = true },
]
restricted_registries = ["gov.example"]
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let p = cfg.policy.to_policy().unwrap();
        assert_eq!(p.protect[0].also, vec!["mod.uk", "fco.gov.uk"]);
        assert!(!p.protect[0].block_restricted && p.protect[1].block_restricted);
        assert!(p.protect[1].also.is_empty());
        assert_eq!(p.restricted_registries, vec!["gov.example"]);
    }

    #[test]
    fn every_bad_new_key_names_its_line() {
        let err = |text: &str| match Config::parse(text, Path::new("t.toml")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        };
        // A bad domain in `also`, on its own line.
        let e =
            err("[policy]\nprotect = [\n  { entry = \"mod.gov.uk\", also = [\"mod..uk\"] },\n]\n");
        assert!(e.contains("line 3") && e.contains("mod..uk"), "{e}");
        // `also` must be a list of domains.
        let e = err("[policy]\nprotect = [{ entry = \"a.mil\", also = \"b.mil\" }]\n");
        assert!(e.contains("line 2"), "{e}");
        let e = err("[policy]\nprotect = [{ entry = \"a.mil\", also = [7] }]\n");
        assert!(e.contains("line 2"), "{e}");
        // block_restricted must be a boolean.
        let e = err("[policy]\nprotect = [{ entry = \"a.mil\", block_restricted = \"yes\" }]\n");
        assert!(e.contains("line 2") && e.contains("bool"), "{e}");
        // A misspelt key inside an entry.
        let e = err("[policy]\nprotect = [{ entry = \"a.mil\", allso = [\"b.mil\"] }]\n");
        assert!(e.contains("line 2") && e.contains("allso"), "{e}");
        // restricted_registries: a bad suffix, a non-list.
        let e = err("[policy]\nrestricted_registries = [\"ok.example\",\n \"bad suffix\"]\n");
        assert!(e.contains("line 3") && e.contains("bad suffix"), "{e}");
        let e = err("[policy]\nrestricted_registries = \"gov.example\"\n");
        assert!(e.contains("line 2"), "{e}");
    }
}
