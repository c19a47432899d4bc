//! cgroup_skb egress and ingress: capture DNS messages, drop answers to blocked names.
//!
//! The first few instructions decide from the socket alone: a connected socket
//! whose peer port and local port are both not 53 cannot carry DNS, and that is
//! almost every packet. Only unconnected sockets (peer port 0) and port-53
//! sockets pay for parsing the IP and transport headers.

use aya_ebpf::{
    helpers::{bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_skb_cgroup_id, bpf_skb_load_bytes},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use sensor_common::{
    DNS_CAPTURE_LEN, DnsEvent, EventKind, Verdict,
    event::{AF_INET, AF_INET6, DNS_FLAG_QNAME_HASHED, DNS_FLAG_RESOLVER, DNS_FLAG_TCP, Direction},
    qname_hashes,
};

use crate::{
    blocks,
    counters::{count_lost, verdict_for},
    maps::{DNS_EVENTS, DNS_EXEMPT, DNS_SCRATCH},
};

const PASS: i32 = 1;
const DROP: i32 = 0;

/// `__sk_buff.remote_port` for peer port 53: network order, shifted up 16 bits.
const REMOTE_PORT_53: u32 = (53u16.to_be() as u32) << 16;
/// `__sk_buff.local_port` for local port 53 (host order).
const LOCAL_PORT_53: u32 = 53;
/// `__sk_buff.protocol` values (network order read as a little-endian word).
const ETH_P_IP: u32 = 0x0800u16.to_be() as u32;
const ETH_P_IPV6: u32 = 0x86ddu16.to_be() as u32;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
/// A DNS header is 12 bytes; anything shorter is not a message.
const DNS_HEADER_LEN: u32 = 12;

#[cgroup_skb(egress)]
pub fn mx_dns_egress(ctx: SkBuffContext) -> i32 {
    if !maybe_dns(&ctx) {
        return PASS;
    }
    capture(&ctx, Direction::Egress)
}

#[cgroup_skb(ingress)]
pub fn mx_dns_ingress(ctx: SkBuffContext) -> i32 {
    if !maybe_dns(&ctx) {
        return PASS;
    }
    capture(&ctx, Direction::Ingress)
}

/// The fast path: two context loads and three compares for a non-DNS socket.
#[inline(always)]
fn maybe_dns(ctx: &SkBuffContext) -> bool {
    // SAFETY: __sk_buff context fields readable by cgroup_skb programs.
    let (rport, lport) = unsafe { ((*ctx.skb.skb).remote_port, (*ctx.skb.skb).local_port) };
    rport == REMOTE_PORT_53 || rport == 0 || lport == LOCAL_PORT_53
}

/// Where the DNS message starts in the packet and what carried it.
struct Located {
    family: u16,
    transport: u8,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    /// Offset of the transport payload from the start of the IP header.
    payload_off: u32,
}

#[inline(always)]
fn load<T>(ctx: &SkBuffContext, off: u32) -> Option<T> {
    ctx.load::<T>(off as usize).ok()
}

/// Parses the IP and transport headers; `None` when this is not UDP/TCP port 53.
#[inline(always)]
fn locate(ctx: &SkBuffContext) -> Option<Located> {
    // SAFETY: readable context field.
    let proto = unsafe { (*ctx.skb.skb).protocol };
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    let (family, transport, l4_off) = if proto == ETH_P_IP {
        let ver_ihl: u8 = load(ctx, 0)?;
        let frag: u16 = load(ctx, 6)?;
        // Later fragments carry no transport header.
        if u16::from_be(frag) & 0x1fff != 0 {
            return None;
        }
        let transport: u8 = load(ctx, 9)?;
        let s: [u8; 4] = load(ctx, 12)?;
        let d: [u8; 4] = load(ctx, 16)?;
        saddr[..4].copy_from_slice(&s);
        daddr[..4].copy_from_slice(&d);
        (AF_INET, transport, ((ver_ihl & 0x0f) as u32) * 4)
    } else if proto == ETH_P_IPV6 {
        let transport: u8 = load(ctx, 6)?;
        saddr = load(ctx, 8)?;
        daddr = load(ctx, 24)?;
        (AF_INET6, transport, 40)
    } else {
        return None;
    };
    let ports: [u8; 4] = load(ctx, l4_off)?;
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    if sport != DNS_PORT && dport != DNS_PORT {
        return None;
    }
    let payload_off = match transport {
        IPPROTO_UDP => l4_off + 8,
        IPPROTO_TCP => {
            let doff: u8 = load(ctx, l4_off + 12)?;
            l4_off + ((doff >> 4) as u32) * 4
        }
        _ => return None,
    };
    Some(Located {
        family,
        transport,
        saddr,
        daddr,
        sport,
        dport,
        payload_off,
    })
}

#[inline(always)]
fn capture(ctx: &SkBuffContext, direction: Direction) -> i32 {
    let Some(loc) = locate(ctx) else {
        return PASS;
    };
    let skb_len = ctx.len();
    let mut msg_off = loc.payload_off;
    let mut flags = 0u32;
    let msg_len = if loc.transport == IPPROTO_TCP {
        // A TCP segment without room for the length prefix and a header is
        // an ACK, a handshake or a continuation: not the start of a message.
        if skb_len < msg_off + 2 + DNS_HEADER_LEN {
            return PASS;
        }
        let Some(prefix) = load::<[u8; 2]>(ctx, msg_off) else {
            return PASS;
        };
        msg_off += 2;
        flags |= DNS_FLAG_TCP;
        u16::from_be_bytes(prefix) as u32
    } else {
        skb_len.saturating_sub(msg_off)
    };
    if skb_len < msg_off + DNS_HEADER_LEN {
        return PASS;
    }
    let Some(ev) = DNS_SCRATCH.get_ptr_mut(0) else {
        return PASS;
    };
    // SAFETY: `ev` points at this CPU's scratch value, exclusively ours while we run.
    let ev = unsafe { &mut *ev };
    let avail = skb_len - msg_off;
    let cap = if avail > DNS_CAPTURE_LEN as u32 {
        DNS_CAPTURE_LEN as u32
    } else {
        avail
    };
    // The verifier needs a non-zero, bounded length in the register it sees.
    let cap = cap & (2 * DNS_CAPTURE_LEN as u32 - 1);
    if cap < DNS_HEADER_LEN || cap > DNS_CAPTURE_LEN as u32 {
        return PASS;
    }
    // SAFETY: `data` has DNS_CAPTURE_LEN bytes and `cap` is at most that.
    let rc = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            msg_off,
            ev.data.as_mut_ptr().cast(),
            cap,
        )
    };
    if rc != 0 {
        return PASS;
    }
    let hashes = qname_hashes(&ev.data);
    if hashes.is_some() {
        flags |= DNS_FLAG_QNAME_HASHED;
    }
    let is_answer = ev.data[2] & 0x80 != 0;
    let hit = hashes.as_ref().and_then(blocks::answer_hit);
    let mut verdict = verdict_for(hit);
    // SAFETY: helpers valid for cgroup_skb.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    // SAFETY: read-only lookup.
    let exempt = unsafe { DNS_EXEMPT.get(cookie) }.is_some();
    if exempt {
        flags |= DNS_FLAG_RESOLVER;
    }
    // Only answers are dropped, and never at a local resolver's upstream socket.
    let drop =
        verdict == Verdict::Blocked && is_answer && direction == Direction::Ingress && !exempt;
    if verdict == Verdict::Blocked && !drop {
        verdict = Verdict::WouldBlock;
    }
    ev.kind = EventKind::Dns as u32;
    ev.family = loc.family;
    ev.direction = direction as u8;
    ev.transport = loc.transport;
    // SAFETY: helpers valid for cgroup_skb.
    unsafe {
        ev.ts_ns = bpf_ktime_get_ns();
        ev.cgroup_id = bpf_skb_cgroup_id(ctx.skb.skb);
    }
    ev.cookie = cookie;
    ev.qname_hash = hashes.map_or(0, |h| h.full);
    ev.msg_len = msg_len;
    ev.cap_len = cap;
    ev.verdict = verdict as u32;
    ev.flags = flags;
    ev.saddr = loc.saddr;
    ev.daddr = loc.daddr;
    ev.sport = loc.sport;
    ev.dport = loc.dport;
    ev._pad = 0;
    if DNS_EVENTS.output::<DnsEvent>(&*ev, 0).is_err() {
        count_lost(EventKind::Dns);
    }
    if let Some(h) = &hashes {
        let m = blocks::Message {
            ctx,
            off: msg_off,
            len: avail,
            direction,
            answer: is_answer,
            exempt,
        };
        blocks::after_message(&m, h, hit);
    }
    if drop { DROP } else { PASS }
}
