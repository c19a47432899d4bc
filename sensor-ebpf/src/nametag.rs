//! The keyed tag of a question's name (`sensor_common::tag`), computed only when its name
//! hash met a whole-name block that carries one: a `bpf_loop` over the name's 8-byte
//! words, so the verifier checks one word's rounds once.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_loop;
use sensor_common::{
    QNAME_OFFSET,
    tag::{MAX_TAG_WORDS, Sip, fold_word, low_bytes},
};

use crate::capture::{HEAD_LEN, opaque};

/// The callback's context, on the caller's stack.
#[repr(C)]
struct Words {
    sip: Sip,
    /// The message's first `HEAD_LEN` bytes.
    head: *const u8,
}

/// The 8 bytes of `head` at `at` as a little-endian word; `at + 8 <= HEAD_LEN`.
#[inline(always)]
fn word_at(head: *const u8, at: usize) -> u64 {
    let mut w = 0u64;
    for k in 0..8 {
        // SAFETY: the callers keep `at + 8` within the `HEAD_LEN` bytes at `head`.
        w |= u64::from(unsafe { *head.add(at + k) }) << (8 * k);
    }
    w
}

/// Absorbs the `index`th whole word of the name.
extern "C" fn absorb(index: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Words` that `question_tag` handed to `bpf_loop`.
    let w = unsafe { &mut *ctx.cast::<Words>() };
    // Bounded where the verifier sees it: the loop runs at most `MAX_TAG_WORDS` times.
    let i = (index as usize).min(MAX_TAG_WORDS - 1);
    w.sip.word(fold_word(word_at(w.head, QNAME_OFFSET + 8 * i)));
    0
}

/// The tag under `key` of the question name of the message whose first `HEAD_LEN` bytes
/// are `head`, its terminating zero at offset `end` (`QnameHashes::records - 5`).
#[inline(always)]
pub fn question_tag(head: &[u8], end: u32, key: u64) -> Option<u64> {
    let head = head.get(..HEAD_LEN as usize)?;
    let end = opaque(end) as usize;
    // Both bounds as written: the verifier needs them on `end`.
    #[allow(clippy::manual_range_contains)]
    if end < QNAME_OFFSET || end >= QNAME_OFFSET + sensor_common::qname::MAX_QNAME_WIRE {
        return None;
    }
    let len = end + 1 - QNAME_OFFSET;
    let words = len / 8;
    let mut w = Words {
        sip: Sip::new(key),
        head: head.as_ptr(),
    };
    // SAFETY: the callback is a static function taking (index, ctx); `ctx` is `w`,
    // which outlives the call.
    unsafe {
        bpf_loop(
            words as u32,
            absorb as *mut c_void,
            core::ptr::from_mut(&mut w).cast(),
            0,
        )
    };
    // The last word holds fewer than 8 of the name's bytes; reading all 8 stays within
    // `HEAD_LEN` (the longest name ends at 266, its last word at most at 268).
    let at = (QNAME_OFFSET + 8 * words).min(HEAD_LEN as usize - 8);
    let last = low_bytes(fold_word(word_at(head.as_ptr(), at)), len % 8);
    Some(w.sip.finish(len, last))
}
