//! DNS over TCP: each direction of a socket is a stream of messages, each behind a 2-byte
//! length, cut into segments however the sender likes (the length alone, a header split
//! anywhere, several messages in one segment, retransmissions cut differently).
//!
//! Per socket and direction (socket storage, freed with the socket) the kernel keeps
//! where it is in the stream by TCP sequence number, and the first bytes of the current
//! message until its question is read. Each segment's new bytes are walked message by
//! message: when a message's question is complete the decision is made and a message
//! record says so; the bytes themselves go to the agent as data records by stream
//! offset, and the agent cuts them into messages the same way.
//!
//! At a client's ingress (a socket that is not a local resolver's upstream one) nothing
//! is let through that the kernel has not read: a segment ahead of the stream is dropped
//! (the sender sends it again in order), and so is a re-sent segment carrying bytes the
//! host's TCP has not accepted from the copy the kernel read (they could differ). Once an
//! answer's question is read and blocked, every later segment with data is dropped, its
//! re-sendings included; what arrived before the question was complete (at most the
//! length and the first bytes of the header and question) may have reached the socket,
//! never a whole answer. An answer held for the agent's verdict is not blocked: its
//! segment is dropped and the stream put back, so the re-sent segment is decided anew.
//!
//! Some things put the bytes on the wire out of step with the stream the socket reads:
//! urgent data (its byte leaves the stream) loses the stream, dropped at a client in
//! enforce mode; a SYN arriving in a synchronised stream is ignored unless the socket is
//! connecting anew, and so are data without an ACK and a reset's payload (the host's TCP
//! discards them too).

use aya_ebpf::{
    bindings::{BPF_SK_STORAGE_GET_F_CREATE, bpf_sock},
    helpers::generated::bpf_sk_storage_get,
    programs::SkBuffContext,
};
use sensor_common::{
    DnsHeader, Verdict,
    event::{
        CaptureStat, DNS_FLAG_DATA, DNS_FLAG_MESSAGE, DNS_FLAG_QNAME_HASHED, DNS_FLAG_STREAM_START,
        Direction,
    },
    maps::{MODE_ENFORCE, TCP_STREAM_SIZE, TCP_STREAMS_VALUE_SIZE},
    qname::QnameWalk,
};

use crate::{
    asked,
    capture::{HEAD_LEN, decide, emit_header, emit_span, from_server, note, settle},
    maps::{MODE, TCP_STREAMS},
};

mod frame;
mod place;
mod putback;
mod transfer;
use frame::{close, frames, get, put};
use place::{after, place};
use putback::Place;
use transfer::{transfer_continues, transfer_starts};

/// Stream flag: `next`, `origin` and `msg_start` are set.
const SYNCED: u32 = 1;
/// Stream flag: at a client's ingress, segments with data from `drop_from` on are dropped.
const DROPPING: u32 = 2;
/// Stream flag: message boundaries are lost; the stream is not parsed any more.
const LOST: u32 = 4;
/// Stream flag: the current message's question was read and decided.
const HEAD_DONE: u32 = 8;
/// Stream flag: the next data record starts the stream.
const START: u32 = 16;
/// Stream flag: the stream carries a zone transfer, whose id is the flags' upper half
/// (`transfer_continues`).
const TRANSFER: u32 = 32;
/// Stream flag: the current message is a zone transfer's later one, given its question by
/// `transfer_continues`.
const CONTINUED: u32 = 64;

/// The length prefix and the bytes of a message that hold its question.
const HEAD_TOTAL: u32 = 2 + HEAD_LEN;
/// Twice `HEAD_TOTAL` (rounded to 8): a copy of at most `HEAD_TOTAL` bytes at an offset
/// below `HEAD_TOTAL` stays inside, which the verifier can see from the two bounds.
const HEAD_BUF: usize = (2 * HEAD_TOTAL as usize).next_multiple_of(8);
/// Bytes of `head` a held segment may have to put back: a question's first bytes.
const SAVED: usize = (HEAD_TOTAL as usize).next_multiple_of(8);
/// TCP header flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP header flag URG.
const TCP_URG: u8 = 0x20;
/// TCP header flag RST.
const TCP_RST: u8 = 0x04;
/// TCP header flag ACK.
const TCP_ACK: u8 = 0x10;
/// `bpf_sock.state` of a socket whose SYN is out, waiting for the SYN-ACK.
const TCP_SYN_SENT: u32 = 2;
/// `TCP_LISTEN`: a listener's SYNs each start a connection of their own.
const TCP_LISTEN: u32 = 10;

