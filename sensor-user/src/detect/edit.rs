//! The edit distance between labels and the single edit that turns one into the other.

/// One character-level change from the protected string to the seen one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// `ch` at `at` was left out.
    Delete {
        /// Position in the protected string.
        at: usize,
        /// The missing character.
        ch: char,
    },
    /// `ch` was added before position `at`.
    Insert {
        /// Position in the protected string.
        at: usize,
        /// The extra character.
        ch: char,
    },
    /// `from` at `at` became `to`.
    Substitute {
        /// Position in the protected string.
        at: usize,
        /// The protected character.
        from: char,
        /// What replaced it.
        to: char,
    },
    /// The characters at `at` and `at + 1` swapped places.
    Transpose {
        /// Position in the protected string.
        at: usize,
    },
}

/// The one edit that turns `p` into `q`, if they are exactly one edit apart.
pub fn single_edit(p: &[char], q: &[char]) -> Option<Edit> {
    let k = p.iter().zip(q).take_while(|(a, b)| a == b).count();
    match q.len() as isize - p.len() as isize {
        -1 if q[k..] == p[k + 1..] => Some(Edit::Delete { at: k, ch: p[k] }),
        1 if q[k + 1..] == p[k..] => Some(Edit::Insert { at: k, ch: q[k] }),
        0 if k < p.len() => {
            if q[k + 1..] == p[k + 1..] {
                Some(Edit::Substitute {
                    at: k,
                    from: p[k],
                    to: q[k],
                })
            } else if k + 1 < p.len()
                && q[k] == p[k + 1]
                && q[k + 1] == p[k]
                && q[k + 2..] == p[k + 2..]
            {
                Some(Edit::Transpose { at: k })
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Optimal-string-alignment distance (Damerau-Levenshtein without overlapping edits).
pub fn distance(a: &[char], b: &[char]) -> usize {
    const STACK: usize = 128;
    let m = b.len();
    // Three rolling rows (OSA looks two rows back); on the stack for label-sized input.
    let (mut s0, mut s1, mut s2) = ([0usize; STACK], [0usize; STACK], [0usize; STACK]);
    let mut heap;
    let (mut back2, mut back1, mut cur): (&mut [usize], &mut [usize], &mut [usize]) = if m < STACK {
        (&mut s0[..=m], &mut s1[..=m], &mut s2[..=m])
    } else {
        heap = vec![0usize; 3 * (m + 1)];
        let (x, rest) = heap.split_at_mut(m + 1);
        let (y, z) = rest.split_at_mut(m + 1);
        (x, y, z)
    };
    for (j, v) in back1.iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=m {
            let s = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (back1[j - 1] + s).min(back1[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(back2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut back2, &mut back1);
        std::mem::swap(&mut back1, &mut cur);
    }
    back1[m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn single_edits_are_identified() {
        let p = c("army");
        assert_eq!(
            single_edit(&p, &c("amy")),
            Some(Edit::Delete { at: 1, ch: 'r' })
        );
        assert_eq!(
            single_edit(&p, &c("arrmy")),
            Some(Edit::Insert { at: 2, ch: 'r' })
        );
        assert_eq!(
            single_edit(&p, &c("armys")),
            Some(Edit::Insert { at: 4, ch: 's' })
        );
        assert_eq!(
            single_edit(&p, &c("arny")),
            Some(Edit::Substitute {
                at: 2,
                from: 'm',
                to: 'n'
            })
        );
        assert_eq!(single_edit(&p, &c("amry")), Some(Edit::Transpose { at: 1 }));
        assert_eq!(single_edit(&p, &c("navy")), None);
        assert_eq!(single_edit(&p, &c("army")), None);
    }

    #[test]
    fn distances() {
        assert_eq!(distance(&c("army"), &c("army")), 0);
        assert_eq!(distance(&c("army"), &c("amry")), 1);
        assert_eq!(distance(&c("example"), &c("exmalpe")), 2);
        assert_eq!(distance(&c("mil"), &c("ml")), 1);
    }
}
