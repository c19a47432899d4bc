//! Where an IPv6 packet's transport header starts: behind its extension headers.
//!
//! The host's IPv6 skips hop-by-hop, routing and destination options headers (and the
//! fragment header of an atomic fragment) before it hands the rest to UDP or TCP, as many
//! as the packet carries, and leaves them in the packet the programs see. A server that
//! puts them in front of its answers must not get those answers past the programs
//! unread, so the chain is followed, up to `IPV6_EXT_MAX` headers; a longer one is
//! reported as such. (No DNS server sends even one. Other fragments are reassembled
//! before the ingress hook and cut after the egress one, and AH is verified and removed
//! before ingress: met anyway, they too leave the packet unread.)

use aya_ebpf::programs::SkBuffContext;
use sensor_common::event::{Direction, IPV6_EXT_MAX};

use crate::{maps::IPV6_CHAIN, packet::load};

const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_DEST: u8 = 60;
/// Transport protocol numbers (also `dns.rs`'s).
pub const IPPROTO_TCP: u8 = 6;
/// See `IPPROTO_TCP`.
pub const IPPROTO_UDP: u8 = 17;
const IPV6_HEADER_LEN: u32 = 40;
/// The furthest a transport header can start behind the headers followed (each at most
/// 2,048 bytes).
const CHAIN_END_MAX: u32 = IPV6_HEADER_LEN + IPV6_EXT_MAX as u32 * 2048;
/// A mask that keeps every offset up to `CHAIN_END_MAX`.
const CHAIN_OFF_MASK: u32 = (CHAIN_END_MAX + 1).next_power_of_two() - 1;

/// What follows an IPv6 header.
pub enum Chain {
    /// The transport header `proto` at offset `off` from the IPv6 header.
    Transport {
        /// Its protocol number.
        proto: u8,
        /// Its offset.
        off: u32,
    },
    /// More extension headers than the kernel follows, or one it does not read.
    Unread,
}

/// Follows the chain that starts with the IPv6 header's next-header byte `next`, in a
/// packet seen in `direction`.
#[inline(always)]
pub fn transport(ctx: &SkBuffContext, next: u8, direction: Direction) -> Chain {
    // Almost every packet: no extension header, nothing to walk.
    if next == IPPROTO_UDP || next == IPPROTO_TCP {
        return Chain::Transport {
            proto: next,
            off: IPV6_HEADER_LEN,
        };
    }
    walk(ctx, next, direction)
}

/// The walk over one or more extension headers.
#[inline(always)]
fn walk(ctx: &SkBuffContext, mut next: u8, direction: Direction) -> Chain {
    let mut off = IPV6_HEADER_LEN;
    for _ in 0..IPV6_EXT_MAX {
        let options = next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST;
        if !options && next != NEXTHDR_FRAGMENT {
            break;
        }
        // Every header is at least 8 bytes and starts with the next header's number.
        let Some(h) = load::<[u8; 4]>(ctx, off) else {
            return Chain::Unread;
        };
        let len = if options {
            // The length in 8 bytes beyond the first 8.
            (h[1] as u32 + 1) * 8
        } else {
            // Only an atomic fragment (offset 0, no more to come) is delivered as it is
            // (RFC 6946); its header is 8 bytes whatever its reserved byte says.
            if u16::from_be_bytes([h[2], h[3]]) & 0xfff9 != 0 {
                return Chain::Unread;
            }
            8
        };
        next = h[0];
        off += len;
    }
    if matches!(
        next,
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_FRAGMENT | NEXTHDR_AUTH
    ) {
        return Chain::Unread;
    }
    settle(off, next, direction)
}

/// The walk's result passed through map memory, whose contents no verifier tracks: each
/// number of headers the walk went through would otherwise be its own state, with its
/// own range of offsets, through the rest of the program (past the million instructions).
/// (An egress run in process context can be interrupted by a softirq's egress run between
/// the write and the read; both packets would need extension headers, and the worst is a
/// mislabelled query: egress drops nothing.)
#[inline(always)]
fn settle(off: u32, proto: u8, direction: Direction) -> Chain {
    let Some(slot) = IPV6_CHAIN.get_ptr_mut(direction as u32) else {
        return Chain::Unread;
    };
    // SAFETY: this CPU's slot of a live map value. Volatile, so the compiler reads back
    // what memory holds rather than the value it stored.
    let v = unsafe {
        core::ptr::write_volatile(slot, (u64::from(off) << 8) | u64::from(proto));
        core::ptr::read_volatile(slot)
    };
    // Masked as well as compared: the verifier needs the bound on the very register the
    // packet reads add, and a compare may be made on a copy of it.
    let off = ((v >> 8) as u32) & CHAIN_OFF_MASK;
    if off > CHAIN_END_MAX {
        return Chain::Unread;
    }
    Chain::Transport {
        proto: v as u8,
        off,
    }
}
