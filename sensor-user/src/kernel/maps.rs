//! The verdict maps the agent writes and the counters it reads, opened from
//! their pins so the agent, `mxsentry ctl` and the tests share one code path.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray};
use sensor_common::{
    BlockEntry, EventKind, PortSet,
    event::CaptureStat,
    maps::{
        AGENT_STATE, BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6, CLEAN_NAMES, DNS_CAPTURE, HOLD_PENDING,
        LOST, MODE, MODE_ENFORCE, MODE_MONITOR, NAME_TAGS, RESOLVER_TGIDS, SMTP_PORTS,
    },
    qname::{MAX_QNAME_WIRE, encode_name, wire_name_hash},
};

use super::{KernelError, pins::maps_dir, port_builds::ConnectBuilds};

/// Global enforcement mode, as stored in the `MODE` map.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Report matches, refuse nothing.
    Monitor,
    /// Refuse matching connects, drop matching answers.
    Enforce,
}

impl Mode {
    /// The `MODE` map's value for this mode.
    pub const fn to_u32(self) -> u32 {
        match self {
            Mode::Monitor => MODE_MONITOR,
            Mode::Enforce => MODE_ENFORCE,
        }
    }

    /// Stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

/// An address range: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|e| format!("{s:?} is not an address: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .map_err(|e| format!("{s:?}: bad prefix: {e}"))?,
            None => max,
        };
        if prefix > max {
            return Err(format!("{s:?}: prefix {prefix} is longer than {max}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Handles on the pinned verdict maps (the block maps' methods are in `blockmaps`).
pub struct VerdictMaps {
    mode: Array<MapData, u32>,
    ports: Array<MapData, u32>,
    pub(super) v4: LpmTrie<MapData, [u8; 4], BlockEntry>,
    pub(super) v6: LpmTrie<MapData, [u8; 16], BlockEntry>,
    pub(super) names: HashMap<MapData, u64, BlockEntry>,
    pub(super) pending: HashMap<MapData, u64, u64>,
    pub(super) clean: HashMap<MapData, u64, u64>,
    /// `NAME_TAGS`, when pinned (a sensor older than the map has none).
    pub(super) tags: Option<HashMap<MapData, u64, u64>>,
    pub(super) agent: Array<MapData, u64>,
    resolvers: HashMap<MapData, u32, u32>,
    lost: PerCpuArray<MapData, u64>,
    capture: PerCpuArray<MapData, u64>,
    /// The connect programs' builds, where this handle may switch them (the pipeline's).
    builds: Option<ConnectBuilds>,
}

/// Opens the map pinned at `dir/name` as the typed handle `T`.
fn open<T>(dir: &Path, name: &str) -> Result<T, KernelError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path: PathBuf = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|source| KernelError::Map {
        name: format!("{name} ({})", path.display()),
        source,
    })?;
    let map = Map::from_map_data(data).map_err(map_err(name))?;
    T::try_from(map).map_err(map_err(name))
}

pub(super) fn map_err(name: &str) -> impl Fn(aya::maps::MapError) -> KernelError + '_ {
    move |source| KernelError::Map {
        name: name.to_string(),
        source,
    }
}

impl VerdictMaps {
    /// Opens the maps pinned under `pin_dir` by a running (or kept-attached) sensor.
    pub fn open(pin_dir: &Path) -> Result<Self, KernelError> {
        let dir = maps_dir(pin_dir);
        Ok(Self {
            mode: open(&dir, MODE)?,
            ports: open(&dir, SMTP_PORTS)?,
            v4: open(&dir, BLOCKED_V4)?,
            v6: open(&dir, BLOCKED_V6)?,
            names: open(&dir, BLOCKED_NAMES)?,
            pending: open(&dir, HOLD_PENDING)?,
            clean: open(&dir, CLEAN_NAMES)?,
            tags: if dir.join(NAME_TAGS).exists() {
                Some(open(&dir, NAME_TAGS)?)
            } else {
                None
            },
            agent: open(&dir, AGENT_STATE)?,
            resolvers: open(&dir, RESOLVER_TGIDS)?,
            lost: open(&dir, LOST)?,
            capture: open(&dir, DNS_CAPTURE)?,
            builds: None,
        })
    }

    /// Lets [`VerdictMaps::set_smtp_ports`] switch the connect programs' build too.
    pub fn with_connect_builds(mut self, builds: Option<ConnectBuilds>) -> Self {
        self.builds = builds;
        self
    }

