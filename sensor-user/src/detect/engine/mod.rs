//! The classifier: protected, allowed, clean, typosquat or lookalike (and which rule), or
//! invalid.
//!
//! Every rule compares through the confusable skeleton first ([`super::fold`]), so a name
//! written with look-alike characters matches whatever the plain name would; the
//! alignment ([`super::align`]) then counts the real changes against one budget.

mod label;
mod suffix;

use std::collections::HashMap;

use super::{
    classification::{Classification, Finding},
    defaults,
    edit::distance,
    fold::{coarse_variants, variants},
    index::Index,
    keys::{Prefix, Tag, key},
    name::Name,
    policy::{Action, Policy, PolicyError, ProtectEntry, protected_name},
    registry::Restricted,
    rule::Rule,
    score::{self, Evidence},
};

#[derive(Debug)]
enum Kind {
    /// `army.mil`: label `army` under suffix `mil` (plus any labels left of it).
    Domain {
        label: Vec<char>,
        label_ascii: String,
        /// Visual keys: with digraphs merged, and without when that differs.
        keys: Vec<Vec<char>>,
        /// Coarse keys (resembling letters merged too), what candidates are found by.
        coarse: Vec<Vec<char>>,
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
    /// The protected entry findings name (ASCII).
    entry: String,
    /// The domain matched: the entry itself or one of its `also` domains (ASCII).
    name: String,
    /// `name` with punycode decoded.
    display: String,
    action: Action,
    /// The action for a lookalike inside a restricted registry.
    restricted_action: Action,
    kind: Kind,
}

/// What one rule found, before it is scored.
struct Change {
    rule: Rule,
    phrase: String,
    /// Visible changes; 0 when only confusable characters differ.
    changes: usize,
    /// Whether every change is a likely slip.
    likely: bool,
}

/// The protected set, indexed so a lookup never scans it.
#[derive(Debug)]
pub struct Engine {
    targets: Vec<Target>,
    allowed: Vec<String>,
    /// Dictionary words: visual key and the word as written.
    words: Vec<(Vec<char>, String)>,
    word_lens: Vec<usize>,
    swaps: HashMap<String, Vec<String>>,
    restricted: Restricted,
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
    /// The public suffix is on the list: the top-level label is one a registry delegates.
    suffix_known: bool,
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

/// The best finding so far, with the action it takes inside a restricted registry.
type Best = Option<(Finding, Action)>;

impl Engine {
    /// Builds the index for `policy`.
    pub fn new(policy: &Policy) -> Result<Self, PolicyError> {
        let mut e = Engine {
            targets: Vec::new(),
            allowed: Vec::new(),
            words: Vec::new(),
            word_lens: Vec::new(),
            swaps: HashMap::new(),
            restricted: Restricted::new(&policy.restricted_registries)?,
            index: Index::default(),
            long_lens: 0,
            suffix_targets: false,
        };
        for p in &policy.protect {
            e.add_entry(p, policy.default_action)?;
        }
        let builtin: Vec<&str> = if policy.builtin_allow {
            defaults::mail_providers()
                .chain(defaults::dns_lists())
                .collect()
        } else {
            Vec::new()
        };
        for a in builtin
            .into_iter()
            .chain(policy.allow.iter().map(String::as_str))
        {
            let name = Name::parse(a).map_err(|reason| PolicyError::BadAllowed {
                entry: a.into(),
                reason,
            })?;
            let id = e.allowed.len() as u32;
            e.index.add(key(Tag::Allow, name.ascii.chars()), id);
            e.allowed.push(name.ascii);
        }
        e.add_words(policy)?;
        e.add_swaps(policy)?;
        e.index.shrink();
        Ok(e)
    }

    /// Number of protected domains (entries and their `also` domains).
    pub fn targets(&self) -> usize {
        self.targets.len()
    }

    /// Each protected entry as findings name it, with its action (an entry with `also`
    /// domains is listed once).
    pub fn target_actions(&self) -> impl Iterator<Item = (&str, Action)> {
        let mut seen = std::collections::HashSet::new();
        self.targets
            .iter()
            .filter(move |t| seen.insert(t.entry.as_str()))
            .map(|t| (t.entry.as_str(), t.action))
    }

    /// Number of keys in the index (for sizing reports).
    pub fn index_keys(&self) -> usize {
        self.index.len()
    }

