//! Carrying a map's entries into a new map: as they are when only its capacity or flags
//! changed, through the converters registered here when the meaning of its keys or
//! values changed (a new `LAYOUT_VERSION`).
//!
//! **Registering a converter** (docs/architecture.md, "a map layout change"): bump
//! `sensor_common::maps::LAYOUT_VERSION` from N to N+1 and add one [`Converter`] to
//! [`CONVERTERS`] per map whose content changed, with `from: N` and a function that turns
//! one entry of layout N into one of layout N+1. Older converters stay: an agent several
//! layouts behind is carried through each in turn. Rings need nothing (a new layout
//! always gets new rings). The layout record then tells an older build, rolled back to,
//! that it cannot read that map, and it refuses to start instead of misreading it.

use std::io;

use sensor_common::maps::{BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6};

use super::{
    blockmaps,
    bpf::{BPF_NOEXIST, RawMap},
    layout::Conversion,
};
use crate::output::schema::MigratedMap;

/// What a converter may need besides the entry.
pub struct Ctx {
    /// CLOCK_MONOTONIC now, in nanoseconds (the kernel programs' `bpf_ktime_get_ns`), for
    /// filling in an expiry.
    pub now_ns: u64,
}

impl Ctx {
    /// The context now.
    pub fn now() -> Self {
        Self {
            now_ns: crate::output::clock::monotonic_ns(),
        }
    }
}

/// A converter's function: one entry (key, value) in, the entry in the next layout out,
/// or `None` to drop it.
pub type ConvertFn = fn(&Ctx, &[u8], &[u8]) -> Option<(Vec<u8>, Vec<u8>)>;

/// One map's entries from layout `from` to layout `from + 1`.
#[derive(Debug)]
pub struct Converter {
    /// The map (its name in `MAPS`).
    pub map: &'static str,
    /// The layout its entries are in.
    pub from: u32,
    /// The size of one value (one CPU's) in layout `from`: a pinned map whose values are
    /// another size is not this map in that layout, and is refused, never converted. A
    /// converter changes values only: the map's type and key stay.
    pub value_size: u32,
    /// One entry (key, value; one CPU's value for a per-CPU map) in layout `from`, as
    /// it is in layout `from + 1`; `None` drops it (counted in the start event).
    pub convert: ConvertFn,
}

impl PartialEq for Converter {
    fn eq(&self, other: &Self) -> bool {
        // One converter per step (a unit test checks): the step names it.
        self.map == other.map && self.from == other.from
    }
}

impl Eq for Converter {}

/// Every converter, the one place to add one.
pub static CONVERTERS: &[Converter] = &[
    // Layout 3: block-map values carry origin, target and a kernel-time expiry (layout 2
    // changed only the ring records: a layout-1 block map takes this step alone).
    Converter {
        map: BLOCKED_NAMES,
        from: 2,
        value_size: 4,
        convert: blockmaps::names_from_v1,
    },
    Converter {
        map: BLOCKED_V4,
        from: 2,
        value_size: 4,
        convert: blockmaps::v4_from_v1,
    },
    Converter {
        map: BLOCKED_V6,
        from: 2,
        value_size: 4,
        convert: blockmaps::v6_from_v1,
    },
];

/// What carrying one map over did, for the start event.
pub type Carried = MigratedMap;

/// The name of what a conversion does, for [`MigratedMap::action`].
pub fn action_name(c: &Conversion) -> &'static str {
    match c {
        Conversion::Identity => "resized",
        Conversion::Convert(_) => "converted",
        Conversion::Discard => "renewed",
    }
}

/// Array types: every key exists, and an all-zero value is the same as none.
const ARRAY_TYPES: [u32; 2] = [2, 6];

/// Copies every entry of `old` into `new` through `conversion`, with `BPF_ANY` or (for
/// the catch-up after the switch, which must not overwrite what the new programs wrote)
/// `BPF_NOEXIST`. Returns (copied, dropped).
pub fn carry(
    old: &RawMap,
    new: &RawMap,
    conversion: &Conversion,
    ctx: &Ctx,
    flags: u64,
) -> io::Result<(u64, u64)> {
    if matches!(conversion, Conversion::Discard) {
        return Ok((0, 0));
    }
    let array = ARRAY_TYPES.contains(&old.info.map_type);
    let (mut copied, mut dropped) = (0, 0);
    // A key deleted under us (LRU eviction) restarts the kernel's walk: bound it.
    let mut budget = 2 * u64::from(old.info.max_entries) + 16;
    let mut key = old.next_key(None)?;
    while let Some(k) = key {
        budget = budget.saturating_sub(1);
        if budget == 0 {
            break;
        }
        let next = old.next_key(Some(&k))?;
        // Gone since we listed it (an LRU eviction, an expiry): nothing to carry.
        if let Some(v) = old.lookup(&k)?
            && !(array && v.iter().all(|b| *b == 0))
        {
            match entry(old, new, conversion, ctx, &k, &v) {
                Some((nk, nv)) => match new.update(&nk, &nv, flags) {
                    Ok(()) => copied += 1,
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags == BPF_NOEXIST => {}
                    // Full, or an index past a smaller array's end.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC)) => {
                        dropped += 1
                    }
                    Err(e) => return Err(e),
                },
                None => dropped += 1,
            }
        }
        key = next;
    }
    Ok((copied, dropped))
}

