//! Rules on the registrable label: character edits and look-alikes, a dot put in, a
//! plural, a dictionary word, the dot before the suffix dropped.

use super::{Best, Change, Engine, Kind, Query, Target, chars, label_of};
use crate::detect::{
    align::{Alignment, Step, align, at_end, likely_insertion, likely_substitution, one_bit},
    edit::distance,
    fold::{coarse_variants, fold_into, variants},
    keys::{Prefix, Tag, concat, raw},
    rule::{Rule, label_rule},
};

/// Labels this long (in letters) may be two slips away and still be imitations.
pub(super) const TWO_EDIT_LEN: usize = 8;
/// Most half-units two slips may cost: at least one must be a likely slip.
const TWO_EDIT_HALF_COST: u32 = 3;
/// Labels up to this long only take the single changes that are likely slips.
const SHORT_LEN: usize = 3;
/// The visible weight of one change (a resembling letter weighs half).
const ONE_CHANGE: u32 = 2;

/// A change to a 1-3-letter label that people make by accident: a letter dropped,
/// doubled, swapped or added at the end, a neighbouring key, a vowel, a resembling
/// letter, a flipped bit. Every other short label is one arbitrary letter away.
fn short_slip(label: &[char], s: &Step) -> bool {
    match *s {
        Step::Delete { .. } | Step::Transpose { .. } => true,
        Step::Confusable { .. } | Step::Resembles { .. } => true,
        Step::Insert { at, ch } => at_end(label, at) || likely_insertion(label, at, ch),
        Step::Substitute { from, to, .. } => likely_substitution(from, to) || one_bit(from, to),
    }
}

/// Whether an alignment with `label` is within the budget for its length: one change
/// (or two resembling letters, weight 2); two changes, one a likely slip, from
/// [`TWO_EDIT_LEN`] letters; only [`short_slip`]s up to [`SHORT_LEN`] letters.
fn within_budget(label: &[char], a: &Alignment) -> bool {
    if a.weight == 0 {
        return !a.steps.is_empty();
    }
    if label.len() <= SHORT_LEN {
        return a.weight <= ONE_CHANGE && a.changes().all(|s| short_slip(label, s));
    }
    a.weight <= ONE_CHANGE
        || (label.len() >= TWO_EDIT_LEN
            && a.edits <= 2
            && a.weight <= 2 * ONE_CHANGE
            && a.half_cost <= TWO_EDIT_HALF_COST)
}

/// A change that is a single unlikely addition (a word, a dot, a plural).
fn one_addition(rule: Rule, phrase: String) -> Change {
    Change {
        rule,
        phrase,
        changes: 1,
        likely: false,
    }
}

/// The visual key of a label without digraphs merged.
fn plain_key(label: &str) -> Vec<char> {
    let mut k = Vec::with_capacity(label.len());
    fold_into(label, &mut k, false);
    k
}

impl Engine {
    /// Typos, look-alikes, dot insertion, plurals and added words in the registrable label.
    pub(super) fn label_rules(&self, q: &Query, r: usize, best: &mut Best) {
        let qlabel = q.unicode[r];
        let qkeys = variants(qlabel);
        for (i, qkey) in qkeys.iter().enumerate() {
            let pre = Prefix::new(qkey);
            self.structural_rules(q, r, qkey, i + 1 == qkeys.len(), &pre, best);
        }
        // Candidates for the edit rules: coarse keys at most two deletions apart.
        let mut seen: Vec<u32> = Vec::new();
        let qcoarse = coarse_variants(qlabel);
        for ckey in &qcoarse {
            let pre = Prefix::new(ckey);
            let n = ckey.len();
            let mut probe = |k: u64| {
                for &id in self.index.get(k) {
                    if !seen.contains(&id) {
                        seen.push(id);
                    }
                }
            };
            probe(pre.whole(Tag::Deletion));
            for i in 0..n {
                probe(pre.without(Tag::Deletion, i));
            }
            // Two deletions from the query only meet keys of long targets of length n-2..=n.
            let lens = (0b111u128 << n) >> 2;
            if self.long_lens & lens != 0 {
                for i in 0..n {
                    for j in i + 1..n {
                        probe(pre.without2(Tag::Deletion, i, j));
                    }
                }
            }
        }
        if seen.is_empty() {
            return;
        }
        let qchars = chars(qlabel);
        for &id in &seen {
            let t = &self.targets[id as usize];
            if let Some(c) = self.edit_match(t, q, &qchars, &qcoarse) {
                self.keep(best, t, c, q, r, label_len(t));
            }
        }
    }

