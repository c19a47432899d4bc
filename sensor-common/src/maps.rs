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
/// `LpmTrie<[u8; 4], BlockEntry>` of blocked IPv4 ranges.
pub const BLOCKED_V4: &str = "BLOCKED_V4";
/// `LpmTrie<[u8; 16], BlockEntry>` of blocked IPv6 ranges.
pub const BLOCKED_V6: &str = "BLOCKED_V6";
/// `HashMap<u64, BlockEntry>` of blocked names: question-name hashes, domain hashes
/// (`BLOCK_SUBTREE`) and stem hashes of protected entries (`BLOCK_PREFIX`).
pub const BLOCKED_NAMES: &str = "BLOCKED_NAMES";
/// `LruHashMap<u64, u64>`: question-name hash of an MX lookup the agent has not judged
/// yet → kernel time of the first such query. Its answers are held (dropped) for at most
/// `HOLD_NS`, so the resolver's retry meets the verdict.
pub const HOLD_PENDING: &str = "HOLD_PENDING";
/// `LruHashMap<u64, u64>`: question-name hashes the agent judged not to block → kernel
/// time until which that holds. They are never held, and override `BLOCK_PREFIX`.
pub const CLEAN_NAMES: &str = "CLEAN_NAMES";
/// `HashMap<u64, u64>`, two kinds of entry. Question-name hash of a learned whole-name
/// block → the name's keyed tag (`tag::name_tag` under `AGENT_NAME_KEY`): a question
/// meets that block only when its own tag is this one, so an FNV collision, which whoever
/// picks a name can compute, does not drop another name's answers. And the keyed tag of
/// a name judged clean that the prefix rule covers → its hash: the verdict lifts the
/// rule for that name only. Keyed by the secret tag, that entry cannot be displaced by a
/// block under a computed hash. (Not LRU: a live tag evicted would leave its block met by
/// any name with the hash; a tag goes with its block or its verdict.)
pub const NAME_TAGS: &str = "NAME_TAGS";
/// `Array<u64>` of `AGENT_SLOTS` values the agent keeps for the programs (`AGENT_*`).
pub const AGENT_STATE: &str = "AGENT_STATE";
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
/// Socket storage of the questions each DNS client socket asked last (`ASKED_SLOTS`), by
/// id, type and name hash: an answer with the id of one must carry its question.
pub const ASKED: &str = "ASKED";

/// Version of what the pinned maps hold (the meaning of their keys and values, and the
/// ring records' layout), stored beside the pins. Bump it when any of that changes, and
/// register each affected map's converter in the agent's `kernel/migrate.rs` (see
/// docs/architecture.md, "a map layout change"). A capacity or flag change alone needs
/// neither: such a map is recreated with its entries copied.
///
/// 2: ring records are a header plus the message in size classes (`DnsHeader`,
/// `DnsRecord`), and TCP DNS is reassembled (`TCP_STREAMS`, `DNS_CAPTURE`).
/// 3: block-map values (`BLOCKED_NAMES`, `BLOCKED_V4`, `BLOCKED_V6`) are a `BlockEntry`
/// (flags, target, kernel-time expiry) instead of a bare `u32` of flags.
pub const LAYOUT_VERSION: u32 = 3;

/// `MODE` value: report matches, refuse nothing.
pub const MODE_MONITOR: u32 = 0;
/// `MODE` value: refuse matching connects and drop matching answers.
pub const MODE_ENFORCE: u32 = 1;

/// Block-map value flag: enforce this entry even when the global mode is monitor.
pub const BLOCK_ENFORCE: u32 = 1;
/// `BLOCKED_NAMES` value flag: the entry also covers every name under it (matched
/// through the hashes of a question's last two and three labels).
pub const BLOCK_SUBTREE: u32 = 2;
/// `BLOCKED_NAMES` value flag: the key is the stem hash of a protected `block` entry, and
/// the entry covers every name that is that entry with one to three labels appended
/// (`mod.gov.uk.com`, `army.mil.evil.net`), unless `CLEAN_NAMES` says otherwise.
pub const BLOCK_PREFIX: u32 = 4;
/// Origin flag: learned by the agent from traffic; expires with its answer's TTL.
pub const BLOCK_LEARNED: u32 = 8;
/// Origin flag: derived from the policy (likely slips, prefixes); a lease the running
/// agent renews. Entries with neither origin flag are an operator's (`mxsentry ctl`).
pub const BLOCK_POLICY: u32 = 16;
/// Address-entry flag, set by the kernel: a DNS answer for a name with no block carried
/// this address, so it serves a legitimate domain too and is no longer refused.
pub const BLOCK_CONTESTED: u32 = 32;
/// Not stored: what `answer_hit` reports for an MX answer held while the agent judges
/// its question (`HOLD_PENDING`).
pub const BLOCK_HOLD: u32 = 64;

