//! A hostile DNS server for the privileged tests: what someone who registered a lookalike
//! controls in its DNS answers — their size, the order of their records, how they are cut
//! into TCP segments and how many share one segment — served over UDP and TCP.
//!
//! Hand-built wire format on purpose: the tests need exact control of every byte and of
//! every `write` (each is its own segment: the sockets run with `TCP_NODELAY`, and the
//! server pauses between writes unless told not to).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{v6ext, wire_name};

/// How the server cuts a TCP reply (all the answers to what the client sent at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segments {
    /// One write.
    Whole,
    /// The 2-byte length prefix alone, then the rest.
    Prefix,
    /// The prefix and the first `n` bytes of the DNS header, then the rest.
    Header(usize),
    /// A write every `n` bytes.
    Every(usize),
    /// The prefix's first byte and one urgent byte (`MSG_OOB`, which a reader without
    /// `SO_OOBINLINE` never sees in the stream), then the rest: the stream the socket
    /// reads is the reply, the bytes on the wire are not.
    Urgent,
    /// All but the last byte, then a bare SYN whose sequence number is one before that
    /// byte's (`synjection`), then the last byte.
    SynBeforeLast,
    /// Before any byte of the reply: a bare SYN whose sequence number is a decoy's length
    /// before the reply's first byte, then one segment from there (through a raw socket)
    /// carrying the decoy (a length prefix that spans it and the whole reply, and a
    /// message with an innocent question), then the reply. The client's TCP trims the
    /// bytes before its next expected one: the application reads the reply alone.
    SynDecoy,
    /// Before the reply: one segment at the reply's own sequence number without the ACK
    /// flag (through a raw socket), carrying a decoy whose length prefix spans it and the
    /// reply, then the reply. The client's TCP discards the decoy (no ACK): the
    /// application reads the reply alone.
    NoAckDecoy,
}

