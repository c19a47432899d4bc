//! The classifier: protected, allowed, clean, lookalike (and which rule) or invalid.

use std::collections::HashMap;

use super::{
    defaults,
    edit::{distance, weighted},
    fold::{fold_into, variants},
    index::Index,
    keys::{Prefix, Tag, concat, key, raw},
    name::Name,
    policy::{Action, Policy, PolicyError, protected_name},
    rule::{Rule, lookalike_rule, single_edit_rule, suffix_phrase},
    verdict::{Finding, Verdict},
};

/// Shortest visual key that edit rules apply to: one edit to a two-letter name is
/// another two-letter name, not a lookalike.
const MIN_EDIT_LEN: usize = 3;
/// Names this long (in letters) may be two slips away and still be lookalikes.
const TWO_EDIT_LEN: usize = 8;
/// Most weighted cost two slips may have: at least one must be a likely typo.
const TWO_EDIT_COST: f32 = 1.5;

#[derive(Debug)]
enum Kind {
    /// `army.mil`: label `army` under suffix `mil` (plus any labels left of it).
    Domain {
        label: Vec<char>,
        label_ascii: String,
        /// Visual keys: with digraphs merged, and without when that differs.
        keys: Vec<Vec<char>>,
        suffix: String,
        dot_dropped: Vec<Vec<char>>,
        heads: Vec<Vec<char>>,
        tails: Vec<Vec<char>>,
    },
    /// `mil`, `gov.uk`: a public suffix.
    Suffix { labels: Vec<String> },
}

#[derive(Debug)]
struct Target {
    entry: String,
    display: String,
    action: Action,
    kind: Kind,
}

/// An allow-list entry and where it came from.
#[derive(Debug)]
struct Allowed {
    entry: String,
}

/// The protected set, indexed so a lookup never scans it.
#[derive(Debug)]
pub struct Engine {
    targets: Vec<Target>,
    allowed: Vec<Allowed>,
    words: Vec<Vec<char>>,
    word_lens: Vec<usize>,
    swaps: HashMap<String, Vec<String>>,
    index: Index,
    /// Bit `L` set when a protected key of length `L` takes two-edit matches.
    long_lens: u128,
    suffix_targets: bool,
}

/// The query's labels and where its public suffix starts.
struct Query<'a> {
    name: &'a Name,
    ascii: Vec<&'a str>,
    unicode: Vec<&'a str>,
    suffix: &'a str,
    suffix_labels: usize,
}

impl Query<'_> {
    /// Index of the label left of the public suffix, if there is one.
    fn registrable(&self) -> Option<usize> {
        self.ascii.len().checked_sub(self.suffix_labels + 1)
    }

    /// Unicode labels from `i` to the end, joined.
    fn from(&self, i: usize) -> String {
        self.unicode[i..].join(".")
    }
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

