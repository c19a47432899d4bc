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
///
/// Written as a single bounded loop so the eBPF verifier accepts it.
#[inline(always)]
pub fn qname_hash(msg: &[u8]) -> Option<u64> {
    let mut h = FNV_OFFSET;
    let mut next_len = QNAME_OFFSET;
    let mut i = QNAME_OFFSET;
    while i < QNAME_OFFSET + MAX_QNAME_WIRE {
        let b = *msg.get(i)?;
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
        i += 1;
    }
    None
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
}