impl Segments {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.split_once(':') {
            None if s == "whole" => Segments::Whole,
            None if s == "prefix" => Segments::Prefix,
            None if s == "urgent" => Segments::Urgent,
            None if s == "syn" => Segments::SynBeforeLast,
            None if s == "syndecoy" => Segments::SynDecoy,
            None if s == "noackdecoy" => Segments::NoAckDecoy,
            Some(("header", n)) => Segments::Header(n.parse()?),
            Some(("every", n)) => Segments::Every(n.parse::<usize>()?.max(1)),
            _ => bail!(
                "TCP={s}: want whole, prefix, urgent, syn, syndecoy, noackdecoy, header:N or every:N"
            ),
        })
    }

    /// Where the reply is cut.
    fn cuts(self, len: usize) -> Vec<usize> {
        let cuts = match self {
            Segments::Whole | Segments::SynDecoy | Segments::NoAckDecoy => vec![],
            Segments::Prefix => vec![2],
            Segments::Urgent => vec![1],
            Segments::SynBeforeLast => vec![len.saturating_sub(1)],
            Segments::Header(n) => vec![2 + n],
            Segments::Every(n) => (1..).map(|i| i * n).take_while(|&c| c < len).collect(),
        };
        cuts.into_iter().filter(|&c| c > 0 && c < len).collect()
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Hostile {
    /// Address for A questions not otherwise listed.
    pub a: [u8; 4],
    /// Exact A answers: (name, address).
    pub hosts: Vec<(String, [u8; 4])>,
    /// Domains whose MX answer is big: many worse MX hosts under the domain (whose own
    /// names do not exist), then the preferred one, `best`, last.
    pub big: Vec<String>,
    /// The preferred MX host of the big answers (a host outside their domain).
    pub best: String,
    /// Size the big MX answers reach, in bytes.
    pub size: usize,
    /// How TCP replies are cut.
    pub segments: Segments,
    /// Largest UDP answer sent whatever the client said (0: the client's EDNS size, or 512).
    pub udp_max: usize,
    /// Write the question name ending in a compression pointer to the header (a zero
    /// byte there: the root), as no server does and stub resolvers accept.
    pub question_pointer: bool,
    /// Answer with no question section (QDCOUNT 0): first a text record of an innocent
    /// name, then the records, each owner written in full. musl's stub matches an answer
    /// to its query by id alone and reads its records whatever their owner.
    pub no_question: bool,
    /// Over TCP, an AXFR question answered by two messages of its id, the second without
    /// a question section, as a zone transfer's messages after the first (RFC 5936).
    pub no_question_later: bool,
    /// Answer with another question: an innocent name's in place of the one asked, the
    /// records owned by it (the id and type are the query's). musl and glibc's TCP reader
    /// match an answer to its query by id alone.
    pub other_question: bool,
    /// Answer with the question asked but another type (A for any other, MX for A).
    pub other_type: bool,
    /// Answer with the QR bit clear, as if the answer were a query. Neither glibc nor musl
    /// looks at that bit.
    pub qr_clear: bool,
    /// Pause between a reply's segments, and longest wait for queries pipelined behind
    /// the first. Zero: segments back to back, and only queries already received share
    /// the reply (a benchmark's busy stream rather than a test's idle one).
    pub pause: Duration,
    /// IPv6 extension headers on every reply: on a UDP reply the `chain` (its options
    /// headers, and an atomic fragment's header); on a TCP connection a destination
    /// options header, and a hop-by-hop one before it when two or more (`v6ext`).
    pub v6ext: v6ext::Chain,
}

impl Default for Hostile {
    fn default() -> Self {
        Self {
            a: [192, 0, 2, 53],
            hosts: Vec::new(),
            big: Vec::new(),
            best: String::new(),
            size: 4000,
            segments: Segments::Whole,
            udp_max: 0,
            question_pointer: false,
            no_question: false,
            no_question_later: false,
            other_question: false,
            other_type: false,
            qr_clear: false,
            pause: PAUSE,
            v6ext: v6ext::Chain::default(),
        }
    }
}

/// Reads a question: (name in lower case, end of the question section, qtype).
fn question(q: &[u8]) -> Option<(String, usize, u16)> {
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = *q.get(i)? as usize;
        if len == 0 {
            break;
        }
        let l = q.get(i + 1..i + 1 + len)?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    Some((labels.join("."), i + 5, qtype))
}

/// The UDP payload size the query's OPT record offers, if it has one.
fn edns_size(q: &[u8], qend: usize) -> Option<usize> {
    let arcount = u16::from_be_bytes([*q.get(10)?, *q.get(11)?]);
    // An OPT record right after the question: root name, type 41, class = size.
    (arcount > 0 && q.get(qend) == Some(&0) && q.get(qend + 1..qend + 3) == Some(&[0, 41]))
        .then(|| u16::from_be_bytes([q[qend + 3], q[qend + 4]]) as usize)
}

/// The name a hostile answer puts where the question it hides was.
const INNOCENT: &str = "innocent.example";

/// Appends a record owned by the question name (compressed pointer to offset 12).
fn record(m: &mut Vec<u8>, qtype: u16, rdata: &[u8]) {
    m.extend_from_slice(&[0xc0, 0x0c]);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

/// `m` (`n` records after a question ending at `qend`, each owner the pointer to the
/// question's name) with no question: a text record of an innocent name first, where
/// the question was, then the records with their owner `name` written in full. (What a
/// reader takes for the question's name when it reads one regardless is the innocent
/// one.)
fn without_question(m: &[u8], name: &str, qend: usize, n: u16) -> Option<Vec<u8>> {
    let mut out = m.get(..12)?.to_vec();
    out[4..6].copy_from_slice(&0u16.to_be_bytes());
    out[6..8].copy_from_slice(&(n + 1).to_be_bytes());
    out.extend(wire_name(INNOCENT));
    out.extend_from_slice(&[0, 16, 0, 1, 0, 0, 1, 44, 0, 2, 1, b'x']);
    let mut i = qend;
    for _ in 0..n {
        if m.get(i..i + 2)? != [0xc0, 12] {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*m.get(i + 10)?, *m.get(i + 11)?]));
        out.extend(wire_name(name));
        out.extend_from_slice(m.get(i + 2..i + 12 + len)?);
        i += 12 + len;
    }
    Some(out)
}

fn mx_rdata(preference: u16, host: &str) -> Vec<u8> {
    let mut r = preference.to_be_bytes().to_vec();
    r.extend(wire_name(host));
    r
}

