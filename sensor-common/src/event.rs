//! Events the kernel sends to the agent through the ring buffers.

use core::mem::{align_of, size_of};

/// Data size classes of DNS records: a record carries at most this many bytes of one
/// message (UDP) or of one direction of a TCP stream; longer ones span several records,
/// each of the smallest class that holds its part.
pub const DNS_CLASSES: [usize; 3] = [512, 2048, 8192];
/// The largest class: what one record carries at most.
pub const DNS_CHUNK_MAX: usize = DNS_CLASSES[2];
/// The longest DNS message: TCP's 2-byte length prefix; UDP's payload is no longer.
pub const DNS_MSG_MAX: usize = 65_535;
/// IPv6 extension headers the kernel follows to find a packet's transport header. No DNS
/// server sends any; the host's IPv6 skips any number, so a longer chain is not let by
/// unread (`CaptureStat::Ipv6ChainUnread`).
pub const IPV6_EXT_MAX: usize = 8;

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
/// Flag: the message came over TCP.
pub const DNS_FLAG_TCP: u32 = 2;
/// Flag: the socket belongs to a local resolver talking to its upstream, so its
/// answers are never dropped (the resolver's answer to the asking process is).
pub const DNS_FLAG_RESOLVER: u32 = 4;
/// Flag: the header describes a message: `msg_len`, `qname_hash` and `verdict` are its.
/// Every UDP record has it; a TCP message record (no data) has it, `offset` being the
/// stream offset of the message's length prefix.
pub const DNS_FLAG_MESSAGE: u32 = 8;
/// Flag: the record carries `cap_len` bytes at `offset`: of the message (UDP), or of
/// the stream, length prefixes included (TCP).
pub const DNS_FLAG_DATA: u32 = 16;
/// Flag: TCP data that starts the stream (after a SYN, or where the kernel first took
/// the socket up): a message begins at its first byte.
pub const DNS_FLAG_STREAM_START: u32 = 32;

/// What every DNS record starts with.
///
/// UDP: a message of `msg_len` bytes goes out as records of its consecutive parts
/// (`offset`, `cap_len`), all with the same header otherwise (same `ts_ns`). TCP: each
/// direction of a socket is a stream; data records carry its bytes by stream offset (0 is
/// the first byte after the SYN), and a message record, with no data, says where a
/// message starts and what the kernel decided for it, once the kernel has read its
/// question (which may take several segments).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsHeader {
    /// Always `EventKind::Dns`.
    pub kind: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// A `Direction` value.
    pub direction: u8,
    /// IP protocol number: 17 (UDP) or 6 (TCP).
    pub transport: u8,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the packet.
    pub ts_ns: u64,
    /// cgroup v2 id of the socket's owner.
    pub cgroup_id: u64,
    /// Socket cookie.
    pub cookie: u64,
    /// `qname_hash` of the question, valid when `DNS_FLAG_QNAME_HASHED` is set.
    pub qname_hash: u64,
    /// Length of the message (`DNS_FLAG_MESSAGE`); 0 on TCP data records.
    pub msg_len: u32,
    /// Bytes of data in the record.
    pub cap_len: u32,
    /// A `Verdict` value (`DNS_FLAG_MESSAGE`).
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
    /// UDP: where the data starts in the message. TCP: the stream offset of the data, or
    /// of the described message's length prefix (modulo 2^32).
    pub offset: u32,
}

/// A DNS record of data class `N`: the header, then up to `N` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsRecord<const N: usize> {
    /// What the bytes are.
    pub hdr: DnsHeader,
    /// `hdr.cap_len` bytes; the rest is not written.
    pub data: [u8; N],
}

/// Size of a DNS record with no data (a TCP message record).
pub const DNS_HEADER_SIZE: usize = size_of::<DnsHeader>();

/// Why the kernel could not capture or follow some DNS traffic, or restarted a stream:
/// the index of its counter in `DNS_CAPTURE` (each exported with its name as `reason`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureStat {
    /// A message not captured whole: a later part found the ring full (the first part's
    /// loss is `LOST[dns]`), or a segment was longer than the kernel copies (64 KiB).
    MessageCut = 0,
    /// A SYN on a socket whose stream had carried data: the stream restarts if the socket
    /// is connecting anew (or the SYN leaves the host), else the SYN is ignored (and
    /// dropped at a client in enforce mode).
    TcpReset = 1,
    /// A segment ahead of the stream (a gap before it): dropped at a client's ingress so
    /// the sender sends it again in order; elsewhere the stream's framing is lost.
    TcpOutOfOrder = 2,
    /// A segment re-sending bytes the host's TCP had not accepted from the copy the kernel
    /// read: dropped at a client's ingress (its bytes might differ from what was read).
    TcpResentUnread = 3,
    /// More messages started in one segment than the kernel walks.
    TcpTooManyMessages = 4,
    /// A stream whose message boundaries are lost (a gap, or urgent data): not parsed any
    /// more; at a client's ingress its further data is dropped.
    TcpLostFraming = 5,
    /// No socket storage for a stream (memory): its segments are not followed.
    TcpNoState = 6,
    /// A stream taken up mid-way (no SYN seen: the socket predates the programs, or it
    /// was accepted from a listener): its first data taken as a message start.
    TcpTakenUp = 7,
    /// An answer with records whose question the kernel could not read (a compression
    /// pointer, an overlong name): at a client it counts as blocked.
    QuestionUnreadable = 8,
    /// An IPv6 packet whose transport header the kernel did not reach: more extension
    /// headers than it follows (`IPV6_EXT_MAX`), one cut short, or a fragment or AH header
    /// (which the host's IPv6 removes before ingress). At a client's DNS socket it counts
    /// as blocked.
    Ipv6ChainUnread = 9,
    /// A question whose name hash met a whole-name block but whose keyed tag was not the
    /// block's (`NAME_TAGS`): another name with the same hash, most likely computed. Its
    /// answer is not dropped for that block.
    NameTagMismatch = 10,
    /// An answer with records, at a client socket, carrying the id of a question the socket
    /// asked but another question, name or type (`ASKED`): glibc's TCP reader and musl
    /// match an answer to its query by id alone, so the question a lookalike's server
    /// writes could hide what was asked. It counts as blocked.
    QuestionNotAsked = 11,
}

