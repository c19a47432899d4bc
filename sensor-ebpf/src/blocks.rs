//! The block decision for a DNS message's question: the one call the capture path makes
//! once it has the question's hashes, so how blocks are kept (expiry, holds, matching)
//! can change here without touching capture or reassembly.

use sensor_common::{QnameHashes, maps::BLOCK_SUBTREE};

use crate::maps::BLOCKED_NAMES;

/// The `BLOCK_*` flags of the block entry the question `hashes` hits, if any: the whole
/// name, or a `BLOCK_SUBTREE` domain entry for its last two or three labels.
#[inline(always)]
pub fn answer_hit(hashes: &QnameHashes) -> Option<u32> {
    // SAFETY: read-only lookup of a plain u32 value.
    match unsafe { BLOCKED_NAMES.get(hashes.full) } {
        Some(v) => Some(*v),
        None => subtree_block(hashes.last2).or_else(|| subtree_block(hashes.last3)),
    }
}

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
