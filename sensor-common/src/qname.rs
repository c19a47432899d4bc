//! The question-name hash: one definition, compiled into the kernel and the agent.
//!
//! The hash is 64-bit FNV-1a over the wire-format QNAME (length bytes, labels and
//! the terminating zero) with ASCII upper case folded to lower case. Length bytes
//! are at most 63, below `b'A'`, so folding every byte never changes them.

/// Offset of the question name in a DNS message (after the 12-byte header).
pub const QNAME_OFFSET: usize = 12;
/// Longest wire-format name (RFC 1035: 255 bytes including length bytes).
pub const MAX_QNAME_WIRE: usize = 255;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds one byte into the hash, lower-casing ASCII letters.
#[inline(always)]
pub const fn step(h: u64, b: u8) -> u64 {
    let b = if b >= b'A' && b <= b'Z' { b | 0x20 } else { b };
    (h ^ b as u64).wrapping_mul(FNV_PRIME)
}

/// Hash of the question name of the DNS message `msg`, or `None` when the
/// name is cut off, uses compression, or has a label over 63 bytes.
#[inline(always)]
pub fn qname_hash(msg: &[u8]) -> Option<u64> {
    qname_hashes(msg).map(|h| h.full)
}

/// The hashes the kernel checks for one question: the whole name, the *domain hashes*
/// of its last two and last three labels, and the *stem hashes* of the name without its
/// last one, two and three labels (each 0 when the name has too few labels).
/// A lookalike domain blocked with `BLOCK_SUBTREE` under its [`domain_hash`] is matched
/// through `last2`/`last3`, so lookups of its mail hosts (`mx.army.ml`) are dropped once
/// the domain (`army.ml`) is known; a protected entry put under its [`stem_hash`] with
/// `BLOCK_PREFIX` is matched through the stems, so `army.mil.com` and
/// `army.mil.evil.co.uk` are known lookalikes before any agent has seen them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QnameHashes {
    /// Hash of the whole name (`qname_hash`).
    pub full: u64,
    /// `domain_hash` of the last two labels, or 0.
    pub last2: u64,
    /// `domain_hash` of the last three labels, or 0.
    pub last3: u64,
    /// `stem_hash` of the name without its last label, or 0 (a one-label name).
    pub stem1: u64,
    /// `stem_hash` of the name without its last two labels, or 0.
    pub stem2: u64,
    /// `stem_hash` of the name without its last three labels, or 0.
    pub stem3: u64,
    /// The question type (15 for MX), or 0 when the capture ends before it.
    pub qtype: u16,
    /// Offset of the first resource record: after the question's type and class.
    pub records: u16,
}

/// Seed of the domain hash, distinct from the name hash's so the two never meet.
const DOMAIN_SEED: u64 = 0x6d78_7365_6e74_7279;

/// Folds per-label hashes (each FNV-1a over the label's length byte and its lower-cased
/// bytes) into a domain hash.
#[inline(always)]
const fn fold(h: u64, label: u64) -> u64 {
    (h ^ label).wrapping_mul(FNV_PRIME)
}

/// A running FNV state that is the empty stem (no label yet) reads as "none".
#[inline(always)]
const fn stem(h: u64) -> u64 {
    if h == FNV_OFFSET { 0 } else { h }
}

/// [`qname_hash`] plus the domain hashes of the name's last two and three labels, the
/// stem hashes of the name without its last one to three labels, and the question type.
///
/// One bounded loop over the labels, each fed whole to a [`QnameWalk`]; the kernel drives
/// the same walk from a `bpf_loop` callback.
#[inline(always)]
pub fn qname_hashes(msg: &[u8]) -> Option<QnameHashes> {
    let mut walk = QnameWalk::new();
    for _ in 0..MAX_QNAME_LABELS {
        match walk.feed_label(|i| msg.get(i).copied()) {
            Fed::More => {}
            Fed::End => return Some(walk.finish(msg, walk.next())),
            Fed::Invalid => return None,
        }
    }
    None
}

/// Most labels a wire name of `MAX_QNAME_WIRE` bytes holds, the root's zero counted as
/// one: every other label takes at least two bytes.
pub const MAX_QNAME_LABELS: usize = MAX_QNAME_WIRE / 2 + 1;