/// A block map's value: what the entry is, whom it protects and until when it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockEntry {
    /// `BLOCK_*` flags.
    pub flags: u32,
    /// `target_id` of the protected entry this block is for (0: unknown or an operator's).
    pub target: u32,
    /// Kernel monotonic time (`bpf_ktime_get_ns`) from which the programs ignore the
    /// entry; 0 = no expiry (operator entries).
    pub expires_ns: u64,
}

impl BlockEntry {
    /// An entry with these flags, for `target`, until `expires_ns` (0 = never).
    pub const fn new(flags: u32, target: u32, expires_ns: u64) -> Self {
        Self {
            flags,
            target,
            expires_ns,
        }
    }

    /// Whether the programs apply this entry at kernel time `now_ns`: not expired and,
    /// for an address, not contested by a legitimate name's answer.
    #[inline(always)]
    pub const fn in_force(&self, now_ns: u64) -> bool {
        (self.expires_ns == 0 || now_ns < self.expires_ns) && self.flags & BLOCK_CONTESTED == 0
    }
}

/// A stable 32-bit id of a protected entry's name (FNV-1a of its lower-cased text), kept
/// in `BlockEntry::target` so a restarted agent knows whom a pinned block was for.
pub const fn target_id(entry: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < entry.len() {
        let b = entry[i];
        let b = if b >= b'A' && b <= b'Z' { b | 0x20 } else { b };
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        i += 1;
    }
    if h == 0 { 1 } else { h }
}

/// `AGENT_STATE` slot: kernel time until which the agent is alive (renewed every second).
/// Answers are held for a verdict only while it lies ahead: a dead agent holds nothing.
pub const AGENT_ALIVE_UNTIL: u32 = 0;
/// `AGENT_STATE` slot: learned address blocks in force; while 0 the ingress program does
/// not look for addresses in legitimate answers.
pub const AGENT_LEARNED_ADDRS: u32 = 1;
/// `AGENT_STATE` slot: a fingerprint of the policy (and build) whose verdicts
/// `CLEAN_NAMES` holds: a restarted agent with the same policy keeps them.
pub const AGENT_POLICY: u32 = 2;
/// `AGENT_STATE` slot: this installation's secret key of the name tags (`NAME_TAGS`),
/// drawn at random by the first agent and kept with the pins; 0 = none yet.
pub const AGENT_NAME_KEY: u32 = 3;
/// Slots of `AGENT_STATE`.
pub const AGENT_SLOTS: u32 = 4;
/// Longest an MX answer is held for a verdict, counted from the first query of its name:
/// a stub resolver's retry (1–5 s) then meets the verdict, and a lagging agent never
/// makes a name unresolvable for longer.
pub const HOLD_NS: u64 = 3_000_000_000;
/// DNS question type MX.
pub const QTYPE_MX: u16 = 15;

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
/// Capacity of `HOLD_PENDING`.
pub const HOLD_PENDING_MAX: u32 = 16_384;
/// Capacity of `CLEAN_NAMES`.
pub const CLEAN_NAMES_MAX: u32 = 65_536;
/// Capacity of `NAME_TAGS`: one per name block at most.
pub const NAME_TAGS_MAX: u32 = BLOCKED_NAMES_MAX;
/// Size of each event ring buffer in bytes (power of two, page multiple).
pub const RING_BYTES: u32 = 1 << 22;
/// Bytes of a message's start that hold its question: the 12-byte header, the longest
/// name (255) and the question's type, rounded up.
pub const DNS_HEAD_LEN: usize = 272;
/// Size of `qname::QnameWalk`: the kernel's state while it walks a question name,
/// kept in map memory beside the bytes it walks (`DNS_SCRATCH`, `TCP_STREAMS`).
pub const QNAME_WALK_SIZE: usize = 64;
/// Size of a `DNS_SCRATCH` value: a UDP message's first bytes and the walk over its name.
pub const DNS_SCRATCH_SIZE: usize = DNS_HEAD_LEN + QNAME_WALK_SIZE;
/// Size of the kernel's state for one direction of a DNS-over-TCP socket.
pub const TCP_STREAM_SIZE: usize = 976 + QNAME_WALK_SIZE;
/// Size of a `TCP_STREAMS` value: both directions.
pub const TCP_STREAMS_VALUE_SIZE: usize = 2 * TCP_STREAM_SIZE;
/// Questions an `ASKED` value remembers per socket, the latest ones: more than a stub
/// has outstanding on one socket (glibc two, musl one per query and server).
pub const ASKED_SLOTS: usize = 32;
/// Size of an `ASKED` value: a name hash and an id and type per slot, the next slot, and
/// whether the socket is unchecked.
pub const ASKED_VALUE_SIZE: usize = ASKED_SLOTS * 12 + 8;

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

