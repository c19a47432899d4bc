//! Loss accounting and the verdict rule shared by both hooks.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use sensor_common::{
    EventKind, Verdict,
    maps::{BLOCK_ENFORCE, MODE_ENFORCE},
};

use crate::maps::{LOST, MODE};

/// Counts one event of `kind` that could not be put in its ring buffer.
#[inline(always)]
pub fn count_lost(kind: EventKind) {
    if let Some(p) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: the pointer is into this CPU's slot of a live map value. Atomic
        // (BPF_ATOMIC add) because cgroup programs are preemptible and a softirq
        // can nest over a process-context program on the same CPU.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1) };
    }
}

/// Verdict for a match in a block map whose value is `flags`.
#[inline(always)]
pub fn verdict_for(flags: u32) -> Verdict {
    let enforce = matches!(MODE.get(0), Some(m) if *m == MODE_ENFORCE);
    if enforce || flags & BLOCK_ENFORCE != 0 {
        Verdict::Blocked
    } else {
        Verdict::WouldBlock
    }
}