impl CaptureStat {
    /// Every counter, in index order.
    pub const ALL: [CaptureStat; 12] = [
        CaptureStat::MessageCut,
        CaptureStat::TcpReset,
        CaptureStat::TcpOutOfOrder,
        CaptureStat::TcpResentUnread,
        CaptureStat::TcpTooManyMessages,
        CaptureStat::TcpLostFraming,
        CaptureStat::TcpNoState,
        CaptureStat::TcpTakenUp,
        CaptureStat::QuestionUnreadable,
        CaptureStat::Ipv6ChainUnread,
        CaptureStat::NameTagMismatch,
        CaptureStat::QuestionNotAsked,
    ];

    /// The metric's `reason` label.
    pub const fn name(self) -> &'static str {
        match self {
            CaptureStat::MessageCut => "message_cut",
            CaptureStat::TcpReset => "tcp_reset",
            CaptureStat::TcpOutOfOrder => "tcp_out_of_order",
            CaptureStat::TcpResentUnread => "tcp_resent_unread",
            CaptureStat::TcpTooManyMessages => "tcp_too_many_messages",
            CaptureStat::TcpLostFraming => "tcp_lost_framing",
            CaptureStat::TcpNoState => "tcp_no_state",
            CaptureStat::TcpTakenUp => "tcp_taken_up",
            CaptureStat::QuestionUnreadable => "question_unreadable",
            CaptureStat::Ipv6ChainUnread => "ipv6_chain_unread",
            CaptureStat::NameTagMismatch => "name_tag_mismatch",
            CaptureStat::QuestionNotAsked => "question_not_asked",
        }
    }
}

/// Whether a DNS message arriving (`ingress`) at port `dport` from port `sport` comes from
/// a DNS server to a client: an answer, whatever its QR bit says. Neither glibc nor musl
/// reads that bit, so an answer marked as a query is taken as an answer by the stub. The
/// kernel and the agent read messages by this one rule.
pub const fn from_server(ingress: bool, sport: u16, dport: u16) -> bool {
    ingress && sport == 53 && dport != 53
}

/// Slots of `DNS_CAPTURE`.
pub const CAPTURE_STAT_SLOTS: u32 = CaptureStat::ALL.len() as u32;

// The layout is a contract with the kernel: fail the build if it drifts.
const _: () = assert!(size_of::<ConnectEvent>() == 72);
const _: () = assert!(align_of::<ConnectEvent>() == 8);
const _: () = assert!(size_of::<DnsHeader>() == 96);
const _: () = assert!(align_of::<DnsHeader>() == 8);
const _: () = assert!(size_of::<DnsRecord<{ DNS_CLASSES[0] }>>() == 96 + DNS_CLASSES[0]);
const _: () = assert!(size_of::<DnsRecord<{ DNS_CHUNK_MAX }>>() == 96 + DNS_CHUNK_MAX);
const _: () = assert!(size_of::<EventKind>() == 4);
// The largest UDP payload fits the records one packet may take (eight full ones).
const _: () = assert!(8 * DNS_CHUNK_MAX >= DNS_MSG_MAX);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both events are repr(C), made only of integers and byte arrays, with no
    // padding (asserted above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ConnectEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DnsHeader {}
    // SAFETY: repr(C), eight u32s, no padding (asserted in `task`).
    unsafe impl aya::Pod for crate::task::TaskLayout {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_grow_and_keep_records_aligned() {
        assert!(DNS_CLASSES.windows(2).all(|w| w[0] < w[1]));
        for c in DNS_CLASSES {
            // Ring records are 8-byte aligned: a class that is not a multiple would leave
            // padding the agent reads as part of the record's size.
            assert_eq!((DNS_HEADER_SIZE + c) % 8, 0, "class {c}");
        }
    }

    #[test]
    fn every_capture_counter_has_its_slot_and_a_distinct_name() {
        for (i, s) in CaptureStat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        let mut names: [&str; CAPTURE_STAT_SLOTS as usize] = CaptureStat::ALL.map(|s| s.name());
        names.sort_unstable();
        assert!(names.windows(2).all(|w| w[0] != w[1]));
    }
}
