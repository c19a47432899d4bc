//! Events the kernel sends to the agent through the ring buffers.

use core::mem::{align_of, size_of};

/// Bytes of a DNS message the kernel copies into one event.
pub const DNS_CAPTURE_LEN: usize = 512;

/// Kind of event; the number is the wire tag and the index of the loss counter.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An outbound connect to an SMTP port.
    Connect = 1,
    /// A DNS message seen on a socket.
    Dns = 2,
}

impl EventKind {
    /// Every kind, for iterating loss counters.
    pub const ALL: [EventKind; 2] = [EventKind::Connect, EventKind::Dns];

    /// Decodes a wire tag.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Connect),
            2 => Some(Self::Dns),
            _ => None,
        }
    }

    /// Stable lower-case name used in metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Dns => "dns",
        }
    }
}

/// Number of slots in the loss counter array (indexed by `EventKind as u32`).
pub const LOST_SLOTS: u32 = 3;

/// Address family numbers as the kernel uses them.
pub const AF_INET: u16 = 2;
/// IPv6 address family.
pub const AF_INET6: u16 = 10;

/// An outbound connect to a port in `SMTP_PORTS`.
///
/// Only what the agent needs: each helper call costs 20-90 ns on a mitigated CPU,
/// so the uid and socket cookie are not taken here (the agent reads the uid from /proc).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    /// Always `EventKind::Connect`.
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Destination port, host byte order.
    pub port: u16,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Process id (thread group id).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// A `Verdict` value.
    pub verdict: u32,
    /// Zero; keeps the record free of padding.
    pub reserved: u32,
    /// cgroup v2 id of the caller.
    pub cgroup_id: u64,
    /// Destination address; IPv4 in the first four bytes.
    pub addr: [u8; 16],
    /// Task command name, NUL padded.
    pub comm: [u8; 16],
}

/// Traffic direction of a DNS packet, as seen from the host.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Leaving a local socket.
    Egress = 0,
    /// Arriving at a local socket.
    Ingress = 1,
}

/// Flag: the kernel could walk the question name and `qname_hash` is valid.
pub const DNS_FLAG_QNAME_HASHED: u32 = 1;
/// Flag: the message came over TCP; `msg_len` is the 2-byte length prefix.
pub const DNS_FLAG_TCP: u32 = 2;
/// Flag: the socket belongs to a local resolver talking to its upstream, so its
/// answers are never dropped (the resolver's answer to the asking process is).
pub const DNS_FLAG_RESOLVER: u32 = 4;

/// A DNS message (or its first `DNS_CAPTURE_LEN` bytes) seen on a socket.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsEvent {
    /// Always `EventKind::Dns`.
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// A `Direction` value.
    pub direction: u8,
    /// IP protocol number: 17 (UDP) or 6 (TCP).
    pub transport: u8,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// cgroup v2 id of the socket's owner.
    pub cgroup_id: u64,
    /// Socket cookie.
    pub cookie: u64,
    /// `qname_hash` of the question, valid when `DNS_FLAG_QNAME_HASHED` is set.
    pub qname_hash: u64,
    /// Length of the DNS message: UDP payload length, or the TCP length prefix.
    pub msg_len: u32,
    /// Bytes of the message in `data`.
    pub cap_len: u32,
    /// A `Verdict` value.
    pub verdict: u32,
    /// `DNS_FLAG_*` bits.
    pub flags: u32,
    /// Source address; IPv4 in the first four bytes.
    pub saddr: [u8; 16],
    /// Destination address; IPv4 in the first four bytes.
    pub daddr: [u8; 16],
    /// Source port, host byte order.
    pub sport: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// Explicit padding so the struct has none implicit.
    pub _pad: u32,
    /// The DNS message, without the TCP length prefix.
    pub data: [u8; DNS_CAPTURE_LEN],
}

// The layout is a contract with the kernel: fail the build if it drifts.
const _: () = assert!(size_of::<ConnectEvent>() == 72);
const _: () = assert!(align_of::<ConnectEvent>() == 8);
const _: () = assert!(size_of::<DnsEvent>() == 96 + DNS_CAPTURE_LEN);
const _: () = assert!(align_of::<DnsEvent>() == 8);
const _: () = assert!(size_of::<EventKind>() == 4);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both events are repr(C), made only of integers and byte arrays, with no
    // padding (asserted above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ConnectEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DnsEvent {}
    // SAFETY: repr(C), eight u32s, no padding (asserted in `task`).
    unsafe impl aya::Pod for crate::task::TaskLayout {}
}
