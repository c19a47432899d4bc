//! What is blocked: the decision on a DNS answer's question.

use sensor_common::{QnameHashes, maps::BLOCK_SUBTREE};

use crate::maps::BLOCKED_NAMES;

/// The flags of a `BLOCK_SUBTREE` entry for this suffix hash (0 = no such suffix).
#[inline(always)]
fn subtree_block(hash: u64) -> Option<u32> {
    if hash == 0 {
        return None;
    }
    // SAFETY: read-only lookup of a plain u32 value.
    match unsafe { BLOCKED_NAMES.get(hash) } {
        Some(v) if *v & BLOCK_SUBTREE != 0 => Some(*v),
        _ => None,
    }
}

/// The flags of the `BLOCKED_NAMES` entry that blocks answers to this question: the whole
/// name, or a blocked domain above it (`BLOCK_SUBTREE`), if any.
#[inline(always)]
pub fn answer_hit(hashes: &QnameHashes) -> Option<u32> {
    // SAFETY: read-only lookup of a plain u32 value.
    match unsafe { BLOCKED_NAMES.get(hashes.full) } {
        Some(v) => Some(*v),
        None => subtree_block(hashes.last2).or_else(|| subtree_block(hashes.last3)),
    }
}