    /// Switches the global mode; the programs read it on every event.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), KernelError> {
        self.mode.set(0, mode.to_u32(), 0).map_err(map_err(MODE))
    }

    /// The current global mode.
    pub fn mode(&self) -> Result<Mode, KernelError> {
        let v = self.mode.get(&0, 0).map_err(map_err(MODE))?;
        Ok(if v == MODE_ENFORCE {
            Mode::Enforce
        } else {
            Mode::Monitor
        })
    }

    /// Replaces the SMTP port set, and runs the connect programs' build for it (the map
    /// is written first: a build that reads it finds the new set from its first run).
    pub fn set_smtp_ports(&mut self, ports: &[u16]) -> Result<(), KernelError> {
        for p in 0..=u16::MAX {
            let want = u32::from(ports.contains(&p));
            // Only touch slots that change: 65,536 syscalls on every reload is wasteful.
            let have = self
                .ports
                .get(&u32::from(p), 0)
                .map_err(map_err(SMTP_PORTS))?;
            if have != want {
                self.ports
                    .set(u32::from(p), want, 0)
                    .map_err(map_err(SMTP_PORTS))?;
            }
        }
        if let Some(b) = &self.builds {
            b.select(PortSet::of(ports))?;
        }
        Ok(())
    }

    /// The processes listed as local resolvers (by the bind hooks or the agent).
    pub fn resolvers(&self) -> Result<BTreeSet<u32>, KernelError> {
        self.resolvers
            .keys()
            .collect::<Result<_, _>>()
            .map_err(map_err(RESOLVER_TGIDS))
    }

    /// Lists process `tgid` as a local resolver.
    pub fn add_resolver(&mut self, tgid: u32) -> Result<(), KernelError> {
        self.resolvers
            .insert(tgid, 1, 0)
            .map_err(map_err(RESOLVER_TGIDS))
    }

    /// Unlists process `tgid` (it exited).
    pub fn remove_resolver(&mut self, tgid: u32) -> Result<(), KernelError> {
        ignore_missing(self.resolvers.remove(&tgid), RESOLVER_TGIDS)
    }

    /// Events of `kind` the kernel could not put in a ring buffer, summed over CPUs.
    pub fn lost(&self, kind: EventKind) -> Result<u64, KernelError> {
        let per_cpu = self.lost.get(&(kind as u32), 0).map_err(map_err(LOST))?;
        Ok(per_cpu.iter().sum())
    }

    /// How often the kernel's DNS capture met `stat`, summed over CPUs.
    pub fn capture_stat(&self, stat: CaptureStat) -> Result<u64, KernelError> {
        let per_cpu = self
            .capture
            .get(&(stat as u32), 0)
            .map_err(map_err(DNS_CAPTURE))?;
        Ok(per_cpu.iter().sum())
    }
}

pub(super) fn ignore_missing(
    r: Result<(), aya::maps::MapError>,
    name: &str,
) -> Result<(), KernelError> {
    match r {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        // A delete of an absent key fails with ENOENT (gone already: an LRU map evicted
        // it, or an operator removed it).
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(())
        }
        Err(source) => Err(KernelError::Map {
            name: name.to_string(),
            source,
        }),
    }
}

/// `ip` as the connect programs judge it: a v4-mapped IPv6 address (`::ffff:a.b.c.d`) is
/// its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `qname_hash` of a domain name written as text (`army.mil`, `Army.MIL.`).
/// The root (`""`, `"."`) is not a name anyone blocks, so it gives `None` too.
pub fn name_hash(name: &str) -> Option<u64> {
    if name.trim_end_matches('.').is_empty() {
        return None;
    }
    let mut wire = [0u8; MAX_QNAME_WIRE];
    let n = encode_name(name, &mut wire)?;
    wire_name_hash(&wire[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses() {
        assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap().prefix, 8);
        assert_eq!("2001:db8::1".parse::<Cidr>().unwrap().prefix, 128);
        assert_eq!("192.0.2.7".parse::<Cidr>().unwrap().prefix, 32);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn v4_mapped_addresses_are_their_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn name_hash_folds_case_and_trailing_dot() {
        assert_eq!(name_hash("Army.MIL."), name_hash("army.mil"));
        assert_ne!(name_hash("army.mil"), name_hash("army.ml"));
        assert_eq!(name_hash("a..b"), None);
        assert_eq!(name_hash(""), None);
        assert_eq!(name_hash("."), None);
    }
}