impl Hostile {
    /// `A=IP`, `HOST=NAME=IP`, `BIG=DOMAIN`, `BEST=HOST`, `SIZE=BYTES`,
    /// `TCP=whole|prefix|urgent|syn|header:N|every:N`, `UDPMAX=BYTES`, `PAUSE=MS`,
    /// `QPTR=1`, `NOQ=1|later`, `OTHERQ=1|type`, `QR0=1`, `V6EXT=N`, `V6FRAG=1`.
    pub fn parse(opts: &[&str]) -> anyhow::Result<Self> {
        let mut h = Hostile::default();
        for o in opts {
            match o.split_once('=') {
                Some(("A", ip)) => h.a = ip.parse::<std::net::Ipv4Addr>()?.octets(),
                Some(("HOST", spec)) => {
                    let (name, ip) = spec.split_once('=').context("HOST=NAME=IP")?;
                    let ip = ip.parse::<std::net::Ipv4Addr>()?.octets();
                    h.hosts.push((name.to_ascii_lowercase(), ip));
                }
                Some(("BIG", d)) => h.big.push(d.to_ascii_lowercase()),
                Some(("BEST", host)) => h.best = host.to_ascii_lowercase(),
                Some(("SIZE", n)) => h.size = n.parse()?,
                Some(("TCP", s)) => h.segments = Segments::parse(s)?,
                Some(("UDPMAX", n)) => h.udp_max = n.parse()?,
                Some(("PAUSE", ms)) => h.pause = Duration::from_millis(ms.parse()?),
                Some(("QPTR", v)) => h.question_pointer = v == "1",
                Some(("NOQ", "later")) => h.no_question_later = true,
                Some(("NOQ", v)) => h.no_question = v == "1",
                Some(("OTHERQ", "type")) => h.other_type = true,
                Some(("OTHERQ", v)) => h.other_question = v == "1",
                Some(("QR0", v)) => h.qr_clear = v == "1",
                Some(("V6EXT", n)) => h.v6ext.options = n.parse()?,
                Some(("V6FRAG", v)) => h.v6ext.atomic_fragment = v == "1",
                _ => bail!("serve-hostile option {o}"),
            }
        }
        Ok(h)
    }

    /// Under a big domain, strictly: the worse MX hosts, which do not exist.
    fn under_big(&self, name: &str) -> bool {
        self.big.iter().any(|d| name.ends_with(&format!(".{d}")))
    }

    /// The answer to query `q`, whole (before any UDP size limit).
    pub fn answer(&self, q: &[u8]) -> Option<Vec<u8>> {
        self.answer_nth(q, 0)
    }

    /// The messages answering query `q` over TCP, framed.
    fn tcp_reply(&self, q: &[u8]) -> Option<Vec<u8>> {
        let mut reply = framed(&self.answer(q)?);
        if self.no_question_later && question(q)?.2 == 252 {
            reply.extend(framed(&self.answer_nth(q, 1)?));
        }
        Some(reply)
    }

