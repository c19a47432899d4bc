//! Putting DNS bytes in the ring, and the decision on a message once its question is read.
//!
//! A record carries up to `DNS_CHUNK_MAX` bytes in the smallest size class that holds
//! them, copied straight from the packet into the ring (no scratch copy). Queries the
//! agent must see before their answer returns (A, AAAA, MX, ANY: the lookups that lead to
//! a mail host) always wake it, on their last record; nothing else does. A wakeup was
//! most of an answer's cost in the kernel (6–8 µs on an idle host), and an answer needs
//! none: what the kernel must do with it (drop, hold, contest) is decided here, and the
//! agent drains the ring at least every 10 ms and always reads the DNS ring again after
//! the connects it drained, so an answer is handled before the connect it led to.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_skb_load_bytes,
    programs::SkBuffContext,
};
use sensor_common::{
    DnsHeader, DnsRecord, EventKind, Verdict,
    event::{self, CaptureStat, DNS_CHUNK_MAX, DNS_CLASSES, Direction},
    maps::{BLOCK_HOLD, DNS_HEAD_LEN},
    qname::QnameWalk,
};

use crate::{
    asked,
    blocks::{self, answer_hit},
    counters::{count_lost, verdict_of},
    maps::{DNS_CAPTURE, DNS_EVENTS},
    qname,
};

/// Bytes of a message's start that hold its question (`DNS_HEAD_LEN`).
pub const HEAD_LEN: u32 = DNS_HEAD_LEN as u32;
/// A DNS header is 12 bytes; anything shorter has no question.
pub const DNS_HEADER_LEN: u32 = 12;

/// Question types whose answer leads to a mail host: A, MX, AAAA, ANY.
const WAKING_QTYPES: [u16; 4] = [1, 15, 28, 255];

/// What the kernel decided for a message from its first bytes.
#[derive(Clone, Copy)]
pub struct Decision {
    /// The question's name hash (`hashed`).
    pub hash: u64,
    /// The name could be read and `hash` is its hash. (Not an `Option`: a `None`'s
    /// unwritten value field is a read of an unset register to the verifier.)
    pub hashed: bool,
    /// What the kernel does with the message.
    pub verdict: Verdict,
    /// Drop the packet: an answer to a blocked name, at a socket that is not a local
    /// resolver's upstream one, in enforce mode.
    pub drop: bool,
    /// The drop is a hold (`BLOCK_HOLD`): the agent has not judged the question yet, and
    /// the same answer must be read and decided again when it comes back.
    pub held: bool,
    /// A query the agent must see before its answer: wake it.
    pub wake: bool,
    /// An arriving answer with no block, whose addresses contest learned address blocks
    /// (where the caller can read them from the packet).
    pub contest: bool,
    /// Offset of the first resource record in the message (0: the question unread).
    pub records: u16,
}

