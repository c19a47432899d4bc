//! What the kernel does with a connect or a DNS answer, and the one rule that decides it.
//!
//! The rule is a `const fn` compiled into both the kernel programs and the agent's
//! simulated maps (replay, unit tests), so the two can never disagree.

use crate::maps::{BLOCK_ENFORCE, MODE_ENFORCE};

/// What the kernel did with a connect or a DNS packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not in any block map.
    Allowed = 0,
    /// Matched a block map, but the mode is monitor: let through and reported.
    WouldBlock = 1,
    /// Matched a block map in enforce mode: refused (EPERM) or dropped.
    Blocked = 2,
}

impl Verdict {
    /// Decodes a wire value.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Allowed),
            1 => Some(Self::WouldBlock),
            2 => Some(Self::Blocked),
            _ => None,
        }
    }

    /// Stable lower-case name used in metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::WouldBlock => "would_block",
            Self::Blocked => "blocked",
        }
    }
}

/// The verdict for a lookup in a block map: `hit` is the matching entry's `BLOCK_*`
/// flags (`None` when nothing matched) and `mode` the `MODE` map's value. An entry is
/// enforced when the global mode is enforce or the entry itself says `BLOCK_ENFORCE`.
#[inline(always)]
pub const fn verdict_for(hit: Option<u32>, mode: u32) -> Verdict {
    match hit {
        None => Verdict::Allowed,
        Some(flags) if mode == MODE_ENFORCE || flags & BLOCK_ENFORCE != 0 => Verdict::Blocked,
        Some(_) => Verdict::WouldBlock,
    }
}

const _: () = assert!(core::mem::size_of::<Verdict>() == 4);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{BLOCK_SUBTREE, MODE_MONITOR};

    #[test]
    fn the_rule() {
        assert_eq!(verdict_for(None, MODE_ENFORCE), Verdict::Allowed);
        assert_eq!(verdict_for(Some(0), MODE_MONITOR), Verdict::WouldBlock);
        assert_eq!(
            verdict_for(Some(BLOCK_SUBTREE), MODE_ENFORCE),
            Verdict::Blocked
        );
        assert_eq!(
            verdict_for(Some(BLOCK_ENFORCE), MODE_MONITOR),
            Verdict::Blocked
        );
        // An unknown mode value is not enforce.
        assert_eq!(verdict_for(Some(0), 7), Verdict::WouldBlock);
    }

    #[test]
    fn wire_values_round_trip() {
        for v in [Verdict::Allowed, Verdict::WouldBlock, Verdict::Blocked] {
            assert_eq!(Verdict::from_u32(v as u32), Some(v));
        }
        assert_eq!(Verdict::from_u32(3), None);
    }
}
