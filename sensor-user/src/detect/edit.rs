//! The edit distance between labels (the unit-cost optimal string alignment).

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
    fn distances() {
        assert_eq!(distance(&c("army"), &c("army")), 0);
        assert_eq!(distance(&c("army"), &c("amry")), 1);
        assert_eq!(distance(&c("example"), &c("exmalpe")), 2);
        assert_eq!(distance(&c("mil"), &c("ml")), 1);
    }
}
