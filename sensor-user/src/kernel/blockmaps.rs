//! The block maps through the pinned handles: names and addresses with their
//! `BlockEntry` (flags, target, expiry), the hold's judged and pending names, and the
//! agent's state slots the programs read.

use std::net::IpAddr;

use aya::maps::lpm_trie::Key;
use sensor_common::{
    BlockEntry,
    maps::{
        AGENT_STATE, BLOCK_ENFORCE, BLOCK_LEARNED, BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6,
        CLEAN_NAMES, HOLD_PENDING, NAME_TAGS,
    },
};

use super::{
    KernelError, VerdictMaps,
    maps::{Cidr, ignore_missing, map_err},
    migrate::Ctx,
};

impl VerdictMaps {
    /// Blocks connects to `cidr` with `entry` (replacing any entry for the same range).
    pub fn block_addr(&mut self, cidr: Cidr, entry: BlockEntry) -> Result<(), KernelError> {
        let prefix = u32::from(cidr.prefix);
        match cidr.addr {
            IpAddr::V4(a) => self
                .v4
                .insert(&Key::new(prefix, a.octets()), entry, 0)
                .map_err(map_err(BLOCKED_V4)),
            IpAddr::V6(a) => self
                .v6
                .insert(&Key::new(prefix, a.octets()), entry, 0)
                .map_err(map_err(BLOCKED_V6)),
        }
    }

    /// Removes a block on `cidr` (absent is not an error).
    pub fn unblock_addr(&mut self, cidr: Cidr) -> Result<(), KernelError> {
        let prefix = u32::from(cidr.prefix);
        match cidr.addr {
            IpAddr::V4(a) => {
                ignore_missing(self.v4.remove(&Key::new(prefix, a.octets())), BLOCKED_V4)
            }
            IpAddr::V6(a) => {
                ignore_missing(self.v6.remove(&Key::new(prefix, a.octets())), BLOCKED_V6)
            }
        }
    }

