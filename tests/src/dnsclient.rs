//! The test peer's DNS client: queries over UDP (with or without EDNS) and TCP, the TCP
//! ones written whole, with the length prefix alone, cut inside the header, or several
//! in one segment — the ways a query can leave a host.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::bail;

use crate::{
    hostile::{framed, write_cut},
    wire_name,
};

/// How a query is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One UDP datagram, no EDNS (answers up to 512 bytes).
    Udp,
    /// One UDP datagram offering this EDNS payload size.
    UdpEdns(u16),
    /// TCP, the query in one write (all queries in one write when there are several).
    Tcp,
    /// TCP, the 2-byte length prefix alone, then the rest.
    TcpPrefix,
    /// TCP, the prefix and the first `n` bytes of the header, then the rest.
    TcpHeader(usize),
}

impl Transport {
    /// `udp`, `udp-edns:SIZE`, `tcp`, `tcp-prefix`, `tcp-header:N`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.split_once(':') {
            None if s == "udp" => Transport::Udp,
            None if s == "tcp" => Transport::Tcp,
            None if s == "tcp-prefix" => Transport::TcpPrefix,
            Some(("udp-edns", n)) => Transport::UdpEdns(n.parse()?),
            Some(("tcp-header", n)) => Transport::TcpHeader(n.parse()?),
            _ => bail!("transport {s}: want udp, udp-edns:SIZE, tcp, tcp-prefix or tcp-header:N"),
        })
    }
}

/// A standard query with id `id` for `name`, type `qt`; with an OPT record offering
/// `edns` bytes when given.
pub fn query(id: u16, name: &str, qt: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    m.extend(wire_name(name));
    m.extend_from_slice(&qt.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some(size) = edns {
        m.push(0);
        m.extend_from_slice(&41u16.to_be_bytes());
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    m
}

/// Sends `queries` to `server` over `how`, waiting at most `timeout` for each answer;
/// the answers in order (`None` for one that did not come).
pub fn ask(
    how: Transport,
    server: SocketAddr,
    queries: &[Vec<u8>],
    timeout: Duration,
) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
    match how {
        Transport::Udp | Transport::UdpEdns(_) => {
            let bind: SocketAddr = if server.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            let s = UdpSocket::bind(bind)?;
            s.set_read_timeout(Some(timeout))?;
            s.connect(server)?;
            let mut buf = vec![0u8; 65_536];
            let mut out = Vec::new();
            for q in queries {
                s.send(q)?;
                out.push(s.recv(&mut buf).ok().map(|n| buf[..n].to_vec()));
            }
            Ok(out)
        }
        _ => {
            let mut s = TcpStream::connect_timeout(&server, timeout)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(timeout))?;
            let bytes: Vec<u8> = queries.iter().flat_map(|q| framed(q)).collect();
            let cuts = match how {
                Transport::TcpPrefix => vec![2],
                Transport::TcpHeader(n) => vec![2 + n],
                _ => vec![],
            };
            write_cut(&mut s, &bytes, &cuts)?;
            let mut out = Vec::new();
            for _ in queries {
                let mut len = [0u8; 2];
                let answer = match s.read_exact(&mut len) {
                    Ok(()) => {
                        let mut a = vec![0u8; u16::from_be_bytes(len) as usize];
                        s.read_exact(&mut a).ok().map(|()| a)
                    }
                    Err(_) => None,
                };
                let done = answer.is_none();
                out.push(answer);
                if done {
                    break;
                }
            }
            out.resize(queries.len(), None);
            s.flush()?;
            Ok(out)
        }
    }
}
