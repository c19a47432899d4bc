//! Framing a stream's new bytes: the length prefix, then a message's first bytes up to
//! its question (into the stream's `head`), or the rest of a decided message's body.
//! The walk's variables live in the stream's storage, read and written through volatile
//! accesses (`get`, `put`): see `walk`.

use aya_ebpf::{helpers::bpf_skb_load_bytes, programs::SkBuffContext};

use super::{HEAD_DONE, HEAD_TOTAL, Stream};
use crate::capture::{HEAD_LEN, opaque};

/// Frames until a question is complete (true) or the bytes run out (false).
#[inline(always)]
pub(super) fn frames(ctx: &SkBuffContext, st: &mut Stream) -> bool {
    for _ in 0..FRAME_STEPS {
        match frame(ctx, st) {
            Frame::More => {}
            Frame::Head => return true,
            Frame::End => return false,
        }
    }
    false
}

/// Framing steps per round: closing a message, the rest of its body, the next one's
/// length and question.
const FRAME_STEPS: u32 = 4;

/// What a framing step did.
enum Frame {
    /// Read some bytes; go on.
    More,
    /// Completed a message's question: decide it.
    Head,
    /// No bytes left, or none could be read.
    End,
}

/// A volatile read of a walk variable.
#[inline(always)]
pub(super) fn get(v: &u32) -> u32 {
    // SAFETY: reading a field of our stream.
    unsafe { core::ptr::read_volatile(v) }
}

/// A volatile write of a walk variable.
#[inline(always)]
pub(super) fn put(v: &mut u32, x: u32) {
    // SAFETY: writing a field of our stream.
    unsafe { core::ptr::write_volatile(v, x) }
}

/// Closes the current message if it is decided and whole: the next byte starts another.
#[inline(always)]
pub(super) fn close(st: &mut Stream) {
    let (have, msg_len, flags) = (get(&st.have), get(&st.msg_len), get(&st.flags));
    if flags & HEAD_DONE != 0 && have >= 2 + msg_len {
        st.msg_start = st.msg_start.wrapping_add(have);
        put(&mut st.have, 0);
        put(&mut st.msg_len, 0);
        put(&mut st.flags, flags & !HEAD_DONE);
    }
}

/// One framing step: closes a whole message, then reads the rest of a decided message's
/// body, or the length and question of an undecided one (up to `HEAD_TOTAL` bytes).
#[inline(always)]
fn frame(ctx: &SkBuffContext, st: &mut Stream) -> Frame {
    close(st);
    let (pos, left) = (get(&st.pos), get(&st.left));
    if left == 0 {
        return Frame::End;
    }
    let (have, msg_len, flags) = (get(&st.have), get(&st.msg_len), get(&st.flags));
    if flags & HEAD_DONE != 0 {
        let take = (2 + msg_len - have).min(left);
        put(&mut st.have, have + take);
        put(&mut st.pos, pos + take);
        put(&mut st.left, left - take);
        return Frame::More;
    }
    let have = opaque(have);
    let lim = if have < 2 {
        HEAD_TOTAL
    } else {
        2 + msg_len.min(HEAD_LEN)
    };
    let mut take = opaque(lim.saturating_sub(have).min(left));
    if take == 0 || take > HEAD_TOTAL || have >= HEAD_TOTAL {
        return Frame::End;
    }
    // Both bounded again in a form verifiers before 6.7 carry to the call (the compares
    // above may be folded into one on `take - 1`, or made on another copy of `have`).
    take = opaque(take - 1).min(HEAD_TOTAL - 1) + 1;
    let at = opaque(have).min(HEAD_TOTAL - 1);
    // SAFETY: `at` < HEAD_TOTAL and `take` <= HEAD_TOTAL: inside `head`.
    let rc = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            pos,
            st.head.as_mut_ptr().add(at as usize).cast(),
            take,
        )
    };
    if rc != 0 {
        return Frame::End;
    }
    let mut now = have + take;
    let mut msg_len = msg_len;
    if have < 2 && now >= 2 {
        msg_len = u16::from_be_bytes([st.head[0], st.head[1]]) as u32;
        put(&mut st.msg_len, msg_len);
        // Bytes past a short message belong to the next one.
        let end = 2 + msg_len.min(HEAD_LEN);
        if now > end {
            take -= now - end;
            now = end;
        }
    }
    put(&mut st.have, now);
    put(&mut st.pos, pos + take);
    put(&mut st.left, left - take);
    if now >= 2 && now == 2 + msg_len.min(HEAD_LEN) {
        Frame::Head
    } else {
        Frame::More
    }
}