    /// The answer to query `q`, the `nth` message of it (from 0).
    fn answer_nth(&self, q: &[u8], nth: usize) -> Option<Vec<u8>> {
        let (name, qend, qtype) = question(q)?;
        let mut m = q.get(..2)?.to_vec();
        let rcode = if self.under_big(&name) { 3 } else { 0 };
        m.extend_from_slice(&[0x85, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(q.get(12..qend)?);
        let mut n = 0u16;
        match qtype {
            _ if rcode != 0 => {}
            15 if self.big.contains(&name) => {
                // Worse hosts first, each an uncompressed long name, until the answer
                // is big; the preferred host last.
                let last = mx_rdata(10, &self.best);
                let mut i = 0;
                while m.len() + 12 + last.len() < self.size {
                    let filler = format!("f{i:04}-{}.{name}", "x".repeat(48));
                    record(&mut m, 15, &mx_rdata(20, &filler));
                    n += 1;
                    i += 1;
                }
                record(&mut m, 15, &last);
                n += 1;
            }
            15 => {
                record(&mut m, 15, &mx_rdata(10, &format!("mx.{name}")));
                n += 1;
            }
            // An AXFR answered as an A question: the records only need to be there.
            1 | 252 => {
                let addr = self
                    .hosts
                    .iter()
                    .find(|(h, _)| *h == name)
                    .map_or(self.a, |(_, a)| *a);
                record(&mut m, 1, &addr);
                n += 1;
            }
            // AAAA and the rest: no data, so clients use the IPv4 addresses.
            _ => {}
        }
        m[6..8].copy_from_slice(&n.to_be_bytes());
        if self.question_pointer {
            // The name's closing zero becomes a pointer to header byte 4 (QDCOUNT's high
            // byte, zero). The records point at offset 12 only, so nothing else moves.
            let mut i = 12;
            while *m.get(i)? != 0 {
                i += 1 + m[i] as usize;
            }
            m.splice(i..=i, [0xc0, 0x04]);
        }
        if self.other_type {
            let other: u16 = if qtype == 1 { 15 } else { 1 };
            m.get_mut(qend - 4..qend - 2)?
                .copy_from_slice(&other.to_be_bytes());
        }
        if self.qr_clear {
            m[2] &= 0x7f;
        }
        if self.other_question {
            // The records point at offset 12: they are owned by the name put there.
            m.splice(12..qend - 4, wire_name(INNOCENT));
        }
        if self.no_question || (self.no_question_later && nth > 0) {
            m = without_question(&m, &name, qend, n)?;
        }
        Some(m)
    }

    /// The UDP answer: whole if it fits what the client offered, else cut to the
    /// question with TC set (the client asks again over TCP).
    fn udp_answer(&self, q: &[u8]) -> Option<Vec<u8>> {
        let whole = self.answer(q)?;
        let (_, qend, _) = question(q)?;
        let limit = match self.udp_max {
            0 => edns_size(q, qend).unwrap_or(512).max(512),
            n => n,
        };
        if whole.len() <= limit {
            return Some(whole);
        }
        let mut tc = whole.get(..qend)?.to_vec();
        tc[2] |= 0x02;
        tc[6..8].copy_from_slice(&[0, 0]);
        Some(tc)
    }

    /// Serves UDP and TCP on `addr`; prints `ready` once both are bound.
    pub fn serve(self, addr: SocketAddr) -> anyhow::Result<()> {
        let udp = UdpSocket::bind(addr).context("bind udp")?;
        let tcp = TcpListener::bind(addr).context("bind tcp")?;
        if matches!(self.segments, Segments::SynDecoy | Segments::NoAckDecoy) {
            // Segments sent outside the socket carry no timestamp option: connections in
            // this network namespace negotiate none.
            std::fs::write("/proc/sys/net/ipv4/tcp_timestamps", "0")
                .context("turning TCP timestamps off")?;
        }
        if self.v6ext.options > 0 {
            // Accepted connections inherit the listener's options.
            v6ext::sticky(tcp.as_raw_fd(), self.v6ext.options).context("V6EXT on TCP")?;
        }
        let me = self.clone();
        std::thread::spawn(move || {
            for s in tcp.incoming().flatten() {
                let h = me.clone();
                std::thread::spawn(move || h.serve_tcp(s));
            }
        });
        println!("ready");
        std::io::stdout().flush()?;
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, peer) = udp.recv_from(&mut buf)?;
            if let Some(a) = self.udp_answer(&buf[..n]) {
                if self.v6ext != v6ext::Chain::default() {
                    v6ext::send_udp(addr, peer, &a, self.v6ext)?;
                } else {
                    udp.send_to(&a, peer)?;
                }
            }
        }
    }

    /// Answers every query on a connection: what the client sent together is answered
    /// together, in one reply cut as `segments` says.
    fn serve_tcp(&self, mut s: TcpStream) -> Option<()> {
        s.set_nodelay(true).ok()?;
        loop {
            let mut reply = Vec::new();
            let q = read_msg(&mut s, None)?;
            reply.extend(self.tcp_reply(&q)?);
            // Queries that came with it (pipelined) share the reply.
            while self.pause > Duration::ZERO || buffered(&s) {
                let wait = Some(self.pause.max(Duration::from_millis(1)));
                let Some(q) = read_msg(&mut s, wait) else {
                    break;
                };
                reply.extend(self.tcp_reply(&q)?);
            }
            s.set_read_timeout(None).ok()?;
            match self.segments {
                Segments::Urgent => write_urgent(&mut s, &reply, self.pause).ok()?,
                Segments::SynBeforeLast => {
                    write_syn_before_last(&mut s, &reply, self.pause).ok()?
                }
                Segments::SynDecoy => write_syn_decoy(&s, &reply, self.pause).ok()?,
                Segments::NoAckDecoy => write_noack_decoy(&mut s, &reply, self.pause).ok()?,
                _ => {
                    let cuts = self.segments.cuts(reply.len());
                    write_cut_paced(&mut s, &reply, &cuts, self.pause).ok()?;
                }
            }
        }
    }
}