impl Engine {
    /// Builds the index for `policy`.
    pub fn new(policy: &Policy) -> Result<Self, PolicyError> {
        let mut e = Engine {
            targets: Vec::new(),
            allowed: Vec::new(),
            words: Vec::new(),
            word_lens: Vec::new(),
            swaps: HashMap::new(),
            index: Index::default(),
            long_lens: 0,
            suffix_targets: false,
        };
        for p in &policy.protect {
            let name = protected_name(&p.entry)?;
            let action = p.action.unwrap_or(policy.default_action);
            e.add_target(name, action);
        }
        let builtin = if policy.builtin_allow {
            defaults::MAIL_PROVIDERS
        } else {
            &[]
        };
        for a in builtin
            .iter()
            .copied()
            .chain(policy.allow.iter().map(String::as_str))
        {
            let name = Name::parse(a).map_err(|reason| PolicyError::BadAllowed {
                entry: a.into(),
                reason,
            })?;
            let id = e.allowed.len() as u32;
            e.index.add(key(Tag::Allow, name.ascii.chars()), id);
            e.allowed.push(Allowed { entry: name.ascii });
        }
        for w in defaults::WORDS
            .iter()
            .copied()
            .chain(policy.words.iter().map(String::as_str))
        {
            let lw = w.to_lowercase();
            if lw.is_empty() || !lw.chars().all(|c| c.is_alphanumeric() || c == '-') {
                return Err(PolicyError::BadWord(w.into()));
            }
            for k in variants(&lw) {
                let id = e.words.len() as u32;
                e.index.add(key(Tag::Word, k.iter().copied()), id);
                if !e.word_lens.contains(&k.len()) {
                    e.word_lens.push(k.len());
                }
                e.words.push(k);
            }
        }
        let user_swaps = policy
            .suffix_swaps
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()));
        for (a, b) in defaults::SUFFIX_SWAPS.iter().copied().chain(user_swaps) {
            let norm = |s: &str| {
                Name::parse(s)
                    .map(|n| n.ascii)
                    .map_err(|reason| PolicyError::BadSuffix {
                        entry: s.into(),
                        reason,
                    })
            };
            let (a, b) = (norm(a)?, norm(b)?);
            e.swaps.entry(a.clone()).or_default().push(b.clone());
            e.swaps.entry(b).or_default().push(a);
        }
        e.index.shrink();
        Ok(e)
    }

    /// Number of protected entries.
    pub fn targets(&self) -> usize {
        self.targets.len()
    }

    /// Each protected target as findings name it, with its action.
    pub fn target_actions(&self) -> impl Iterator<Item = (&str, Action)> {
        self.targets.iter().map(|t| (t.entry.as_str(), t.action))
    }

    /// Number of keys in the index (for sizing reports).
    pub fn index_keys(&self) -> usize {
        self.index.len()
    }

    fn add_target(&mut self, name: Name, action: Action) {
        let id = self.targets.len() as u32;
        self.index.add(key(Tag::Name, name.ascii.chars()), id);
        let registrable = psl::domain(name.ascii.as_bytes()).map(|d| d.as_bytes().len());
        let suffix_len = psl::suffix(name.ascii.as_bytes()).map(|s| s.as_bytes().len());
        let kind = match (registrable, suffix_len) {
            (Some(reg), Some(suf)) => {
                let reg_str = &name.ascii[name.ascii.len() - reg..];
                let label_ascii = reg_str[..reg - suf - 1].to_string();
                let suffix = reg_str[reg - suf..].to_string();
                let ulabels: Vec<&str> = name.unicode.split('.').collect();
                let nsuf = suffix.split('.').count();
                let ulabel = ulabels
                    .get(ulabels.len().saturating_sub(nsuf + 1))
                    .copied()
                    .unwrap_or(&label_ascii);
                let label = chars(ulabel);
                let keys = variants(ulabel);
                let (mut heads, mut tails) = (Vec::new(), Vec::new());
                for k in &keys {
                    self.index_key(k, id);
                    // Hyphenated names: the parts a dictionary word may replace.
                    let dash = |c: &char| *c == '-';
                    if let (Some(f), Some(l)) = (k.iter().position(dash), k.iter().rposition(dash))
                    {
                        self.index
                            .add(key(Tag::Tail, k[f + 1..].iter().copied()), id);
                        self.index.add(key(Tag::Head, k[..l].iter().copied()), id);
                        tails.push(k[f + 1..].to_vec());
                        heads.push(k[..l].to_vec());
                    }
                }
                self.index.add(key(Tag::Label, label_ascii.chars()), id);
                // armymil, army-mil, modgov, modgovuk, mod-gov-uk.
                let slabels: Vec<&str> = suffix.split('.').collect();
                let mut dot_dropped = Vec::new();
                for n in 1..=slabels.len() {
                    for sep in ["", "-"] {
                        let glued = format!("{ulabel}{sep}{}", slabels[..n].join(sep));
                        for gk in variants(&glued) {
                            self.index.add(key(Tag::DotDropped, gk.iter().copied()), id);
                            dot_dropped.push(gk);
                        }
                    }
                }
                Kind::Domain {
                    label,
                    label_ascii,
                    keys,
                    suffix,
                    dot_dropped,
                    heads,
                    tails,
                }
            }
            _ => {
                // The entry is itself a public suffix (or an unlisted TLD).
                self.suffix_targets = true;
                let labels: Vec<String> = name.ascii.split('.').map(String::from).collect();
                self.index.add(key(Tag::Label, labels[0].chars()), id);
                let sc = chars(&name.ascii);
                let pre = Prefix::new(&sc);
                self.index.add(pre.whole(Tag::Suffix), id);
                for i in 0..sc.len() {
                    self.index.add(pre.without(Tag::Suffix, i), id);
                }
                Kind::Suffix { labels }
            }
        };
        self.targets.push(Target {
            entry: name.ascii,
            display: name.unicode,
            action,
            kind,
        });
    }

    /// Indexes one visual key of a protected label: exact, and its deletion neighbourhood.
    fn index_key(&mut self, k: &[char], id: u32) {
        let pre = Prefix::new(k);
        self.index.add(pre.whole(Tag::Exact), id);
        if k.len() < MIN_EDIT_LEN {
            return;
        }
        self.index.add(pre.whole(Tag::Deletion), id);
        for i in 0..k.len() {
            self.index.add(pre.without(Tag::Deletion, i), id);
        }
        if k.len() >= TWO_EDIT_LEN {
            self.long_lens |= 1u128 << k.len().min(127);
            for i in 0..k.len() {
                for j in i + 1..k.len() {
                    self.index.add(pre.without2(Tag::Deletion, i, j), id);
                }
            }
        }
    }

    /// Classifies one name as seen on the wire or typed by a person.
    pub fn classify(&self, raw: &str) -> Verdict {
        let name = match Name::parse(raw) {
            Ok(n) => n,
            Err(e) => return Verdict::Invalid(e),
        };
        let whole = Prefix::ascii(&name.ascii);
        if let Some(t) = self.under(&name, &whole, Tag::Name, |id| &self.targets[id].entry) {
            return Verdict::Protected {
                target: t.to_string(),
            };
        }
        if let Some(a) = self.under(&name, &whole, Tag::Allow, |id| &self.allowed[id].entry) {
            return Verdict::Allowed { by: a.to_string() };
        }
        let suffix_len = psl::suffix(name.ascii.as_bytes()).map_or(0, |s| s.as_bytes().len());
        let suffix = &name.ascii[name.ascii.len() - suffix_len..];
        let ascii: Vec<&str> = name.ascii.split('.').collect();
        let mut unicode: Vec<&str> = name.unicode.split('.').collect();
        if unicode.len() != ascii.len() {
            unicode = ascii.clone();
        }
        let q = Query {
            name: &name,
            suffix_labels: if suffix.is_empty() {
                0
            } else {
                suffix.split('.').count()
            },
            suffix,
            ascii,
            unicode,
        };
        let mut best: Option<Finding> = None;
        let mut keep = |f: Finding| {
            if best.as_ref().is_none_or(|b| f.score > b.score) {
                best = Some(f);
            }
        };
        if let Some(r) = q.registrable() {
            self.label_rules(&q, r, &mut keep);
        }
        self.anchored_rules(&q, &mut keep);
        if self.suffix_targets {
            self.suffix_target_rules(&q, &mut keep);
        }
        best.map_or(Verdict::Clean, Verdict::Typosquat)
    }

    /// The most specific entry of kind `tag` that `name` equals or falls under.
    fn under<'s>(
        &'s self,
        name: &Name,
        pre: &Prefix,
        tag: Tag,
        entry: impl Fn(usize) -> &'s String,
    ) -> Option<&'s String> {
        let n = name.ascii.len();
        let dots = name
            .ascii
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'.')
            .map(|(i, _)| i + 1);
        for s in std::iter::once(0).chain(dots) {
            for &id in self.index.get(pre.slice(tag, s, n)) {
                let e = entry(id as usize);
                if *e == name.ascii[s..] {
                    return Some(e);
                }
            }
        }
        None
    }

    fn finding(
        &self,
        t: &Target,
        rule: Rule,
        phrase: String,
        q: &Query,
        from: usize,
        len: usize,
    ) -> Finding {
        let compared = q.from(from);
        let distance = distance(&chars(&compared), &chars(&t.display));
        // Short names are easier to hit by accident: lower confidence for edits to them.
        let short = len < 6 && rule.edits_the_label();
        let score = rule.base_score() - if short { 0.05 * (6 - len) as f32 } else { 0.0 };
        let shown = if q.name.unicode == q.name.ascii {
            q.name.ascii.clone()
        } else {
            format!("{} ({})", q.name.unicode, q.name.ascii)
        };
        Finding {
            target: t.entry.clone(),
            rule,
            distance,
            score: score.clamp(0.0, 1.0),
            explanation: format!("{shown} looks like {}: {phrase}", t.display),
            action: t.action,
        }
    }

    /// Typos, homoglyphs, dot insertion, plurals and added words in the registrable label.
    fn label_rules(&self, q: &Query, r: usize, keep: &mut impl FnMut(Finding)) {
        let qlabel = q.unicode[r];
        let qchars = chars(qlabel);
        let qkeys = variants(qlabel);
        let mut seen: Vec<u32> = Vec::new();
        for qkey in &qkeys {
            let pre = Prefix::new(qkey);
            let n = qkey.len();
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
            let is_plain = std::ptr::eq(qkey, &qkeys[qkeys.len() - 1]);
            self.structural_rules(q, r, qkey, is_plain, &pre, keep);
        }
        for &id in &seen {
            let t = &self.targets[id as usize];
            if let Some(f) = self.edit_match(t, q, r, &qchars, &qkeys) {
                keep(f);
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
        keep: &mut impl FnMut(Finding),
    ) {
        let qlabel = q.unicode[r];
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
                    keep(self.finding(t, Rule::Subdomain, phrase, q, r - 1, left.len() + n));
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
                        keep(self.finding(t, Rule::Plural, phrase, q, r, k.len()));
                    }
                }
            }
        }
        self.dictionary_rules(q, r, qkey, pre, keep);
        // armymil.com, army-mil.com, modgov.uk
        for &id in self.index.get(pre.whole(Tag::DotDropped)) {
            let t = &self.targets[id as usize];
            if let Kind::Domain {
                dot_dropped,
                label_ascii,
                suffix,
                ..
            } = &t.kind
                && dot_dropped.iter().any(|d| d[..] == *qkey)
            {
                let how = if qlabel.contains('-') {
                    "made a hyphen"
                } else {
                    "dropped"
                };
                let phrase =
                    format!("the dot between \"{label_ascii}\" and \"{suffix}\" was {how}");
                keep(self.finding(t, Rule::DotDropped, phrase, q, r, n));
            }
        }
    }

    /// A protected label with a word glued on, or a hyphenated part swapped for one.
    fn dictionary_rules(
        &self,
        q: &Query,
        r: usize,
        qkey: &[char],
        pre: &Prefix,
        keep: &mut impl FnMut(Finding),
    ) {
        let n = qkey.len();
        let is_word = |a: usize, b: usize| {
            self.index
                .get(pre.slice(Tag::Word, a, b))
                .iter()
                .any(|&w| self.words[w as usize] == qkey[a..b])
        };
        let mut report = |tag: Tag, a: usize, b: usize, word: String| {
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
                if suffix == q.suffix && want.iter().any(|w| w[..] == qkey[a..b]) {
                    let phrase = format!("the word \"{word}\" was added to \"{}\"", label_of(t));
                    keep(self.finding(t, Rule::Dictionary, phrase, q, r, n));
                }
            }
        };
        let word_at = |a: usize, b: usize| qkey[a..b].iter().collect::<String>();
        for &l in &self.word_lens {
            if l >= n {
                continue;
            }
            if is_word(0, l) {
                let start = if qkey[l] == '-' { l + 1 } else { l };
                if start < n {
                    report(Tag::Exact, start, n, word_at(0, l));
                }
            }
            if is_word(n - l, n) {
                let end = if qkey[n - l - 1] == '-' {
                    n - l - 1
                } else {
                    n - l
                };
                if end > 0 {
                    report(Tag::Exact, 0, end, word_at(n - l, n));
                }
            }
        }
        if let (Some(f), Some(l)) = (
            qkey.iter().position(|&c| c == '-'),
            qkey.iter().rposition(|&c| c == '-'),
        ) {
            if is_word(0, f) {
                report(Tag::Tail, f + 1, n, word_at(0, f));
            }
            if l + 1 < n && is_word(l + 1, n) {
                report(Tag::Head, 0, l, word_at(l + 1, n));
            }
        }
    }

    /// Whether label `qchars` (visual key `qkey`) is an edit or a look-alike of `t`.
    fn edit_match(
        &self,
        t: &Target,
        q: &Query,
        r: usize,
        qchars: &[char],
        qkeys: &[Vec<char>],
    ) -> Option<Finding> {
        let Kind::Domain {
            label,
            keys,
            suffix,
            ..
        } = &t.kind
        else {
            return None;
        };
        if suffix != q.suffix || label[..] == *qchars {
            return None;
        }
        // Compare like with like: keys with digraphs merged, then without.
        let pairs = || {
            keys.iter()
                .zip(qkeys)
                .chain(keys.last().into_iter().zip(qkeys.last()))
        };
        let len = keys[0].len();
        let non_ascii = !q.ascii[r].is_ascii() || q.ascii[r].starts_with("xn--");
        // Most candidates from the deletion index are far off: cheap length test first.
        let near = |x: usize, y: usize| x.abs_diff(y) <= 2;
        if !near(label.len(), qchars.len()) && !pairs().any(|(k, qk)| near(k.len(), qk.len())) {
            return None;
        }
        let raw = distance(label, qchars);
        if raw == 1 && len >= MIN_EDIT_LEN && !non_ascii {
            let (rule, phrase) = single_edit_rule(label, qchars)?;
            return Some(self.finding(t, rule, phrase, q, r, len));
        }
        let key_distance = pairs()
            .map(|(k, qk)| distance(k, qk))
            .min()
            .unwrap_or(usize::MAX);
        let key_weight = || {
            pairs()
                .map(|(k, qk)| weighted(k, qk))
                .fold(f32::MAX, f32::min)
        };
        let (rule, phrase) = if key_distance == 0 {
            match single_edit_rule(label, qchars) {
                Some(rp) if !non_ascii => rp,
                _ => lookalike_rule(label, q.unicode[r]),
            }
        } else if raw == 1 && len >= MIN_EDIT_LEN {
            single_edit_rule(label, qchars)?
        } else if len >= MIN_EDIT_LEN && key_distance == 1 {
            let (rule, phrase) = lookalike_rule(label, q.unicode[r]);
            (rule, format!("{phrase}, and one more edit"))
        } else if len >= TWO_EDIT_LEN
            && ((raw == 2 && weighted(label, qchars) <= TWO_EDIT_COST)
                || (key_distance == 2 && key_weight() <= TWO_EDIT_COST))
        {
            let ls: String = label.iter().collect();
            (
                Rule::TwoEdits,
                format!(
                    "\"{}\" is two typing slips away from \"{ls}\"",
                    q.unicode[r]
                ),
            )
        } else {
            return None;
        };
        Some(self.finding(t, rule, phrase, q, r, len))
    }

    /// Rules anchored on a protected label spelt exactly: suffix typos and swaps, a suffix
    /// cut short or appended, the real name as someone else's subdomain.
    fn anchored_rules(&self, q: &Query, keep: &mut impl FnMut(Finding)) {
        let n = q.ascii.len();
        for i in 0..n.saturating_sub(1) {
            for &id in self.index.get(key(Tag::Label, q.ascii[i].chars())) {
                let t = &self.targets[id as usize];
                match &t.kind {
                    Kind::Domain {
                        label_ascii,
                        suffix,
                        ..
                    } if *label_ascii == q.ascii[i] => {
                        let rest = q.ascii[i + 1..].join(".");
                        if let Some((rule, phrase)) = self.suffix_change(&t.entry, suffix, &rest, q)
                        {
                            keep(self.finding(t, rule, phrase, q, i, label_ascii.len()));
                        }
                    }
                    Kind::Suffix { labels } if i >= 1 && i + labels.len() < n => {
                        let k = labels.len();
                        if q.ascii[i..i + k].iter().zip(labels).all(|(a, b)| a == b) {
                            let tail = q.ascii[i + k..].join(".");
                            let (rule, phrase) = self.appended(&t.entry, &tail, q);
                            keep(self.finding(t, rule, phrase, q, i, t.entry.len()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// `tail` follows the real name: a bare public suffix (appended) or a domain.
    fn appended(&self, real: &str, tail: &str, q: &Query) -> (Rule, String) {
        // The tail is (part of) the query's own public suffix: nothing registrable follows.
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
        }
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
            return Some(self.appended(real, tail, q));
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
    fn suffix_target_rules(&self, q: &Query, keep: &mut impl FnMut(Finding)) {
        let n = q.ascii.len();
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
                    let ec = chars(&t.entry);
                    if matches!(t.kind, Kind::Suffix { .. }) && distance(&ec, &tc) == 1 {
                        let phrase = suffix_phrase(&ec, &tc);
                        keep(self.finding(t, Rule::SuffixTypo, phrase, q, n - k - 1, ec.len()));
                    }
                }
            }
            for partner in self.swaps.get(&tail).into_iter().flatten() {
                for &id in self.index.get(key(Tag::Name, partner.chars())) {
                    let t = &self.targets[id as usize];
                    if matches!(t.kind, Kind::Suffix { .. }) && t.entry == *partner {
                        let phrase = format!(
                            "the suffix \"{partner}\" was swapped for \"{tail}\", often confused with it"
                        );
                        keep(self.finding(
                            t,
                            Rule::SuffixSwap,
                            phrase,
                            q,
                            n - k - 1,
                            partner.len(),
                        ));
                    }
                }
            }
        }
    }
}

/// The visual key of a label without digraphs merged.
fn plain_key(label: &str) -> Vec<char> {
    let mut k = Vec::with_capacity(label.len());
    fold_into(label, &mut k, false);
    k
}

fn label_of(t: &Target) -> &str {
    match &t.kind {
        Kind::Domain { label_ascii, .. } => label_ascii,
        Kind::Suffix { .. } => &t.entry,
    }
}
