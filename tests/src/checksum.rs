//! The Internet checksum (RFC 1071) the tests' hand-built packets carry.

/// The one's-complement checksum over `parts` as one byte string (each part but the last
/// of even length), ready to store in a header.
pub fn internet(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for w in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_with_its_checksum_sums_to_all_ones() {
        let mut block = vec![0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11];
        let c = internet(&[&block, &[0, 0]]);
        block.extend_from_slice(&c.to_be_bytes());
        assert_eq!(internet(&[&block]), 0);
    }

    #[test]
    fn an_odd_last_part_is_padded_with_a_zero() {
        assert_eq!(
            internet(&[&[0x12, 0x34], &[0x56]]),
            internet(&[&[0x12, 0x34, 0x56, 0]])
        );
    }
}