/// Longest label (RFC 1035); a larger length byte is invalid (64-191) or a compression
/// pointer (192 and up).
const MAX_LABEL: usize = 63;

/// What [`QnameWalk::feed`] made of a byte, or [`QnameWalk::feed_label`] of a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fed {
    /// Part of the name: feed the next byte (or label).
    More,
    /// The root's zero: the name ends here ([`QnameWalk::finish`]).
    End,
    /// A label over 63 bytes or a compression pointer: no hash.
    Invalid,
}

/// The state of [`qname_hashes`] between two bytes of the name, fed in order from
/// [`QNAME_OFFSET`] on.
///
/// The per-label state is kept as hash values, never as positions or counts: values the
/// verifier cannot know let it prune paths, where known constants would multiply them
/// past its limit. The stems come free: at the start of each label, the running hash
/// covers exactly the labels before it.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct QnameWalk {
    /// Running hash of the whole name.
    h: u64,
    /// Hash of the label being read, and of the one and two before it (0 = none).
    cur: u64,
    p1: u64,
    p2: u64,
    /// The running hash at the start of the last three labels (0 = none).
    s1: u64,
    s2: u64,
    s3: u64,
    /// Message offset of the next length byte.
    next_len: u64,
}

const _: () = assert!(core::mem::size_of::<QnameWalk>() == crate::maps::QNAME_WALK_SIZE);

impl Default for QnameWalk {
    fn default() -> Self {
        Self::new()
    }
}

impl QnameWalk {
    /// Before the name's first byte.
    pub const fn new() -> Self {
        Self {
            h: FNV_OFFSET,
            cur: 0,
            p1: 0,
            p2: 0,
            s1: 0,
            s2: 0,
            s3: 0,
            next_len: QNAME_OFFSET as u64,
        }
    }

    /// Message offset of the next label's length byte: after [`Fed::End`], of the root's
    /// zero.
    #[inline(always)]
    pub fn next(&self) -> usize {
        self.next_len as usize
    }

    /// Feeds the next label whole: its length byte, at message offset [`next`](Self::next),
    /// then its bytes, each read through `byte` (`None`: past what was read). The same as
    /// feeding those bytes one at a time to [`feed`](Self::feed); a label per call, so the
    /// kernel's loop runs once per label rather than once per byte. A name must end within
    /// its first `MAX_QNAME_WIRE` bytes, as for [`qname_hashes`].
    #[inline(always)]
    pub fn feed_label(&mut self, byte: impl Fn(usize) -> Option<u8>) -> Fed {
        const LIMIT: usize = QNAME_OFFSET + MAX_QNAME_WIRE;
        let at = self.next();
        if at >= LIMIT {
            return Fed::Invalid;
        }
        let Some(len) = byte(at) else {
            return Fed::Invalid;
        };
        match self.feed(at, len) {
            Fed::More => {}
            other => return other,
        }
        // The label's bytes: the running hashes stay in registers until its end. One that
        // runs past `LIMIT` needs no check here: the next length byte is past it too.
        let (mut h, mut cur) = (self.h, self.cur);
        for k in 1..=MAX_LABEL {
            if k > len as usize {
                break;
            }
            let Some(b) = byte(at + k) else {
                return Fed::Invalid;
            };
            h = step(h, b);
            cur = step(cur, b);
        }
        self.h = h;
        self.cur = cur;
        Fed::More
    }

    /// Feeds `b`, the byte at message offset `i` (the one after the previous byte fed).
    #[inline(always)]
    pub fn feed(&mut self, i: usize, b: u8) -> Fed {
        if i as u64 == self.next_len {
            if b == 0 {
                self.h = step(self.h, b);
                return Fed::End;
            }
            if b > 63 {
                return Fed::Invalid;
            }
            self.s3 = self.s2;
            self.s2 = self.s1;
            self.s1 = self.h;
            self.p2 = self.p1;
            self.p1 = self.cur;
            self.cur = FNV_OFFSET;
            self.next_len = i as u64 + 1 + b as u64;
        }
        self.h = step(self.h, b);
        self.cur = step(self.cur, b);
        Fed::More
    }

