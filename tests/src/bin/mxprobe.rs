//! Test peer for the privileged tests: SMTP-port clients and listeners, a DNS
//! responder and a DNS client, each printing what it did as one line.
//!
//! Hand-built DNS wire format on purpose: the tests compare the exact bytes the
//! kernel captured with the bytes this program sent and received.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::{Context as _, bail};
use mxsentry_tests::wire_name;

fn qtype(s: &str) -> anyhow::Result<u16> {
    Ok(match s {
        "A" => 1,
        "MX" => 15,
        "AAAA" => 28,
        _ => bail!("unknown qtype {s}"),
    })
}

fn query(id: u16, name: &str, qt: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(wire_name(name));
    m.extend_from_slice(&qt.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// Answers every question with one record: A 192.0.2.53, AAAA 2001:db8::53, MX 10 mx.<name>.
fn answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut i = 12;
    while *q.get(i)? != 0 {
        i += 1 + *q.get(i)? as usize;
    }
    let qend = i + 5;
    let question = q.get(12..qend)?;
    let qt = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let mut m = Vec::new();
    m.extend_from_slice(&q[..2]);
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(question);
    m.extend_from_slice(&[0xc0, 0x0c]);
    m.extend_from_slice(&qt.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    let rdata: Vec<u8> = match qt {
        28 => vec![
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
        ],
        15 => {
            let mut r = vec![0, 10, 2, b'm', b'x'];
            r.extend_from_slice(&[0xc0, 0x0c]);
            r
        }
        _ => vec![192, 0, 2, 53],
    };
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend(rdata);
    Some(m)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn serve_dns(addr: SocketAddr) -> anyhow::Result<()> {
    let udp = UdpSocket::bind(addr).context("bind udp")?;
    let tcp = TcpListener::bind(addr).context("bind tcp")?;
    std::thread::spawn(move || {
        for s in tcp.incoming().flatten() {
            std::thread::spawn(move || serve_tcp_conn(s));
        }
    });
    println!("ready");
    std::io::stdout().flush()?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = udp.recv_from(&mut buf)?;
        if let Some(a) = answer(&buf[..n]) {
            udp.send_to(&a, peer)?;
        }
    }
}

fn serve_tcp_conn(mut s: TcpStream) -> Option<()> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut q).ok()?;
    let a = answer(&q)?;
    let mut out = (a.len() as u16).to_be_bytes().to_vec();
    out.extend(a);
    s.write_all(&out).ok()
}

fn dns_client(
    transport: &str,
    server: SocketAddr,
    name: &str,
    qt: u16,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    let q = query(0x4d58, name, qt);
    let t = Duration::from_millis(timeout_ms);
    let reply = match transport {
        "udp" => {
            let bind: SocketAddr = if server.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            let s = UdpSocket::bind(bind)?;
            s.set_read_timeout(Some(t))?;
            s.connect(server)?;
            s.send(&q)?;
            let mut buf = [0u8; 2048];
            s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
        }
        "tcp" => {
            let mut s = TcpStream::connect_timeout(&server, t)?;
            s.set_read_timeout(Some(t))?;
            let mut out = (q.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&q);
            s.write_all(&out)?;
            let mut len = [0u8; 2];
            match s.read_exact(&mut len) {
                Ok(()) => {
                    let mut a = vec![0u8; u16::from_be_bytes(len) as usize];
                    s.read_exact(&mut a).ok().map(|()| a)
                }
                Err(_) => None,
            }
        }
        _ => bail!("transport must be udp or tcp"),
    };
    let v = serde_json::json!({
        "query": hex(&q),
        "answer": reply.as_deref().map(hex),
    });
    println!("{v}");
    Ok(())
}

fn connect(addr: SocketAddr) -> String {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => "ok".into(),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => "eperm".into(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused".into(),
        Err(e) => format!("error {e}"),
    }
}

fn listen(ip: &str, ports: &[String]) -> anyhow::Result<()> {
    for p in ports {
        let addr = SocketAddr::new(ip.parse()?, p.parse()?);
        let l = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                drop(s)
            }
        });
    }
    println!("ready");
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["connect", addr] => {
            let v =
                serde_json::json!({ "result": connect(addr.parse()?), "pid": std::process::id() });
            println!("{v}");
        }
        ["connect-many", addr, n] => {
            let addr: SocketAddr = addr.parse()?;
            let n: u64 = n.parse()?;
            for _ in 0..n {
                // Each attempt, refused or not, passes through the connect hook once.
                let _ = TcpStream::connect(addr);
            }
            println!("{n}");
        }
        ["serve-dns", addr] => serve_dns(addr.parse()?)?,
        ["dns", transport, server, name, qt, timeout_ms] => dns_client(
            transport,
            server.parse()?,
            name,
            qtype(qt)?,
            timeout_ms.parse()?,
        )?,
        ["listen", ip, ports @ ..] => {
            let ports: Vec<String> = ports.iter().map(|s| s.to_string()).collect();
            listen(ip, &ports)?
        }
        _ => bail!(
            "usage: mxprobe connect ADDR | connect-many ADDR N | serve-dns ADDR | dns udp|tcp SERVER NAME QTYPE TIMEOUT_MS | listen IP PORT..."
        ),
    }
    Ok(())
}
