//! A packet capture through the pipeline (`mxsentry replay FILE.pcap`), with the kernel's
//! maps simulated, printing the events it would have raised. Needs no privileges.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use anyhow::{Context as _, bail};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError, create_reader};
use sensor_common::event::{Direction, from_server};

use super::{
    ConnectIn, DnsIn, Pipeline, Sink, enforcer::Simulated, learning::Learning, pending::Pending,
    pipeline::who::Who,
};
use crate::{
    config::Loaded,
    output::{EventLog, Metrics},
};

/// What the capture held, for the summary line.
#[derive(Default)]
struct Counts(BTreeMap<&'static str, u64>);

impl Counts {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }
}

fn slice(linktype: Linktype, data: &[u8]) -> Option<SlicedPacket<'_>> {
    match linktype {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data).ok(),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok(),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(data).ok(),
        // BSD loopback: a 4-byte address family, then IP.
        Linktype::NULL => data.get(4..).and_then(|d| SlicedPacket::from_ip(d).ok()),
        _ => None,
    }
}

fn addrs(net: &NetSlice) -> Option<(IpAddr, IpAddr)> {
    match net {
        NetSlice::Ipv4(v4) => Some((
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        )),
        NetSlice::Ipv6(v6) => Some((
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        )),
        NetSlice::Arp(_) => None,
    }
}

fn packet(
    p: &mut Pipeline<Simulated>,
    smtp: &[u16],
    linktype: Linktype,
    data: &[u8],
    n: &mut Counts,
) {
    let Some(sliced) = slice(linktype, data) else {
        n.add("skipped (link type or headers)");
        return;
    };
    let (Some(net), Some(transport)) = (&sliced.net, &sliced.transport) else {
        n.add("skipped (not IP/UDP/TCP)");
        return;
    };
    let Some((_src, dst)) = addrs(net) else {
        return;
    };
    let (sport, dport, payload, tcp) = match transport {
        TransportSlice::Udp(u) => (u.source_port(), u.destination_port(), u.payload(), false),
        TransportSlice::Tcp(t) => {
            if t.syn() && !t.ack() && smtp.contains(&t.destination_port()) {
                n.add("smtp connects");
                let verdict = p.enforcer().connect_verdict(dst);
                p.on_connect(ConnectIn {
                    ts_ns: 0,
                    tgid: 0,
                    comm: "replay".into(),
                    cgroup_id: 0,
                    addr: dst,
                    port: t.destination_port(),
                    verdict,
                });
                return;
            }
            (t.source_port(), t.destination_port(), t.payload(), true)
        }
        _ => return,
    };
    if sport != 53 && dport != 53 || payload.is_empty() {
        return;
    }
    // DNS over TCP: a 2-byte length, then the message (first segment of it).
    let (msg, len) = if tcp {
        let Some(head) = payload.get(..2) else { return };
        (
            &payload[2..],
            usize::from(u16::from_be_bytes([head[0], head[1]])),
        )
    } else {
        (payload, payload.len())
    };
    n.add("dns messages");
    let direction = if dport == 53 {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    let from_server = from_server(direction == Direction::Ingress, sport, dport);
    let is_answer = from_server || msg.get(2).is_some_and(|b| b & 0x80 != 0);
    let verdict = if direction == Direction::Ingress && is_answer {
        p.enforcer().answer_verdict(msg)
    } else {
        sensor_common::Verdict::Allowed
    };
    p.on_dns(&DnsIn {
        ts_ns: 0,
        direction,
        verdict,
        cgroup_id: 0,
        payload: msg,
        msg_len: len,
        resolver: false,
        from_server,
    });
}

/// Replays `pcap` through the pipeline configured by `loaded`; events go to stdout.
pub fn replay(pcap: &Path, loaded: Loaded) -> anyhow::Result<()> {
    let metrics = Metrics::new("replay")?;
    let mut sink = Sink::new(EventLog::stdout(metrics.clone()), metrics, "replay");
    let pending = Pending::in_memory(loaded.config.cache.pending_max);
    let smtp = loaded.config.agent.smtp_ports.clone();
    // Capture packets carry no process: describe none from this host's /proc.
    let who = Who::new(None, "/nonexistent".into());
    // The capture's own deliveries make its ledger; the host's is neither read nor written.
    let learning = Learning::in_memory(&loaded.config.learn, loaded.policy.clone(), &mut sink);
    let mut p = Pipeline::new(loaded, Simulated::default(), sink, who, pending, learning);
    let file = std::fs::File::open(pcap).with_context(|| format!("opening {}", pcap.display()))?;
    let mut reader = match create_reader(1 << 16, file) {
        Ok(r) => r,
        Err(PcapError::Eof) => bail!("{} is empty", pcap.display()),
        Err(e) => bail!("{} is not a pcap or pcapng file: {e:?}", pcap.display()),
    };
    let mut linktypes: Vec<Linktype> = Vec::new();
    let mut counts = Counts::default();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => linktypes = vec![h.network],
                    PcapBlockOwned::Legacy(b) => {
                        let lt = linktypes.first().copied().unwrap_or(Linktype::ETHERNET);
                        packet(&mut p, &smtp, lt, b.data, &mut counts);
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        linktypes.push(idb.linktype)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let lt = linktypes
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or(Linktype::ETHERNET);
                        packet(&mut p, &smtp, lt, epb.data, &mut counts);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let lt = linktypes.first().copied().unwrap_or(Linktype::ETHERNET);
                        packet(&mut p, &smtp, lt, spb.data, &mut counts);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    bail!("{}: truncated capture", pcap.display());
                }
            }
            Err(e) => bail!("{}: unreadable block: {e:?}", pcap.display()),
        }
    }
    let summary: Vec<String> = counts.0.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "replayed {}: {}",
        pcap.display(),
        if summary.is_empty() {
            "nothing".into()
        } else {
            summary.join(", ")
        }
    );
    Ok(())
}
