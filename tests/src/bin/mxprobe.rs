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
use mxsentry_tests::{
    dnsclient::{self, Transport},
    hostile::Hostile,
};

fn qtype(s: &str) -> anyhow::Result<u16> {
    Ok(match s {
        "A" => 1,
        "MX" => 15,
        "AAAA" => 28,
        "AXFR" => 252,
        _ => bail!("unknown qtype {s}"),
    })
}

/// What the test DNS responder answers.
#[derive(Clone)]
struct Zone {
    /// Address for every A question.
    a: [u8; 4],
    /// Address for every AAAA question.
    aaaa: [u8; 16],
    /// Names (and everything under them) that do not exist.
    nx: Vec<String>,
    /// Names (and everything under them) that exist with no record of any type (NODATA).
    nodata: Vec<String>,
}

impl Default for Zone {
    fn default() -> Self {
        Self {
            a: [192, 0, 2, 53],
            aaaa: [
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
            ],
            nx: Vec::new(),
            nodata: Vec::new(),
        }
    }
}

impl Zone {
    /// `A=IP`, `AAAA=IP`, `NX=NAME` options after the address.
    fn parse(opts: &[&str]) -> anyhow::Result<Self> {
        let mut z = Zone::default();
        for o in opts {
            match o.split_once('=') {
                Some(("A", ip)) => z.a = ip.parse::<std::net::Ipv4Addr>()?.octets(),
                Some(("AAAA", ip)) => z.aaaa = ip.parse::<std::net::Ipv6Addr>()?.octets(),
                Some(("NX", name)) => z.nx.push(name.to_ascii_lowercase()),
                Some(("NODATA", name)) => z.nodata.push(name.to_ascii_lowercase()),
                _ => bail!("serve-dns option {o}: want A=IP, AAAA=IP, NX=NAME or NODATA=NAME"),
            }
        }
        Ok(z)
    }

    fn is_nx(&self, q: &[u8]) -> bool {
        under(q, &self.nx)
    }

    fn is_nodata(&self, q: &[u8]) -> bool {
        under(q, &self.nodata)
    }
}

/// Whether the question of `q` is one of `names` or under one.
fn under(q: &[u8], names: &[String]) -> bool {
    let name = text_name(q).to_ascii_lowercase();
    names
        .iter()
        .any(|n| name == *n || name.ends_with(&format!(".{n}")))
}

/// The question name of a message as text.
fn text_name(q: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut i = 12;
    while let Some(&len) = q.get(i) {
        if len == 0 {
            break;
        }
        let Some(l) = q.get(i + 1..i + 1 + len as usize) else {
            break;
        };
        labels.push(String::from_utf8_lossy(l).into_owned());
        i += 1 + len as usize;
    }
    labels.join(".")
}

/// Answers every question with one record: A and AAAA from the zone, MX 10 mx.<name>;
/// NXDOMAIN for the zone's missing names.
fn answer(q: &[u8], zone: &Zone) -> Option<Vec<u8>> {
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
    if zone.is_nx(q) || zone.is_nodata(q) {
        let rcode = if zone.is_nx(q) { 0x83 } else { 0x80 };
        m.extend_from_slice(&[0x81, rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(question);
        return Some(m);
    }
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(question);
    m.extend_from_slice(&[0xc0, 0x0c]);
    m.extend_from_slice(&qt.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    let rdata: Vec<u8> = match qt {
        28 => zone.aaaa.to_vec(),
        15 => {
            let mut r = vec![0, 10, 2, b'm', b'x'];
            r.extend_from_slice(&[0xc0, 0x0c]);
            r
        }
        _ => zone.a.to_vec(),
    };
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend(rdata);
    Some(m)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn serve_dns(addr: SocketAddr, zone: Zone) -> anyhow::Result<()> {
    let udp = UdpSocket::bind(addr).context("bind udp")?;
    let tcp = TcpListener::bind(addr).context("bind tcp")?;
    let tz = zone.clone();
    std::thread::spawn(move || {
        for s in tcp.incoming().flatten() {
            let z = tz.clone();
            std::thread::spawn(move || serve_tcp_conn(s, &z));
        }
    });
    println!("ready");
    std::io::stdout().flush()?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = udp.recv_from(&mut buf)?;
        if let Some(a) = answer(&buf[..n], &zone) {
            udp.send_to(&a, peer)?;
        }
    }
}

/// A forwarding resolver: answers queries on `listen` by asking `upstream` over a fresh
/// UDP socket per query, connected or not (`sendto`), as unbound and dnsmasq do. Prints
/// `ready`, then one line per upstream answer received (or `upstream timeout`), so a
/// test sees which answers reached the resolver.
fn forward_dns(listen: SocketAddr, upstream: SocketAddr, connected: bool) -> anyhow::Result<()> {
    let udp = UdpSocket::bind(listen).context("bind udp")?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = udp.recv_from(&mut buf)?;
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let up = UdpSocket::bind(bind)?;
        up.set_read_timeout(Some(Duration::from_millis(1500)))?;
        if connected {
            up.connect(upstream)?;
            up.send(&buf[..n])?;
        } else {
            up.send_to(&buf[..n], upstream)?;
        }
        let mut ans = [0u8; 2048];
        match up.recv(&mut ans) {
            Ok(m) => {
                println!("upstream answer {}", text_name(&ans[..m]));
                udp.send_to(&ans[..m], peer)?;
            }
            Err(_) => println!("upstream timeout {}", text_name(&buf[..n])),
        }
        std::io::stdout().flush()?;
    }
}

fn serve_tcp_conn(mut s: TcpStream, zone: &Zone) -> Option<()> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut q).ok()?;
    let a = answer(&q, zone)?;
    let mut out = (a.len() as u16).to_be_bytes().to_vec();
    out.extend(a);
    s.write_all(&out).ok()
}