    /// The entry for exactly `cidr`, if there is one (the kernel may have marked it
    /// contested since it was written).
    pub fn addr_entry(&self, cidr: Cidr) -> Result<Option<BlockEntry>, KernelError> {
        let prefix = u32::from(cidr.prefix);
        let r = match cidr.addr {
            IpAddr::V4(a) => self.v4.get(&Key::new(prefix, a.octets()), 0),
            IpAddr::V6(a) => self.v6.get(&Key::new(prefix, a.octets()), 0),
        };
        // The LPM lookup matches the longest covering range: only an exact one counts.
        match r {
            Ok(e) => Ok(Some(e)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(KernelError::Map {
                name: BLOCKED_V4.into(),
                source,
            }),
        }
    }

    /// Every address entry, IPv4 then IPv6.
    pub fn addr_entries(&self) -> Result<Vec<(Cidr, BlockEntry)>, KernelError> {
        let mut out = Vec::new();
        for item in self.v4.iter() {
            let (k, e) = item.map_err(map_err(BLOCKED_V4))?;
            let addr = IpAddr::from(k.data());
            out.push((cidr(addr, k.prefix_len()), e));
        }
        for item in self.v6.iter() {
            let (k, e) = item.map_err(map_err(BLOCKED_V6))?;
            let addr = IpAddr::from(k.data());
            out.push((cidr(addr, k.prefix_len()), e));
        }
        Ok(out)
    }

    /// Puts `entry` under name, domain or stem hash `hash` in `BLOCKED_NAMES`.
    pub fn block_name_hash(&mut self, hash: u64, entry: BlockEntry) -> Result<(), KernelError> {
        self.names
            .insert(hash, entry, 0)
            .map_err(map_err(BLOCKED_NAMES))
    }

    /// Removes a name block (absent is not an error).
    pub fn unblock_name_hash(&mut self, hash: u64) -> Result<(), KernelError> {
        ignore_missing(self.names.remove(&hash), BLOCKED_NAMES)
    }

    /// Keeps `tag` for the whole-name block under `hash` (`NAME_TAGS`); without the map
    /// (pins of an older sensor) the block is kept untagged, as that sensor kept it.
    pub fn tag_name_hash(&mut self, hash: u64, tag: u64) -> Result<(), KernelError> {
        match self.tags.as_mut() {
            Some(t) => t.insert(hash, tag, 0).map_err(map_err(NAME_TAGS)),
            None => Ok(()),
        }
    }

    /// Forgets the tag under `hash` (absent is not an error).
    pub fn untag_name_hash(&mut self, hash: u64) -> Result<(), KernelError> {
        match self.tags.as_mut() {
            Some(t) => ignore_missing(t.remove(&hash), NAME_TAGS),
            None => Ok(()),
        }
    }

    /// One `BLOCKED_NAMES` entry.
    pub fn name_entry(&self, hash: u64) -> Result<Option<BlockEntry>, KernelError> {
        match self.names.get(&hash, 0) {
            Ok(e) => Ok(Some(e)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(KernelError::Map {
                name: BLOCKED_NAMES.into(),
                source,
            }),
        }
    }

    /// Every `BLOCKED_NAMES` entry.
    pub fn name_entries(&self) -> Result<Vec<(u64, BlockEntry)>, KernelError> {
        self.names
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(BLOCKED_NAMES))
    }

    /// Every `NAME_TAGS` entry (none without the map).
    pub fn name_tags(&self) -> Result<Vec<(u64, u64)>, KernelError> {
        match self.tags.as_ref() {
            Some(t) => t
                .iter()
                .collect::<Result<_, _>>()
                .map_err(map_err(NAME_TAGS)),
            None => Ok(Vec::new()),
        }
    }

    /// Records the agent's verdict on question `hash`: judged clean until `clean_until`
    /// (kernel time; `None`: judged a lookalike, its block already written), and no longer
    /// pending, so its answers are not held.
    pub fn judged(&mut self, hash: u64, clean_until: Option<u64>) -> Result<(), KernelError> {
        if let Some(until) = clean_until {
            self.clean
                .insert(hash, until, 0)
                .map_err(map_err(CLEAN_NAMES))?;
        }
        ignore_missing(self.pending.remove(&hash), HOLD_PENDING)
    }

    /// Forgets every clean verdict and pending question: a new policy judges anew.
    pub fn forget_judgements(&mut self) -> Result<usize, KernelError> {
        let mut n = 0;
        for (map, name) in [
            (&mut self.clean, CLEAN_NAMES),
            (&mut self.pending, HOLD_PENDING),
        ] {
            let keys: Vec<u64> = map
                .keys()
                .collect::<Result<_, _>>()
                .map_err(map_err(name))?;
            for k in keys {
                ignore_missing(map.remove(&k), name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Reads `AGENT_STATE[slot]`.
    pub fn agent_slot(&self, slot: u32) -> Result<u64, KernelError> {
        self.agent.get(&slot, 0).map_err(map_err(AGENT_STATE))
    }

    /// Writes `AGENT_STATE[slot]`.
    pub fn set_agent_slot(&mut self, slot: u32, value: u64) -> Result<(), KernelError> {
        self.agent.set(slot, value, 0).map_err(map_err(AGENT_STATE))
    }
}

fn cidr(addr: IpAddr, prefix: u32) -> Cidr {
    Cidr {
        addr,
        prefix: prefix.min(128) as u8,
    }
}

/// Converts one entry of the previous layout (a bare `u32` of `BLOCK_*` flags, no origin,
/// no expiry) to a `BlockEntry`, for the map migration. The agent never set
/// `BLOCK_ENFORCE` and never blocked a range: such entries are an operator's and stay
/// without expiry. Any other entry may have been learned, and the old layout cannot say
/// when: it becomes a learned entry that lapses `grace_ns` after `now_ns` (the TTL
/// ceiling is the longest it could have been meant to last); the agent puts it back if it
/// is still wanted. `host` is whether the key is one address (/32, /128) or a name.
pub fn block_entry_from_v1(old: u32, host: bool, now_ns: u64, grace_ns: u64) -> BlockEntry {
    if old & BLOCK_ENFORCE != 0 || !host {
        return BlockEntry::new(old, 0, 0);
    }
    BlockEntry::new(old | BLOCK_LEARNED, 0, now_ns.saturating_add(grace_ns))
}

/// How long a learned-looking entry of layout 1 holds after an upgrade. The old layout
/// cannot say how long it was meant to last, and its address blocks may be the shared-host
/// collateral layout 2 no longer makes: ten minutes covers the upgrade, and the running
/// agent puts back what is still wanted at the next lookup (names are blocked as they are
/// asked for, the policy's entries at start).
pub const V1_GRACE_NS: u64 = 600 * 1_000_000_000;

/// A `BlockEntry` as the maps hold it (`#[repr(C)]`: flags, target, expiry; no padding).
pub fn block_entry_bytes(e: &BlockEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_of::<BlockEntry>());
    out.extend_from_slice(&e.flags.to_ne_bytes());
    out.extend_from_slice(&e.target.to_ne_bytes());
    out.extend_from_slice(&e.expires_ns.to_ne_bytes());
    out
}

/// One layout-1 entry (a `u32` of flags) as layout 2 holds it; `host`: its key names one
/// name or one address. `None` for a value of another size (dropped, counted).
fn from_v1(ctx: &Ctx, key: &[u8], value: &[u8], host: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let flags = u32::from_ne_bytes(value.try_into().ok()?);
    let e = block_entry_from_v1(flags, host, ctx.now_ns, V1_GRACE_NS);
    Some((key.to_vec(), block_entry_bytes(&e)))
}

/// `BLOCKED_NAMES` from layout 1 (a name hash: one name or domain).
pub fn names_from_v1(ctx: &Ctx, key: &[u8], value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    from_v1(ctx, key, value, true)
}

/// The prefix length of an LPM key (a native-endian `u32` before the address).
fn prefix_len(key: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(key.get(..4)?.try_into().ok()?))
}

/// `BLOCKED_V4` from layout 1 (a /32 is one address, anything wider an operator's range).
pub fn v4_from_v1(ctx: &Ctx, key: &[u8], value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    from_v1(ctx, key, value, prefix_len(key)? >= 32)
}

/// `BLOCKED_V6` from layout 1 (a /128 is one address, anything wider an operator's range).
pub fn v6_from_v1(ctx: &Ctx, key: &[u8], value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    from_v1(ctx, key, value, prefix_len(key)? >= 128)
}

#[cfg(test)]
mod tests {
    use sensor_common::maps::BLOCK_SUBTREE;

    use super::*;

    #[test]
    fn old_entries_convert_operator_ones_kept_the_rest_lapsing() {
        let op = block_entry_from_v1(BLOCK_ENFORCE, true, 10, 5);
        assert_eq!(op, BlockEntry::new(BLOCK_ENFORCE, 0, 0));
        let range = block_entry_from_v1(0, false, 10, 5);
        assert_eq!(range.expires_ns, 0);
        let learned = block_entry_from_v1(BLOCK_SUBTREE, true, 10, 5);
        assert_eq!(
            learned,
            BlockEntry::new(BLOCK_SUBTREE | BLOCK_LEARNED, 0, 15)
        );
    }

    #[test]
    fn layout_1_entries_convert_by_key_and_keep_their_key() {
        let ctx = Ctx { now_ns: 100 };
        let enforce = BLOCK_ENFORCE.to_ne_bytes();
        let plain = 0u32.to_ne_bytes();
        let read = |v: &[u8]| BlockEntry {
            flags: u32::from_ne_bytes(v[..4].try_into().unwrap()),
            target: u32::from_ne_bytes(v[4..8].try_into().unwrap()),
            expires_ns: u64::from_ne_bytes(v[8..].try_into().unwrap()),
        };
        assert_eq!(size_of::<BlockEntry>(), 16);
        // A learned-looking /32: lapses after the grace.
        let mut host = 32u32.to_ne_bytes().to_vec();
        host.extend_from_slice(&[192, 0, 2, 25]);
        let (k, v) = v4_from_v1(&ctx, &host, &plain).unwrap();
        assert_eq!(k, host);
        assert_eq!(
            read(&v),
            BlockEntry::new(BLOCK_LEARNED, 0, 100 + V1_GRACE_NS)
        );
        // An operator's range, and an operator's enforced name: kept without expiry.
        let mut range = 64u32.to_ne_bytes().to_vec();
        range.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (_, v) = v6_from_v1(&ctx, &range, &plain).unwrap();
        assert_eq!(read(&v), BlockEntry::new(0, 0, 0));
        let (_, v) = names_from_v1(&ctx, &7u64.to_ne_bytes(), &enforce).unwrap();
        assert_eq!(read(&v), BlockEntry::new(BLOCK_ENFORCE, 0, 0));
        // A value of another size is dropped, not misread.
        assert_eq!(names_from_v1(&ctx, &7u64.to_ne_bytes(), &[0; 8]), None);
    }
}