/// One direction of a socket.
#[repr(C)]
pub struct Stream {
    /// Sequence number of the next byte to read.
    next: u32,
    /// Sequence number of stream offset 0.
    origin: u32,
    /// Sequence number of the current message's length prefix.
    msg_start: u32,
    /// Bytes of the current message read, its length prefix included.
    have: u32,
    /// The current message's length, once `have >= 2`.
    msg_len: u32,
    /// Sequence number from which a client's ingress data is dropped (`DROPPING`).
    drop_from: u32,
    /// Stream flags.
    flags: u32,
    /// The walk's packet offset.
    pos: u32,
    /// The walk's bytes left.
    left: u32,
    /// What the walk found (`FOUND_*`).
    found: u32,
    /// The socket is a local resolver's upstream one (for the walk).
    exempt: u32,
    /// A client's ingress in enforce mode: nothing unread gets through (for the walk).
    guard: u32,
    /// The header of this segment's records. Kept here rather than on the stack, like
    /// the walk's variables, so that the verifier does not tell apart states by it.
    hdr: DnsHeader,
    /// The current message's first bytes, its length prefix included.
    pub head: [u8; HEAD_BUF],
    /// `head`'s first bytes before a segment that starts inside a question (`putback.rs`).
    saved: [u8; SAVED],
    /// The walk over its question name (`qname::hashes`), in map memory.
    walk: QnameWalk,
}

/// Both directions of a socket: the value of `TCP_STREAMS`.
#[repr(C)]
pub struct Streams {
    /// Indexed by `Direction`.
    dir: [Stream; 2],
}

const _: () = assert!(core::mem::size_of::<Stream>() == TCP_STREAM_SIZE);
const _: () = assert!(core::mem::size_of::<Streams>() == TCP_STREAMS_VALUE_SIZE);

/// Whether the global mode is enforce.
#[inline(always)]
fn enforcing() -> bool {
    MODE.get(0).is_some_and(|m| *m == MODE_ENFORCE)
}

/// The stream of `sk` in `direction`, created if need be.
#[inline(always)]
fn stream(sk: *mut bpf_sock, direction: Direction) -> Option<&'static mut Stream> {
    let map = core::ptr::from_ref(&TCP_STREAMS).cast_mut().cast();
    // SAFETY: `sk` is the packet's socket (checked non-null); the helper returns this
    // socket's storage, zeroed when created, or null.
    let p = unsafe {
        bpf_sk_storage_get(
            map,
            sk.cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE.into(),
        )
    }
    .cast::<Streams>();
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null storage of `Streams`, ours while the socket is.
    Some(unsafe { &mut (*p).dir[direction as usize] })
}

/// Starts the stream afresh at `seq`, a message boundary.
#[inline(always)]
fn restart(st: &mut Stream, seq: u32) {
    st.next = seq;
    st.origin = seq;
    st.msg_start = seq;
    st.have = 0;
    st.msg_len = 0;
    st.drop_from = 0;
    st.flags = SYNCED | START;
}

