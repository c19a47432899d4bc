//! Kernel DNS records put back together into whole messages.
//!
//! UDP: a message's records are its consecutive parts (same socket, direction and
//! timestamp); most messages fit one record and pass straight through. TCP: data records
//! carry each direction of a socket as a stream of bytes by offset, length prefixes
//! included, and message records say where each message starts and what the kernel
//! decided for it; the stream is cut into messages here the way the kernel cut it.
//!
//! Everything is bounded: a message whose rest does not come within a second is handed on
//! cut (`Message::partial` after parsing), as is one pushed out of a full table; each is
//! counted by `Cut` reason. A stream that lost a record resumes at the next message the
//! kernel marked.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use sensor_common::{
    DnsHeader, Verdict,
    event::{DNS_FLAG_MESSAGE, DNS_FLAG_RESOLVER, DNS_FLAG_STREAM_START, DNS_FLAG_TCP, Direction},
};

use super::decode::DnsPart;
use crate::dns::Cut;

/// How long a message may wait for its next part.
const IDLE: Duration = Duration::from_secs(1);
/// How long a TCP stream with nothing pending is remembered.
const STREAM_IDLE: Duration = Duration::from_secs(30);
/// How often the tables are swept for what waited too long.
const SWEEP: Duration = Duration::from_millis(250);
/// UDP messages being put together at once.
const MAX_UDP: usize = 1024;
/// TCP streams followed at once.
const MAX_STREAMS: usize = 4096;
/// Message records waiting for their bytes, per stream.
const MAX_MARKS: usize = 64;

/// A DNS message put back together.
#[derive(Clone, Debug)]
pub struct DnsMessage {
    /// Its header: the socket, and the kernel's decision (`msg_len`, `verdict`,
    /// `qname_hash`).
    pub hdr: DnsHeader,
    /// Its bytes: `hdr.msg_len` of them, fewer when cut.
    pub bytes: Vec<u8>,
    /// Why it is cut, when it is.
    pub cut: Option<Cut>,
}

/// A UDP message whose parts are still coming.
struct Pending {
    hdr: DnsHeader,
    bytes: Vec<u8>,
    /// A part went missing: later ones cannot be placed.
    gap: bool,
    last: Instant,
}

/// One direction of a TCP socket.
struct Stream {
    /// Stream offset of `buf[0]`, where a message starts (when `synced`).
    base: u32,
    /// Bytes from `base` on, without holes.
    buf: Vec<u8>,
    /// `buf` starts at a message boundary.
    synced: bool,
    /// Message records not yet matched with their bytes, by stream offset.
    marks: HashMap<u32, DnsHeader>,
    /// The socket as its latest record described it.
    socket: DnsHeader,
    last: Instant,
}

impl Stream {
    fn new(socket: DnsHeader, now: Instant) -> Self {
        Self {
            base: 0,
            buf: Vec::new(),
            synced: false,
            marks: HashMap::new(),
            socket,
            last: now,
        }
    }

    /// Records a message record, dropping stale ones when too many wait.
    fn mark(&mut self, hdr: DnsHeader) {
        if self.marks.len() >= MAX_MARKS {
            let base = self.base;
            self.marks
                .retain(|&off, _| off.wrapping_sub(base) as i32 >= 0);
            if self.marks.len() >= MAX_MARKS {
                self.marks.clear();
            }
        }
        self.marks.insert(hdr.offset, hdr);
    }

    /// The started message as it stands, cut for `why`, if its question is known.
    fn flush(&mut self, why: Cut, out: &mut Vec<DnsMessage>) -> Option<Cut> {
        let started = self.synced && !self.buf.is_empty();
        let bytes = self.buf.get(2..).map(<[u8]>::to_vec).unwrap_or_default();
        self.buf.clear();
        self.synced = false;
        if !started {
            // Nothing of a message is pending: a mark at `base` belongs to data to come.
            return None;
        }
        let mark = self.marks.remove(&self.base);
        // The kernel dropped the rest of a blocked answer: cut on purpose, not a loss.
        let why = match mark {
            Some(h) if h.verdict == Verdict::Blocked as u32 => Cut::Dropped,
            _ => why,
        };
        if let Some(hdr) = mark {
            out.push(DnsMessage {
                hdr,
                bytes,
                cut: Some(why),
            });
        }
        Some(why)
    }

