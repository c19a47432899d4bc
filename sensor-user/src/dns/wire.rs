//! Names in DNS wire format walked without decoding them: where a name ends, and whether
//! reading it stays within a bound that whoever wrote the message cannot stretch.

/// Compression pointers followed in one name at most. A name has at most 127 labels and
/// each pointer a compressor writes leads to at least one, so no name written by one
/// needs more. Decoders accept chains of pointers to pointers, which add nothing: a chain
/// of thousands, met again by every record's owner, made reading a message cost about
/// its size squared.
pub const MAX_POINTERS: usize = 127;

/// Longest name in wire form (RFC 1035), labels and their length bytes.
const MAX_NAME: usize = 255;

/// Just past the name at `at` in `msg` (its zero byte, or its first pointer), when the
/// whole name can be read within the bounds: at most `MAX_POINTERS` pointers, each to an
/// earlier byte than itself, and 255 bytes of labels. `None` otherwise, or when the
/// name runs past `msg`.
pub fn name_end(msg: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    let mut end = None;
    let (mut pointers, mut bytes) = (0usize, 0usize);
    loop {
        let b = *msg.get(pos)?;
        match b & 0xc0 {
            0 if b == 0 => return Some(end.unwrap_or(pos + 1)),
            0 => {
                bytes += 1 + usize::from(b);
                if bytes + 1 > MAX_NAME {
                    return None;
                }
                pos += 1 + usize::from(b);
            }
            0xc0 => {
                let target = usize::from(u16::from_be_bytes([b & 0x3f, *msg.get(pos + 1)?]));
                end.get_or_insert(pos + 2);
                pointers += 1;
                if pointers > MAX_POINTERS || target >= pos {
                    return None;
                }
                pos = target;
            }
            // 0x40 and 0x80: label types no one uses.
            _ => return None,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_ends_at_its_zero_byte_or_its_first_pointer() {
        // "army.ml" at 0, then "mx" and a pointer to it at 9.
        let msg = b"\x04army\x02ml\x00\x02mx\xc0\x00";
        assert_eq!(name_end(msg, 0), Some(9));
        assert_eq!(name_end(msg, 9), Some(14));
        // Past the message, forward or to itself, an unused label type.
        assert_eq!(name_end(b"\x04army", 0), None);
        assert_eq!(name_end(b"\xc0\x02\x00", 0), None);
        assert_eq!(name_end(b"\x00\xc0\x01", 1), None);
        assert_eq!(name_end(b"\x40", 0), None);
    }

    #[test]
    fn chains_of_pointers_and_long_names_are_bounded() {
        // A root at 0, then pointers each to the one before it.
        let chain = |n: usize| {
            let mut m = vec![0u8];
            for i in 0..n {
                let to = if i == 0 { 0 } else { 1 + 2 * (i - 1) } as u16;
                m.extend_from_slice(&(0xc000 | to).to_be_bytes());
            }
            m
        };
        let ok = chain(MAX_POINTERS);
        assert_eq!(name_end(&ok, ok.len() - 2), Some(ok.len()));
        let long = chain(MAX_POINTERS + 1);
        assert_eq!(name_end(&long, long.len() - 2), None);
        // Its end is still found, where the record it starts goes on.
        assert_eq!(skip_name(&long, long.len() - 2), Some(long.len()));
        // 255 bytes with the root: four labels of 62 and one of 1; one byte more is not.
        let label = [&[62u8][..], &[b'a'; 62]].concat();
        let mut name: Vec<u8> = label.repeat(4);
        name.extend_from_slice(b"\x01a\x00");
        assert_eq!(name.len(), 255);
        assert_eq!(name_end(&name, 0), Some(255));
        let mut longer = label.repeat(4);
        longer.extend_from_slice(b"\x02ab\x00");
        assert_eq!(name_end(&longer, 0), None);
    }
}
