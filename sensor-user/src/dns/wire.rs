//! Names in DNS wire format: where a name ends in its record, and its text, each name
//! position of a message decoded once.
//!
//! A name may end in a compression pointer to an earlier name, which may end in another:
//! stub resolvers follow chains of any length within the message (glibc's and musl's
//! `dn_expand`), so a name the agent refused to read would be one a lookalike's owner can
//! hide a mail host behind. Decoders that follow the chain anew for every name made a
//! message whose records all name the end of a long chain cost its size squared; here the
//! text of every position a chain passes is remembered, so a message costs its size.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    rc::Rc,
};

use hickory_proto::rr::domain::Label;

/// Longest name in wire form (RFC 1035), labels and their length bytes, root included.
const MAX_NAME: usize = 255;

/// Just past the name at `at` in `msg`, its pointer not followed: where the record it
/// starts goes on, whether or not the name can be read.
pub fn skip_name(msg: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    loop {
        let b = *msg.get(pos)?;
        match b & 0xc0 {
            0 if b == 0 => return Some(pos + 1),
            0 if pos - at + 1 + usize::from(b) < MAX_NAME => pos += 1 + usize::from(b),
            0xc0 => return msg.get(pos + 1).map(|_| pos + 2),
            _ => return None,
        }
    }
}

/// A name's text (lower case, no root dot, labels written as hickory-proto writes them,
/// escapes included) and its length in wire form.
type Text = Option<(Rc<str>, usize)>;

/// The names of one message, each position decoded at most once.
pub struct Names<'a> {
    msg: &'a [u8],
    /// Text by position; `None` where no name can be read (or while a chain through it
    /// is being read: a chain that comes back to it is a loop).
    memo: HashMap<usize, Text, BuildHasherDefault<PosHasher>>,
}

/// Hashes a position in a message: a multiplication, its high half folded onto the low
/// (the table indexes by low bits, and whoever writes the message can space its names by
/// any power of two).
#[derive(Default)]
struct PosHasher(u64);

impl Hasher for PosHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_usize(usize::from(*b) | (self.0 as usize) << 8);
        }
    }

    fn write_usize(&mut self, n: usize) {
        let h = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }
}

impl<'a> Names<'a> {
    /// No name of `msg` decoded yet.
    pub fn new(msg: &'a [u8]) -> Self {
        Self {
            msg,
            memo: HashMap::default(),
        }
    }

    /// The text of the name at `at`: `None` when a label runs past the message, a
    /// pointer leads to itself or after itself, a chain loops, a label type is not in
    /// use, or the name is longer than 255 bytes.
    pub fn text(&mut self, at: usize) -> Option<Rc<str>> {
        // The chain from `at`: each position's labels, down to a position already known.
        let mut chain: Vec<(usize, Vec<&'a [u8]>)> = Vec::new();
        let mut pos = at;
        let mut suffix: Text = loop {
            if let Some(known) = self.memo.get(&pos) {
                break known.clone();
            }
            self.memo.insert(pos, None);
            match self.labels(pos) {
                Some((labels, Some(next))) => {
                    chain.push((pos, labels));
                    pos = next;
                }
                Some((labels, None)) => {
                    chain.push((pos, labels));
                    break Some((Rc::from(""), 1));
                }
                None => {
                    chain.push((pos, Vec::new()));
                    break None;
                }
            }
        };
        // Each position's text, from the end of the chain back to `at`.
        while let Some((pos, labels)) = chain.pop() {
            suffix = suffix.and_then(|(tail, tail_len)| join(&labels, tail, tail_len));
            self.memo.insert(pos, suffix.clone());
        }
        suffix.map(|(text, _)| text)
    }

    /// The labels at `pos` in place, and where its pointer leads (`None`: the root);
    /// `None` when they cannot be read or the pointer does not lead back.
    fn labels(&self, mut pos: usize) -> Option<(Vec<&'a [u8]>, Option<usize>)> {
        let start = pos;
        let mut labels = Vec::new();
        loop {
            let b = *self.msg.get(pos)?;
            match b & 0xc0 {
                0 if b == 0 => return Some((labels, None)),
                0 if pos - start + 1 + usize::from(b) < MAX_NAME => {
                    labels.push(self.msg.get(pos + 1..pos + 1 + usize::from(b))?);
                    pos += 1 + usize::from(b);
                }
                0xc0 => {
                    let low = *self.msg.get(pos + 1)?;
                    let target = usize::from(u16::from_be_bytes([b & 0x3f, low]));
                    return (target < pos).then_some((labels, Some(target)));
                }
                _ => return None,
            }
        }
    }
}

/// `labels` in front of the name `tail` (`tail_len` bytes in wire form).
fn join(labels: &[&[u8]], tail: Rc<str>, tail_len: usize) -> Text {
    if labels.is_empty() {
        // A bare pointer: the same name, shared.
        return Some((tail, tail_len));
    }
    let len = tail_len + labels.iter().map(|l| 1 + l.len()).sum::<usize>();
    if len > MAX_NAME {
        return None;
    }
    let mut text = String::with_capacity(len + tail.len());
    for l in labels {
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(&Label::from_raw_bytes(l).ok()?.to_ascii());
    }
    if !tail.is_empty() {
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(&tail);
    }
    text.make_ascii_lowercase();
    Some((Rc::from(text), len))
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        rr::Name,
        serialize::binary::{BinDecodable, BinDecoder},
    };

