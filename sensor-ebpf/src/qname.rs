//! The question's hashes (`sensor_common::qname_hashes`), walked by `bpf_loop`.
//!
//! Inlined, the byte loop over a name (up to 255 bytes) is walked by the verifier one
//! byte at a time for every state that reaches it; on 6.1 the states at each byte (where
//! the last label started, how many labels there were) multiply past its million
//! instructions. A `bpf_loop` callback is verified on its own: a few thousand
//! instructions. The walk itself is sensor-common's, one label per iteration
//! (`QnameWalk::feed_label`, which `qname_hashes` uses too).
//!
//! The walk's state lives in map memory (beside the bytes it walks), never on the
//! stack: verifiers before 6.8 check the callback once, from the state the caller left,
//! and take that for every iteration. Constants on the stack (no label yet: 0) would
//! then be all the verifier ever sees, and it rewrites the branches it never saw taken
//! (a second label, and so every domain and stem hash) into jumps that skip them. Map
//! memory's contents are unknown to every verifier, so every branch stays.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use sensor_common::{
    QnameHashes,
    qname::{Fed, MAX_QNAME_LABELS, QnameWalk},
};

use crate::capture::{HEAD_LEN, opaque};

/// `Walk::fed`: the name goes on.
const MORE: u64 = 0;
/// `Walk::fed`: the name ended at `Walk::end`.
const END: u64 = 1;
/// `Walk::fed`: no hash (an invalid label, or past the bytes read).
const INVALID: u64 = 2;

/// The callback's context, on the caller's stack.
#[repr(C)]
struct Walk {
    /// The walk's state, in map memory.
    walk: *mut QnameWalk,
    /// The message's first `HEAD_LEN` bytes.
    head: *const u8,
    /// Message offset of the name's terminating zero (`END`).
    end: u64,
    /// How the walk stopped (`MORE`: it did not).
    fed: u64,
}

/// One label of the name: the `index`th. Returns 1 to stop the loop.
///
/// A label per iteration, not a byte: each iteration is a call and a return, which cost
/// more than the hashing of a byte on CPUs with return-thunk mitigations.
extern "C" fn feed(_index: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` that `hashes` handed to `bpf_loop`, on its stack.
    let w = unsafe { &mut *ctx.cast::<Walk>() };
    let head = w.head;
    // SAFETY: `walk` points at a live map value that only this walk uses meanwhile.
    let walk = unsafe { &mut *w.walk };
    let fed = walk.feed_label(|i| {
        if i < HEAD_LEN as usize {
            // SAFETY: `head` points at `HEAD_LEN` readable bytes and `i` is below that.
            Some(unsafe { *head.add(i) })
        } else {
            None
        }
    });
    match fed {
        Fed::More => 0,
        Fed::End => {
            w.end = walk.next() as u64;
            w.fed = END;
            1
        }
        Fed::Invalid => {
            w.fed = INVALID;
            1
        }
    }
}

/// `sensor_common::qname_hashes(head)` for the first `HEAD_LEN` bytes of a message,
/// walked in `walk` (map memory: see the module's note).
#[inline(always)]
pub fn hashes(head: &[u8], walk: &mut QnameWalk) -> Option<QnameHashes> {
    let head = head.get(..HEAD_LEN as usize)?;
    *walk = QnameWalk::new();
    let mut w = Walk {
        walk: core::ptr::from_mut(walk),
        head: head.as_ptr(),
        end: 0,
        fed: MORE,
    };
    // SAFETY: the callback is a static function taking (index, ctx); `ctx` is `w`,
    // which outlives the call.
    unsafe {
        bpf_loop(
            MAX_QNAME_LABELS as u32,
            feed as *mut c_void,
            core::ptr::from_mut(&mut w).cast(),
            0,
        )
    };
    // Bounded here, where the verifier sees it, though the callback only ends there.
    let end = opaque(w.end as u32);
    if w.fed != END || end >= HEAD_LEN {
        return None;
    }
    Some(walk.finish(head, end as usize))
}