/// `DNS_SCRATCH`: per-CPU room for a UDP message's question and the walk over its name
/// (one per direction).
pub const DNS_SCRATCH: &str = "DNS_SCRATCH";

/// `IPV6_CHAIN`: per-CPU room the IPv6 extension header walk's result passes through
/// (one per direction), so the verifier checks what follows it once, not once per number
/// of headers.
pub const IPV6_CHAIN: &str = "IPV6_CHAIN";

/// A map private to one load of the programs: not pinned, not shared with later agents.
const fn private(spec: MapSpec) -> MapSpec {
    MapSpec {
        pinned: false,
        ..spec
    }
}

const BLOCK: usize = size_of::<BlockEntry>();

/// Every map of the kernel object, pinned ones first.
pub const MAPS: [MapSpec; 19] = [
    spec(DNS_EVENTS, MapKind::RingBuf, 0, 0, RING_BYTES),
    spec(CONNECT_EVENTS, MapKind::RingBuf, 0, 0, RING_BYTES),
    spec(LOST, MapKind::PerCpuArray, 4, 8, LOST_SLOTS),
    spec(MODE, MapKind::Array, 4, 4, 1),
    spec(SMTP_PORTS, MapKind::Array, 4, 4, SMTP_PORTS_MAX),
    spec(
        BLOCKED_V4,
        MapKind::LpmTrie,
        lpm_key(4),
        BLOCK,
        BLOCKED_ADDRS_MAX,
    ),
    spec(
        BLOCKED_V6,
        MapKind::LpmTrie,
        lpm_key(16),
        BLOCK,
        BLOCKED_ADDRS_MAX,
    ),
    spec(BLOCKED_NAMES, MapKind::Hash, 8, BLOCK, BLOCKED_NAMES_MAX),
    spec(DNS_EXEMPT, MapKind::LruHash, 8, 4, DNS_EXEMPT_MAX),
    spec(RESOLVER_TGIDS, MapKind::Hash, 4, 4, RESOLVER_TGIDS_MAX),
    spec(HOLD_PENDING, MapKind::LruHash, 8, 8, HOLD_PENDING_MAX),
    spec(CLEAN_NAMES, MapKind::LruHash, 8, 8, CLEAN_NAMES_MAX),
    spec(NAME_TAGS, MapKind::Hash, 8, 8, NAME_TAGS_MAX),
    spec(AGENT_STATE, MapKind::Array, 4, 8, AGENT_SLOTS),
    spec(DNS_CAPTURE, MapKind::PerCpuArray, 4, 8, CAPTURE_STAT_SLOTS),
    private(spec(
        DNS_SCRATCH,
        MapKind::PerCpuArray,
        4,
        DNS_SCRATCH_SIZE,
        2,
    )),
    private(spec(IPV6_CHAIN, MapKind::PerCpuArray, 4, 8, 2)),
    // Socket storage has no capacity: one value per socket that has one.
    private(spec(
        TCP_STREAMS,
        MapKind::SkStorage,
        4,
        TCP_STREAMS_VALUE_SIZE,
        0,
    )),
    private(spec(ASKED, MapKind::SkStorage, 4, ASKED_VALUE_SIZE, 0)),
];

const _: () = assert!(size_of::<BlockEntry>() == 16);
const _: () = assert!(core::mem::align_of::<BlockEntry>() == 8);

/// The spec of map `name`, if the contract has one.
pub fn map_spec(name: &str) -> Option<&'static MapSpec> {
    MAPS.iter().find(|m| m.name == name)
}

#[cfg(feature = "user")]
// SAFETY: repr(C), two u32s and a u64, no padding (asserted above): every bit pattern is
// a valid value.
unsafe impl aya::Pod for BlockEntry {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_in_force_until_it_expires_or_is_contested() {
        let e = BlockEntry::new(BLOCK_LEARNED, 7, 100);
        assert!(e.in_force(99));
        assert!(!e.in_force(100));
        assert!(BlockEntry::new(0, 0, 0).in_force(u64::MAX), "no expiry");
        assert!(!BlockEntry::new(BLOCK_CONTESTED, 0, 0).in_force(0));
    }

    #[test]
    fn target_ids_fold_case_and_are_never_zero() {
        assert_eq!(target_id(b"Army.MIL"), target_id(b"army.mil"));
        assert_ne!(target_id(b"army.mil"), target_id(b"navy.mil"));
        assert_ne!(target_id(b""), 0);
    }
}
