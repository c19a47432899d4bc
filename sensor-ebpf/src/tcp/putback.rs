//! Where a stream stood before a segment, put back when the segment is held for the
//! agent's verdict: the re-sent segment is then read and decided anew.

use super::{
    HEAD_DONE, Stream,
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
    #[inline(always)]
    pub(super) fn of(st: &Stream) -> Self {
        Self {
            next: st.next,
            msg_start: st.msg_start,
            have: get(&st.have),
            msg_len: get(&st.msg_len),
            drop_from: st.drop_from,
            flags: get(&st.flags),
        }
    }

    /// The message the stream was inside when the segment came, its question read and
    /// decided in this segment: put back as decided (`msg_len` long), since the bytes of
    /// its question read before the segment are no longer in `head` once a later message
    /// of the segment was read there.
    #[inline(always)]
    pub(super) fn decided(&mut self, msg_len: u32) {
        if self.have > 0 && self.flags & HEAD_DONE == 0 {
            self.flags |= HEAD_DONE;
            self.msg_len = msg_len;
        }
    }

    #[inline(always)]
    pub(super) fn restore(&self, st: &mut Stream) {
        st.next = self.next;
        st.msg_start = self.msg_start;
        put(&mut st.have, self.have);
        put(&mut st.msg_len, self.msg_len);
        st.drop_from = self.drop_from;
        put(&mut st.flags, self.flags);
    }
}