/// Sends `n` A queries for distinct names `q<i>.<suffix>` over UDP, one every `gap_us`
/// microseconds, not waiting for answers; prints how many were sent.
fn query_many(server: SocketAddr, suffix: &str, n: u32, gap_us: u64) -> anyhow::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(server)?;
    for i in 0..n {
        s.send(&dnsclient::query(
            i as u16,
            &format!("q{i}.{suffix}"),
            1,
            None,
        ))?;
        std::thread::sleep(Duration::from_micros(gap_us));
    }
    println!("{n}");
    Ok(())
}

/// Looks up `n` distinct names `l<i>.<suffix>` (A) one after another, each on a fresh
/// socket as a stub resolver does, and prints how many were answered (with an
/// answer record), how many timed out, and latency quantiles in microseconds.
fn lookup_many(server: SocketAddr, suffix: &str, n: u32, timeout_ms: u64) -> anyhow::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let (mut answered, mut timeouts, mut failed) = (0u32, 0u32, 0u32);
    let mut lat = Vec::with_capacity(n as usize);
    let mut buf = [0u8; 2048];
    for i in 0..n {
        let s = UdpSocket::bind(bind)?;
        s.set_read_timeout(Some(Duration::from_millis(timeout_ms)))?;
        s.connect(server)?;
        let id = i as u16;
        let start = std::time::Instant::now();
        s.send(&dnsclient::query(id, &format!("l{i}.{suffix}"), 1, None))?;
        match s.recv(&mut buf) {
            Ok(m) if m >= 12 && buf[..2] == id.to_be_bytes() => {
                lat.push(start.elapsed().as_micros() as u64);
                // RCODE 0 and at least one answer record.
                if buf[3] & 0x0f == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0 {
                    answered += 1;
                } else {
                    failed += 1;
                }
            }
            Ok(_) => failed += 1,
            Err(_) => timeouts += 1,
        }
    }
    lat.sort_unstable();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    let v = serde_json::json!({
        "sent": n, "answered": answered, "failed": failed, "timeouts": timeouts,
        "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99),
        "mean_us": if lat.is_empty() { 0 } else { lat.iter().sum::<u64>() / lat.len() as u64 },
    });
    println!("{v}");
    Ok(())
}