    /// Rules found by one exact lookup of a key built from the label.
    fn structural_rules(
        &self,
        q: &Query,
        r: usize,
        qkey: &[char],
        is_plain: bool,
        pre: &Prefix,
        best: &mut Best,
    ) {
        let n = qkey.len();
        let same_suffix =
            |t: &Target| matches!(&t.kind, Kind::Domain { suffix, .. } if suffix == q.suffix);
        let has_key = |t: &Target, k: &[char]| matches!(&t.kind, Kind::Domain { keys, .. } if keys.iter().any(|x| x == k));
        // subdomain: ar.my.mil. Keys without digraphs concatenate, so the joined key's
        // hash comes from the two labels' hashes; only the last variant is digraph-free.
        if r >= 1 && is_plain {
            let left = plain_key(q.unicode[r - 1]);
            let k = concat(Tag::Exact, raw(&left), raw(qkey), n);
            for &id in self.index.get(k) {
                let t = &self.targets[id as usize];
                let joined = || left.iter().chain(qkey).copied().collect::<Vec<char>>();
                if same_suffix(t) && has_key(t, &joined()) {
                    let phrase = format!("a dot was put into \"{}\"", label_of(t));
                    let c = one_addition(Rule::Subdomain, phrase);
                    self.keep(best, t, c, q, r - 1, label_len(t));
                }
            }
        }
        // plural with "es": dnstwist adds "es" after s, x, z.
        for i in 0..n.saturating_sub(1) {
            if qkey[i] == 'e' && qkey[i + 1] == 's' {
                let mut k = qkey.to_vec();
                k.drain(i..i + 2);
                for &id in self.index.get(pre.without2(Tag::Exact, i, i + 1)) {
                    let t = &self.targets[id as usize];
                    if same_suffix(t) && has_key(t, &k) {
                        let phrase = format!("\"{}\" was made plural", label_of(t));
                        let c = one_addition(Rule::Plural, phrase);
                        self.keep(best, t, c, q, r, label_len(t));
                    }
                }
            }
        }
        self.dictionary_rules(q, r, qkey, pre, best);
        self.dot_dropped(q, r, qkey, pre, best);
    }

    /// armymil.com, army-mil.com, modgov.uk: the dot before the suffix dropped.
    fn dot_dropped(&self, q: &Query, r: usize, qkey: &[char], pre: &Prefix, best: &mut Best) {
        let qlabel = q.unicode[r];
        for &id in self.index.get(pre.whole(Tag::DotDropped)) {
            let t = &self.targets[id as usize];
            let Kind::Domain {
                dot_dropped,
                label,
                label_ascii,
                suffix,
                ..
            } = &t.kind
            else {
                continue;
            };
            if !dot_dropped.iter().any(|d| d[..] == *qkey) {
                continue;
            }
            let how = if qlabel.contains('-') {
                "made a hyphen"
            } else {
                "dropped"
            };
            let mut phrase =
                format!("the dot between \"{label_ascii}\" and \"{suffix}\" was {how}");
            // Name any look-alike characters in the label part too.
            let qc = chars(qlabel);
            let head = &qc[..label.len().min(qc.len())];
            if head != label.as_slice() {
                let a = align(label, head);
                if let Some((_, look)) = crate::detect::rule::confusables(label, qlabel, &a.steps) {
                    phrase = format!("{look}, and {phrase}");
                }
            }
            let c = Change {
                rule: Rule::DotDropped,
                phrase,
                changes: 1,
                likely: true,
            };
            self.keep(best, t, c, q, r, label_len(t));
        }
    }

