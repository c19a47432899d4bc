//! Where a segment lies in its stream's sequence space against what the kernel has read,
//! and what a client's ingress does with one it cannot read in order.

use aya_ebpf::{bindings::bpf_sock, helpers::generated::bpf_tcp_sock};
use sensor_common::event::CaptureStat;

use super::{DROPPING, LOST, Stream};
use crate::capture::note;

/// `a` comes after `b` in sequence space.
#[inline(always)]
pub(super) fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Whether the host's TCP has not accepted the bytes before `upto` yet (false when it
/// cannot be told).
#[inline(always)]
fn unaccepted(sk: *mut bpf_sock, upto: u32) -> bool {
    // SAFETY: `sk` is the packet's socket; the helper returns null unless it is a full
    // TCP socket.
    let tp = unsafe { bpf_tcp_sock(sk) };
    if tp.is_null() {
        return false;
    }
    // SAFETY: non-null `bpf_tcp_sock`, a context the verifier lets us read.
    after(upto, unsafe { (*tp).rcv_nxt })
}

/// Where a segment with data lies against what the stream has read: `Ok` to read its
/// new bytes, or `Err(drop it)`.
#[inline(always)]
pub(super) fn place(
    st: &mut Stream,
    sk: *mut bpf_sock,
    seq: u32,
    end: u32,
    client: bool,
    guard: bool,
) -> Result<(), bool> {
    if !after(end, st.next) {
        // Nothing new: a re-sent segment. Keep dropping a blocked answer's bytes, and
        // bytes TCP would take from this copy rather than the one that was read.
        if client && st.flags & DROPPING != 0 && after(end, st.drop_from) {
            return Err(true);
        }
        if guard && unaccepted(sk, end) {
            note(CaptureStat::TcpResentUnread);
            return Err(true);
        }
        return Err(false);
    }
    if after(seq, st.next) {
        note(CaptureStat::TcpOutOfOrder);
        if guard {
            return Err(true);
        }
        // Egress, or a local resolver's upstream socket: nothing is dropped there, so
        // the bytes skipped are gone and the boundaries after them unknown.
        st.flags |= LOST;
        st.next = end;
        return Err(false);
    }
    if guard && after(st.next, seq) && unaccepted(sk, st.next) {
        note(CaptureStat::TcpResentUnread);
        return Err(true);
    }
    Ok(())
}