    use super::*;
    use crate::dns::parse::name_text;

    /// hickory-proto's text of the name at `at`, as the agent wrote it before.
    fn hickory(msg: &[u8], at: usize) -> Option<String> {
        let mut d = BinDecoder::new(msg).clone(at as u16);
        Name::read(&mut d).ok().map(|n| name_text(&n))
    }

    #[test]
    fn a_name_ends_at_its_zero_byte_or_its_first_pointer() {
        // "army.ml" at 0, then "mx" and a pointer to it at 9.
        let msg = b"\x04army\x02ml\x00\x02mx\xc0\x00";
        assert_eq!(skip_name(msg, 0), Some(9));
        assert_eq!(skip_name(msg, 9), Some(14));
        assert_eq!(skip_name(b"\x04army", 0), None);
        assert_eq!(skip_name(b"\x40", 0), None);
        let mut names = Names::new(msg);
        assert_eq!(names.text(9).as_deref(), Some("mx.army.ml"));
        assert_eq!(names.text(0).as_deref(), Some("army.ml"));
    }

    #[test]
    fn texts_are_hickory_s_and_bad_names_none() {
        // Upper case, a dot and a space inside labels, a byte past ASCII.
        let msg = b"\x04ArMy\x02ml\x00\x03a.b\x03c d\x01\xe9\xc0\x00\x00";
        for at in [0, 9] {
            assert_eq!(
                Names::new(msg).text(at).map(|t| t.to_string()),
                hickory(msg, at)
            );
        }
        assert_eq!(Names::new(msg).text(21).as_deref(), Some(""));
        // Past the message, forward, to itself, a loop through its own labels.
        for bad in [
            &b"\x04army"[..],
            b"\xc0\x02\x00",
            b"\x00\xc0\x01",
            b"\x01a\xc0\x00",
        ] {
            let at = if bad[0] == 0 { 1 } else { 0 };
            assert_eq!(Names::new(bad).text(at), None, "{bad:?}");
        }
    }

    #[test]
    fn a_long_chain_of_pointers_is_read_and_each_position_once() {
        // "army.ml" at 0, then 5,000 pointers each to the one before.
        let mut msg = b"\x04army\x02ml\x00".to_vec();
        let mut to = 0u16;
        for _ in 0..5_000 {
            let at = msg.len() as u16;
            msg.extend_from_slice(&(0xc000 | to).to_be_bytes());
            to = at;
        }
        let mut names = Names::new(&msg);
        assert_eq!(names.text(usize::from(to)).as_deref(), Some("army.ml"));
        assert_eq!(names.memo.len(), 5_001);
        assert_eq!(names.text(9 + 2 * 2_500).as_deref(), Some("army.ml"));
        assert_eq!(names.memo.len(), 5_001);
    }

    #[test]
    fn a_name_past_255_bytes_is_none() {
        // Four labels of 62 and one of 1 with the root: 255 bytes; one more is too long.
        let label = [&[62u8][..], &[b'a'; 62]].concat();
        let mut name = label.repeat(4);
        name.extend_from_slice(b"\x01a\x00");
        assert_eq!(name.len(), 255);
        assert!(Names::new(&name).text(0).is_some());
        let mut longer = label.repeat(4);
        longer.extend_from_slice(b"\x02ab\x00");
        assert_eq!(Names::new(&longer).text(0), None);
        // The same across a pointer.
        let mut split = label.repeat(2);
        split.extend_from_slice(b"\x02ab\x00");
        let at = split.len();
        split.extend_from_slice(&label.repeat(2));
        split.extend_from_slice(&[0xc0, 0]);
        assert_eq!(Names::new(&split).text(at), None);
    }
}
