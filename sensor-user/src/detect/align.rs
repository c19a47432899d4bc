//! Aligns a seen label with a protected one through their confusable skeletons, so one
//! pass says how many real changes separate them, how likely each is as a slip, and which
//! characters only *look* different (confusables, which cost nothing).
//!
//! The alignment is an optimal-string-alignment distance over the original characters
//! where a character (or a digraph such as `rn`) whose skeleton equals the other side's is
//! free. Its first measure is the visible difference (the *weight*, in half-units): a
//! letter that merely resembles the original (`n` for `m`, `nn` for `m`, `e` for `c`)
//! weighs one, any other change two. Among equally visible alignments it prefers the one
//! made of likely slips: a neighbouring key, doubled letter, swapped pair, vowel or
//! similar glyph costs one typing half-unit, anything else two.

use super::{fold, keyboard};

/// One difference between the protected label and the seen one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Characters that render like the protected ones (`а` for `a`, `rn` for `m`).
    Confusable {
        /// The protected characters.
        from: String,
        /// What stands in for them.
        to: String,
    },
    /// The character at `at` was left out.
    Delete {
        /// Position in the protected label.
        at: usize,
        /// The missing character.
        ch: char,
    },
    /// `ch` was added before position `at`.
    Insert {
        /// Position in the protected label.
        at: usize,
        /// The extra character.
        ch: char,
    },
    /// Characters that resemble the protected ones without rendering the same (`nn`
    /// for `m`, `lb` for `b`); the single-letter kind is a [`Step::Substitute`].
    Resembles {
        /// The protected characters.
        from: String,
        /// What stands in for them.
        to: String,
    },
    /// The character at `at` was replaced.
    Substitute {
        /// Position in the protected label.
        at: usize,
        /// The protected character.
        from: char,
        /// What replaced it.
        to: char,
    },
    /// The characters at `at` and `at + 1` swapped places.
    Transpose {
        /// Position in the protected label.
        at: usize,
    },
}

impl Step {
    /// Whether the step is a change (a confusable is not).
    pub fn is_change(&self) -> bool {
        !matches!(self, Step::Confusable { .. })
    }
}

/// The cheapest way from the protected label to the seen one.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// Changes, confusables excluded.
    pub edits: usize,
    /// How visible the changes are, in half-units: 1 for a resembling letter, 2 for any
    /// other change.
    pub weight: u32,
    /// How likely they are as slips, in half-units: 1 for a likely slip, 2 otherwise.
    pub half_cost: u32,
    /// The differences, left to right.
    pub steps: Vec<Step>,
}

impl Alignment {
    /// Whether every change is a likely slip.
    pub fn all_likely(&self) -> bool {
        self.half_cost as usize == self.edits
    }

    /// The changes only.
    pub fn changes(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.is_change())
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// One character of either side with its skeleton.
/// Longest skeleton of one character kept (longer ones are compared by their start).
const KEY: usize = 4;

struct Glyph {
    ch: char,
    key: [char; KEY],
    len: u8,
}

impl Glyph {
    fn new(ch: char) -> Glyph {
        let mut g = Glyph {
            ch,
            key: ['\0'; KEY],
            len: 0,
        };
        if ch.is_ascii() {
            // The common case, without the skeleton machinery.
            g.key[0] = fold::char_key_ascii(ch);
            g.len = 1;
        } else {
            for (i, c) in fold::char_key(ch).into_iter().take(KEY).enumerate() {
                g.key[i] = c;
                g.len = i as u8 + 1;
            }
        }
        g
    }

    fn of(s: &[char]) -> Vec<Glyph> {
        s.iter().map(|&ch| Glyph::new(ch)).collect()
    }

    fn key(&self) -> &[char] {
        &self.key[..self.len as usize]
    }

