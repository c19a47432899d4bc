//! Loss accounting, and the contract's verdict rule applied to the live `MODE`.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use sensor_common::{EventKind, Verdict, maps::MODE_MONITOR};

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

/// Verdict for a lookup in a block map that found an entry with `flags` (or none), by
/// the contract's one rule and the current `MODE`.
#[inline(always)]
pub fn verdict_for(hit: Option<u32>) -> Verdict {
    verdict_of(hit.is_some(), hit.unwrap_or(0))
}

/// `verdict_for` of a hit given as a flag and the entry's flags (ignored when `hit` is
/// false).
#[inline(always)]
pub fn verdict_of(hit: bool, flags: u32) -> Verdict {
    if !hit {
        // Most lookups miss: no need to read MODE for them.
        return Verdict::Allowed;
    }
    let mode = MODE.get(0).copied().unwrap_or(MODE_MONITOR);
    sensor_common::verdict_for(Some(flags), mode)
}
