//! 64-bit keys for label strings and their deletion variants, computed without building
//! the strings: a polynomial hash over characters, so the hash of a label with one or two
//! characters removed comes from its prefix hashes in constant time.

use std::hash::{BuildHasher, Hasher};

const P: u64 = 0x100_0000_01b3;
/// Longest sequence hashed: a whole name (253 bytes) with room to spare.
const MAX: usize = 256;
/// `P^i` for every length a name can have.
static POW: [u64; MAX + 1] = {
    let mut t = [1u64; MAX + 1];
    let mut i = 1;
    while i <= MAX {
        t[i] = t[i - 1].wrapping_mul(P);
        i += 1;
    }
    t
};

fn pow(i: usize) -> u64 {
    POW.get(i)
        .copied()
        .unwrap_or_else(|| P.wrapping_pow(i as u32))
}

/// What a key stands for, so the same characters under different uses never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Tag {
    /// A coarse key (see `fold::coarse_variants`) with 0, 1 or 2 characters deleted.
    Deletion = 1,
    /// A whole visual key (protected labels; the suffix rules start from it).
    Exact = 2,
    /// A protected label with part of its suffix glued on (`armymil`).
    DotDropped = 3,
    /// A hyphenated protected label without its first part.
    Tail = 4,
    /// A hyphenated protected label without its last part.
    Head = 5,
    /// A dictionary word.
    Word = 6,
    /// A protected suffix (of a suffix entry) with 0 or 1 characters deleted.
    Suffix = 8,
    /// A protected entry, spelt exactly (ASCII form).
    Name = 9,
    /// An allow-list entry, spelt exactly (ASCII form).
    Allow = 10,
    /// A restricted registry's suffix, spelt exactly (ASCII form).
    Restricted = 11,
}

/// Prefix hashes of one character sequence.
pub struct Prefix {
    pre: Vec<u64>,
}

impl Prefix {
    /// Prepares `s` for constant-time hashing of its deletion variants.
    pub fn new(s: &[char]) -> Self {
        Self::from_iter(s.len(), s.iter().copied())
    }

    /// Same as [`Prefix::new`] for an ASCII string's bytes.
    pub fn ascii(s: &str) -> Self {
        Self::from_iter(s.len(), s.bytes().map(char::from))
    }

    fn from_iter(len: usize, s: impl Iterator<Item = char>) -> Self {
        let mut pre = Vec::with_capacity(len + 1);
        let mut h = 0u64;
        pre.push(h);
        for c in s {
            h = h.wrapping_mul(P).wrapping_add(c as u64 + 1);
            pre.push(h);
        }
        Prefix { pre }
    }

    /// Length of the sequence.
    pub fn len(&self) -> usize {
        self.pre.len() - 1
    }

    /// Whether the sequence is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hash of `s[a..b]`.
    fn range(&self, a: usize, b: usize) -> u64 {
        self.pre[b].wrapping_sub(self.pre[a].wrapping_mul(pow(b - a)))
    }

    /// Hash of `left` followed by `s[a..b]`.
    fn then(&self, left: u64, a: usize, b: usize) -> u64 {
        left.wrapping_mul(pow(b - a)).wrapping_add(self.range(a, b))
    }

    /// Key of the whole sequence.
    pub fn whole(&self, tag: Tag) -> u64 {
        finish(tag, self.range(0, self.len()))
    }

    /// Key of the sequence with position `i` removed.
    pub fn without(&self, tag: Tag, i: usize) -> u64 {
        let n = self.len();
        finish(tag, self.then(self.range(0, i), i + 1, n))
    }

    /// Key of the sequence with positions `i < j` removed.
    pub fn without2(&self, tag: Tag, i: usize, j: usize) -> u64 {
        let n = self.len();
        let h = self.then(self.range(0, i), i + 1, j);
        finish(tag, self.then(h, j + 1, n))
    }

    /// Key of `s[a..b]`.
    pub fn slice(&self, tag: Tag, a: usize, b: usize) -> u64 {
        finish(tag, self.range(a, b))
    }
}

/// Key of `a` followed by `b`, from their unfinished hashes (see [`raw`]).
pub fn concat(tag: Tag, a: u64, b: u64, b_len: usize) -> u64 {
    finish(tag, a.wrapping_mul(pow(b_len)).wrapping_add(b))
}

/// The unfinished hash of a sequence, for [`concat`].
pub fn raw(s: &[char]) -> u64 {
    s.iter()
        .fold(0u64, |h, &c| h.wrapping_mul(P).wrapping_add(c as u64 + 1))
}

/// Key of a character sequence.
pub fn key(tag: Tag, s: impl IntoIterator<Item = char>) -> u64 {
    let h = s
        .into_iter()
        .fold(0u64, |h, c| h.wrapping_mul(P).wrapping_add(c as u64 + 1));
    finish(tag, h)
}

/// Mixes the tag in and spreads the bits: one multiply, then the high half (the
/// best-mixed bits) folded onto the low half that picks the hash-table bucket.
fn finish(tag: Tag, h: u64) -> u64 {
    let z =
        (h ^ (tag as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 29)
}

/// Hasher for keys that are already well mixed: passes the value through.
#[derive(Default, Clone, Copy)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Builds [`PreHashed`] hashers.
#[derive(Default, Clone, Copy)]
pub struct BuildPreHashed;

impl BuildHasher for BuildPreHashed {
    type Hasher = PreHashed;
    fn build_hasher(&self) -> PreHashed {
        PreHashed(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn deletion_keys_equal_keys_of_the_shorter_strings() {
        let p = Prefix::new(&c("example"));
        assert_eq!(p.whole(Tag::Exact), key(Tag::Exact, c("example")));
        assert_eq!(p.without(Tag::Deletion, 0), key(Tag::Deletion, c("xample")));
        assert_eq!(p.without(Tag::Deletion, 6), key(Tag::Deletion, c("exampl")));
        assert_eq!(
            p.without2(Tag::Deletion, 1, 3),
            key(Tag::Deletion, c("eaple"))
        );
        assert_eq!(
            p.without2(Tag::Deletion, 5, 6),
            key(Tag::Deletion, c("examp"))
        );
        assert_eq!(p.slice(Tag::Word, 2, 5), key(Tag::Word, c("amp")));
        assert_ne!(key(Tag::Exact, c("ab")), key(Tag::Deletion, c("ab")));
        assert_eq!(
            concat(Tag::Exact, raw(&c("ar")), raw(&c("my")), 2),
            key(Tag::Exact, c("army"))
        );
        assert_eq!(
            Prefix::ascii("army.mil").slice(Tag::Name, 5, 8),
            key(Tag::Name, c("mil"))
        );
    }
}