    /// The single ASCII letter this glyph reads as, for keyboard and vowel tests.
    fn base(&self) -> char {
        match self.key() {
            [c] => *c,
            _ => self.ch,
        }
    }
}

/// Whether the pair `a`, `b` reads as the single glyph `c` (`rn` / `m`, `æ` / `ae`).
fn pair_reads_as(a: &Glyph, b: &Glyph, c: &Glyph) -> bool {
    let (x, y, z) = (a.key(), b.key(), c.key());
    if x.len() + y.len() == z.len() && z.starts_with(x) && z.ends_with(y) {
        return true;
    }
    match (x, y, z) {
        ([x], [y], [z]) => fold::reads_as(*x, *y) == Some(*z),
        _ => false,
    }
}

fn likely_sub(a: &Glyph, b: &Glyph) -> bool {
    let (x, y) = (a.base(), b.base());
    keyboard::adjacent(x, y) || (is_vowel(x) && is_vowel(y)) || fold::similar(x, y)
}

/// Whether replacing `a` by `b` is a likely slip: a neighbouring key, a vowel for a
/// vowel, a letter that resembles it.
pub fn likely_substitution(a: char, b: char) -> bool {
    likely_sub(&Glyph::new(a), &Glyph::new(b))
}

/// `c` added or dropped between `prev` and `next` of the protected label.
fn likely_indel(c: char, prev: Option<&Glyph>, next: Option<&Glyph>) -> bool {
    let near = |n: Option<&Glyph>| n.is_some_and(|n| n.ch == c || keyboard::adjacent(c, n.base()));
    c == '-' || near(prev) || near(next)
}

/// Whether inserting `c` before position `at` of `p` is a likely slip (a doubled letter,
/// a neighbouring key, a hyphen).
pub fn likely_insertion(p: &[char], at: usize, c: char) -> bool {
    let glyph = |k: usize| p.get(k).map(|&ch| Glyph::new(ch));
    likely_indel(
        c,
        at.checked_sub(1).and_then(glyph).as_ref(),
        glyph(at).as_ref(),
    )
}

/// For each adjacent pair of one side: the ASCII letter it reads as (`rn`: `m`) or
/// resembles (`nn`: `m`), and whether any glyph there has a longer skeleton.
struct Pairs {
    reads: Vec<Option<char>>,
    resembles: Vec<Option<char>>,
    multi: bool,
}

impl Pairs {
    fn of(g: &[Glyph]) -> Pairs {
        let single = |k: usize| match g[k].key() {
            [c] => Some(*c),
            _ => None,
        };
        let n = g.len().saturating_sub(1);
        let (mut reads, mut resembles) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for k in 0..n {
            let (a, b) = (single(k), single(k + 1));
            let both = a.zip(b);
            reads.push(both.and_then(|(a, b)| fold::reads_as(a, b)));
            resembles.push(both.and_then(|(a, b)| fold::resembles(a, b)));
        }
        Pairs {
            reads,
            resembles,
            multi: g.iter().any(|x| x.len != 1),
        }
    }