/// Captures a TCP segment whose payload (if any) starts at `off`, every record headed by
/// `base`; whether to drop it. The caller (`dns::capture`) has let through the segments
/// with neither data nor SYN, before its helper calls.
#[inline(always)]
pub fn capture(
    ctx: &SkBuffContext,
    base: &DnsHeader,
    off: u32,
    seq: u32,
    tcp_flags: u8,
    direction: Direction,
    exempt: bool,
) -> bool {
    let payload = ctx.len().saturating_sub(off);
    // A segment the host's TCP discards whatever it carries: data without an ACK (only
    // a SYN may lack one) and a reset's payload. Read, a decoy sent that way at the
    // reply's sequence number framed the reply as its body, and the agent never saw the
    // answer the socket read.
    if tcp_flags & TCP_RST != 0 || tcp_flags & (TCP_ACK | TCP_SYN) == 0 {
        return false;
    }
    let syn = tcp_flags & TCP_SYN != 0;
    // SAFETY: readable context field (a socket, or null).
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return false;
    }
    // A client's ingress (not a local resolver's upstream socket): a blocked answer's
    // bytes are dropped there, in any mode (an entry can be enforced on its own). In
    // enforce mode nothing unread gets through either; in monitor mode what cannot be
    // followed is counted and left unread, never dropped.
    let client = direction == Direction::Ingress && !exempt;
    let guard = client && enforcing();
    let Some(st) = stream(sk, direction) else {
        // No storage (memory): the stream cannot be followed. A client's answers are not
        // let through unread (the sender sends them again); elsewhere it goes unread.
        note(CaptureStat::TcpNoState);
        if direction == Direction::Egress {
            asked::unknown(ctx.skb.skb);
        }
        return guard && payload > 0;
    };
    let mut seq = seq;
    if syn {
        if st.flags & SYNCED != 0 && st.next != st.origin {
            note(CaptureStat::TcpReset);
        }
        // A SYN arriving in a synchronised stream: the host's TCP discards it (a
        // challenge ACK, or a duplicate SYN-ACK's ACK) unless the socket is connecting
        // anew, so the stream goes on where it was, whether it carried data yet or not.
        // Restarting here put the kernel's framing out of step with the socket's: after
        // data, a blocked answer's last bytes went through as a new message; before any,
        // at a sequence number the sender chose, a decoy the socket never reads framed
        // the answer that followed it as its body.
        // SAFETY: readable field of the packet's socket (checked non-null above).
        let state = unsafe { (*sk).state };
        if st.flags & SYNCED != 0
            && direction == Direction::Ingress
            && state != TCP_SYN_SENT
            && state != TCP_LISTEN
        {
            return guard && payload > 0;
        }
        seq = seq.wrapping_add(1);
        restart(st, seq);
        if payload == 0 {
            return false;
        }
    } else if st.flags & SYNCED == 0 {
        note(CaptureStat::TcpTakenUp);
        restart(st, seq);
        if direction == Direction::Egress {
            // Its first segment may start inside a question: what it asks is unknown.
            asked::unknown(ctx.skb.skb);
        }
    }
    let end = seq.wrapping_add(payload);
    if let Err(drop) = place(st, sk, seq, end, client, guard) {
        if direction == Direction::Egress && st.flags & LOST != 0 {
            asked::unknown(ctx.skb.skb);
        }
        return drop;
    }
    if tcp_flags & TCP_URG != 0 {
        // The urgent byte leaves the stream the application reads (unless it asked for
        // SO_OOBINLINE), so the kernel's framing would no longer be the socket's. No DNS
        // server sends one: the stream is lost, and at a client in enforce mode dropped.
        if st.flags & LOST == 0 {
            note(CaptureStat::TcpLostFraming);
        }
        lose(st, guard);
        if direction == Direction::Egress {
            asked::unknown(ctx.skb.skb);
        }
    }
    let dropping = |st: &Stream| st.flags & DROPPING != 0 && after(end, st.drop_from);
    if st.flags & LOST != 0 {
        // Not parsed (nor sent to the agent, which could not cut it into messages).
        st.next = end;
        return client && dropping(st);
    }
    let skip = st.next.wrapping_sub(seq);
    let from = st.next;
    let len = end.wrapping_sub(from);
    st.hdr = *base;
    put(&mut st.exempt, u32::from(exempt));
    put(&mut st.guard, u32::from(guard));
    let before = Place::of(st);
    let found = walk(ctx, st, off + skip, len, direction);
    if found & FOUND_HOLD != 0 {
        if found & FOUND_DROP == 0 {
            // An answer held for the agent's verdict: dropped, and the stream put back
            // where this segment found it, so its re-sending is read and decided again
            // (a verdict by then lets it through). Kept dropping, as a blocked answer
            // is, the re-sendings never got through and the connection hung long after
            // a clean verdict.
            before.restore(st);
        } else {
            // A blocked answer before it: the stream is dropped from there on, and the
            // walk stopped at the hold, so its framing is gone.
            lose(st, guard);
            st.next = end;
        }
        return true;
    }
    let (drop, wake) = (found & FOUND_DROP != 0, found & FOUND_WAKE != 0);
    st.hdr.flags |= DNS_FLAG_DATA;
    if st.flags & START != 0 {
        st.hdr.flags |= DNS_FLAG_STREAM_START;
        st.flags &= !START;
    }
    let start = from.wrapping_sub(st.origin);
    emit_span(ctx, &mut st.hdr, off + skip, len, start, wake);
    st.next = end;
    drop || (client && dropping(st))
}

