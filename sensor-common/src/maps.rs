//! Names, kinds, sizes and value layouts of the maps shared by kernel and agent.
//!
//! [`MAPS`] is the contract: the kernel object must declare exactly these maps (a unit
//! test parses the built object and compares), and the agent opens them by it.

use core::mem::size_of;

use crate::event::{CAPTURE_STAT_SLOTS, LOST_SLOTS};

/// Ring buffer of DNS records (`DnsHeader`, then data of a `DNS_CLASSES` size).
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

/// Per-CPU `u64` counters of DNS capture and TCP reassembly events, indexed by
/// `CaptureStat`.
pub const DNS_CAPTURE: &str = "DNS_CAPTURE";
/// Socket storage (`BPF_MAP_TYPE_SK_STORAGE`) of each DNS-over-TCP socket's two streams.
pub const TCP_STREAMS: &str = "TCP_STREAMS";

/// Version of what the pinned maps hold (the meaning of their keys and values, and the
/// ring records' layout), stored beside the pins. Bump it when any of that changes, and
/// register each affected map's converter in the agent's `kernel/migrate.rs` (see
/// docs/architecture.md, "a map layout change"). A capacity or flag change alone needs
/// neither: such a map is recreated with its entries copied.
pub const LAYOUT_VERSION: u32 = 2;

/// `MODE` value: report matches, refuse nothing.
pub const MODE_MONITOR: u32 = 0;
/// `MODE` value: refuse matching connects and drop matching answers.
pub const MODE_ENFORCE: u32 = 1;

/// Block-map value flag: enforce this entry even when the global mode is monitor.
pub const BLOCK_ENFORCE: u32 = 1;
/// `BLOCKED_NAMES` value flag: the entry also covers every name under it (matched
/// through the hashes of a question's last two and three labels).
pub const BLOCK_SUBTREE: u32 = 2;

/// Slots of `SMTP_PORTS`: one per port number.
pub const SMTP_PORTS_MAX: u32 = 65_536;
/// Capacity of `BLOCKED_V4` and `BLOCKED_V6`.
pub const BLOCKED_ADDRS_MAX: u32 = 65_536;
/// Capacity of `BLOCKED_NAMES`.
pub const BLOCKED_NAMES_MAX: u32 = 65_536;
/// Capacity of `DNS_EXEMPT`: resolvers open a socket per upstream query, and the
/// least recently used cookies (long-closed sockets) fall out first.
pub const DNS_EXEMPT_MAX: u32 = 65_536;
/// Capacity of `RESOLVER_TGIDS` (another in the upgrade test's variant build, so that
/// build's map layout differs).
pub const RESOLVER_TGIDS_MAX: u32 = if cfg!(feature = "upgrade-variant") {
    2_048
} else {
    1_024
};
/// Size of each event ring buffer in bytes (power of two, page multiple).
pub const RING_BYTES: u32 = 1 << 22;
/// Bytes of a message's start that hold its question: the 12-byte header, the longest
/// name (255) and the question's type, rounded up.
pub const DNS_HEAD_LEN: usize = 272;
/// Size of the kernel's state for one direction of a DNS-over-TCP socket.
pub const TCP_STREAM_SIZE: usize = 696;
/// Size of a `TCP_STREAMS` value: both directions.
pub const TCP_STREAMS_VALUE_SIZE: usize = 2 * TCP_STREAM_SIZE;

/// A BPF map type, as the kernel numbers it (`enum bpf_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// `BPF_MAP_TYPE_HASH`.
    Hash,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PerCpuArray,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash,
    /// `BPF_MAP_TYPE_LPM_TRIE`.
    LpmTrie,
    /// `BPF_MAP_TYPE_RINGBUF`.
    RingBuf,
    /// `BPF_MAP_TYPE_SK_STORAGE`.
    SkStorage,
}

