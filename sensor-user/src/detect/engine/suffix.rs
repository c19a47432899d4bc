//! Rules anchored on a protected label that looks right (spelt exactly, or only with
//! confusable characters): a typo or swap in the suffix, a suffix cut short or appended,
//! the real name as someone else's subdomain; and names under a typo of a protected
//! public suffix.

use super::{Best, Change, Engine, Kind, Query, chars};
use crate::detect::{
    align::align,
    edit::distance,
    fold::{fold_into, reads_as},
    keys::{Prefix, Tag, key},
    rule::{Rule, confusables, suffix_phrase},
    score::FULL_LEN,
};

impl Engine {
    /// Suffix rules for every label that looks like a protected one.
    pub(super) fn anchored_rules(&self, q: &Query, best: &mut Best) {
        let n = q.ascii.len();
        let mut k = Vec::with_capacity(64);
        let mut seen: Vec<u32> = Vec::new();
        for i in 0..n.saturating_sub(1) {
            seen.clear();
            for digraphs in [false, true] {
                // The merged key differs only when the label holds a pair like `rn`.
                if digraphs && !k.windows(2).any(|w| reads_as(w[0], w[1]).is_some()) {
                    break;
                }
                fold_into(q.unicode[i], &mut k, digraphs);
                for &id in self.index.get(key(Tag::Exact, k.iter().copied())) {
                    if !seen.contains(&id) {
                        seen.push(id);
                        self.anchored(q, i, &k, id, best);
                    }
                }
            }
        }
    }

    /// Label `i` of the query (visual key `k`) against target `id`.
    fn anchored(&self, q: &Query, i: usize, k: &[char], id: u32, best: &mut Best) {
        let n = q.ascii.len();
        let t = &self.targets[id as usize];
        match &t.kind {
            Kind::Domain {
                label,
                label_ascii,
                keys,
                suffix,
                ..
            } if keys.iter().any(|x| x[..] == *k) => {
                let rest = q.ascii[i + 1..].join(".");
                let Some((rule, phrase)) = self.suffix_change(&t.name, suffix, &rest, q) else {
                    return;
                };
                // The label looks right; say so when it is not spelt right.
                let qlabel = q.unicode[i];
                let phrase =
                    if qlabel == label_ascii.as_str() || qlabel.chars().eq(label.iter().copied()) {
                        phrase
                    } else {
                        let a = align(label, &chars(qlabel));
                        match confusables(label, qlabel, &a.steps) {
                            Some((_, look)) if a.edits == 0 => format!("{look}, and {phrase}"),
                            _ => return,
                        }
                    };
                let c = Change {
                    rule,
                    phrase,
                    changes: 1,
                    likely: true,
                };
                self.keep(best, t, c, q, i, label.len());
            }
            Kind::Suffix { labels } if i >= 1 && i + labels.len() < n => {
                let k = labels.len();
                if q.ascii[i..i + k].iter().zip(labels).all(|(a, b)| a == b) {
                    let tail = q.ascii[i + k..].join(".");
                    let Some((rule, phrase)) = self.appended(&t.name, &tail, q) else {
                        return;
                    };
                    let c = Change {
                        rule,
                        phrase,
                        changes: 1,
                        likely: true,
                    };
                    self.keep(best, t, c, q, i, FULL_LEN);
                }
            }
            _ => {}
        }
    }

    /// `tail` follows the real name: a bare public suffix (appended) or a domain; `None`
    /// when no registry delegates its top-level label.
    ///
    /// Such a tail is a resolver's search list at work, not anyone's registration: with
    /// `ndots:5` (Kubernetes) a lookup of `contoso.com` asks for
    /// `contoso.com.svc.cluster.local` first, and a stub resolver that sees that answer
    /// dropped waits out its timeout (glibc) or fails (musl) before asking for the name
    /// itself. Nobody outside the site can register under `.local` or `.internal`.
    fn appended(&self, real: &str, tail: &str, q: &Query) -> Option<(Rule, String)> {
        if !q.suffix_known {
            return None;
        }
        // The tail is (part of) the query's own public suffix: nothing registrable follows.
        Some(
            if tail == q.suffix
                || q.suffix
                    .strip_suffix(tail)
                    .is_some_and(|h| h.ends_with('.'))
            {
                (
                    Rule::SuffixAppended,
                    format!("\".{tail}\" was appended after \"{real}\""),
                )
            } else {
                (
                    Rule::ProtectedAsSubdomain,
                    format!("\"{real}\" is only a subdomain of {tail}"),
                )
            },
        )
    }

    /// How `rest` (what follows a protected label) differs from the protected `suffix`.
    fn suffix_change(
        &self,
        real: &str,
        suffix: &str,
        rest: &str,
        q: &Query,
    ) -> Option<(Rule, String)> {
        if rest == suffix {
            return None;
        }
        if let Some(tail) = rest.strip_prefix(suffix).and_then(|t| t.strip_prefix('.')) {
            return self.appended(real, tail, q);
        }
        let (s, r) = (chars(suffix), chars(rest));
        if distance(&s, &r) == 1 {
            return Some((Rule::SuffixTypo, suffix_phrase(&s, &r)));
        }
        if self
            .swaps
            .get(suffix)
            .is_some_and(|v| v.iter().any(|x| x == rest))
        {
            let phrase = format!(
                "the suffix \"{suffix}\" was swapped for \"{rest}\", often confused with it"
            );
            return Some((Rule::SuffixSwap, phrase));
        }
        if suffix.strip_suffix(rest).is_some_and(|h| h.ends_with('.')) {
            return Some((
                Rule::SuffixTruncated,
                format!("the suffix \"{suffix}\" was cut to \"{rest}\""),
            ));
        }
        None
    }

    /// Names under a typo or a swap of a protected public suffix: `army.ml` for `mil`.
    pub(super) fn suffix_target_rules(&self, q: &Query, best: &mut Best) {
        let n = q.ascii.len();
        let change = |rule, phrase| Change {
            rule,
            phrase,
            changes: 1,
            likely: true,
        };
        for k in 1..=3.min(n.saturating_sub(1)) {
            let tail = q.ascii[n - k..].join(".");
            let tc = chars(&tail);
            let pre = Prefix::new(&tc);
            let mut seen: Vec<u32> = Vec::new();
            let keys = std::iter::once(pre.whole(Tag::Suffix))
                .chain((0..tc.len()).map(|i| pre.without(Tag::Suffix, i)));
            for key in keys {
                for &id in self.index.get(key) {
                    if seen.contains(&id) {
                        continue;
                    }
                    seen.push(id);
                    let t = &self.targets[id as usize];
                    let ec = chars(&t.name);
                    if matches!(t.kind, Kind::Suffix { .. }) && distance(&ec, &tc) == 1 {
                        let c = change(Rule::SuffixTypo, suffix_phrase(&ec, &tc));
                        self.keep(best, t, c, q, n - k - 1, FULL_LEN);
                    }
                }
            }
            for partner in self.swaps.get(&tail).into_iter().flatten() {
                for &id in self.index.get(key(Tag::Name, partner.chars())) {
                    let t = &self.targets[id as usize];
                    if matches!(t.kind, Kind::Suffix { .. }) && t.name == *partner {
                        let phrase = format!(
                            "the suffix \"{partner}\" was swapped for \"{tail}\", often confused with it"
                        );
                        let c = change(Rule::SuffixSwap, phrase);
                        self.keep(best, t, c, q, n - k - 1, FULL_LEN);
                    }
                }
            }
        }
    }
}
