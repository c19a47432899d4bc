//! Whether this build can use the pinned maps: each one checked against the contract
//! (`sensor_common::maps::MAPS`: type, key and value size, capacity, flags) and against the
//! layout version recorded beside them, and what to do with it (adopt, recreate with its
//! entries copied or converted, or refuse with the difference named).
//!
//! The record is a symlink, `maps/_layout` (bpffs has no regular files, and no names
//! with a dot), whose text is
//! `layout=N` followed by `MAP=M` for each map whose content changed at layout M. It sits
//! inside `maps/` so that swapping in a migrated map directory swaps it too.

use std::{collections::BTreeMap, path::Path};

use sensor_common::maps::{LAYOUT_VERSION, MapKind, MapSpec};

use super::{KernelError, bpf::MapInfo, migrate::Converter};

/// The symlink recording the layout of the maps beside it.
pub const LAYOUT_LINK: &str = "_layout";
/// The layout of pins written before the layout was recorded.
pub const UNRECORDED: u32 = 1;

/// A layout record: the version the maps were written in, and for each map whose
/// content changed at some version, that version (what a rollback must check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// `LAYOUT_VERSION` of the build that wrote the maps.
    pub version: u32,
    /// Map name → the layout version at which its content last changed.
    pub changed: BTreeMap<String, u32>,
}

impl Marker {
    /// This build's record: its version, and the changes its converters describe.
    pub fn this_build(converters: &[Converter]) -> Self {
        let mut changed = BTreeMap::new();
        for c in converters {
            let at = changed.entry(c.map.to_string()).or_insert(0);
            *at = (*at).max(c.from + 1);
        }
        Self {
            version: LAYOUT_VERSION,
            changed,
        }
    }

    /// Pins written before records existed: layout 1, nothing changed.
    pub fn unrecorded() -> Self {
        Self {
            version: UNRECORDED,
            changed: BTreeMap::new(),
        }
    }

    /// The version at which `map`'s content last changed (0: never).
    pub fn changed_at(&self, map: &str) -> u32 {
        self.changed.get(map).copied().unwrap_or(0)
    }

    /// `layout=1 BLOCKED_V4=2`.
    pub fn text(&self) -> String {
        let mut s = format!("layout={}", self.version);
        for (m, v) in &self.changed {
            s.push_str(&format!(" {m}={v}"));
        }
        s
    }

