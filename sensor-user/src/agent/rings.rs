//! The two ring buffers the kernel writes, drained into the pipeline; DNS records put
//! back together into messages on the way.
//!
//! The kernel wakes the agent only for the queries the race needs (A, AAAA, MX, ANY);
//! answers, other DNS packets and connects wait for the next drain, at most
//! `CONNECT_DRAIN` away. Connects are read after DNS and DNS
//! again after them, so an answer is always handled before a connect it led to.

use std::{collections::BTreeMap, time::Instant};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sensor_common::{
    ConnectEvent, EventKind, Verdict,
    event::{DNS_FLAG_RESOLVER, Direction, from_server},
    maps::{CONNECT_EVENTS, DNS_EVENTS},
};
use tokio::io::unix::AsyncFd;

use super::{ConnectIn, DnsIn, Pipeline};
use crate::{
    dns::Cut,
    kernel::{KernelError, Sensor, VerdictMaps},
    records::{
        Assembler, DnsMessage, KernelEvent, decode,
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

/// The DNS ring (watched: its programs wake the agent for the queries that need it) and
/// the connect ring (drained on a timer: waking the agent would cost the connect programs
/// more than all their work).
pub struct Rings {
    /// Registered with the runtime for wakeups.
    pub dns: AsyncFd<RingBuf<MapData>>,
    connect: RingBuf<MapData>,
    /// DNS records on their way to being messages.
    assembler: Assembler,
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
            assembler: Assembler::default(),
            tally: Tally::default(),
            raw,
        })
    }

    /// Drains the DNS ring, then the connect ring, then the DNS ring again before
    /// handling the connects: an answer is known before the connect it led to.
    pub fn drain(&mut self, p: &mut Pipeline<VerdictMaps>) {
        let now = Instant::now();
        self.drain_dns(p, now);
        let mut connects = Vec::new();
        while let Some(item) = self.connect.next() {
            match decode(&item) {
                Ok(KernelEvent::Connect(e)) => connects.push(e),
                Ok(KernelEvent::Dns(_)) => undecodable(p, &mut self.tally, "a DNS record"),
                Err(e) => undecodable(p, &mut self.tally, &e.to_string()),
            }
        }
        if !connects.is_empty() {
            self.drain_dns(p, now);
        }
        for e in connects {
            on_connect(p, &mut self.tally, self.raw, &e);
        }
        let mut out = Vec::new();
        let cuts = self.assembler.expire(now, &mut out);
        self.hand_on(p, out, &cuts);
    }

    fn drain_dns(&mut self, p: &mut Pipeline<VerdictMaps>, now: Instant) {
        let ring = self.dns.get_mut();
        let (mut out, mut cuts) = (Vec::new(), Vec::new());
        while let Some(item) = ring.next() {
            match decode(&item) {
                Ok(KernelEvent::Dns(part)) => {
                    *self
                        .tally
                        .received
                        .entry(EventKind::Dns.name())
                        .or_default() += 1;
                    cuts.extend(self.assembler.push(part, now, &mut out));
                }
                Ok(KernelEvent::Connect(_)) => undecodable(p, &mut self.tally, "a connect record"),
                Err(e) => undecodable(p, &mut self.tally, &e.to_string()),
            }
        }
        self.hand_on(p, out, &cuts);
    }

    /// Counts the cut messages and hands every message to the pipeline.
    fn hand_on(&mut self, p: &mut Pipeline<VerdictMaps>, out: Vec<DnsMessage>, cuts: &[Cut]) {
        for c in cuts {
            p.metrics()
                .dns_incomplete
                .with_label_values(&[c.reason()])
                .inc();
        }
        for m in out {
            on_dns(p, self.raw, &m);
        }
    }
}

fn undecodable(p: &Pipeline<VerdictMaps>, tally: &mut Tally, what: &str) {
    tally.undecodable += 1;
    p.metrics().undecodable.inc();
    log::warn!("skipping undecodable kernel record: {what}");
}

fn on_connect(p: &mut Pipeline<VerdictMaps>, tally: &mut Tally, raw: bool, e: &ConnectEvent) {
    *tally.received.entry(EventKind::Connect.name()).or_default() += 1;
    if raw {
        p.sink().emit_raw(&ConnectRecord::from(e));
    }
    let Some(addr) = ip(e.family, &e.addr) else {
        return;
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

fn on_dns(p: &mut Pipeline<VerdictMaps>, raw: bool, m: &DnsMessage) {
    if raw {
        p.sink().emit_raw(&DnsRecord::from(m));
    }
    let e = &m.hdr;
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
        payload: &m.bytes,
        msg_len: e.msg_len as usize,
        resolver: e.flags & DNS_FLAG_RESOLVER != 0,
        from_server: from_server(e.direction == Direction::Ingress as u8, e.sport, e.dport),
    });
    p.sink().at_kernel_time(0);
}
