//! JSON renderings of kernel events, one line each.

use sensor_common::{
    ConnectEvent, Verdict,
    event::{DNS_FLAG_QNAME_HASHED, DNS_FLAG_RESOLVER, DNS_FLAG_TCP, Direction},
};
use serde::Serialize;

use super::{
    assemble::DnsMessage,
    decode::{comm, ip},
};

/// An SMTP connect as printed by `mxsentry run`.
#[derive(Serialize)]
pub struct ConnectRecord {
    /// Always "smtp_connect".
    pub event: &'static str,
    /// Monotonic kernel timestamp.
    pub ts_ns: u64,
    /// Process id.
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// "ipv4" or "ipv6".
    pub family: &'static str,
    /// Destination address.
    pub addr: String,
    /// Destination port.
    pub port: u16,
    /// allowed | would_block | blocked.
    pub verdict: &'static str,
}

fn family(f: u16) -> &'static str {
    if f == sensor_common::event::AF_INET6 {
        "ipv6"
    } else {
        "ipv4"
    }
}

fn verdict(v: u32) -> &'static str {
    Verdict::from_u32(v).map_or("unknown", Verdict::name)
}

fn addr(f: u16, raw: &[u8; 16]) -> String {
    ip(f, raw).map_or_else(String::new, |a| a.to_string())
}

impl From<&ConnectEvent> for ConnectRecord {
    fn from(e: &ConnectEvent) -> Self {
        Self {
            event: "smtp_connect",
            ts_ns: e.ts_ns,
            tgid: e.tgid,
            pid: e.pid,
            comm: comm(&e.comm),
            cgroup_id: e.cgroup_id,
            family: family(e.family),
            addr: addr(e.family, &e.addr),
            port: e.port,
            verdict: verdict(e.verdict),
        }
    }
}

/// A DNS message as printed by `mxsentry run --raw-events`: one line per message, put
/// back together from the kernel's records however it was cut into packets.
#[derive(Serialize)]
pub struct DnsRecord {
    /// Always "dns_packet" (the name it had when a record was a packet).
    pub event: &'static str,
    /// Monotonic kernel timestamp.
    pub ts_ns: u64,
    /// "egress" or "ingress".
    pub direction: &'static str,
    /// "udp" or "tcp".
    pub transport: &'static str,
    /// "ipv4" or "ipv6".
    pub family: &'static str,
    /// Source address and port.
    pub src: String,
    /// Destination address and port.
    pub dst: String,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Socket cookie.
    pub cookie: u64,
    /// Question-name hash, hex, when the kernel could compute it.
    pub qname_hash: Option<String>,
    /// DNS message length (UDP payload, or TCP length prefix).
    pub msg_len: u32,
    /// Captured bytes.
    pub cap_len: usize,
    /// Why fewer bytes than `msg_len` came, when they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<&'static str>,
    /// allowed | would_block | blocked.
    pub verdict: &'static str,
    /// The socket is a local resolver's upstream socket.
    pub local_resolver: bool,
    /// Captured message, hex.
    pub data: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn endpoint(f: u16, raw: &[u8; 16], port: u16) -> String {
    match ip(f, raw) {
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
        None => format!("?:{port}"),
    }
}

impl From<&DnsMessage> for DnsRecord {
    fn from(m: &DnsMessage) -> Self {
        let e = &m.hdr;
        Self {
            event: "dns_packet",
            ts_ns: e.ts_ns,
            direction: if e.direction == Direction::Ingress as u8 {
                "ingress"
            } else {
                "egress"
            },
            transport: if e.flags & DNS_FLAG_TCP != 0 {
                "tcp"
            } else {
                "udp"
            },
            family: family(e.family),
            src: endpoint(e.family, &e.saddr, e.sport),
            dst: endpoint(e.family, &e.daddr, e.dport),
            cgroup_id: e.cgroup_id,
            cookie: e.cookie,
            qname_hash: (e.flags & DNS_FLAG_QNAME_HASHED != 0)
                .then(|| format!("{:016x}", e.qname_hash)),
            msg_len: e.msg_len,
            cap_len: m.bytes.len(),
            cut: m.cut.map(|c| c.reason()),
            verdict: verdict(e.verdict),
            local_resolver: e.flags & DNS_FLAG_RESOLVER != 0,
            data: hex(&m.bytes),
        }
    }
}