/// Walks `left` new bytes of the stream at packet offset `pos`: reads lengths and
/// questions, decides each message whose question completes, and says so in a message
/// record. Returns what it found (`FOUND_*`), stopping at a held answer.
///
/// Up to `ROUNDS` questions are decided per segment, each after a framing loop that reads
/// without deciding: the name's hash is the costly part for the verifier, so it has one
/// place per round. What the walk carries from step to step lives in the stream's
/// storage, read and written through volatile accesses: in registers, the verifier would
/// tell apart every combination of what earlier steps found and explore each; in memory
/// it cannot, so the states at a loop's head merge.
#[inline(always)]
fn walk(ctx: &SkBuffContext, st: &mut Stream, pos: u32, left: u32, direction: Direction) -> u32 {
    put(&mut st.pos, pos);
    put(&mut st.left, left);
    put(&mut st.found, 0);
    let mut head = true;
    for _ in 0..ROUNDS {
        head = frames(ctx, st);
        if !head {
            break;
        }
        judge(ctx, st, direction);
        let found = get(&st.found);
        if found & FOUND_HOLD != 0 {
            // The segment goes back unread from here (`capture`).
            return found;
        }
    }
    // The rest of the last decided message; another question would be one too many.
    if head {
        head = frames(ctx, st);
    }
    // A message complete at the segment's end is closed now, not at the next segment.
    close(st);
    let mut found = get(&st.found);
    if head || get(&st.left) > 0 {
        // More messages than walked: the boundaries after them are unknown.
        note(CaptureStat::TcpTooManyMessages);
        let guard = get(&st.guard) != 0;
        lose(st, guard);
        if direction == Direction::Egress {
            // Questions past the walk were not read: the answers are not matched to them.
            asked::unknown(ctx.skb.skb);
        }
        if guard {
            found |= FOUND_DROP;
        }
    }
    found
}

/// The stream's framing is no longer the socket's: it is not parsed from here on, and
/// at a `guard`ed client (enforce mode) dropped from the current message on, since
/// what follows cannot be checked.
#[inline(always)]
fn lose(st: &mut Stream, guard: bool) {
    st.flags |= LOST;
    if guard {
        st.flags |= DROPPING;
        st.drop_from = st.msg_start;
    }
}

/// Questions decided per segment (more made the verifier give up).
const ROUNDS: u32 = 2;
/// What a walk found: a message to drop, a query to wake the agent for.
const FOUND_DROP: u32 = 1;
/// See `FOUND_DROP`.
const FOUND_WAKE: u32 = 2;
/// An answer held for the agent's verdict (`Decision::held`).
const FOUND_HOLD: u32 = 4;

/// Decides the message whose question was just read, says so in a message record, and
/// notes what the walk found.
#[inline(always)]
fn judge(ctx: &SkBuffContext, st: &mut Stream, direction: Direction) {
    transfer_continues(st);
    let exempt = get(&st.exempt) != 0;
    // From a server to a client: an answer, whatever its QR bit says (`from_server`).
    if from_server(direction, st.hdr.sport, st.hdr.dport) {
        st.head[4] |= 0x80;
    }
    // The whole fixed-size head goes to the decision (a constant length costs the
    // verifier far less than a variable one); bytes past the message are left from
    // earlier ones and matter only to a message whose name does not end inside it.
    let Some(head) = st.head.get(2..2 + HEAD_LEN as usize) else {
        return;
    };
    let mut d = decide(head, &mut st.walk, direction, exempt, st.hdr.ts_ns);
    // Read back from memory rather than kept in a register across the decision: the
    // capture's frame has no room for it on 6.1.
    let continued = get(&st.flags) & CONTINUED != 0;
    settle(ctx, head, &mut d, direction, exempt, continued);
    // Only an answer let through starts a zone transfer.
    let records = if d.verdict == Verdict::Allowed {
        d.records
    } else {
        0
    };
    let started = transfer_starts(st, records);
    let msg_len = get(&st.msg_len);
    // The message record, in the segment's header (restored after).
    let hdr = &mut st.hdr;
    let flags = hdr.flags;
    hdr.flags |= DNS_FLAG_MESSAGE;
    if d.hashed {
        hdr.flags |= DNS_FLAG_QNAME_HASHED;
        hdr.qname_hash = d.hash;
    }
    hdr.msg_len = msg_len;
    hdr.verdict = d.verdict as u32;
    hdr.offset = st.msg_start.wrapping_sub(st.origin);
    emit_header(hdr);
    hdr.flags = flags;
    hdr.qname_hash = 0;
    hdr.msg_len = 0;
    hdr.verdict = 0;
    let mut found = get(&st.found);
    let mut sflags = get(&st.flags) | HEAD_DONE;
    if started != 0 {
        sflags = (sflags & 0xffff) | TRANSFER | ((started & 0xffff) << 16);
    }
    if d.held {
        found |= FOUND_HOLD;
    } else if d.drop {
        sflags |= DROPPING;
        st.drop_from = st.msg_start;
        found |= FOUND_DROP;
    }
    if d.wake {
        found |= FOUND_WAKE;
    }
    put(&mut st.flags, sflags);
    put(&mut st.found, found);
}
