//! Zone transfers over a TCP stream: an AXFR or IXFR answer starts one, and its later
//! messages, which carry no question (RFC 5936), are read as if they had one.

use super::{CONTINUED, HEAD_LEN, Stream, TRANSFER, get, put};

/// Question types of a zone transfer: IXFR and AXFR.
const TRANSFER_QTYPES: [u16; 2] = [251, 252];
/// `transfer_starts`: a transfer starts (its id in the low 16 bits).
const TRANSFER_ID: u32 = 1 << 16;

/// A zone transfer's messages after the first carry no question (RFC 5936), which
/// `decide` counts as blocked at a client: one with the id of the AXFR or IXFR answer
/// the stream carried is read as if it had one, its first record's owner taken for the
/// name, as the kernel read every such message before. (Any other id would let a
/// leading decoy, which a stub skips by its id, make the next answer pass.)
///
/// Not inlined, nor `transfer_starts`: inlined, they cost the capture's frame 8 bytes,
/// and on 6.1 the entry, the capture and one call already take the 512 bytes of stack.
///
/// Sets `CONTINUED` in the stream's flags when it gave the message its question (which is
/// then matched to no question asked: `settle`), clears it otherwise.
#[inline(never)]
pub(super) fn transfer_continues(st: &mut Stream) {
    let flags = get(&st.flags) & !CONTINUED;
    put(&mut st.flags, flags);
    if flags & TRANSFER == 0 {
        return;
    }
    if let Some(h) = st.head.get_mut(2..8) {
        let id = u32::from(u16::from_be_bytes([h[0], h[1]]));
        if id == flags >> 16 && h[4] == 0 && h[5] == 0 {
            h[5] = 1;
            put(&mut st.flags, flags | CONTINUED);
        }
    }
}

/// The id of the message just decided, whose records start at `records`, when it is an
/// answer to one AXFR or IXFR question: a zone transfer starts on this stream (0 when
/// not; bit 16 set when so).
#[inline(never)]
pub(super) fn transfer_starts(st: &Stream, records: u16) -> u32 {
    transfer_id(st, records).map_or(0, |id| TRANSFER_ID | u32::from(id))
}

/// `transfer_starts`, as an option.
#[inline(always)]
fn transfer_id(st: &Stream, records: u16) -> Option<u16> {
    // (`records` is set for an answer with a readable question and no block.)
    let records = usize::from(records);
    let h = st.head.get(2..2 + HEAD_LEN as usize)?;
    let answer = h.get(2).is_some_and(|b| b & 0x80 != 0);
    let one = h.get(4..6) == Some(&[0, 1][..]);
    let qtype = h.get(records.checked_sub(4)?..records.checked_sub(2)?)?;
    let qtype = u16::from_be_bytes([qtype[0], qtype[1]]);
    (answer && one && TRANSFER_QTYPES.contains(&qtype)).then(|| u16::from_be_bytes([h[0], h[1]]))
}