    /// A protected label with a word glued on, or a hyphenated part swapped for one.
    fn dictionary_rules(&self, q: &Query, r: usize, qkey: &[char], pre: &Prefix, best: &mut Best) {
        let n = qkey.len();
        // The word as the dictionary spells it, so the explanation never shows a key.
        let word = |a: usize, b: usize| {
            self.index
                .get(pre.slice(Tag::Word, a, b))
                .iter()
                .map(|&w| &self.words[w as usize])
                .find(|(k, _)| k[..] == qkey[a..b])
                .map(|(_, w)| w.as_str())
        };
        let mut report = |tag: Tag, a: usize, b: usize, w: &str| {
            for &id in self.index.get(pre.slice(tag, a, b)) {
                let t = &self.targets[id as usize];
                let Kind::Domain {
                    keys,
                    suffix,
                    heads,
                    tails,
                    ..
                } = &t.kind
                else {
                    continue;
                };
                let want = match tag {
                    Tag::Exact => keys,
                    Tag::Head => heads,
                    _ => tails,
                };
                if suffix == q.suffix && want.iter().any(|x| x[..] == qkey[a..b]) {
                    let phrase = format!("the word \"{w}\" was added to \"{}\"", label_of(t));
                    let c = one_addition(Rule::Dictionary, phrase);
                    self.keep(best, t, c, q, r, label_len(t));
                }
            }
        };
        for &l in &self.word_lens {
            if l >= n {
                continue;
            }
            if let Some(w) = word(0, l) {
                let start = if qkey[l] == '-' { l + 1 } else { l };
                if start < n {
                    report(Tag::Exact, start, n, w);
                }
            }
            if let Some(w) = word(n - l, n) {
                let end = if qkey[n - l - 1] == '-' {
                    n - l - 1
                } else {
                    n - l
                };
                if end > 0 {
                    report(Tag::Exact, 0, end, w);
                }
            }
        }
        if let (Some(f), Some(l)) = (
            qkey.iter().position(|&c| c == '-'),
            qkey.iter().rposition(|&c| c == '-'),
        ) {
            if let Some(w) = word(0, f) {
                report(Tag::Tail, f + 1, n, w);
            }
            if l + 1 < n
                && let Some(w) = word(l + 1, n)
            {
                report(Tag::Head, 0, l, w);
            }
        }
    }

    /// Whether label `qchars` (coarse keys `qcoarse`) is an edit or a look-alike of `t`,
    /// within the budget.
    fn edit_match(
        &self,
        t: &Target,
        q: &Query,
        qchars: &[char],
        qcoarse: &[Vec<char>],
    ) -> Option<Change> {
        let Kind::Domain {
            label,
            suffix,
            coarse,
            ..
        } = &t.kind
        else {
            return None;
        };
        if suffix != q.suffix || label[..] == *qchars {
            return None;
        }
        // Most candidates from the deletion index are far off: cheap tests first. Resembling
        // letters are equal in the coarse keys, so each real change moves them by at most
        // one: a short label within budget is at most one coarse edit away, a long one two.
        if label.len().abs_diff(qchars.len()) > 3 {
            return None;
        }
        let most = if label.len() >= TWO_EDIT_LEN { 2 } else { 1 };
        let near = coarse
            .iter()
            .any(|k| qcoarse.iter().any(|qk| distance(k, qk) <= most));
        if !near {
            return None;
        }
        let a = align(label, qchars);
        if !within_budget(label, &a) {
            return None;
        }
        let (rule, phrase) = label_rule(label, &qchars.iter().collect::<String>(), &a);
        Some(Change {
            rule,
            phrase,
            changes: a.edits,
            likely: a.all_likely(),
        })
    }
}

/// Letters in the protected label (what the score's length adjustment reads).
fn label_len(t: &Target) -> usize {
    match &t.kind {
        Kind::Domain { label, .. } => label.len(),
        Kind::Suffix { .. } => crate::detect::score::FULL_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(p: &str, q: &str) -> bool {
        let (p, q) = (chars(p), chars(q));
        within_budget(&p, &align(&p, &q))
    }

    #[test]
    fn short_labels_take_only_likely_slips() {
        for ok in ["aff", "a", "fa", "af1", "ag"] {
            assert!(budget("af", ok), "{ok}");
        }
        for no in ["xf", "axf"] {
            assert!(!budget("af", no), "{no}");
        }
        // rit, fit are unrelated letters for m; kit is a neighbouring key, iit one bit.
        assert!(!budget("mit", "rit") && !budget("mit", "fit"));
        assert!(budget("mit", "kit") && budget("mit", "iit"));
        // Two changes never fit a short label: tmall is not gmail, man is not cam.
        assert!(!budget("gmail", "tmall") && !budget("cam", "man"));
        // Long labels take two likely slips.
        assert!(budget("washington", "waahingron"));
        assert!(!budget("washington", "wqxhingzon"));
    }
}
