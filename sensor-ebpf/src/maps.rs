//! Map definitions. Names, kinds and sizes are the contract in `sensor_common::maps::MAPS`
//! (a unit test in the agent checks the built object against it).

use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use sensor_common::{
    BlockEntry,
    event::{CAPTURE_STAT_SLOTS, LOST_SLOTS},
    maps::{
        AGENT_SLOTS, BLOCKED_ADDRS_MAX, BLOCKED_NAMES_MAX, CLEAN_NAMES_MAX, DNS_EXEMPT_MAX,
        HOLD_PENDING_MAX, NAME_TAGS_MAX, RESOLVER_TGIDS_MAX, RING_BYTES, SMTP_PORTS_MAX,
    },
};

use crate::{asked::Asked, tcp::Streams, udp::Scratch};

#[map]
pub static DNS_EVENTS: RingBuf = RingBuf::pinned(RING_BYTES, 0);

#[map]
pub static CONNECT_EVENTS: RingBuf = RingBuf::pinned(RING_BYTES, 0);

#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::pinned(LOST_SLOTS, 0);

#[map]
pub static MODE: Array<u32> = Array::pinned(1, 0);

#[map]
pub static SMTP_PORTS: Array<u32> = Array::pinned(SMTP_PORTS_MAX, 0);

#[map]
pub static BLOCKED_V4: LpmTrie<[u8; 4], BlockEntry> = LpmTrie::pinned(BLOCKED_ADDRS_MAX, 0);

#[map]
pub static BLOCKED_V6: LpmTrie<[u8; 16], BlockEntry> = LpmTrie::pinned(BLOCKED_ADDRS_MAX, 0);

#[map]
pub static BLOCKED_NAMES: HashMap<u64, BlockEntry> = HashMap::pinned(BLOCKED_NAMES_MAX, 0);

#[map]
pub static DNS_EXEMPT: LruHashMap<u64, u32> = LruHashMap::pinned(DNS_EXEMPT_MAX, 0);

#[map]
pub static RESOLVER_TGIDS: HashMap<u32, u32> = HashMap::pinned(RESOLVER_TGIDS_MAX, 0);

#[map]
pub static HOLD_PENDING: LruHashMap<u64, u64> = LruHashMap::pinned(HOLD_PENDING_MAX, 0);

#[map]
pub static CLEAN_NAMES: LruHashMap<u64, u64> = LruHashMap::pinned(CLEAN_NAMES_MAX, 0);

#[map]
pub static NAME_TAGS: HashMap<u64, u64> = HashMap::pinned(NAME_TAGS_MAX, 0);

#[map]
pub static AGENT_STATE: Array<u64> = Array::pinned(AGENT_SLOTS, 0);

#[map]
pub static DNS_CAPTURE: PerCpuArray<u64> = PerCpuArray::pinned(CAPTURE_STAT_SLOTS, 0);

/// Per-socket TCP stream state, created on a socket's first DNS segment, freed with it.
#[btf_map]
pub static TCP_STREAMS: SkStorage<Streams> = SkStorage::new();

/// Per-socket questions a DNS client socket asked last (`asked.rs`), freed with it.
#[btf_map]
pub static ASKED: SkStorage<Asked> = SkStorage::new();

/// Per-CPU room for a UDP message's question and the walk over its name, by direction.
#[map]
pub static DNS_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(2, 0);

/// Per-CPU room the IPv6 extension header walk's result passes through, by direction
/// (`ipv6::transport`).
#[map]
pub static IPV6_CHAIN: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);