/// The decision for a message whose first bytes are `head` (at most `HEAD_LEN`), seen
/// in `direction` on a socket that is (`exempt`) or is not a local resolver's upstream;
/// `walk` is map memory for the walk over its name.
///
/// The name is walked by `bpf_loop` (`qname::hashes`): inlined in the program, its loop
/// was walked byte by byte by the verifier for every state that reached it, which on
/// 6.1 passed the million instructions.
#[inline(always)]
pub fn decide(
    head: &[u8],
    walk: &mut QnameWalk,
    direction: Direction,
    exempt: bool,
    now: u64,
) -> Decision {
    let hashes = qname::hashes(head, walk);
    let is_answer = head.get(2).is_some_and(|b| b & 0x80 != 0);
    // The hit as a flag and plain flags (0 when none), not an `Option`: once the compiler
    // copies a `None`'s payload, which nothing wrote, the verifier sees a read of an
    // unwritten register and refuses the program.
    let found = hashes.as_ref().and_then(|h| answer_hit(h, head, now));
    let mut hit = found.is_some();
    let mut flags = found.unwrap_or(0);
    // An answer with records whose question the kernel cannot read (a compression
    // pointer in it, a name past 255 bytes), or that has not exactly one question (with
    // none, the name read is the first record's owner, whoever wrote it; musl's stub
    // matches an answer to its query by id alone): no server writes one, a stub may
    // accept one, and its name cannot be checked, so at a client it counts as blocked.
    // (An error reply without a question carries no records and passes; a zone
    // transfer's later messages are given one by `tcp.rs`.)
    let count = |at: usize| {
        head.get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (qdcount, ancount) = (count(4), count(6));
    let unreadable = hashes.is_none() || qdcount != 1;
    if unreadable && is_answer && ancount > 0 && direction == Direction::Ingress && !exempt {
        note(CaptureStat::QuestionUnreadable);
        hit = true;
        flags = 0;
    }
    let mut verdict = verdict_of(hit, flags);
    let mut contest = false;
    let records = hashes.map_or(0, |h| h.records);
    if let (Some(h), false) = (&hashes, hit) {
        blocks::note_query(h, direction, is_answer, exempt, now);
        contest = is_answer && direction == Direction::Ingress && blocks::wants_contest();
    }
    // Only answers are dropped, and never at a local resolver's upstream socket.
    let drop =
        verdict == Verdict::Blocked && is_answer && direction == Direction::Ingress && !exempt;
    if verdict == Verdict::Blocked && !drop {
        verdict = Verdict::WouldBlock;
    }
    // A local resolver's upstream query repeats one its asker made, which woke the agent.
    let wake = hashes.is_some()
        && !is_answer
        && !exempt
        && direction == Direction::Egress
        && hashes.is_some_and(|h| WAKING_QTYPES.contains(&h.qtype));
    Decision {
        hash: hashes.map_or(0, |h| h.full),
        hashed: hashes.is_some(),
        verdict,
        drop,
        held: drop && flags == BLOCK_HOLD,
        wake,
        contest,
        records,
    }
}

/// After `decide`, for a message whose first bytes are `head`: a question a client socket
/// sends is remembered, and an answer with records to a question its socket did not ask
/// counts as blocked (`asked.rs`). `unchecked`: a zone transfer's later message, which
/// has no question of its own. A local resolver's upstream socket checks its answers
/// itself and is left alone.
#[inline(always)]
pub fn settle(
    ctx: &SkBuffContext,
    head: &[u8],
    d: &mut Decision,
    direction: Direction,
    exempt: bool,
    unchecked: bool,
) {
    if exempt || !d.hashed {
        return;
    }
    let byte = |at: usize| head.get(at).copied().map_or(0, u32::from);
    // The question's type ends 2 bytes before the records: id and type are the key.
    // (Through `opaque`: folded into the load's offset, the `- 4` reads as a negative
    // offset to the verifier, which does not carry the bound on `records` to it.)
    let at = opaque(u32::from(d.records).wrapping_sub(4)) as usize;
    let qtype = if d.records >= 4 {
        (byte(at) << 8) | byte(at + 1)
    } else {
        0
    };
    let key = (qtype << 16) | (byte(0) << 8) | byte(1);
    let mut bits = 0;
    if byte(2) & 0x80 != 0 {
        bits |= asked::ANSWER;
    }
    if byte(6) | byte(7) != 0 {
        bits |= asked::RECORDS;
    }
    if direction == Direction::Ingress {
        bits |= asked::INGRESS;
    }
    if unchecked || d.verdict != Verdict::Allowed {
        bits |= asked::UNCHECKED;
    }
    if asked::settle(ctx.skb.skb, d.hash, key, bits) != 0 {
        note(CaptureStat::QuestionNotAsked);
        // As a hit in `decide`: an answer arriving at a client socket.
        d.verdict = verdict_of(true, 0);
        d.drop = d.verdict == Verdict::Blocked;
        if !d.drop {
            d.verdict = Verdict::WouldBlock;
        }
        d.held = false;
        d.contest = false;
        // Nor does it start a zone transfer.
        d.records = 0;
    }
}

/// `sensor_common::event::from_server` for a message seen in `direction`.
#[inline(always)]
pub fn from_server(direction: Direction, sport: u16, dport: u16) -> bool {
    event::from_server(direction == Direction::Ingress, sport, dport)
}

/// Counts one `stat` in `DNS_CAPTURE`: rare paths only, never a packet's ordinary way
/// through.
#[inline(always)]
pub fn note(stat: CaptureStat) {
    if let Some(p) = DNS_CAPTURE.get_ptr_mut(stat as u32) {
        // SAFETY: the pointer is into this CPU's slot of a live map value; atomic because
        // a softirq can nest over a process-context program on the same CPU.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1) };
    }
}

/// `v`, through a volatile load: the compiler cannot drop a bounds check on it as
/// redundant with what it knows from elsewhere, and the verifier, which tracks registers
/// rather than the program's logic, then sees the bound right before the use it guards.
#[inline(always)]
pub fn opaque(v: u32) -> u32 {
    // SAFETY: reading a local.
    unsafe { core::ptr::read_volatile(&v) }
}

/// Ring submit flags of a packet's last record: wake the agent, or leave the record for
/// its next drain.
#[inline(always)]
pub const fn wake_flags(wake: bool) -> u64 {
    if wake {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Puts `hdr` and `len` packet bytes from `off` in a record of class `N`; false when the
/// ring is full (counted as lost) or the bytes cannot be read.
///
/// Not inlined: merged into one body, the classes' reservation sizes and copy lengths
/// become two choices the verifier cannot tie together.
#[inline(never)]
fn emit_class<const N: usize>(
    ctx: &SkBuffContext,
    hdr: &DnsHeader,
    off: u32,
    len: u32,
    flags: u64,
) -> bool {
    let Some(mut entry) = DNS_EVENTS.reserve::<DnsRecord<N>>(0) else {
        count_lost(EventKind::Dns);
        return false;
    };
    let rec = entry.as_mut_ptr();
    // The verifier needs the copy's length bounded by the record, and non-zero.
    let len = opaque(len);
    if len == 0 || len > N as u32 {
        entry.discard(0);
        return false;
    }
    // The same value again, bounded by a mask: the compiler may fold the two compares
    // above into one on `len - 1`, which verifiers before 6.7 cannot carry back to `len`
    // (6.1 then refuses a copy length of possibly zero). N is a power of two.
    let len = (opaque(len - 1) & (N as u32 - 1)) + 1;
    // SAFETY: `rec` is our reserved record of N data bytes and `len` is at most N.
    let rc = unsafe {
        (*rec).hdr = *hdr;
        (*rec).hdr.cap_len = len;
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            off,
            (*rec).data.as_mut_ptr().cast(),
            len,
        )
    };
    if rc != 0 {
        entry.discard(0);
        return false;
    }
    entry.submit(flags);
    true
}

/// Puts `hdr` and `len` (1..=`DNS_CHUNK_MAX`) packet bytes from `off` in a record of the
/// smallest class that holds them.
#[inline(always)]
pub fn emit(ctx: &SkBuffContext, hdr: &DnsHeader, off: u32, len: u32, flags: u64) -> bool {
    if len <= DNS_CLASSES[0] as u32 {
        emit_class::<{ DNS_CLASSES[0] }>(ctx, hdr, off, len, flags)
    } else if len <= DNS_CLASSES[1] as u32 {
        emit_class::<{ DNS_CLASSES[1] }>(ctx, hdr, off, len, flags)
    } else {
        emit_class::<{ DNS_CHUNK_MAX }>(ctx, hdr, off, len, flags)
    }
}

/// Puts a record with no data (a TCP message record).
#[inline(always)]
pub fn emit_header(hdr: &DnsHeader) -> bool {
    if DNS_EVENTS
        .output::<DnsHeader>(hdr, BPF_RB_NO_WAKEUP as u64)
        .is_err()
    {
        count_lost(EventKind::Dns);
        return false;
    }
    true
}

/// Puts `len` packet bytes from `off` in as many records as they need (at most eight:
/// 64 KiB), `hdr.offset` advancing from `start` by what each carries; the last record
/// wakes the agent if `wake`. A part the ring has no room for ends it: the first is
/// counted as lost, a later one as a cut message too.
///
/// Every record but the last is full (8 KiB), so only the last chooses its class: chosen
/// in the loop, each iteration would split the verifier's view of the lengths three ways
/// and the ways would multiply.
#[inline(always)]
pub fn emit_span(
    ctx: &SkBuffContext,
    hdr: &mut DnsHeader,
    off: u32,
    len: u32,
    start: u32,
    wake: bool,
) {
    const FULL: u32 = DNS_CHUNK_MAX as u32;
    let mut done = 0u32;
    for _ in 0..7 {
        if len - done <= FULL {
            break;
        }
        hdr.offset = start.wrapping_add(done);
        if !emit_class::<{ DNS_CHUNK_MAX }>(ctx, hdr, off + done, FULL, BPF_RB_NO_WAKEUP as u64) {
            if done > 0 {
                note(CaptureStat::MessageCut);
            }
            return;
        }
        done += FULL;
    }
    let last = len - done;
    if last > FULL {
        // Longer than 64 KiB: only a TCP segment can be (large receive offload).
        note(CaptureStat::MessageCut);
        return;
    }
    if last == 0 {
        return;
    }
    hdr.offset = start.wrapping_add(done);
    if !emit(ctx, hdr, off + done, last, wake_flags(wake)) && done > 0 {
        note(CaptureStat::MessageCut);
    }
}