    /// Adds data record `part`; returns a message cut short by a gap, if any.
    fn data(&mut self, part: &DnsPart, out: &mut Vec<DnsMessage>) -> Option<Cut> {
        let (off, d) = (part.hdr.offset, &part.data);
        let mut cut = None;
        if part.hdr.flags & DNS_FLAG_STREAM_START != 0 {
            cut = self.flush(Cut::Gap, out);
            // Message records of the new stream came with this data (same packet).
            self.marks.retain(|_, h| h.ts_ns == part.hdr.ts_ns);
            self.resync(off, d, Some(off));
        } else if self.synced && off == self.base.wrapping_add(self.buf.len() as u32) {
            self.buf.extend_from_slice(d);
        } else {
            cut = self.flush(Cut::Gap, out);
            self.resync(off, d, None);
        }
        self.frame(out);
        cut
    }

    /// Starts over at `start`, or at the first marked message inside `d` (at `off`).
    fn resync(&mut self, off: u32, d: &[u8], start: Option<u32>) {
        let inside = |m: u32| (m.wrapping_sub(off) as usize) < d.len();
        let start = start.or_else(|| {
            self.marks
                .keys()
                .copied()
                .filter(|&m| inside(m))
                .min_by_key(|&m| m.wrapping_sub(off))
        });
        if let Some(m) = start {
            self.base = m;
            self.buf = d[m.wrapping_sub(off) as usize..].to_vec();
            self.synced = true;
        }
    }

    /// Hands on every whole message at the front of the buffer.
    fn frame(&mut self, out: &mut Vec<DnsMessage>) {
        while self.synced && self.buf.len() >= 2 {
            let len = u16::from_be_bytes([self.buf[0], self.buf[1]]) as usize;
            if self.buf.len() < 2 + len {
                break;
            }
            let hdr = self.marks.remove(&self.base).unwrap_or(DnsHeader {
                // Its message record was lost (counted in the kernel's loss counter): the
                // kernel's decision is not known, nor whether the asker received it. It
                // is handed on as a local resolver's upstream copy, which teaches no route
                // an asker received: taken as delivered, a lookalike's answer the kernel
                // dropped (its record lost to a flooded ring) taught address blocks on
                // whatever hosts it named.
                flags: self.socket.flags | DNS_FLAG_MESSAGE | unreceived(&self.socket),
                msg_len: len as u32,
                verdict: Verdict::Allowed as u32,
                qname_hash: 0,
                ..self.socket
            });
            out.push(DnsMessage {
                hdr,
                bytes: self.buf[2..2 + len].to_vec(),
                cut: None,
            });
            self.buf.drain(..2 + len);
            self.base = self.base.wrapping_add(2 + len as u32);
        }
    }
}

/// `DNS_FLAG_RESOLVER` for an arriving message (an answer no asker is known to have
/// received), else nothing.
fn unreceived(socket: &DnsHeader) -> u32 {
    if socket.direction == Direction::Ingress as u8 {
        DNS_FLAG_RESOLVER
    } else {
        0
    }
}

/// Puts DNS records back together into messages.
#[derive(Default)]
pub struct Assembler {
    udp: HashMap<(u64, u8, u64), Pending>,
    tcp: HashMap<(u64, u8), Stream>,
    last_sweep: Option<Instant>,
}

impl Assembler {
    /// Takes one record; whole messages (and cut ones) go to `out`, and the reasons of
    /// the cut ones are returned for counting.
    pub fn push(&mut self, part: DnsPart, now: Instant, out: &mut Vec<DnsMessage>) -> Vec<Cut> {
        let mut cuts = Vec::new();
        if part.hdr.flags & DNS_FLAG_TCP == 0 {
            self.udp(part, now, out, &mut cuts);
            return cuts;
        }
        let key = (part.hdr.cookie, part.hdr.direction);
        if !self.tcp.contains_key(&key) && self.tcp.len() >= MAX_STREAMS {
            evict_oldest(
                &mut self.tcp,
                |s| s.last,
                |mut s| {
                    cuts.extend(s.flush(Cut::Evicted, out));
                },
            );
        }
        let st = self
            .tcp
            .entry(key)
            .or_insert_with(|| Stream::new(part.hdr, now));
        st.last = now;
        st.socket = part.hdr;
        if part.hdr.flags & DNS_FLAG_MESSAGE != 0 {
            st.mark(part.hdr);
        } else {
            cuts.extend(st.data(&part, out));
        }
        cuts
    }

