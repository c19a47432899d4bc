//! The likeliest lookalikes of a protected domain, spelled out in advance.
//!
//! The agent blocks a lookalike when it sees the query, racing the answer; a local
//! caching resolver can answer in tens of microseconds and win. For the typos people
//! actually make, the kernel is told beforehand: these candidates, each confirmed by the
//! engine, are put in `BLOCKED_NAMES` as whole domains before any mail moves.

use std::collections::BTreeSet;

/// Suffixes a dropped dot or an appended suffix most often lands in.
const COMMON_TLDS: [&str; 3] = ["com", "net", "org"];

/// One-keystroke variants of `s`: a letter dropped, two neighbours swapped, a letter
/// doubled. Substitutions and insertions are left to query time: they are 37 times as
/// many and far rarer as typing slips.
fn slips(s: &str) -> BTreeSet<String> {
    let b = s.as_bytes();
    let mut out = BTreeSet::new();
    for i in 0..b.len() {
        let mut v = b.to_vec();
        v.remove(i);
        out.insert(v);
        let mut v = b.to_vec();
        v.insert(i, b[i]);
        out.insert(v);
        if i + 1 < b.len() && b[i] != b[i + 1] {
            let mut v = b.to_vec();
            v.swap(i, i + 1);
            out.insert(v);
        }
    }
    out.into_iter()
        .filter_map(|v| String::from_utf8(v).ok())
        .filter(|v| !v.is_empty() && v != s)
        .collect()
}

/// Candidate lookalike domains of `domain` (ASCII, lower case, e.g. `army.mil`), as
/// registrable names: slips in the label (`arym.mil`), slips in the suffix that land on
/// another suffix (`army.ml`, `army.mi`), the dot dropped (`armymil.com`) and a common
/// suffix appended (`army.mil.com`). The caller keeps those the engine confirms.
pub fn candidates(domain: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some((label, suffix)) = domain.split_once('.') else {
        return out;
    };
    for l in slips(label) {
        if !l.starts_with('-') && !l.ends_with('-') {
            out.insert(format!("{l}.{suffix}"));
        }
    }
    for s in slips(suffix) {
        if !s.starts_with('.') && !s.ends_with('.') && !s.contains("..") {
            out.insert(format!("{label}.{s}"));
        }
    }
    let joined = domain.replace('.', "");
    for tld in COMMON_TLDS {
        out.insert(format!("{joined}.{tld}"));
        out.insert(format!("{domain}.{tld}"));
    }
    out.remove(domain);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mali_case_and_its_neighbours_are_candidates() {
        let c = candidates("army.mil");
        for want in [
            "army.ml",
            "army.mi",
            "army.il",
            "arym.mil",
            "amy.mil",
            "armmy.mil",
            "armymil.com",
            "army.mil.com",
        ] {
            assert!(c.contains(want), "{want} missing from {c:?}");
        }
        assert!(!c.contains("army.mil"));
        assert!(c.iter().all(|n| !n.contains("..") && !n.ends_with('.')));
    }

    #[test]
    fn a_bare_label_has_none() {
        assert!(candidates("localhost").is_empty());
    }
}