/// Writes `bytes[0]` and an urgent byte the reader does not see, then the rest.
fn write_urgent(s: &mut TcpStream, bytes: &[u8], pause: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let first = [*bytes.first().unwrap_or(&0), 0xee];
    // SAFETY: a valid socket and a live 2-byte buffer.
    let n = unsafe { libc::send(s.as_raw_fd(), first.as_ptr().cast(), 2, libc::MSG_OOB) };
    if n != 2 {
        return Err(std::io::Error::last_os_error());
    }
    std::thread::sleep(pause.max(Duration::from_millis(5)));
    s.write_all(bytes.get(1..).unwrap_or_default())
}

/// Writes all of `bytes` but the last, a bare SYN one sequence number before that byte,
/// then the byte.
fn write_syn_before_last(s: &mut TcpStream, bytes: &[u8], pause: Duration) -> anyhow::Result<()> {
    let (head, last) = bytes.split_at(bytes.len().saturating_sub(1));
    s.write_all(head)?;
    let pause = pause.max(Duration::from_millis(5));
    std::thread::sleep(pause);
    let seq = crate::synjection::next_send_seq(s)?;
    crate::synjection::send_syn(s.local_addr()?, s.peer_addr()?, seq.wrapping_sub(1))?;
    std::thread::sleep(pause);
    s.write_all(last)?;
    Ok(())
}

/// Sends `reply` behind a decoy at a sequence number a bare SYN made the programs on the
/// path start from (`Segments::SynDecoy`).
fn write_syn_decoy(s: &TcpStream, reply: &[u8], pause: Duration) -> anyhow::Result<()> {
    let mut bytes = decoy_for(reply)?;
    let decoy = bytes.len() as u32;
    bytes.extend_from_slice(reply);
    let (seq, ack) = (
        crate::synjection::next_send_seq(s)?,
        crate::synjection::next_recv_seq(s)?,
    );
    let (from, to) = (s.local_addr()?, s.peer_addr()?);
    let start = seq.wrapping_sub(decoy);
    crate::synjection::send_syn(from, to, start.wrapping_sub(1))?;
    std::thread::sleep(pause.max(Duration::from_millis(5)));
    crate::synjection::send_data(from, to, start, ack, &bytes)
}

/// An answer to an innocent question, framed to span itself and `reply` after it.
fn decoy_for(reply: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut msg = vec![0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(b"\x02ok\x07example\x00\x00\x01\x00\x01");
    let spans = u16::try_from(msg.len() + reply.len()).context("reply too long")?;
    let mut bytes = spans.to_be_bytes().to_vec();
    bytes.extend_from_slice(&msg);
    Ok(bytes)
}

/// Sends a decoy at the reply's sequence number without ACK (`Segments::NoAckDecoy`),
/// then the reply.
fn write_noack_decoy(s: &mut TcpStream, reply: &[u8], pause: Duration) -> anyhow::Result<()> {
    let decoy = decoy_for(reply)?;
    let seq = crate::synjection::next_send_seq(s)?;
    crate::synjection::send_unacked(s.local_addr()?, s.peer_addr()?, seq, &decoy)?;
    std::thread::sleep(pause.max(Duration::from_millis(5)));
    s.write_all(reply)?;
    Ok(())
}

/// `msg` with its 2-byte length prefix.
pub fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

/// Reads one length-prefixed message, waiting at most `wait` for it to start.
fn read_msg(s: &mut TcpStream, wait: Option<Duration>) -> Option<Vec<u8>> {
    s.set_read_timeout(wait).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    s.set_read_timeout(None).ok()?;
    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut q).ok()?;
    Some(q)
}

/// The pause between segments unless told otherwise.
const PAUSE: Duration = Duration::from_millis(30);

/// Whether bytes of another query have already arrived on `s`.
fn buffered(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let some = matches!(s.peek(&mut b), Ok(n) if n > 0);
    s.set_nonblocking(false).is_ok() && some
}

/// Writes `bytes` as separate segments cut at `cuts`, pausing between them so each
/// leaves on its own (the socket has `TCP_NODELAY`).
pub fn write_cut(s: &mut TcpStream, bytes: &[u8], cuts: &[usize]) -> std::io::Result<()> {
    write_cut_paced(s, bytes, cuts, PAUSE)
}

/// `write_cut` with `pause` between the segments (none: back to back, each write still
/// its own segment while the window allows).
fn write_cut_paced(
    s: &mut TcpStream,
    bytes: &[u8],
    cuts: &[usize],
    pause: Duration,
) -> std::io::Result<()> {
    let mut from = 0;
    for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
        s.write_all(&bytes[from..c])?;
        s.flush()?;
        from = c;
        if c < bytes.len() && pause > Duration::ZERO {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}
