//! A DNS message over UDP: the whole datagram is one message, in one packet (the kernel
//! has reassembled IP fragments before the ingress hook and fragments after egress).

use aya_ebpf::{helpers::bpf_skb_load_bytes, programs::SkBuffContext};
use sensor_common::{
    DnsHeader,
    event::{DNS_FLAG_DATA, DNS_FLAG_MESSAGE, DNS_FLAG_QNAME_HASHED, Direction},
    maps::DNS_SCRATCH_SIZE,
    qname::QnameWalk,
};

use crate::{
    blocks,
    capture::{DNS_HEADER_LEN, HEAD_LEN, decide, emit_span, from_server, opaque, settle},
    maps::DNS_SCRATCH,
};

/// A `DNS_SCRATCH` value.
#[repr(C)]
pub struct Scratch {
    /// The message's first bytes.
    head: [u8; HEAD_LEN as usize],
    /// The walk over its question name (`qname::hashes`).
    walk: QnameWalk,
}

const _: () = assert!(core::mem::size_of::<Scratch>() == DNS_SCRATCH_SIZE);

/// Captures the message in a UDP packet whose payload starts at `off`, with every record
/// headed by `hdr`; whether to drop the packet.
#[inline(always)]
pub fn capture(
    ctx: &SkBuffContext,
    hdr: &mut DnsHeader,
    off: u32,
    direction: Direction,
    exempt: bool,
) -> bool {
    let skb_len = ctx.len();
    if skb_len < off + DNS_HEADER_LEN {
        return false;
    }
    let msg_len = skb_len - off;
    // The question is read into this CPU's scratch for the direction, not the ring: the
    // decision must not depend on the ring having room. (Ingress runs in softirq and
    // cannot nest with itself; an egress run preempted by another only mislabels a query.)
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(direction as u32) else {
        return false;
    };
    // SAFETY: this CPU's scratch value, a live map value.
    let Scratch { head, walk } = unsafe { &mut *scratch };
    let n = opaque(if msg_len > HEAD_LEN {
        HEAD_LEN
    } else {
        msg_len
    });
    // Both bounds as written, right before the copy: the verifier needs them on `n`.
    #[allow(clippy::manual_range_contains)]
    if n < DNS_HEADER_LEN || n > HEAD_LEN {
        return false;
    }
    // The same value, bounded again in a form verifiers before 6.7 carry to the call
    // (the compares above may be folded into one on `n - 12`).
    let n = opaque(n - DNS_HEADER_LEN).min(HEAD_LEN - DNS_HEADER_LEN) + DNS_HEADER_LEN;
    // SAFETY: `head` has HEAD_LEN bytes and `n` is at most that (and at least 12).
    let rc = unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), off, head.as_mut_ptr().cast(), n) };
    if rc != 0 {
        return false;
    }
    // The whole fixed-size head goes to the decision (a constant length costs the
    // verifier far less than a variable one); bytes past `n` are an earlier packet's and
    // matter only to a message whose name does not end inside it.
    // From a server to a client: an answer, whatever its QR bit says (`from_server`).
    if from_server(direction, hdr.sport, hdr.dport) {
        head[2] |= 0x80;
    }
    let Some(head) = head.get(..HEAD_LEN as usize) else {
        return false;
    };
    let mut d = decide(head, walk, direction, exempt, hdr.ts_ns);
    settle(ctx, head, &mut d, direction, exempt, false);
    hdr.flags |= DNS_FLAG_MESSAGE | DNS_FLAG_DATA;
    if d.hashed {
        hdr.flags |= DNS_FLAG_QNAME_HASHED;
        hdr.qname_hash = d.hash;
    }
    hdr.msg_len = msg_len;
    hdr.verdict = d.verdict as u32;
    // A part the ring had no room for is counted there (lost, or a cut message).
    emit_span(ctx, hdr, off, msg_len, 0, d.wake);
    if d.contest {
        let m = blocks::Message {
            ctx,
            off,
            len: msg_len,
        };
        blocks::contest(&m, d.records as u32);
    }
    d.drop
}