    fn add_entry(&mut self, p: &ProtectEntry, default: Action) -> Result<(), PolicyError> {
        let entry = protected_name(&p.entry)?;
        let action = p.action.unwrap_or(default);
        let restricted_action = if p.block_restricted {
            action
        } else {
            Action::Alert
        };
        let mut names = vec![entry.clone()];
        for a in &p.also {
            names.push(Name::parse(a).map_err(|reason| PolicyError::BadAlso {
                entry: p.entry.clone(),
                domain: a.clone(),
                reason,
            })?);
        }
        for name in names {
            self.add_target(&entry.ascii, name, action, restricted_action);
        }
        Ok(())
    }

    fn add_words(&mut self, policy: &Policy) -> Result<(), PolicyError> {
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
                let id = self.words.len() as u32;
                self.index.add(key(Tag::Word, k.iter().copied()), id);
                if !self.word_lens.contains(&k.len()) {
                    self.word_lens.push(k.len());
                }
                self.words.push((k, lw.clone()));
            }
        }
        Ok(())
    }

    fn add_swaps(&mut self, policy: &Policy) -> Result<(), PolicyError> {
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
            self.swaps.entry(a.clone()).or_default().push(b.clone());
            self.swaps.entry(b).or_default().push(a);
        }
        Ok(())
    }

    fn add_target(&mut self, entry: &str, name: Name, action: Action, restricted: Action) {
        let id = self.targets.len() as u32;
        self.index.add(key(Tag::Name, name.ascii.chars()), id);
        let registrable = psl::domain(name.ascii.as_bytes()).map(|d| d.as_bytes().len());
        let suffix_len = psl::suffix(name.ascii.as_bytes()).map(|s| s.as_bytes().len());
        let kind = match (registrable, suffix_len) {
            (Some(reg), Some(suf)) => self.domain_kind(&name, reg, suf, id),
            _ => {
                // The entry is itself a public suffix (or an unlisted TLD).
                self.suffix_targets = true;
                let labels: Vec<String> = name.ascii.split('.').map(String::from).collect();
                for k in variants(&labels[0]) {
                    self.index.add(key(Tag::Exact, k), id);
                }
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
            entry: entry.to_string(),
            name: name.ascii,
            display: name.unicode,
            action,
            restricted_action: restricted,
            kind,
        });
    }

    /// Indexes a protected domain whose registrable part is `reg` bytes, `suf` of them
    /// the public suffix.
    fn domain_kind(&mut self, name: &Name, reg: usize, suf: usize, id: u32) -> Kind {
        let reg_str = &name.ascii[name.ascii.len() - reg..];
        let label_ascii = reg_str[..reg - suf - 1].to_string();
        let suffix = reg_str[reg - suf..].to_string();
        let ulabels: Vec<&str> = name.unicode.split('.').collect();
        let nsuf = suffix.split('.').count();
        let ulabel = ulabels
            .get(ulabels.len().saturating_sub(nsuf + 1))
            .copied()
            .unwrap_or(&label_ascii);
        let keys = variants(ulabel);
        let coarse = coarse_variants(ulabel);
        for k in &coarse {
            self.index_key(k, id);
        }
        let (mut heads, mut tails) = (Vec::new(), Vec::new());
        for k in &keys {
            self.index.add(key(Tag::Exact, k.iter().copied()), id);
            // Hyphenated names: the parts a dictionary word may replace.
            let dash = |c: &char| *c == '-';
            if let (Some(f), Some(l)) = (k.iter().position(dash), k.iter().rposition(dash)) {
                self.index
                    .add(key(Tag::Tail, k[f + 1..].iter().copied()), id);
                self.index.add(key(Tag::Head, k[..l].iter().copied()), id);
                tails.push(k[f + 1..].to_vec());
                heads.push(k[..l].to_vec());
            }
        }
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
            label: chars(ulabel),
            label_ascii,
            keys,
            coarse,
            suffix,
            dot_dropped,
            heads,
            tails,
        }
    }

    /// Indexes one coarse key of a protected label: its deletion neighbourhood (one
    /// deletion from 2 letters up, two from [`label::TWO_EDIT_LEN`] up).
    fn index_key(&mut self, k: &[char], id: u32) {
        let pre = Prefix::new(k);
        self.index.add(pre.whole(Tag::Deletion), id);
        if k.len() < 2 {
            return;
        }
        for i in 0..k.len() {
            self.index.add(pre.without(Tag::Deletion, i), id);
        }
        if k.len() >= label::TWO_EDIT_LEN {
            self.long_lens |= 1u128 << k.len().min(127);
            for i in 0..k.len() {
                for j in i + 1..k.len() {
                    self.index.add(pre.without2(Tag::Deletion, i, j), id);
                }
            }
        }
    }

    /// Classifies one name as seen on the wire or typed by a person.
    pub fn classify(&self, raw: &str) -> Classification {
        let name = match Name::parse(raw) {
            Ok(n) => n,
            Err(e) => return Classification::Invalid(e),
        };
        let whole = Prefix::ascii(&name.ascii);
        if let Some(id) = self.under(&name, &whole, Tag::Name, |id| &self.targets[id].name) {
            return Classification::Protected {
                target: self.targets[id].entry.clone(),
            };
        }
        if let Some(id) = self.under(&name, &whole, Tag::Allow, |id| &self.allowed[id]) {
            return Classification::Allowed {
                by: self.allowed[id].clone(),
            };
        }
        let psl_suffix = psl::suffix(name.ascii.as_bytes());
        let suffix_len = psl_suffix.map_or(0, |s| s.as_bytes().len());
        let suffix_known = psl_suffix.is_some_and(|s| s.is_known());
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
            suffix_known,
            ascii,
            unicode,
        };
        let mut best: Best = None;
        if let Some(r) = q.registrable() {
            self.label_rules(&q, r, &mut best);
        }
        self.anchored_rules(&q, &mut best);
        if self.suffix_targets {
            self.suffix_target_rules(&q, &mut best);
        }
        match best {
            None => Classification::Clean,
            Some((f, restricted_action)) => self.restricted_or_not(&name, f, restricted_action),
        }
    }

    /// A finding whose name lies under a restricted registry is a lookalike.
    fn restricted_or_not(&self, name: &Name, mut f: Finding, action: Action) -> Classification {
        let Some(reg) = self.restricted.find(&name.ascii) else {
            return Classification::Typosquat(f);
        };
        f.explanation = format!(
            "{}; {} lies under {}, a restricted registry ({}) where only vetted bodies register",
            f.explanation,
            name.ascii,
            reg.suffix,
            reg.kind.name()
        );
        f.action = action;
        f.registry = Some(reg.clone());
        Classification::Lookalike(f)
    }

    /// The id of the most specific entry of kind `tag` that `name` equals or falls under.
    fn under<'s>(
        &'s self,
        name: &Name,
        pre: &Prefix,
        tag: Tag,
        entry: impl Fn(usize) -> &'s String,
    ) -> Option<usize> {
        let n = name.ascii.len();
        let dots = name
            .ascii
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'.')
            .map(|(i, _)| i + 1);
        for s in std::iter::once(0).chain(dots) {
            for &id in self.index.get(pre.slice(tag, s, n)) {
                if *entry(id as usize) == name.ascii[s..] {
                    return Some(id as usize);
                }
            }
        }
        None
    }

    /// Scores `c` (found comparing the query from label `from` with target `t`, whose
    /// label has `len` letters) and keeps it when it beats the best so far.
    fn keep(&self, best: &mut Best, t: &Target, c: Change, q: &Query, from: usize, len: usize) {
        let score = score::score(Evidence {
            rule: c.rule,
            changes: c.changes,
            likely: c.likely,
            label_len: len,
        });
        if best.as_ref().is_some_and(|(b, _)| b.score >= score) {
            return;
        }
        let compared = q.from(from);
        let shown = if q.name.unicode == q.name.ascii {
            q.name.ascii.clone()
        } else {
            format!("{} ({})", q.name.unicode, q.name.ascii)
        };
        let declared = if t.name == t.entry {
            String::new()
        } else {
            format!(" (declared with {})", t.entry)
        };
        let f = Finding {
            target: t.entry.clone(),
            rule: c.rule,
            distance: distance(&chars(&compared), &chars(&t.display)),
            score,
            explanation: format!("{shown} looks like {}{declared}: {}", t.display, c.phrase),
            action: t.action,
            registry: None,
        };
        *best = Some((f, t.restricted_action));
    }
}

fn label_of(t: &Target) -> &str {
    match &t.kind {
        Kind::Domain { label_ascii, .. } => label_ascii,
        Kind::Suffix { .. } => &t.name,
    }
}
