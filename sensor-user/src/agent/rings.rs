//! The two ring buffers the kernel writes, drained into the pipeline.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sensor_common::{
    EventKind, Verdict,
    event::{DNS_FLAG_RESOLVER, Direction},
    maps::{CONNECT_EVENTS, DNS_EVENTS},
};
use tokio::io::unix::AsyncFd;

use super::{ConnectIn, DnsIn, Pipeline};
use crate::{
    kernel::{KernelError, Sensor, VerdictMaps},
    records::{
        KernelEvent, decode,
        decode::{comm, ip},
        raw::{ConnectRecord, DnsRecord},
    },
};

/// What the agent received, for the stop line.
#[derive(Default)]
pub struct Tally {
    /// Records received, by kind.
    pub received: BTreeMap<&'static str, u64>,
    /// Records that could not be decoded.
    pub undecodable: u64,
}

/// The DNS ring (watched: its programs wake the agent) and the connect ring (drained on a
/// timer: waking the agent would cost the connect programs more than all their work).
pub struct Rings {
    /// Registered with the runtime for wakeups.
    pub dns: AsyncFd<RingBuf<MapData>>,
    connect: RingBuf<MapData>,
    /// What was received so far.
    pub tally: Tally,
    /// Also log every record.
    raw: bool,
}

fn take_ring(sensor: &mut Sensor, name: &str) -> anyhow::Result<RingBuf<MapData>> {
    let map = sensor
        .ebpf_mut()
        .take_map(name)
        .ok_or_else(|| KernelError::MissingMap(name.into()))?;
    RingBuf::try_from(map).with_context(|| format!("ring buffer {name}"))
}

impl Rings {
    /// Takes both rings from the loaded sensor; `raw` logs every record too.
    pub fn take(sensor: &mut Sensor, raw: bool) -> anyhow::Result<Self> {
        let dns = take_ring(sensor, DNS_EVENTS)?;
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long
        // as the AsyncFd (which owns the RingBuf) lives.
        let dns = unsafe { AsyncFd::register_with_interest(dns, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("polling {DNS_EVENTS}: {}", e.into_parts().1))?;
        Ok(Self {
            dns,
            connect: take_ring(sensor, CONNECT_EVENTS)?,
            tally: Tally::default(),
            raw,
        })
    }

    /// Drains the DNS ring, then the connect ring: an answer is known before the
    /// connect it led to.
    pub fn drain(&mut self, p: &mut Pipeline<VerdictMaps>) {
        drain(self.dns.get_mut(), p, &mut self.tally, self.raw);
        drain(&mut self.connect, p, &mut self.tally, self.raw);
    }
}

fn drain(ring: &mut RingBuf<MapData>, p: &mut Pipeline<VerdictMaps>, tally: &mut Tally, raw: bool) {
    while let Some(item) = ring.next() {
        match decode(&item) {
            Ok(KernelEvent::Connect(e)) => {
                *tally.received.entry(EventKind::Connect.name()).or_default() += 1;
                if raw {
                    p.sink().emit_raw(&ConnectRecord::from(&*e));
                }
                let Some(addr) = ip(e.family, &e.addr) else {
                    continue;
                };
                p.sink().at_kernel_time(e.ts_ns);
                p.on_connect(ConnectIn {
                    ts_ns: e.ts_ns,
                    tgid: e.tgid,
                    comm: comm(&e.comm),
                    cgroup_id: e.cgroup_id,
                    addr,
                    port: e.port,
                    verdict: Verdict::from_u32(e.verdict).unwrap_or(Verdict::Allowed),
                });
                p.sink().at_kernel_time(0);
            }
            Ok(KernelEvent::Dns(e)) => {
                *tally.received.entry(EventKind::Dns.name()).or_default() += 1;
                if raw {
                    p.sink().emit_raw(&DnsRecord::from(&*e));
                }
                let cap = (e.cap_len as usize).min(e.data.len());
                p.sink().at_kernel_time(e.ts_ns);
                p.on_dns(&DnsIn {
                    ts_ns: e.ts_ns,
                    direction: if e.direction == Direction::Ingress as u8 {
                        Direction::Ingress
                    } else {
                        Direction::Egress
                    },
                    verdict: Verdict::from_u32(e.verdict).unwrap_or(Verdict::Allowed),
                    cgroup_id: e.cgroup_id,
                    payload: &e.data[..cap],
                    msg_len: e.msg_len as usize,
                    resolver: e.flags & DNS_FLAG_RESOLVER != 0,
                });
                p.sink().at_kernel_time(0);
            }
            Err(e) => {
                tally.undecodable += 1;
                p.metrics().undecodable.inc();
                log::warn!("skipping undecodable kernel record: {e}");
            }
        }
    }
}