    fn udp(&mut self, part: DnsPart, now: Instant, out: &mut Vec<DnsMessage>, cuts: &mut Vec<Cut>) {
        let h = part.hdr;
        if h.offset == 0 && h.cap_len == h.msg_len {
            out.push(DnsMessage {
                hdr: h,
                bytes: part.data,
                cut: None,
            });
            return;
        }
        let key = (h.cookie, h.direction, h.ts_ns);
        if !self.udp.contains_key(&key) && self.udp.len() >= MAX_UDP {
            evict_oldest(
                &mut self.udp,
                |p| p.last,
                |p| {
                    cuts.push(Cut::Evicted);
                    out.push(cut_message(p, Cut::Evicted));
                },
            );
        }
        let p = self.udp.entry(key).or_insert_with(|| Pending {
            hdr: h,
            bytes: Vec::new(),
            gap: false,
            last: now,
        });
        p.last = now;
        if !p.gap && h.offset as usize == p.bytes.len() {
            p.bytes.extend_from_slice(&part.data);
        } else {
            p.gap = true;
        }
        let last = h.offset as usize + part.data.len() >= h.msg_len as usize;
        if last && let Some(p) = self.udp.remove(&key) {
            if p.gap {
                cuts.push(Cut::Gap);
                out.push(cut_message(p, Cut::Gap));
            } else {
                out.push(DnsMessage {
                    hdr: p.hdr,
                    bytes: p.bytes,
                    cut: None,
                });
            }
        }
    }

    /// Hands on, cut, what waited too long for its rest; forgets idle streams.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<DnsMessage>) -> Vec<Cut> {
        let mut cuts = Vec::new();
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < SWEEP)
        {
            return cuts;
        }
        self.last_sweep = Some(now);
        let stale: Vec<_> = self
            .udp
            .iter()
            .filter(|(_, p)| now.duration_since(p.last) >= IDLE)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(p) = self.udp.remove(&k) {
                let why = if p.gap { Cut::Gap } else { Cut::Timeout };
                cuts.push(why);
                out.push(cut_message(p, why));
            }
        }
        self.tcp.retain(|_, s| {
            let idle = now.duration_since(s.last);
            if idle >= IDLE && s.synced && !s.buf.is_empty() {
                cuts.extend(s.flush(Cut::Timeout, out));
            }
            idle < STREAM_IDLE
        });
        cuts
    }
}

/// A UDP message handed on as far as it came.
fn cut_message(p: Pending, why: Cut) -> DnsMessage {
    DnsMessage {
        hdr: p.hdr,
        bytes: p.bytes,
        cut: Some(why),
    }
}

/// Removes the entry of `map` used longest ago, handing it to `gone`.
fn evict_oldest<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    last: impl Fn(&V) -> Instant,
    gone: impl FnOnce(V),
) {
    let oldest = map.iter().min_by_key(|(_, v)| last(v)).map(|(k, _)| *k);
    if let Some(v) = oldest.and_then(|k| map.remove(&k)) {
        gone(v);
    }
}

#[cfg(test)]
mod tests {
    use sensor_common::event::DNS_FLAG_DATA;

    use super::*;

    const COOKIE: u64 = 7;

    fn hdr(flags: u32, offset: u32, ts_ns: u64) -> DnsHeader {
        DnsHeader {
            cookie: COOKIE,
            flags,
            offset,
            ts_ns,
            ..DnsHeader::default()
        }
    }

    /// A UDP part of a `msg_len`-byte message.
    fn udp(msg_len: u32, offset: u32, data: &[u8], ts_ns: u64) -> DnsPart {
        let mut h = hdr(DNS_FLAG_MESSAGE | DNS_FLAG_DATA, offset, ts_ns);
        h.msg_len = msg_len;
        h.cap_len = data.len() as u32;
        DnsPart {
            hdr: h,
            data: data.to_vec(),
        }
    }

    /// A TCP data record at stream offset `offset`.
    fn tcp_data(offset: u32, data: &[u8], start: bool, ts_ns: u64) -> DnsPart {
        let start = if start { DNS_FLAG_STREAM_START } else { 0 };
        let mut h = hdr(DNS_FLAG_TCP | DNS_FLAG_DATA | start, offset, ts_ns);
        h.cap_len = data.len() as u32;
        DnsPart {
            hdr: h,
            data: data.to_vec(),
        }
    }