    /// The hashes once [`feed`](Self::feed) said [`Fed::End`] for the byte at `end`,
    /// with the type and records' offset read from `msg` after it.
    #[inline(always)]
    pub fn finish(&self, msg: &[u8], end: usize) -> QnameHashes {
        let (cur, p1, p2) = (self.cur, self.p1, self.p2);
        let last2 = if p1 != 0 {
            fold(fold(DOMAIN_SEED, p1), cur)
        } else {
            0
        };
        let last3 = if p2 != 0 {
            fold(fold(fold(DOMAIN_SEED, p2), p1), cur)
        } else {
            0
        };
        let qtype = match (msg.get(end + 1), msg.get(end + 2)) {
            (Some(a), Some(b)) => u16::from_be_bytes([*a, *b]),
            _ => 0,
        };
        QnameHashes {
            full: self.h,
            last2,
            last3,
            stem1: stem(self.s1),
            stem2: stem(self.s2),
            stem3: stem(self.s3),
            qtype,
            records: (end + 5) as u16,
        }
    }
}

/// The domain hash of a name written as text (`army.ml`): what `qname_hashes` reports
/// as `last2` for any question under a two-label domain, and `last3` for three labels.
/// `None` for an empty or over-long label, and for a name of other than two or three
/// labels: the kernel never computes a hash such a name could meet.
pub fn domain_hash(name: &str) -> Option<u64> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if !matches!(name.split('.').count(), 2 | 3) {
        return None;
    }
    let mut h = DOMAIN_SEED;
    for label in name.split('.') {
        let len = label.len();
        if len == 0 || len > 63 {
            return None;
        }
        let mut l = step(FNV_OFFSET, len as u8);
        for b in label.bytes() {
            l = step(l, b);
        }
        h = fold(h, l);
    }
    Some(h)
}

/// The stem hash of a name written as text (`army.mil`): what `qname_hashes` reports as
/// `stem1`, `stem2` or `stem3` for a question that is this name with one, two or three
/// labels appended (`army.mil.com`). `None` for an empty, over-long or invalid name.
pub fn stem_hash(name: &str) -> Option<u64> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = [0u8; MAX_QNAME_WIRE];
    let n = encode_name(name, &mut wire)?;
    // Every byte of the wire name but the root's zero.
    let h = wire[..n - 1].iter().fold(FNV_OFFSET, |h, b| step(h, *b));
    (n > 1).then_some(h)
}

/// Writes `name` (text, any case, optional trailing dot) in wire format into
/// `out`, returning the length, or `None` for an empty or over-long label or a
/// name longer than 255 wire bytes. The root is `"."` (or `""`).
pub fn encode_name(name: &str, out: &mut [u8; MAX_QNAME_WIRE]) -> Option<usize> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut n = 0usize;
    if !name.is_empty() {
        for label in name.split('.') {
            let len = label.len();
            if len == 0 || len > 63 || n + 1 + len >= MAX_QNAME_WIRE {
                return None;
            }
            out[n] = len as u8;
            out[n + 1..n + 1 + len].copy_from_slice(label.as_bytes());
            n += 1 + len;
        }
    }
    *out.get_mut(n)? = 0;
    Some(n + 1)
}

