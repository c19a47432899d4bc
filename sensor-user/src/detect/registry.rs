//! Restricted registries: suffixes under which only vetted bodies can register a name
//! (`.mil`, `gov.uk`, `mil.kr`...). A resemblance there is a `lookalike`, not a
//! `typosquat`: nobody registered it to catch mail. The table is data with the source of
//! each line (`data/restricted_registries.tsv`), extended by the policy.

use serde::Serialize;

use super::{
    index::Index,
    keys::{Prefix, Tag, key},
    name::Name,
    policy::PolicyError,
};

/// The built-in table: `suffix <TAB> kind <TAB> source`, `#` comments.
const TABLE: &str = include_str!("data/restricted_registries.tsv");

/// Who may register under a restricted suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// Armed forces and ministries of defence.
    Military,
    /// Government bodies.
    Government,
    /// Accredited schools, colleges and universities.
    Education,
    /// Organisations established by international treaty.
    Intergovernmental,
    /// A national health service.
    Health,
    /// Police forces.
    Police,
    /// Named restricted by the operator's configuration.
    Configured,
}

impl RegistryKind {
    /// The name used in reports and events.
    pub fn name(self) -> &'static str {
        match self {
            RegistryKind::Military => "military",
            RegistryKind::Government => "government",
            RegistryKind::Education => "education",
            RegistryKind::Intergovernmental => "intergovernmental",
            RegistryKind::Health => "health",
            RegistryKind::Police => "police",
            RegistryKind::Configured => "configured",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "military" => RegistryKind::Military,
            "government" => RegistryKind::Government,
            "education" => RegistryKind::Education,
            "intergovernmental" => RegistryKind::Intergovernmental,
            "health" => RegistryKind::Health,
            "police" => RegistryKind::Police,
            _ => return None,
        })
    }
}

/// The restricted registry a lookalike's name lies under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registry {
    /// The suffix it matched, e.g. `mil.kr`.
    pub suffix: String,
    /// Who may register there.
    pub kind: RegistryKind,
}

/// The built-in table's entries as (suffix, kind); the test below checks every line.
pub fn builtin() -> impl Iterator<Item = (&'static str, Option<RegistryKind>)> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut cols = l.split('\t');
            let suffix = cols.next().unwrap_or_default();
            (suffix, cols.next().and_then(RegistryKind::parse))
        })
}

/// The restricted suffixes, indexed so a lookup costs one probe per label.
#[derive(Debug, Default)]
pub struct Restricted {
    index: Index,
    entries: Vec<Registry>,
}

impl Restricted {
    /// The built-in table plus `extra` suffixes from the policy.
    pub fn new(extra: &[String]) -> Result<Self, PolicyError> {
        let mut r = Restricted::default();
        for (suffix, kind) in builtin() {
            // A malformed built-in line is a bug the unit test catches; skip it here.
            if let (Ok(name), Some(kind)) = (Name::parse(suffix), kind) {
                r.add(name.ascii, kind);
            }
        }
        for s in extra {
            let name = Name::parse(s).map_err(|reason| PolicyError::BadRestricted {
                entry: s.clone(),
                reason,
            })?;
            r.add(name.ascii, RegistryKind::Configured);
        }
        Ok(r)
    }

    fn add(&mut self, suffix: String, kind: RegistryKind) {
        let id = self.entries.len() as u32;
        self.index.add(key(Tag::Restricted, suffix.chars()), id);
        self.entries.push(Registry { suffix, kind });
    }

    /// The most specific restricted suffix that `ascii` equals or falls under.
    pub fn find(&self, ascii: &str) -> Option<&Registry> {
        let pre = Prefix::ascii(ascii);
        let starts = std::iter::once(0).chain(
            ascii
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'.')
                .map(|(i, _)| i + 1),
        );
        for s in starts {
            for &id in self.index.get(pre.slice(Tag::Restricted, s, ascii.len())) {
                let e = &self.entries[id as usize];
                if e.suffix == ascii[s..] {
                    return Some(e);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_line_is_a_domain_a_kind_and_a_source() {
        let mut n = 0;
        for line in TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "{line}");
            assert!(Name::parse(cols[0]).is_ok(), "{line}");
            assert!(RegistryKind::parse(cols[1]).is_some(), "{line}");
            assert!(cols[2].starts_with("http"), "{line}");
            n += 1;
        }
        assert!(n > 200);
    }

    #[test]
    fn names_under_a_restricted_suffix_are_found() {
        let r = Restricted::new(&["gov.example".into()]).unwrap();
        let find = |n: &str| r.find(n).map(|e| (e.suffix.as_str(), e.kind));
        assert_eq!(
            find("army.mil.kr"),
            Some(("mil.kr", RegistryKind::Military))
        );
        assert_eq!(
            find("pak.army.mil.pk"),
            Some(("mil.pk", RegistryKind::Military))
        );
        assert_eq!(find("man.ac.uk"), Some(("ac.uk", RegistryKind::Education)));
        assert_eq!(find("starnc.gov"), Some(("gov", RegistryKind::Government)));
        assert_eq!(find("mod.uk"), Some(("mod.uk", RegistryKind::Military)));
        assert_eq!(
            find("x.gov.example"),
            Some(("gov.example", RegistryKind::Configured))
        );
        assert_eq!(find("army.ml"), None);
        assert_eq!(find("army.mil.com"), None);
        assert_eq!(find("milkr.com"), None);
        assert!(matches!(
            Restricted::new(&["bad..suffix".into()]),
            Err(PolicyError::BadRestricted { .. })
        ));
    }
}