impl MapKind {
    /// The kernel's number for this type.
    pub const fn bpf_type(self) -> u32 {
        match self {
            MapKind::Hash => 1,
            MapKind::Array => 2,
            MapKind::PerCpuArray => 6,
            MapKind::LruHash => 9,
            MapKind::LpmTrie => 11,
            MapKind::RingBuf => 27,
            MapKind::SkStorage => 24,
        }
    }
}

/// `BPF_F_NO_PREALLOC`: the kernel requires it of LPM tries and socket storage.
pub const BPF_F_NO_PREALLOC: u32 = 1;

/// What a map is: enough to check a pinned map or a kernel object against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// The map's name in the object and its pin file name.
    pub name: &'static str,
    /// Its type.
    pub kind: MapKind,
    /// Key size in bytes (0 for ring buffers).
    pub key_size: u32,
    /// Value size in bytes (0 for ring buffers).
    pub value_size: u32,
    /// Capacity (bytes, for ring buffers).
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub flags: u32,
    /// Pinned under the pin directory and shared with `mxsentry ctl` and later agents;
    /// `false` for the programs' private scratch space.
    pub pinned: bool,
}

const fn spec(name: &'static str, kind: MapKind, key: usize, value: usize, max: u32) -> MapSpec {
    let flags = match kind {
        MapKind::LpmTrie | MapKind::SkStorage => BPF_F_NO_PREALLOC,
        _ => 0,
    };
    MapSpec {
        name,
        kind,
        key_size: key as u32,
        value_size: value as u32,
        max_entries: max,
        flags,
        pinned: true,
    }
}

/// An LPM trie key: a 32-bit prefix length, then the address bytes.
const fn lpm_key(addr_bytes: usize) -> usize {
    size_of::<u32>() + addr_bytes
}

/// `DNS_SCRATCH`: per-CPU room for a UDP message's question (one per direction).
pub const DNS_SCRATCH: &str = "DNS_SCRATCH";

/// A map private to one load of the programs: not pinned, not shared with later agents.
const fn private(spec: MapSpec) -> MapSpec {
    MapSpec {
        pinned: false,
        ..spec
    }
}

/// Every map of the kernel object, pinned ones first.
pub const MAPS: [MapSpec; 13] = [
    spec(DNS_EVENTS, MapKind::RingBuf, 0, 0, RING_BYTES),
    spec(CONNECT_EVENTS, MapKind::RingBuf, 0, 0, RING_BYTES),
    spec(LOST, MapKind::PerCpuArray, 4, 8, LOST_SLOTS),
    spec(MODE, MapKind::Array, 4, 4, 1),
    spec(SMTP_PORTS, MapKind::Array, 4, 4, SMTP_PORTS_MAX),
    spec(
        BLOCKED_V4,
        MapKind::LpmTrie,
        lpm_key(4),
        4,
        BLOCKED_ADDRS_MAX,
    ),
    spec(
        BLOCKED_V6,
        MapKind::LpmTrie,
        lpm_key(16),
        4,
        BLOCKED_ADDRS_MAX,
    ),
    spec(BLOCKED_NAMES, MapKind::Hash, 8, 4, BLOCKED_NAMES_MAX),
    spec(DNS_EXEMPT, MapKind::LruHash, 8, 4, DNS_EXEMPT_MAX),
    spec(RESOLVER_TGIDS, MapKind::Hash, 4, 4, RESOLVER_TGIDS_MAX),
    spec(DNS_CAPTURE, MapKind::PerCpuArray, 4, 8, CAPTURE_STAT_SLOTS),
    private(spec(DNS_SCRATCH, MapKind::PerCpuArray, 4, DNS_HEAD_LEN, 2)),
    // Socket storage has no capacity: one value per socket that has one.
    private(spec(
        TCP_STREAMS,
        MapKind::SkStorage,
        4,
        TCP_STREAMS_VALUE_SIZE,
        0,
    )),
];

/// The spec of map `name`, if the contract has one.
pub fn map_spec(name: &str) -> Option<&'static MapSpec> {
    MAPS.iter().find(|m| m.name == name)
}