/// Hash of a wire-format name on its own (no DNS header in front).
pub fn wire_name_hash(wire: &[u8]) -> Option<u64> {
    let mut h = FNV_OFFSET;
    let mut next_len = 0usize;
    for (i, &b) in wire.iter().enumerate().take(MAX_QNAME_WIRE) {
        h = step(h, b);
        if i == next_len {
            if b == 0 {
                return Some(h);
            }
            if b > 63 {
                return None;
            }
            next_len = i + 1 + b as usize;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    fn message(name: &str) -> Vec<u8> {
        let mut m = std::vec![0u8; QNAME_OFFSET];
        m.extend(wire(name));
        m.extend_from_slice(&[0, 15, 0, 1]);
        m
    }

    /// Plain FNV-1a over the lower-cased wire name, written independently.
    fn reference(name: &str) -> u64 {
        let mut h = FNV_OFFSET;
        for b in wire(&name.to_ascii_lowercase()) {
            h ^= b as u64;
            h = h.wrapping_mul(FNV_PRIME);
        }
        h
    }

    #[test]
    fn suffix_hashes_equal_the_domain_hashes_of_the_shorter_names() {
        let d = |n: &str| domain_hash(n).unwrap();
        let h = qname_hashes(&message("MX.Mail.Army.ML")).unwrap();
        assert_eq!(h.full, reference("mx.mail.army.ml"));
        assert_eq!(h.last2, d("army.ml"));
        assert_eq!(h.last3, d("mail.army.ml"));
        assert_eq!(d("ARMY.ml."), d("army.ml"));
        assert_ne!(d("army.ml"), d("army.mil"));
        let two = qname_hashes(&message("army.ml")).unwrap();
        assert_eq!((two.last2, two.last3), (d("army.ml"), 0));
        let one = qname_hashes(&message("ml")).unwrap();
        assert_eq!((one.last2, one.last3), (0, 0));
        assert_eq!(qname_hashes(&message("")).map(|h| h.last2), Some(0));
        for n in ["a.b", "x", "l999.before.other.org"] {
            assert_eq!(
                qname_hashes(&message(n)).map(|h| h.full),
                qname_hash(&message(n))
            );
        }
        let mut cut = message("mx.army.ml");
        cut.truncate(QNAME_OFFSET + 5);
        assert_eq!(qname_hashes(&cut), None);
        assert_eq!(domain_hash("a..b"), None);
        assert_eq!(domain_hash("ml"), None);
        assert_eq!(domain_hash("a.mod.gov.uk"), None);
    }

    #[test]
    fn stems_are_the_stem_hashes_of_the_name_without_its_last_labels() {
        let st = |n: &str| stem_hash(n).unwrap();
        let h = qname_hashes(&message("Army.MIL.evil.co.uk")).unwrap();
        assert_eq!(h.stem3, st("army.mil"));
        assert_eq!(h.stem2, st("army.mil.evil"));
        assert_eq!(h.stem1, st("army.mil.evil.co"));
        let h = qname_hashes(&message("army.mil.com")).unwrap();
        assert_eq!((h.stem1, h.stem2, h.stem3), (st("army.mil"), st("army"), 0));
        let one = qname_hashes(&message("com")).unwrap();
        assert_eq!((one.stem1, one.stem2, one.stem3), (0, 0, 0));
        // A stem never meets a whole name's hash: the root's zero is not in it.
        assert_ne!(st("army.mil"), qname_hash(&message("army.mil")).unwrap());
        assert_eq!(st("ARMY.mil."), st("army.mil"));
        assert_eq!(stem_hash(""), None);
        assert_eq!(stem_hash("a..b"), None);
    }

    #[test]
    fn the_question_type_and_where_the_records_start() {
        let m = message("mx.army.ml");
        let h = qname_hashes(&m).unwrap();
        assert_eq!(h.qtype, 15);
        assert_eq!(h.records as usize, m.len());
        let mut cut = m.clone();
        cut.truncate(m.len() - 3);
        assert_eq!(qname_hashes(&cut).map(|h| h.qtype), Some(0));
    }

    #[test]
    fn case_is_folded() {
        let a = qname_hash(&message("Army.MIL")).unwrap();
        let b = qname_hash(&message("army.mil")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, reference("army.mil"));
        assert_ne!(a, qname_hash(&message("army.ml")).unwrap());
    }

    #[test]
    fn message_and_bare_name_agree() {
        for n in ["a.b", "MiXeD.Example.COM", "xn--80ak6aa92e.com", "x"] {
            assert_eq!(qname_hash(&message(n)), wire_name_hash(&wire(n)), "{n}");
            assert_eq!(qname_hash(&message(n)), Some(reference(n)), "{n}");
        }
    }

    #[test]
    fn label_of_63_bytes_is_accepted_and_64_rejected() {
        let l63: std::string::String = core::iter::repeat_n('Q', 63).collect();
        let n = std::format!("{l63}.example.com");
        assert_eq!(qname_hash(&message(&n)), Some(reference(&n)));
        let mut m = message(&n);
        m[QNAME_OFFSET] = 64;
        assert_eq!(qname_hash(&m), None);
    }

    #[test]
    fn longest_name_is_hashed() {
        // Four 61-byte labels + one 4-byte label: 4*62 + 5 + 1 = 254 bytes of wire.
        let l: std::string::String = core::iter::repeat_n('z', 61).collect();
        let n = std::format!("{l}.{l}.{l}.{l}.abcd");
        assert_eq!(wire(&n).len(), 254);
        assert_eq!(qname_hash(&message(&n)), Some(reference(&n)));
    }

    #[test]
    fn truncated_and_compressed_names_are_rejected() {
        let m = message("example.com");
        assert_eq!(qname_hash(&m[..QNAME_OFFSET + 5]), None);
        let mut c = std::vec![0u8; QNAME_OFFSET];
        c.extend_from_slice(&[0xc0, 0x0c]);
        assert_eq!(qname_hash(&c), None);
        assert_eq!(qname_hash(&[]), None);
    }

    /// The walk a byte at a time, as the kernel once drove it: the label-at-a-time walk
    /// must give the same answer for every input.
    fn bytewise(msg: &[u8]) -> Option<QnameHashes> {
        let mut walk = QnameWalk::new();
        for i in QNAME_OFFSET..QNAME_OFFSET + MAX_QNAME_WIRE {
            match walk.feed(i, *msg.get(i)?) {
                Fed::More => {}
                Fed::End => return Some(walk.finish(msg, i)),
                Fed::Invalid => return None,
            }
        }
        None
    }

    #[test]
    fn label_at_a_time_equals_byte_at_a_time() {
        // Names at and past the length limit, labels of 63 and 64, and hostile bytes.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for total in [250usize, 253, 254, 255, 256, 257, 260] {
            let mut m = std::vec![0u8; QNAME_OFFSET];
            while m.len() - QNAME_OFFSET + 1 < total {
                let room = total - (m.len() - QNAME_OFFSET) - 1;
                let len = room.saturating_sub(1).clamp(1, 63);
                m.push(len as u8);
                m.extend(core::iter::repeat_n(b'A', len));
            }
            m.push(0);
            m.extend_from_slice(&[0, 15, 0, 1]);
            inputs.push(m);
        }
        // As many labels as a name can hold: 126 and 127 one-letter labels (253 and 255
        // wire bytes) are names, 128 (257) is not. A bound on the walk's labels below 128
        // would turn the longest names into "no hash", and so into answers never blocked.
        for labels in [126usize, 127, 128] {
            let mut m = std::vec![0u8; QNAME_OFFSET];
            for _ in 0..labels {
                m.extend_from_slice(&[1, b'a']);
            }
            m.push(0);
            m.extend_from_slice(&[0, 15, 0, 1]);
            let end = QNAME_OFFSET + 2 * labels;
            let h = qname_hashes(&m);
            assert_eq!(h.is_some(), labels < 128, "{labels} labels");
            if let Some(h) = h {
                assert_eq!(h.records as usize, end + 5);
                assert_eq!(h.qtype, 15);
            }
            inputs.push(m);
        }
        // The length-limit names built above: 255 wire bytes hash, 256 do not.
        assert!(qname_hashes(&inputs[3]).is_some());
        assert!(qname_hashes(&inputs[4]).is_none());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut m = std::vec![0u8; QNAME_OFFSET];
            let labels = next() % 8;
            for _ in 0..labels {
                let r = next();
                // Mostly valid lengths, sometimes 63, 64 or a pointer.
                let len = match r % 16 {
                    0 => 63,
                    1 => 64,
                    2 => 0xc0,
                    _ => 1 + (r >> 8) % 20,
                } as u8;
                m.push(len);
                for _ in 0..len.min(70) {
                    m.push(b'a' + (next() % 40) as u8);
                }
            }
            m.push(0);
            m.extend_from_slice(&[0, 1, 0, 1]);
            let cut = (next() as usize) % (m.len() + 1);
            inputs.push(m[..cut].to_vec());
            inputs.push(m);
        }
        for m in &inputs {
            assert_eq!(qname_hashes(m), bytewise(m), "{m:?}");
        }
        assert!(inputs.iter().filter(|m| bytewise(m).is_some()).count() > 5_000);
    }
}