/// How values are laid out in the old and the new map.
struct Sides {
    /// One value per possible CPU, each in an 8-byte-aligned slot.
    per_cpu: bool,
    /// Value size of the old map (one CPU's).
    old_size: usize,
    /// Value size of the new map (one CPU's).
    new_size: usize,
    /// Bytes of one value of the new map (all CPUs' slots).
    new_len: usize,
}

/// One entry of `old` as `new` holds it.
fn entry(
    old: &RawMap,
    new: &RawMap,
    conversion: &Conversion,
    ctx: &Ctx,
    key: &[u8],
    value: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let chain = match conversion {
        Conversion::Convert(chain) => chain.as_slice(),
        _ => &[],
    };
    let sides = Sides {
        per_cpu: old.per_cpu(),
        old_size: old.info.value_size as usize,
        new_size: new.info.value_size as usize,
        new_len: new.value_len(),
    };
    convert_entry(chain, ctx, &sides, key, value)
}

/// Runs `chain` over one entry; per-CPU values slot by slot (the key from the first).
fn convert_entry(
    chain: &[&Converter],
    ctx: &Ctx,
    sides: &Sides,
    key: &[u8],
    value: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let one = |v: &[u8]| {
        chain
            .iter()
            .try_fold((key.to_vec(), v.to_vec()), |(k, v), c| {
                (c.convert)(ctx, &k, &v)
            })
    };
    if !sides.per_cpu {
        return one(value);
    }
    let old_stride = sides.old_size.next_multiple_of(8);
    let new_stride = sides.new_size.next_multiple_of(8);
    let mut out_key = None;
    let mut out = Vec::with_capacity(sides.new_len);
    for slot in value.chunks(old_stride) {
        let (k, mut v) = one(slot.get(..sides.old_size)?)?;
        v.resize(new_stride, 0);
        out.extend_from_slice(&v);
        out_key.get_or_insert(k);
    }
    out.resize(sides.new_len, 0);
    Some((out_key?, out))
}

/// Counts the records left unread in a ring that is being replaced (they were written
/// in the old layout, which this build may not read): reported, never silently lost.
pub fn unread_records(path: &std::path::Path) -> u64 {
    let Ok(data) = aya::maps::MapData::from_pin(path) else {
        return 0;
    };
    let Ok(mut ring) = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)) else {
        return 0;
    };
    let mut n = 0;
    while ring.next().is_some() {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layout 1 to 2 of a made-up map: a u32 of flags becomes flags and an expiry (u64).
    fn widen(ctx: &Ctx, k: &[u8], v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let flags: [u8; 4] = v.try_into().ok()?;
        let mut out = flags.to_vec();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(ctx.now_ns + 60_000_000_000).to_le_bytes());
        Some((k.to_vec(), out))
    }

    /// Layout 2 to 3: entries without flags are dropped.
    fn drop_unflagged(_: &Ctx, k: &[u8], v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        (v.first() != Some(&0)).then(|| (k.to_vec(), v.to_vec()))
    }

    static CHAIN: [Converter; 2] = [
        Converter {
            map: "X",
            from: 1,
            value_size: 4,
            convert: widen,
        },
        Converter {
            map: "X",
            from: 2,
            value_size: 16,
            convert: drop_unflagged,
        },
    ];

    #[test]
    fn a_chain_converts_an_entry_through_each_layout_in_turn() {
        let chain: Vec<&Converter> = CHAIN.iter().collect();
        let ctx = Ctx { now_ns: 1_000 };
        let sides = Sides {
            per_cpu: false,
            old_size: 4,
            new_size: 16,
            new_len: 16,
        };
        let (k, v) = convert_entry(&chain, &ctx, &sides, b"key1", &[3, 0, 0, 0]).unwrap();
        assert_eq!(k, b"key1");
        assert_eq!(&v[..4], &[3, 0, 0, 0]);
        assert_eq!(
            u64::from_le_bytes(v[8..].try_into().unwrap()),
            60_000_001_000
        );
        assert_eq!(convert_entry(&chain, &ctx, &sides, b"key2", &[0; 4]), None);
        // A value of the wrong size for the first step is dropped, not misread.
        assert_eq!(convert_entry(&chain, &ctx, &sides, b"key3", &[1; 8]), None);
        // No chain: as it is.
        let same = convert_entry(&[], &ctx, &sides, b"k", &[9, 9, 9, 9]);
        assert_eq!(same, Some((b"k".to_vec(), vec![9, 9, 9, 9])));
    }

    #[test]
    fn per_cpu_values_are_converted_slot_by_slot() {
        let chain = [&CHAIN[0]];
        let ctx = Ctx { now_ns: 0 };
        // Two CPUs, 4-byte values in 8-byte slots, to 16-byte values.
        let sides = Sides {
            per_cpu: true,
            old_size: 4,
            new_size: 16,
            new_len: 32,
        };
        let old = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        let (_, v) = convert_entry(&chain, &ctx, &sides, &[0; 4], &old).unwrap();
        assert_eq!(v.len(), 32);
        assert_eq!((v[0], v[16]), (1, 2));
    }

    #[test]
    fn no_two_converters_for_one_step_and_all_name_a_pinned_map() {
        for c in CONVERTERS {
            let spec = sensor_common::maps::map_spec(c.map);
            assert!(
                spec.is_some_and(|s| s.pinned),
                "{} is not a pinned map",
                c.map
            );
            assert!(c.from < sensor_common::maps::LAYOUT_VERSION, "{c:?}");
            assert_eq!(
                CONVERTERS
                    .iter()
                    .filter(|o| o.map == c.map && o.from == c.from)
                    .count(),
                1,
                "{c:?}"
            );
        }
    }
}