/// Sends `n` A queries for distinct names at `rate` per second (busy-paced in 1 ms
/// slices), not waiting for answers; prints how many went out and how long it took.
fn query_paced(server: SocketAddr, suffix: &str, n: u64, rate: u64) -> anyhow::Result<()> {
    // Unconnected: an ICMP unreachable from a server that does not answer must not
    // turn later sends into ECONNREFUSED.
    let s = UdpSocket::bind("0.0.0.0:0")?;
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    while sent + failed < n {
        // How many should be out by now.
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(n);
        while sent + failed < due {
            let i = sent + failed;
            match s.send_to(
                &dnsclient::query(i as u16, &format!("p{i}.{suffix}"), 1, None),
                server,
            ) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
        if sent + failed < n {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let ns = start.elapsed().as_nanos();
    println!(
        "{}",
        serde_json::json!({ "sent": sent, "failed": failed, "ns": ns })
    );
    Ok(())
}

/// The transport named `transport`, and a query of type `qt` for each of `names`
/// (comma-separated), numbered from 0x4d58.
fn queries(transport: &str, names: &str, qt: u16) -> anyhow::Result<(Transport, Vec<Vec<u8>>)> {
    let how = Transport::parse(transport)?;
    let edns = match how {
        Transport::UdpEdns(n) => Some(n),
        _ => None,
    };
    let queries = names
        .split(',')
        .enumerate()
        .map(|(i, n)| dnsclient::query(0x4d58 + i as u16, n, qt, edns))
        .collect();
    Ok((how, queries))
}

/// Asks `server` for `names` (comma-separated: several go together, pipelined on TCP)
/// over `transport`; prints the query and answer bytes (hex) of the first, and the
/// answers of all.
fn dns_client(
    transport: &str,
    server: SocketAddr,
    names: &str,
    qt: u16,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    let (how, queries) = queries(transport, names, qt)?;
    let answers = dnsclient::ask(how, server, &queries, Duration::from_millis(timeout_ms))?;
    let v = serde_json::json!({
        "query": hex(&queries[0]),
        "answer": answers[0].as_deref().map(hex),
        "answers": answers.iter().map(|a| a.as_deref().map(hex)).collect::<Vec<_>>(),
    });
    println!("{v}");
    Ok(())
}

/// As `dns_client`, `times` over from this one process (for TCP, a connection each time),
/// as a resolver or MTA that stays running would: printing only the last set's answers.
fn dns_repeat(
    transport: &str,
    server: SocketAddr,
    names: &str,
    qt: u16,
    timeout_ms: u64,
    times: u32,
) -> anyhow::Result<()> {
    let (how, queries) = queries(transport, names, qt)?;
    let mut answers = Vec::new();
    for _ in 0..times.max(1) {
        answers = dnsclient::ask(how, server, &queries, Duration::from_millis(timeout_ms))?;
    }
    let v = serde_json::json!({
        "times": times,
        "answers": answers.iter().map(|a| a.as_deref().map(hex)).collect::<Vec<_>>(),
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

/// SO_LINGER {on, 0}: close() sends a reset and leaves no TIME_WAIT.
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd as _;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a properly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn listen(ip: &str, ports: &[String]) -> anyhow::Result<()> {
    for p in ports {
        let addr = SocketAddr::new(ip.parse()?, p.parse()?);
        let l = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        // A deep accept queue: timed bursts of connects must never wait out a SYN
        // retransmit because this thread was not scheduled in time.
        {
            use std::os::fd::AsRawFd as _;
            // SAFETY: listen(2) again on our own listening socket only resizes its queue.
            unsafe { libc::listen(l.as_raw_fd(), 4096) };
        }
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
                // Each attempt, refused or not, passes through the connect hook once. Closed
                // with a reset: tens of thousands of TIME_WAIT sockets would make every
                // later connect search for a free port (a millisecond of kernel time each,
                // which also leaves the hook's programs running on a cold cache).
                if let Ok(s) = TcpStream::connect(addr) {
                    reset_on_close(&s);
                }
            }
            println!("{n}");
        }
        ["connect-loop", millis, gap_us, addrs @ ..] => {
            // Connects round the addresses for MILLIS ms, GAP_US apart, counting how each
            // ended: a blocked address hammered across a program switch must never be "ok".
            let addrs: Vec<SocketAddr> =
                addrs.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
            let (until, gap) = (
                std::time::Instant::now() + Duration::from_millis(millis.parse()?),
                Duration::from_micros(gap_us.parse()?),
            );
            let mut counts = std::collections::BTreeMap::<String, u64>::new();
            'outer: loop {
                for a in &addrs {
                    if std::time::Instant::now() >= until {
                        break 'outer;
                    }
                    let r = connect(*a);
                    let kind = if r == "ok" || r == "eperm" {
                        r
                    } else {
                        "other".into()
                    };
                    *counts.entry(kind).or_default() += 1;
                    std::thread::sleep(gap);
                }
            }
            println!("{}", serde_json::json!(counts));
        }
        ["connect-timed", addr, n] => {
            // Wall time of n connects (each closed at once), for attached/detached ratios.
            let addr: SocketAddr = addr.parse()?;
            let n: u64 = n.parse()?;
            let start = std::time::Instant::now();
            for _ in 0..n {
                let s = TcpStream::connect(addr)?;
                // Reset instead of FIN: no TIME_WAIT pile-up that would slow later
                // rounds' port searches and bias the attached/detached ratio.
                reset_on_close(&s);
                drop(s);
            }
            let ns = start.elapsed().as_nanos();
            println!("{}", serde_json::json!({ "n": n, "ns": ns }));
        }
        ["udp-timed", addr, n] => {
            // Wall time of n small (64-byte) datagrams sent to a non-DNS port.
            let addr: SocketAddr = addr.parse()?;
            let n: u64 = n.parse()?;
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(addr)?;
            let payload = [0x55u8; 64];
            let start = std::time::Instant::now();
            for _ in 0..n {
                let _ = s.send(&payload);
            }
            let ns = start.elapsed().as_nanos();
            println!("{}", serde_json::json!({ "n": n, "ns": ns }));
        }
        ["query-flood", server, template, n, rate, distinct] => {
            let v = mxsentry_tests::flood::query_flood(
                server.parse()?,
                template,
                n.parse()?,
                rate.parse()?,
                distinct.parse()?,
            )?;
            println!("{v}");
        }
        ["query-paced", server, suffix, n, rate] => {
            query_paced(server.parse()?, suffix, n.parse()?, rate.parse()?)?
        }
        ["udp-many", addr, n] => {
            let addr: SocketAddr = addr.parse()?;
            let n: u64 = n.parse()?;
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(addr)?;
            for _ in 0..n {
                let _ = s.send(b"not dns");
            }
            println!("{n}");
        }
        ["serve-dns", addr, opts @ ..] => serve_dns(addr.parse()?, Zone::parse(opts)?)?,
        ["serve-hostile", addr, opts @ ..] => Hostile::parse(opts)?.serve(addr.parse()?)?,
        ["forward-dns", listen, upstream, how] => {
            forward_dns(listen.parse()?, upstream.parse()?, *how == "connected")?
        }
        ["dns", transport, server, name, qt, timeout_ms] => dns_client(
            transport,
            server.parse()?,
            name,
            qtype(qt)?,
            timeout_ms.parse()?,
        )?,
        ["dns-repeat", transport, server, name, qt, timeout_ms, times] => dns_repeat(
            transport,
            server.parse()?,
            name,
            qtype(qt)?,
            timeout_ms.parse()?,
            times.parse()?,
        )?,
        ["lookup-many", server, suffix, n, timeout_ms] => {
            lookup_many(server.parse()?, suffix, n.parse()?, timeout_ms.parse()?)?
        }
        ["query-many", server, suffix, n, gap_us] => {
            query_many(server.parse()?, suffix, n.parse()?, gap_us.parse()?)?
        }
        ["udp-send", addr, text] => {
            // Arbitrary bytes to a port (a malformed "DNS" payload for the parser's counters).
            let addr: SocketAddr = addr.parse()?;
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            UdpSocket::bind(bind)?.send_to(text.as_bytes(), addr)?;
            println!("sent");
        }
        ["listen", ip, ports @ ..] => {
            let ports: Vec<String> = ports.iter().map(|s| s.to_string()).collect();
            listen(ip, &ports)?
        }
        _ => bail!(
            "usage: mxprobe connect ADDR | connect-many ADDR N | connect-loop MILLIS GAP_US ADDR... | serve-dns ADDR [A=IP] [AAAA=IP] [NX=NAME] [NODATA=NAME]... | serve-hostile ADDR [A=IP] [HOST=NAME=IP] [BIG=DOMAIN] [BEST=HOST] [SIZE=N] [TCP=whole|prefix|header:N|every:N] [UDPMAX=N] [PAUSE=MS] [QPTR=1] [V6EXT=N] [V6FRAG=1]... | forward-dns LISTEN UPSTREAM connected|unconnected | dns udp|udp-edns:SIZE|tcp|tcp-prefix|tcp-header:N SERVER NAME[,NAME...] QTYPE TIMEOUT_MS | dns-repeat TRANSPORT SERVER NAME[,NAME...] QTYPE TIMEOUT_MS TIMES | query-many SERVER SUFFIX N GAP_US | lookup-many SERVER SUFFIX N TIMEOUT_MS | udp-send ADDR TEXT | udp-timed ADDR N | query-paced SERVER SUFFIX N RATE | query-flood SERVER TEMPLATE N RATE DISTINCT | connect-timed ADDR N | udp-many ADDR N | listen IP PORT..."
        ),
    }
    Ok(())
}