    /// Parses [`Marker::text`].
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let version = words.next()?.strip_prefix("layout=")?.parse().ok()?;
        let mut changed = BTreeMap::new();
        for w in words {
            let (m, v) = w.split_once('=')?;
            changed.insert(m.to_string(), v.parse().ok()?);
        }
        Some(Self { version, changed })
    }

    /// The record in `maps_dir`, if there is one.
    pub fn read(maps_dir: &Path) -> Result<Option<Self>, KernelError> {
        let path = maps_dir.join(LAYOUT_LINK);
        match std::fs::read_link(&path) {
            Ok(t) => {
                let text = t.to_string_lossy();
                Self::parse(&text)
                    .map(Some)
                    .ok_or_else(|| KernelError::Pin {
                        path,
                        message: format!("unreadable layout record {text:?}"),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KernelError::Pin {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Writes the record into `maps_dir`, replacing any (atomically).
    pub fn write(&self, maps_dir: &Path) -> Result<(), KernelError> {
        let path = maps_dir.join(LAYOUT_LINK);
        let tmp = maps_dir.join(format!("{LAYOUT_LINK}-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(self.text(), &tmp)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| KernelError::Pin {
                path,
                message: e.to_string(),
            })
    }
}

/// How a map's entries reach the map this build uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// Copied as they are (only the capacity or flags changed).
    Identity,
    /// Converted by these converters, in order (its content changed).
    Convert(Vec<&'static Converter>),
    /// Not carried over: a ring buffer, whose records are read, never kept.
    Discard,
}

/// What to do with one map of the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapAction {
    /// Not pinned: the loader creates it.
    Create,
    /// Pinned and usable as it is.
    Adopt,
    /// Pinned but not usable as it is: a new map, filled from the old one.
    Recreate {
        /// How its entries are carried over.
        conversion: Conversion,
        /// Why, for the start event.
        reason: String,
    },
}

/// A map type's name, as bpftool says it.
pub fn type_name(t: u32) -> String {
    let known = [
        (MapKind::Hash, "hash"),
        (MapKind::Array, "array"),
        (MapKind::PerCpuArray, "percpu_array"),
        (MapKind::LruHash, "lru_hash"),
        (MapKind::LpmTrie, "lpm_trie"),
        (MapKind::RingBuf, "ringbuf"),
    ];
    known
        .iter()
        .find(|(k, _)| k.bpf_type() == t)
        .map_or_else(|| format!("type {t}"), |(_, n)| n.to_string())
}

/// The differences between a pinned map and its spec, in words; empty when none.
fn differences(spec: &MapSpec, found: &MapInfo) -> (Vec<String>, Vec<String>) {
    let mut shape = Vec::new();
    let mut size = Vec::new();
    if found.map_type != spec.kind.bpf_type() {
        shape.push(format!(
            "type {}, expected {}",
            type_name(found.map_type),
            type_name(spec.kind.bpf_type())
        ));
    }
    for (what, got, want) in [
        ("key size", found.key_size, spec.key_size),
        ("value size", found.value_size, spec.value_size),
    ] {
        if got != want {
            shape.push(format!("{what} {got}, expected {want}"));
        }
    }
    for (what, got, want) in [
        ("max entries", found.max_entries, spec.max_entries),
        ("flags", found.map_flags, spec.flags),
    ] {
        if got != want {
            size.push(format!("{what} {got}, expected {want}"));
        }
    }
    (shape, size)
}

/// Decides what to do with map `spec`, found pinned as `found` (or not), in pins of
/// layout `have`, for this build's layout `want` with its `converters`. `Err` says what
/// differs, for a map this build can neither use nor carry over.
pub fn plan_map(
    spec: &MapSpec,
    found: Option<&MapInfo>,
    have: &Marker,
    want: &Marker,
    converters: &'static [Converter],
) -> Result<MapAction, String> {
    let Some(found) = found else {
        return Ok(MapAction::Create);
    };
    let (shape, size) = differences(spec, found);
    let same_layout = have.version == want.version;
    if spec.kind == MapKind::RingBuf {
        if !shape.is_empty() {
            return Err(shape.join(", "));
        }
        // Records are part of the layout: a new layout reads from new rings.
        return Ok(if size.is_empty() && same_layout {
            MapAction::Adopt
        } else {
            MapAction::Recreate {
                conversion: Conversion::Discard,
                reason: reason(&size, have, want),
            }
        });
    }
    if have.version > want.version && have.changed_at(spec.name) > want.version {
        return Err(format!(
            "its entries are in layout {} of a newer build, which this build (layout {}) \
             cannot read",
            have.changed_at(spec.name),
            want.version
        ));
    }
    let chain: Vec<&'static Converter> = converters
        .iter()
        .filter(|c| c.map == spec.name && have.version <= c.from && c.from < want.version)
        .collect();
    if !chain.is_empty() {
        let mut chain = chain;
        chain.sort_by_key(|c| c.from);
        let d = not_convertible(spec, found, chain[0]);
        if !d.is_empty() {
            return Err(d.join(", "));
        }
        return Ok(MapAction::Recreate {
            conversion: Conversion::Convert(chain),
            reason: format!("layout {} to {}", have.version, want.version),
        });
    }
    if !shape.is_empty() {
        let mut d = shape;
        d.extend(size);
        if !same_layout {
            d.push(format!(
                "and no converter from layout {} is registered",
                have.version
            ));
        }
        return Err(d.join(", "));
    }
    if size.is_empty() {
        return Ok(MapAction::Adopt);
    }
    Ok(MapAction::Recreate {
        conversion: Conversion::Identity,
        reason: reason(&size, have, want),
    })
}

/// Why `found` is not `spec`'s map in the layout `first` converts from (planted or
/// corrupt); empty when it is.
fn not_convertible(spec: &MapSpec, found: &MapInfo, first: &Converter) -> Vec<String> {
    let mut d = Vec::new();
    if found.map_type != spec.kind.bpf_type() {
        d.push(format!(
            "type {}, expected {}",
            type_name(found.map_type),
            type_name(spec.kind.bpf_type())
        ));
    }
    if found.key_size != spec.key_size {
        d.push(format!(
            "key size {}, expected {}",
            found.key_size, spec.key_size
        ));
    }
    if found.value_size != first.value_size {
        d.push(format!(
            "value size {}, expected {} (or {} in layout {}, converted)",
            found.value_size, spec.value_size, first.value_size, first.from
        ));
    }
    d
}

fn reason(size: &[String], have: &Marker, want: &Marker) -> String {
    if size.is_empty() {
        format!("layout {} to {}", have.version, want.version)
    } else {
        size.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use sensor_common::maps::{
        BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6, MAPS, RESOLVER_TGIDS, map_spec,
    };

    use super::*;
    use crate::kernel::migrate::{CONVERTERS, Ctx};

    fn found(spec: &MapSpec) -> MapInfo {
        MapInfo {
            map_type: spec.kind.bpf_type(),
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            ..MapInfo::default()
        }
    }

    fn keep(_: &Ctx, k: &[u8], v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        Some((k.to_vec(), v.to_vec()))
    }

    static V4_FROM_1: [Converter; 1] = [Converter {
        map: BLOCKED_V4,
        from: 1,
        value_size: 4,
        convert: keep,
    }];

    fn marker(version: u32) -> Marker {
        Marker {
            version,
            changed: BTreeMap::new(),
        }
    }

    /// FNV-1a over every pinned map's name, type, key and value size (not its capacity,
    /// which needs no new layout) and the ring records' sizes.
    fn contract_fingerprint() -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        };
        for m in MAPS.iter().filter(|m| m.pinned) {
            eat(m.name.as_bytes());
            for v in [m.kind.bpf_type(), m.key_size, m.value_size] {
                eat(&v.to_le_bytes());
            }
        }
        let dns =
            sensor_common::event::DNS_CLASSES.map(|c| sensor_common::event::DNS_HEADER_SIZE + c);
        for size in [
            size_of::<sensor_common::ConnectEvent>(),
            size_of::<sensor_common::DnsHeader>(),
        ]
        .into_iter()
        .chain(dns)
        {
            eat(&size.to_le_bytes());
        }
        h
    }

    #[test]
    fn the_layout_version_follows_the_contract() {
        // When this fails, what the pinned maps hold changed: bump LAYOUT_VERSION, register
        // a converter for each map whose entries changed (kernel/migrate.rs; see
        // docs/architecture.md, "a map layout change"), then record the new pair here.
        // (`NAME_TAGS` was added within layout 3: a new map, no existing entry changed
        // meaning, and a build before it ignores the pin and the key's slot.)
        assert_eq!(
            (LAYOUT_VERSION, format!("{:016x}", contract_fingerprint())),
            (3, "c46e41f0cbc9a76d".to_string())
        );
    }

    #[test]
    fn marker_text_round_trips() {
        let m = Marker::this_build(&V4_FROM_1);
        assert_eq!(m.changed_at(BLOCKED_V4), 2);
        assert_eq!(Marker::parse(&m.text()), Some(m));
        assert_eq!(Marker::parse("layout=3").map(|m| m.version), Some(3));
        assert_eq!(Marker::parse("nonsense"), None);
        assert_eq!(Marker::parse("layout=1 X"), None);
    }

    #[test]
    fn the_same_map_is_adopted_and_a_missing_one_created() {
        let (have, want) = (marker(1), marker(1));
        for spec in MAPS.iter().filter(|m| m.pinned) {
            let f = found(spec);
            assert_eq!(
                plan_map(spec, Some(&f), &have, &want, &[]),
                Ok(MapAction::Adopt)
            );
            assert_eq!(
                plan_map(spec, None, &have, &want, &[]),
                Ok(MapAction::Create)
            );
        }
    }

    #[test]
    fn a_wrong_type_or_size_is_refused_naming_the_difference() {
        let spec = map_spec(BLOCKED_V4).unwrap();
        let array = MapInfo {
            map_type: MapKind::Array.bpf_type(),
            key_size: 4,
            ..found(spec)
        };
        let e = plan_map(spec, Some(&array), &marker(1), &marker(1), &[]).unwrap_err();
        assert!(e.contains("type array, expected lpm_trie"), "{e}");
        assert!(e.contains("key size 4, expected 8"), "{e}");
        let wide = MapInfo {
            value_size: 8,
            ..found(spec)
        };
        let e = plan_map(spec, Some(&wide), &marker(1), &marker(1), &[]).unwrap_err();
        assert_eq!(e, format!("value size 8, expected {}", spec.value_size));
    }

    #[test]
    fn a_capacity_change_is_carried_over_as_it_is() {
        let spec = map_spec(RESOLVER_TGIDS).unwrap();
        let small = MapInfo {
            max_entries: 16,
            ..found(spec)
        };
        match plan_map(spec, Some(&small), &marker(1), &marker(1), &[]) {
            Ok(MapAction::Recreate {
                conversion: Conversion::Identity,
                reason,
            }) => assert!(reason.contains("max entries 16"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rings_are_new_for_a_new_layout_and_never_copied() {
        let spec = MAPS.iter().find(|m| m.kind == MapKind::RingBuf).unwrap();
        let f = found(spec);
        assert_eq!(
            plan_map(spec, Some(&f), &marker(1), &marker(1), &[]),
            Ok(MapAction::Adopt)
        );
        assert!(matches!(
            plan_map(spec, Some(&f), &marker(1), &marker(2), &[]),
            Ok(MapAction::Recreate {
                conversion: Conversion::Discard,
                ..
            })
        ));
        let hash = MapInfo {
            map_type: MapKind::Hash.bpf_type(),
            ..f
        };
        assert!(plan_map(spec, Some(&hash), &marker(1), &marker(1), &[]).is_err());
    }

    #[test]
    fn an_upgrade_converts_with_the_registered_chain_only() {
        let spec = map_spec(BLOCKED_V4).unwrap();
        // Layout 1's value was a u32 of flags.
        let old = MapInfo {
            value_size: 4,
            ..found(spec)
        };
        let want = Marker::this_build(&V4_FROM_1);
        let want = Marker { version: 2, ..want };
        match plan_map(spec, Some(&old), &marker(1), &want, &V4_FROM_1) {
            Ok(MapAction::Recreate {
                conversion: Conversion::Convert(chain),
                ..
            }) => assert_eq!(chain.len(), 1),
            other => panic!("{other:?}"),
        }
        // Already in layout 2: nothing to convert.
        assert_eq!(
            plan_map(spec, Some(&found(spec)), &marker(2), &want, &V4_FROM_1),
            Ok(MapAction::Adopt)
        );
        // A value-size change with no converter is refused, saying so.
        let wide = MapInfo {
            value_size: 8,
            ..old
        };
        let e = plan_map(spec, Some(&wide), &marker(1), &marker(2), &[]).unwrap_err();
        assert!(e.contains("no converter from layout 1"), "{e}");
    }

    #[test]
    fn layout_1_block_maps_are_converted_by_the_registered_converters() {
        let want = Marker::this_build(CONVERTERS);
        for name in [BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6] {
            let spec = map_spec(name).unwrap();
            let v1 = MapInfo {
                value_size: 4,
                ..found(spec)
            };
            match plan_map(spec, Some(&v1), &marker(1), &want, CONVERTERS) {
                Ok(MapAction::Recreate {
                    conversion: Conversion::Convert(chain),
                    ..
                }) => assert_eq!(chain.len(), 1, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
            assert_eq!(want.changed_at(name), 3, "{name}");
        }
        // Not that map in layout 1 (planted, corrupt): refused, never converted.
        let spec = map_spec(BLOCKED_V4).unwrap();
        for planted in [
            MapInfo {
                map_type: MapKind::Hash.bpf_type(),
                value_size: 4,
                ..found(spec)
            },
            MapInfo {
                value_size: 20,
                ..found(spec)
            },
        ] {
            let e = plan_map(spec, Some(&planted), &marker(1), &want, CONVERTERS).unwrap_err();
            assert!(e.contains("expected"), "{e}");
        }
        // A build of layout 1, rolled back to, refuses them rather than misread them.
        let spec = map_spec(BLOCKED_NAMES).unwrap();
        let e = plan_map(spec, Some(&found(spec)), &want, &marker(1), &[]).unwrap_err();
        assert!(e.contains("layout 3 of a newer build"), "{e}");
    }

    #[test]
    fn a_rollback_refuses_a_map_whose_content_is_newer_and_keeps_the_others() {
        let newer = Marker {
            version: 2,
            changed: BTreeMap::from([(BLOCKED_V4.to_string(), 2)]),
        };
        let v4 = map_spec(BLOCKED_V4).unwrap();
        let e = plan_map(v4, Some(&found(v4)), &newer, &marker(1), &[]).unwrap_err();
        assert!(e.contains("newer build"), "{e}");
        let tgids = map_spec(RESOLVER_TGIDS).unwrap();
        assert_eq!(
            plan_map(tgids, Some(&found(tgids)), &newer, &marker(1), &[]),
            Ok(MapAction::Adopt)
        );
    }
}
