//! Names and value layouts of the maps shared by kernel and agent.

/// Ring buffer of `DnsEvent`s.
pub const DNS_EVENTS: &str = "DNS_EVENTS";
/// Ring buffer of `ConnectEvent`s.
pub const CONNECT_EVENTS: &str = "CONNECT_EVENTS";
/// Per-CPU `u64` counters of failed ring-buffer reservations, indexed by `EventKind`.
pub const LOST: &str = "LOST";
/// `Array<u32>` with one slot: `MODE_MONITOR` or `MODE_ENFORCE`.
pub const MODE: &str = "MODE";
/// `Array<u32>` of 65,536 slots: non-zero for ports that count as SMTP.
pub const SMTP_PORTS: &str = "SMTP_PORTS";
/// `LpmTrie<[u8; 4], u32>` of blocked IPv4 ranges; value is `BLOCK_*` flags.
pub const BLOCKED_V4: &str = "BLOCKED_V4";
/// `LpmTrie<[u8; 16], u32>` of blocked IPv6 ranges; value is `BLOCK_*` flags.
pub const BLOCKED_V6: &str = "BLOCKED_V6";
/// `HashMap<u64, u32>` of blocked question-name hashes; value is `BLOCK_*` flags.
pub const BLOCKED_NAMES: &str = "BLOCKED_NAMES";
/// `LruHashMap<u64, u32>` of socket cookies whose DNS answers are never dropped
/// (local caching resolvers' upstream sockets), filled by the kernel programs.
pub const DNS_EXEMPT: &str = "DNS_EXEMPT";
/// `HashMap<u32, u32>` of thread-group ids of local resolvers (processes serving
/// port 53 on this host), kept by the agent.
pub const RESOLVER_TGIDS: &str = "RESOLVER_TGIDS";

/// Every map the agent pins, in a fixed order.
pub const ALL_MAPS: [&str; 10] = [
    DNS_EVENTS,
    CONNECT_EVENTS,
    LOST,
    MODE,
    SMTP_PORTS,
    BLOCKED_V4,
    BLOCKED_V6,
    BLOCKED_NAMES,
    DNS_EXEMPT,
    RESOLVER_TGIDS,
];

/// `MODE` value: report matches, refuse nothing.
pub const MODE_MONITOR: u32 = 0;
/// `MODE` value: refuse matching connects and drop matching answers.
pub const MODE_ENFORCE: u32 = 1;

/// Block-map value flag: enforce this entry even when the global mode is monitor.
pub const BLOCK_ENFORCE: u32 = 1;
/// `BLOCKED_NAMES` value flag: the entry also covers every name under it (matched
/// through the hashes of a question's last two and three labels).
pub const BLOCK_SUBTREE: u32 = 2;

/// Capacity of `BLOCKED_V4` and `BLOCKED_V6`.
pub const BLOCKED_ADDRS_MAX: u32 = 65_536;
/// Capacity of `BLOCKED_NAMES`.
pub const BLOCKED_NAMES_MAX: u32 = 65_536;
/// Capacity of `DNS_EXEMPT`: resolvers open a socket per upstream query, and the
/// least recently used cookies (long-closed sockets) fall out first.
pub const DNS_EXEMPT_MAX: u32 = 65_536;
/// Capacity of `RESOLVER_TGIDS`.
pub const RESOLVER_TGIDS_MAX: u32 = 1_024;
/// Size of each event ring buffer in bytes (power of two, page multiple).
pub const RING_BYTES: u32 = 1 << 22;

/// Program names, as the kernel objects and the pins call them.
pub const PROGRAMS: [&str; 8] = [
    "mx_connect4",
    "mx_connect6",
    "mx_bind4",
    "mx_bind6",
    "mx_sendmsg4",
    "mx_sendmsg6",
    "mx_dns_egress",
    "mx_dns_ingress",
];
