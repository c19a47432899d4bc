//! cgroup_skb egress and ingress: capture DNS messages, drop answers to blocked names.
//! This file finds the DNS in a packet; `udp` and `tcp` read it, `capture` puts it in the
//! ring and decides on each message.
//!
//! The first few instructions decide from the socket alone: a connected socket
//! whose peer port and local port are both not 53 cannot carry DNS, and that is
//! almost every packet. Only unconnected sockets (peer port 0) and port-53
//! sockets pay for parsing the IP and transport headers.

use aya_ebpf::{
    helpers::{
        bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_skb_cgroup_id, generated::bpf_sk_fullsock,
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use sensor_common::{
    DnsHeader, EventKind, Verdict,
    event::{AF_INET, AF_INET6, CaptureStat, DNS_FLAG_RESOLVER, DNS_FLAG_TCP, Direction},
};

use crate::{
    capture::note,
    counters::verdict_for,
    ipv6::{self, Chain, IPPROTO_TCP, IPPROTO_UDP},
    maps::DNS_EXEMPT,
    packet::load,
    tcp, udp,
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
const DNS_PORT: u16 = 53;

// The fast path is all the entry function holds; the rest is a subprogram per direction.
// Inlined into the entry, the capture made it one large function whose prologue (the
// callee-saved registers and a stack frame of a few hundred bytes) every packet paid,
// behind a call from the macro's wrapper.

#[cgroup_skb(egress)]
pub fn mx_dns_egress(ctx: SkBuffContext) -> i32 {
    if !maybe_dns(&ctx) {
        return PASS;
    }
    capture_egress(ctx)
}

#[cgroup_skb(ingress)]
pub fn mx_dns_ingress(ctx: SkBuffContext) -> i32 {
    if !maybe_dns(&ctx) {
        return PASS;
    }
    capture_ingress(ctx)
}

/// `capture` of an outgoing packet. (The context by value: by reference, the entry
/// would store it on its stack for every packet.)
#[inline(never)]
fn capture_egress(ctx: SkBuffContext) -> i32 {
    capture(&ctx, Direction::Egress)
}

/// `capture` of an arriving packet.
#[inline(never)]
fn capture_ingress(ctx: SkBuffContext) -> i32 {
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
    /// TCP: the segment's sequence number.
    seq: u32,
    /// TCP: the header's flags byte.
    tcp_flags: u8,
}

/// Why a packet is not parsed.
enum Skip {
    /// Not UDP or TCP port 53 (or not readable as such).
    NotDns,
    /// An IPv6 extension header chain longer than the kernel follows.
    ChainUnread,
}

/// Parses the IP and transport headers.
#[inline(always)]
fn locate(ctx: &SkBuffContext, direction: Direction) -> Result<Located, Skip> {
    locate_headers(ctx, direction).unwrap_or(Err(Skip::NotDns))
}

/// `locate`, with `None` for a header that cannot be read.
#[inline(always)]
fn locate_headers(ctx: &SkBuffContext, direction: Direction) -> Option<Result<Located, Skip>> {
    // SAFETY: readable context field.
    let proto = unsafe { (*ctx.skb.skb).protocol };
    let mut saddr = [0u8; 16];
    let mut daddr = [0u8; 16];
    let (family, transport, l4_off) = if proto == ETH_P_IP {
        let ver_ihl: u8 = load(ctx, 0)?;
        let frag: u16 = load(ctx, 6)?;
        // Later fragments carry no transport header.
        if u16::from_be(frag) & 0x1fff != 0 {
            return Some(Err(Skip::NotDns));
        }
        let transport: u8 = load(ctx, 9)?;
        let s: [u8; 4] = load(ctx, 12)?;
        let d: [u8; 4] = load(ctx, 16)?;
        saddr[..4].copy_from_slice(&s);
        daddr[..4].copy_from_slice(&d);
        (AF_INET, transport, ((ver_ihl & 0x0f) as u32) * 4)
    } else if proto == ETH_P_IPV6 {
        let next: u8 = load(ctx, 6)?;
        saddr = load(ctx, 8)?;
        daddr = load(ctx, 24)?;
        match ipv6::transport(ctx, next, direction) {
            Chain::Transport { proto, off } => (AF_INET6, proto, off),
            Chain::Unread => return Some(Err(Skip::ChainUnread)),
        }
    } else {
        return Some(Err(Skip::NotDns));
    };
    let ports: [u8; 4] = load(ctx, l4_off)?;
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    if sport != DNS_PORT && dport != DNS_PORT {
        return Some(Err(Skip::NotDns));
    }
    let (payload_off, seq, tcp_flags) = match transport {
        IPPROTO_UDP => (l4_off + 8, 0, 0),
        IPPROTO_TCP => {
            // Sequence number, then data offset and flags.
            let t: [u8; 12] = load(ctx, l4_off + 4)?;
            let seq = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            (l4_off + ((t[8] >> 4) as u32) * 4, seq, t[9])
        }
        _ => return Some(Err(Skip::NotDns)),
    };
    Some(Ok(Located {
        family,
        transport,
        saddr,
        daddr,
        sport,
        dport,
        payload_off,
        seq,
        tcp_flags,
    }))
}

/// Captures the DNS traffic in a packet; whether to drop it.
#[inline(always)]
fn capture(ctx: &SkBuffContext, direction: Direction) -> i32 {
    let loc = match locate(ctx, direction) {
        Ok(loc) => loc,
        Err(Skip::NotDns) => return PASS,
        Err(Skip::ChainUnread) => return chain_unread(ctx, direction),
    };
    // A TCP segment with no data and no SYN (an ACK, a FIN, a reset) carries nothing the
    // stream needs: leave before the helper calls below, which cost more than the rest
    // of such a segment's run. Most segments of a TCP DNS connection are these.
    if loc.transport == IPPROTO_TCP
        && loc.tcp_flags & tcp::TCP_SYN == 0
        && ctx.len() <= loc.payload_off
    {
        return PASS;
    }
    // SAFETY: helpers valid for cgroup_skb.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    // SAFETY: read-only lookup.
    let exempt = unsafe { DNS_EXEMPT.get(cookie) }.is_some();
    let mut hdr = DnsHeader {
        kind: EventKind::Dns as u32,
        family: loc.family,
        direction: direction as u8,
        transport: loc.transport,
        cookie,
        flags: if exempt { DNS_FLAG_RESOLVER } else { 0 },
        saddr: loc.saddr,
        daddr: loc.daddr,
        sport: loc.sport,
        dport: loc.dport,
        ..DnsHeader::default()
    };
    // SAFETY: helpers valid for cgroup_skb.
    unsafe {
        hdr.ts_ns = bpf_ktime_get_ns();
        hdr.cgroup_id = bpf_skb_cgroup_id(ctx.skb.skb);
    }
    let drop = if loc.transport == IPPROTO_TCP {
        hdr.flags |= DNS_FLAG_TCP;
        tcp::capture(
            ctx,
            &hdr,
            loc.payload_off,
            loc.seq,
            loc.tcp_flags,
            direction,
            exempt,
        )
    } else {
        udp::capture(ctx, &mut hdr, loc.payload_off, direction, exempt)
    };
    if drop { DROP } else { PASS }
}

/// An IPv6 packet whose extension headers the kernel did not follow to the end: counted,
/// and dropped where a DNS answer could hide in it: at a client's DNS socket (peer port
/// 53, or an unconnected UDP socket, as musl's stub resolver's is) that is not a local
/// resolver's upstream, in enforce mode. No DNS server sends such a chain; what it
/// carries cannot be checked. (A listener's TCP socket has no peer port either, and is
/// left alone.)
#[inline(never)]
fn chain_unread(ctx: &SkBuffContext, direction: Direction) -> i32 {
    note(CaptureStat::Ipv6ChainUnread);
    // SAFETY: readable context field.
    let rport = unsafe { (*ctx.skb.skb).remote_port };
    let dns_socket = rport == REMOTE_PORT_53 || (rport == 0 && is_udp(ctx));
    if direction != Direction::Ingress || !dns_socket {
        return PASS;
    }
    // SAFETY: helper valid for cgroup_skb; read-only lookup.
    let exempt = unsafe { DNS_EXEMPT.get(bpf_get_socket_cookie(ctx.skb.skb.cast())) }.is_some();
    if !exempt && verdict_for(Some(0)) == Verdict::Blocked {
        DROP
    } else {
        PASS
    }
}

/// Whether the packet's socket is a UDP one.
#[inline(always)]
fn is_udp(ctx: &SkBuffContext) -> bool {
    // SAFETY: readable context field (a socket, or null).
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return false;
    }
    // SAFETY: helper valid for cgroup_skb on the context's socket.
    let full = unsafe { bpf_sk_fullsock(sk) };
    // SAFETY: a full socket the helper returned, read-only.
    !full.is_null() && unsafe { (*full).protocol } == u32::from(IPPROTO_UDP)
}