    /// A TCP message record: a message of `msg_len` bytes at stream offset `offset`.
    fn tcp_mark(offset: u32, msg_len: u32, verdict: Verdict, ts_ns: u64) -> DnsPart {
        let mut h = hdr(DNS_FLAG_TCP | DNS_FLAG_MESSAGE, offset, ts_ns);
        h.msg_len = msg_len;
        h.verdict = verdict as u32;
        h.qname_hash = u64::from(offset) + 1;
        DnsPart {
            hdr: h,
            data: Vec::new(),
        }
    }

    /// `body` behind its 2-byte length.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn feed(a: &mut Assembler, parts: Vec<DnsPart>, now: Instant) -> (Vec<DnsMessage>, Vec<Cut>) {
        let (mut out, mut cuts) = (Vec::new(), Vec::new());
        for p in parts {
            cuts.extend(a.push(p, now, &mut out));
        }
        (out, cuts)
    }

    #[test]
    fn a_udp_message_in_one_record_passes_straight_through() {
        let mut a = Assembler::default();
        let (out, cuts) = feed(&mut a, vec![udp(3, 0, b"abc", 1)], Instant::now());
        assert!(cuts.is_empty());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, b"abc");
        assert_eq!(out[0].cut, None);
    }

    #[test]
    fn a_udp_message_in_several_records_is_put_back_together() {
        let mut a = Assembler::default();
        let msg: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let parts = msg
            .chunks(8192)
            .enumerate()
            .map(|(i, c)| udp(20_000, (i * 8192) as u32, c, 5))
            .collect();
        let (out, cuts) = feed(&mut a, parts, Instant::now());
        assert!(cuts.is_empty());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, msg);
    }

    #[test]
    fn a_udp_message_missing_a_part_is_handed_on_cut_and_counted() {
        let mut a = Assembler::default();
        let parts = vec![udp(9000, 0, &[1; 4096], 5), udp(9000, 8192, &[2; 808], 5)];
        let (out, cuts) = feed(&mut a, parts, Instant::now());
        assert_eq!(cuts, vec![Cut::Gap]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].cut, Some(Cut::Gap));
        assert_eq!(out[0].bytes.len(), 4096);
    }

    #[test]
    fn a_udp_message_whose_rest_never_comes_times_out() {
        let mut a = Assembler::default();
        let now = Instant::now();
        let (out, _) = feed(&mut a, vec![udp(9000, 0, &[1; 8192], 5)], now);
        assert!(out.is_empty());
        let mut out = Vec::new();
        assert!(a.expire(now + IDLE / 2, &mut out).is_empty());
        let cuts = a.expire(now + IDLE * 2, &mut out);
        assert_eq!(cuts, vec![Cut::Timeout]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.len(), 8192);
    }

    #[test]
    fn a_tcp_message_gets_the_kernels_decision_from_its_message_record() {
        let mut a = Assembler::default();
        let msg = framed(b"hello dns");
        let parts = vec![
            tcp_mark(0, 9, Verdict::WouldBlock, 1),
            tcp_data(0, &msg, true, 1),
        ];
        let (out, cuts) = feed(&mut a, parts, Instant::now());
        assert!(cuts.is_empty());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, b"hello dns");
        assert_eq!(out[0].hdr.verdict, Verdict::WouldBlock as u32);
        assert_eq!(out[0].hdr.qname_hash, 1);
    }

    #[test]
    fn a_tcp_message_cut_anywhere_is_put_back_together() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let msg = framed(&body);
        // The length alone, inside the header, byte by byte.
        for cuts_at in [vec![2], vec![2, 7], (1..msg.len()).collect::<Vec<_>>()] {
            let mut a = Assembler::default();
            let mut parts = Vec::new();
            let mut from = 0;
            for (i, &to) in cuts_at.iter().chain([msg.len()].iter()).enumerate() {
                if i == 0 {
                    parts.push(tcp_data(0, &msg[..to], true, 1));
                } else {
                    if from <= 2 && to > 2 {
                        // The kernel's message record comes once the question is read.
                        parts.push(tcp_mark(0, 300, Verdict::Allowed, 2));
                    }
                    parts.push(tcp_data(from as u32, &msg[from..to], false, 2));
                }
                from = to;
            }
            let (out, cuts) = feed(&mut a, parts, Instant::now());
            assert!(cuts.is_empty(), "{cuts_at:?}");
            assert_eq!(out.len(), 1, "{cuts_at:?}");
            assert_eq!(out[0].bytes, body, "{cuts_at:?}");
            assert_eq!(out[0].hdr.qname_hash, 1, "{cuts_at:?}");
        }
    }

    #[test]
    fn several_tcp_messages_in_one_record_are_each_handed_on() {
        let mut a = Assembler::default();
        let (m1, m2, m3) = (framed(b"first"), framed(b"second!"), framed(b"third"));
        let stream = [m1.clone(), m2.clone(), m3].concat();
        let o2 = m1.len() as u32;
        let o3 = o2 + m2.len() as u32;
        let parts = vec![
            tcp_mark(0, 5, Verdict::Allowed, 1),
            tcp_mark(o2, 7, Verdict::WouldBlock, 1),
            tcp_mark(o3, 5, Verdict::Allowed, 1),
            tcp_data(0, &stream, true, 1),
        ];
        let (out, cuts) = feed(&mut a, parts, Instant::now());
        assert!(cuts.is_empty());
        let got: Vec<_> = out
            .iter()
            .map(|m| (m.bytes.clone(), m.hdr.verdict))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"first".to_vec(), Verdict::Allowed as u32),
                (b"second!".to_vec(), Verdict::WouldBlock as u32),
                (b"third".to_vec(), Verdict::Allowed as u32),
            ]
        );
    }

    #[test]
    fn a_blocked_tcp_answer_the_kernel_dropped_is_handed_on_as_dropped() {
        let mut a = Assembler::default();
        let now = Instant::now();
        let msg = framed(&[9; 100]);
        let parts = vec![
            tcp_mark(0, 100, Verdict::Blocked, 1),
            tcp_data(0, &msg[..40], true, 1),
        ];
        let (out, _) = feed(&mut a, parts, now);
        assert!(out.is_empty());
        let mut out = Vec::new();
        let cuts = a.expire(now + IDLE * 2, &mut out);
        assert_eq!(cuts, vec![Cut::Dropped]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].hdr.verdict, Verdict::Blocked as u32);
        assert_eq!(out[0].bytes.len(), 38);
    }

    #[test]
    fn a_tcp_stream_that_lost_a_record_resumes_at_the_next_marked_message() {
        let mut a = Assembler::default();
        let (m1, m2) = (framed(&[1; 50]), framed(&[2; 20]));
        let o2 = m1.len() as u32;
        let parts = vec![
            tcp_mark(0, 50, Verdict::Allowed, 1),
            tcp_data(0, &m1[..10], true, 1),
            // m1's bytes 10..30 were lost in a full ring.
            tcp_mark(o2, 20, Verdict::Allowed, 2),
            tcp_data(30, &[m1[30..].to_vec(), m2.clone()].concat(), false, 2),
        ];
        let (out, cuts) = feed(&mut a, parts, Instant::now());
        assert_eq!(cuts, vec![Cut::Gap]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].cut, Some(Cut::Gap));
        assert_eq!(out[1].bytes, vec![2; 20]);
        assert_eq!(out[1].cut, None);
    }

    /// A message whose message record was lost: nothing says what the kernel decided, nor
    /// that an asker received it. Handed on as `allowed` from an asker's socket, a
    /// lookalike's answer the kernel had dropped taught routes and address blocks as if
    /// delivered.
    #[test]
    fn a_tcp_message_whose_record_was_lost_is_not_taken_as_received() {
        let mut a = Assembler::default();
        let m = framed(&[3; 30]);
        let mut data = tcp_data(0, &m, true, 1);
        data.hdr.direction = Direction::Ingress as u8;
        let (out, _) = feed(&mut a, vec![data], Instant::now());
        assert_eq!(out.len(), 1);
        assert_ne!(out[0].hdr.flags & DNS_FLAG_RESOLVER, 0, "{:?}", out[0].hdr);
    }

    #[test]
    fn the_tables_are_bounded() {
        let mut a = Assembler::default();
        let now = Instant::now();
        let mut cuts = Vec::new();
        let mut out = Vec::new();
        for ts in 0..(MAX_UDP as u64 + 10) {
            cuts.extend(a.push(udp(9000, 0, &[0; 100], ts), now, &mut out));
        }
        assert_eq!(a.udp.len(), MAX_UDP);
        assert_eq!(cuts.len(), 10);
        assert!(cuts.iter().all(|c| *c == Cut::Evicted));
    }
}
