//! Where a stream stood before a segment, put back when the segment is held for the
//! agent's verdict: the re-sent segment is then read and decided anew, from its own
//! bytes (a re-sending may differ from the copy that was held).

use super::{
    SAVED, Stream,
    frame::{get, put},
};

/// Where a stream stood before a segment: what a held answer's segment puts back.
pub(super) struct Place {
    next: u32,
    msg_start: u32,
    have: u32,
    msg_len: u32,
    drop_from: u32,
    flags: u32,
}

impl Place {
    /// Takes the stream's place before a segment, and the first bytes of `head` aside
    /// (`Stream::saved`): a segment that starts inside a question may read a later
    /// message over that question's first bytes. (Always: a branch here, before the
    /// walk, doubled the states the verifier explores through it.)
    #[inline(always)]
    pub(super) fn of(st: &mut Stream) -> Self {
        copy_words(st.head.as_ptr(), st.saved.as_mut_ptr());
        Self {
            next: st.next,
            msg_start: st.msg_start,
            have: get(&st.have),
            msg_len: get(&st.msg_len),
            drop_from: st.drop_from,
            flags: get(&st.flags),
        }
    }

    /// Puts the stream back where the segment found it, its question's first bytes too.
    #[inline(always)]
    pub(super) fn restore(&self, st: &mut Stream) {
        st.next = self.next;
        st.msg_start = self.msg_start;
        put(&mut st.have, self.have);
        put(&mut st.msg_len, self.msg_len);
        st.drop_from = self.drop_from;
        put(&mut st.flags, self.flags);
        copy_words(st.saved.as_ptr(), st.head.as_mut_ptr());
    }
}

/// Copies `SAVED` bytes, a word at a time (a plain copy of that size is a `memcpy` call,
/// which BPF programs cannot make).
#[inline(always)]
fn copy_words(from: *const u8, to: *mut u8) {
    for i in 0..SAVED / 8 {
        // SAFETY: both point at `SAVED` bytes or more of the stream (`head` is longer),
        // and `i * 8 + 8 <= SAVED`.
        unsafe {
            let w = from.add(i * 8).cast::<u64>().read_unaligned();
            to.add(i * 8).cast::<u64>().write_unaligned(w);
        }
    }
}
