//! The keyed name tag: SipHash-1-3 of a question's wire name (ASCII upper case folded to
//! lower, as the name hash folds it) under a secret key of this installation.
//!
//! Name blocks are keyed by the 64-bit FNV-1a name hash, which is not keyed: whoever picks
//! a name can compute one whose hash is a legitimate name's (FNV is invertible byte by
//! byte, so a meet in the middle takes about 2^32 steps) and get it looked up. A whole-
//! name block learned for such a name would drop the legitimate name's answers. So a
//! learned whole-name block carries this tag (`NAME_TAGS`), and the kernel applies it to
//! a question only when the question's tag is the block's: without the key, which never
//! leaves the host, no name can be picked to meet it. (Seeding FNV with the key would not
//! do: its low bits depend on the seed's low bits only, so a pair computed for one low
//! byte of the seed collides under 1 key in 256.)

/// The words of a wire name the kernel hashes as whole words: `MAX_QNAME_WIRE / 8`.
pub const MAX_TAG_WORDS: usize = crate::qname::MAX_QNAME_WIRE / 8;

/// SipHash's two key halves from the installation's 64-bit key.
pub const fn keys(key: u64) -> (u64, u64) {
    (key, key.rotate_left(32) ^ 0x6d78_7365_6e74_7279)
}

/// SipHash's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Sip {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl Sip {
    /// The state for `key` (its second half derived from the first: 64 secret bits are
    /// plenty where nobody can test a guess offline).
    #[inline(always)]
    pub const fn new(key: u64) -> Self {
        let (k0, k1) = keys(key);
        Self {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    /// Absorbs one 8-byte word (little-endian), one compression round.
    #[inline(always)]
    pub fn word(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.v0 ^= m;
    }

    /// The hash of `len` bytes, `last` holding the `len % 8` bytes after the whole words
    /// (little-endian, the rest zero); never 0, which means "no tag".
    #[inline(always)]
    pub fn finish(mut self, len: usize, last: u64) -> u64 {
        self.word(((len as u64) << 56) | last);
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        let h = self.v0 ^ self.v1 ^ self.v2 ^ self.v3;
        if h == 0 { 1 } else { h }
    }
}

/// `w` (8 bytes, little-endian) with ASCII upper-case letters lowered, byte by byte
/// without branches: bit 7 of each byte of the sums says whether its low 7 bits reach
/// `A` and pass `Z`; bytes with bit 7 set are no letters.
#[inline(always)]
pub const fn fold_word(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & !HIGH;
    let from_a = low + 0x3f3f_3f3f_3f3f_3f3f; // 0x41 + 0x3f = 0x80
    let past_z = low + 0x2525_2525_2525_2525; // 0x5b + 0x25 = 0x80
    let upper = from_a & !past_z & !w & HIGH;
    w | (upper >> 2)
}

/// The low `n` bytes of `w` (`n` < 8).
#[inline(always)]
pub const fn low_bytes(w: u64, n: usize) -> u64 {
    w & ((1u64 << (8 * (n & 7))) - 1)
}

/// The tag of a wire name (length bytes, labels and the root's zero) under `key`.
pub fn name_tag(key: u64, wire: &[u8]) -> u64 {
    let mut sip = Sip::new(key);
    let mut words = wire.chunks_exact(8);
    for w in words.by_ref() {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        sip.word(fold_word(u64::from_le_bytes(b)));
    }
    let rest = words.remainder();
    let mut b = [0u8; 8];
    b[..rest.len()].copy_from_slice(rest);
    sip.finish(wire.len(), fold_word(u64::from_le_bytes(b)))
}

/// The tag of the question name of DNS message `msg` under `key`, or `None` when the
/// kernel computes no name hash for it (`qname_hashes`).
pub fn question_tag(key: u64, msg: &[u8]) -> Option<u64> {
    question_tag_of(key, msg, &crate::qname::qname_hashes(msg)?)
}

/// As [`question_tag`], for a message whose question's hashes `h` are already known.
pub fn question_tag_of(key: u64, msg: &[u8], h: &crate::QnameHashes) -> Option<u64> {
    // `records` is 5 past the name's terminating zero (type and class after it).
    let end = usize::from(h.records).checked_sub(5)?;
    Some(name_tag(key, msg.get(crate::qname::QNAME_OFFSET..=end)?))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::qname::{MAX_QNAME_WIRE, encode_name};

    fn wire(name: &str) -> Vec<u8> {
        let mut out = [0u8; MAX_QNAME_WIRE];
        let n = encode_name(name, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn the_tag_is_siphash_1_3_of_the_folded_name() {
        use core::hash::Hasher;
        for (key, name) in [
            (1u64, "a"),
            (0x0123_4567_89ab_cdef, "Mx.Army.Ml"),
            (u64::MAX, "army.mil.a.b.c.d.evil.co.uk"),
            (42, "xn--rmy-8cd.mil"),
        ] {
            let w = wire(name);
            let (k0, k1) = keys(key);
            let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
            h.write(&w.to_ascii_lowercase());
            assert_eq!(name_tag(key, &w), h.finish(), "{name}");
        }
    }

    #[test]
    fn folding_lowers_ascii_letters_only() {
        let all: Vec<u8> = (0..=255u8).collect();
        for w in all.chunks_exact(8) {
            let word = u64::from_le_bytes(w.try_into().unwrap());
            let expect: Vec<u8> = w.iter().map(|b| b.to_ascii_lowercase()).collect();
            assert_eq!(fold_word(word).to_le_bytes().to_vec(), expect, "{w:?}");
        }
    }

    #[test]
    fn case_does_not_change_the_tag_and_the_key_does() {
        assert_eq!(
            name_tag(7, &wire("Mail.Army.Mil.Evil.Example")),
            name_tag(7, &wire("mail.army.mil.evil.example"))
        );
        assert_ne!(
            name_tag(7, &wire("mail.army.mil")),
            name_tag(8, &wire("mail.army.mil"))
        );
        assert_ne!(
            name_tag(7, &wire("mail.army.mil")),
            name_tag(7, &wire("mail.army.mi1"))
        );
    }

    #[test]
    fn every_length_is_its_own_tag() {
        // Names of 1 to 40 wire bytes: the last word's length byte tells them apart.
        let mut seen = std::collections::BTreeSet::new();
        for n in 1..40 {
            let label: std::string::String = "a".repeat(n);
            assert!(seen.insert(name_tag(1, &wire(&label))));
        }
    }

    #[test]
    fn a_question_s_tag_is_its_name_s() {
        let mut msg = std::vec![0u8; 12];
        msg.extend(wire("Mx.Army.Ml"));
        msg.extend([0, 15, 0, 1]);
        assert_eq!(
            question_tag(3, &msg),
            Some(name_tag(3, &wire("mx.army.ml")))
        );
        assert_eq!(question_tag(3, &msg[..20]), None);
    }
}