    /// Whether the pair at `k` of `side` renders like the glyph `c` (`Some(true)`),
    /// only resembles it (`Some(false)`), or neither.
    fn against(&self, k: usize, side: &[Glyph], c: &Glyph) -> Option<bool> {
        if k + 1 >= side.len() {
            return None;
        }
        let base = match c.key() {
            [x] => Some(*x),
            _ => None,
        };
        if base.is_some() && self.reads[k] == base {
            return Some(true);
        }
        if self.multi && pair_reads_as(&side[k], &side[k + 1], c) {
            return Some(true);
        }
        if base.is_some() && self.resembles[k] == base {
            return Some(false);
        }
        None
    }
}

/// What the cell came from, for the trace back.
#[derive(Clone, Copy)]
enum Move {
    Start,
    Same,
    Confusable(usize, usize),
    Resembles(usize, usize),
    Delete,
    Insert,
    Substitute,
    Transpose,
}

/// Cost layout: visible weight, then typing cost, then the number of changes.
const WEIGHT: u64 = 1 << 40;
const TYPING: u64 = 1 << 20;
const EDIT: u64 = 1;
/// A resembling letter: weight 1, a likely slip.
const RESEMBLES: u64 = WEIGHT + TYPING + EDIT;

/// Aligns protected label `p` with seen label `q` (both as characters, lower case).
pub fn align(p: &[char], q: &[char]) -> Alignment {
    let (cost, from) = fill(p, q);
    let total = cost[p.len() * (q.len() + 1) + q.len()];
    Alignment {
        edits: (total % TYPING) as usize,
        weight: (total / WEIGHT) as u32,
        half_cost: ((total % WEIGHT) / TYPING) as u32,
        steps: trace(p, q, &from),
    }
}

/// The cost grid (row `i` for `p[..i]`, column `j` for `q[..j]`) and each cell's move.
fn fill(p: &[char], q: &[char]) -> (Vec<u64>, Vec<Move>) {
    let (pg, qg) = (Glyph::of(p), Glyph::of(q));
    let (n, m) = (p.len(), q.len());
    // What each adjacent pair of either side reads as or resembles, computed once.
    let (p_pairs, q_pairs) = (Pairs::of(&pg), Pairs::of(&qg));
    let w = m + 1;
    let mut cost = vec![u64::MAX; (n + 1) * w];
    let mut from = vec![Move::Start; (n + 1) * w];
    cost[0] = 0;
    // Any change that is not a resembling letter: weight 2, typing 1 or 2.
    let half = |likely: bool| 2 * WEIGHT + if likely { TYPING } else { 2 * TYPING } + EDIT;
    // Paths that stray far from the diagonal cost more changes than any budget allows
    // (pairs read as one glyph move it by one each, hence the margin).
    let band = n.abs_diff(m) + 4;
    for i in 0..=n {
        for j in i.saturating_sub(band)..=m.min(i + band) {
            let here = cost[i * w + j];
            if here == u64::MAX {
                continue;
            }
            let mut relax = |ni: usize, nj: usize, c: u64, mv: Move| {
                let k = ni * w + nj;
                if here + c < cost[k] {
                    cost[k] = here + c;
                    from[k] = mv;
                }
            };
            if i < n && j < m {
                if p[i] == q[j] {
                    relax(i + 1, j + 1, 0, Move::Same);
                } else if pg[i].key() == qg[j].key() {
                    relax(i + 1, j + 1, 0, Move::Confusable(1, 1));
                } else if fold::similar(pg[i].base(), qg[j].base()) {
                    relax(i + 1, j + 1, RESEMBLES, Move::Substitute);
                } else {
                    let likely = likely_sub(&pg[i], &qg[j]);
                    relax(i + 1, j + 1, half(likely), Move::Substitute);
                }
                match q_pairs.against(j, &qg, &pg[i]) {
                    Some(true) => relax(i + 1, j + 2, 0, Move::Confusable(1, 2)),
                    Some(false) => relax(i + 1, j + 2, RESEMBLES, Move::Resembles(1, 2)),
                    None => {}
                }
                match p_pairs.against(i, &pg, &qg[j]) {
                    Some(true) => relax(i + 2, j + 1, 0, Move::Confusable(2, 1)),
                    Some(false) => relax(i + 2, j + 1, RESEMBLES, Move::Resembles(2, 1)),
                    None => {}
                }
                if i + 1 < n && j + 1 < m && p[i] == q[j + 1] && p[i + 1] == q[j] {
                    relax(i + 2, j + 2, half(true), Move::Transpose);
                }
            }
            if i < n {
                let likely = likely_indel(p[i], i.checked_sub(1).map(|k| &pg[k]), pg.get(i + 1));
                relax(i + 1, j, half(likely), Move::Delete);
            }
            if j < m {
                let likely = likely_indel(q[j], i.checked_sub(1).map(|k| &pg[k]), pg.get(i));
                relax(i, j + 1, half(likely), Move::Insert);
            }
        }
    }
    (cost, from)
}

/// The steps of the cheapest alignment, read back from the moves.
fn trace(p: &[char], q: &[char], from: &[Move]) -> Vec<Step> {
    let w = q.len() + 1;
    let mut steps = Vec::new();
    let (mut i, mut j) = (p.len(), q.len());
    let text = |s: &[char]| s.iter().collect::<String>();
    while i > 0 || j > 0 {
        match from[i * w + j] {
            Move::Start => break,
            Move::Same => (i, j) = (i - 1, j - 1),
            Move::Confusable(a, b) => {
                steps.push(Step::Confusable {
                    from: text(&p[i - a..i]),
                    to: text(&q[j - b..j]),
                });
                (i, j) = (i - a, j - b);
            }
            Move::Resembles(a, b) => {
                steps.push(Step::Resembles {
                    from: text(&p[i - a..i]),
                    to: text(&q[j - b..j]),
                });
                (i, j) = (i - a, j - b);
            }
            Move::Delete => {
                steps.push(Step::Delete {
                    at: i - 1,
                    ch: p[i - 1],
                });
                i -= 1;
            }
            Move::Insert => {
                steps.push(Step::Insert {
                    at: i,
                    ch: q[j - 1],
                });
                j -= 1;
            }
            Move::Substitute => {
                steps.push(Step::Substitute {
                    at: i - 1,
                    from: p[i - 1],
                    to: q[j - 1],
                });
                (i, j) = (i - 1, j - 1);
            }
            Move::Transpose => {
                steps.push(Step::Transpose { at: i - 2 });
                (i, j) = (i - 2, j - 2);
            }
        }
    }
    steps.reverse();
    steps
}

/// Whether position `at` of protected label `p` is the end of the label or of one of its
/// hyphenated parts (where an addition lands).
pub fn at_end(p: &[char], at: usize) -> bool {
    at == p.len() || p.get(at) == Some(&'-')
}

/// Whether substituting `a` by `b` flips one bit (memory or transmission errors).
pub fn one_bit(a: char, b: char) -> bool {
    (a as u32 ^ b as u32).count_ones() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn al(p: &str, q: &str) -> Alignment {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        align(&c(p), &c(q))
    }

    #[test]
    fn confusables_are_free_and_named() {
        let a = al("army", "аrmy");
        assert_eq!(a.edits, 0);
        assert_eq!(
            a.steps,
            vec![Step::Confusable {
                from: "a".into(),
                to: "а".into()
            }]
        );
        let a = al("microsoft", "rnicrosoft");
        assert_eq!((a.edits, a.steps.len()), (0, 1));
        assert_eq!(al("paypal", "paypa1").edits, 0);
    }

    #[test]
    fn changes_are_counted_with_their_likelihood() {
        // tmall is two changes from gmail: g→t (a neighbouring key) and i→l (similar).
        let a = al("gmail", "tmall");
        assert_eq!((a.edits, a.weight, a.half_cost), (2, 3, 2));
        // Two resembling letters weigh as much as one typing slip.
        let a = al("example", "cxampie");
        assert_eq!((a.edits, a.weight), (2, 2));
        let a = al("example", "exannple");
        assert_eq!((a.edits, a.weight), (1, 1));
        assert!(matches!(&a.steps[0], Step::Resembles { from, to } if from == "m" && to == "nn"));
        let a = al("state", "starnc");
        assert!(a.edits >= 2);
        let a = al("army", "arny");
        assert_eq!((a.edits, a.half_cost), (1, 1));
        assert_eq!(
            a.steps,
            vec![Step::Substitute {
                at: 2,
                from: 'm',
                to: 'n'
            }]
        );
        let a = al("army", "amry");
        assert_eq!(a.steps, vec![Step::Transpose { at: 1 }]);
        assert!(a.all_likely());
        let a = al("af", "aff");
        assert_eq!((a.edits, a.half_cost), (1, 1));
        // A confusable and a change: both named.
        let a = al("army", "аrmyy");
        assert_eq!(a.edits, 1);
        assert_eq!(a.steps.len(), 2);
    }
}
