//! Seeding the ledger from an MTA's own delivery log, so a new node starts with history:
//! Postfix's `status=sent` lines of its smtp client (`to=<…>`, `relay=host[addr]:port`)
//! and Exim's main log `=>`/`->` deliveries over a remote transport (`H=host [addr]`).
//! Plain or gzip-compressed (rotated) files, or stdin. Hostile input is expected: lines
//! are read with a length cap, every skipped line is counted by reason, nothing panics,
//! and the ledger's own bound holds whatever the number of distinct domains.

use std::io::{BufRead, BufReader, Read};

use super::ledger::Ledger;

/// Longest line read; longer ones are skipped (and counted) without being buffered.
pub const MAX_LINE: usize = 16 * 1024;
const DAY: u64 = 86_400;

/// What an import read, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportStats {
    /// Lines read.
    pub lines: u64,
    /// Deliveries recorded.
    pub recorded: u64,
    /// Lines that are not a delivery (other programs, deferrals, bounces, arrivals).
    pub not_delivery: u64,
    /// Deliveries that did not go to a remote SMTP server (local, virtual, pipe).
    pub not_remote: u64,
    /// Deliveries whose recipient domain or time could not be read.
    pub malformed: u64,
    /// Lines longer than `MAX_LINE`.
    pub too_long: u64,
    /// Lines that are not UTF-8.
    pub not_text: u64,
}

/// One delivery found in a log line.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// When (Unix seconds).
    pub at: u64,
    /// The recipient's domain as written (made the ledger's key by the caller).
    pub domain: &'a str,
}

/// Why a line gave no delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not a delivery line.
    NotDelivery,
    /// A delivery, but not to a remote SMTP server.
    NotRemote,
    /// A delivery line whose parts could not be read.
    Malformed,
}

/// Days since 1970-01-01 of a civil date (the inverse of Hinnant's `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn hms(s: &str) -> Option<u64> {
    let mut it = s.get(..8)?.split(':');
    let (h, m, sec) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
    (h < 24 && m < 60 && sec < 61).then(|| u64::from(h * 3600 + m * 60 + sec))
}

fn unix(y: i64, m: u32, d: u32, secs: u64) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(days * DAY + secs)
}

/// `2026-11-30T17:07:01…` or `2026-11-30 17:07:01…`: the time and the rest of the line.
fn iso_time(line: &str) -> Option<(u64, &str)> {
    let date = line.get(..10)?;
    let mut p = date.split('-');
    let (y, m, d) = (num(p.next()?)?, num(p.next()?)?, num(p.next()?)?);
    let sep = line.as_bytes().get(10)?;
    if *sep != b'T' && *sep != b' ' {
        return None;
    }
    let secs = hms(line.get(11..)?)?;
    let rest = line[11..].split_once(' ').map_or("", |(_, r)| r);
    Some((unix(i64::from(y), m, d, secs)?, rest))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Nov 30 17:07:01 …` (no year: the latest such time not after `now`).
fn syslog_time(line: &str, now: u64) -> Option<(u64, &str)> {
    let m = MONTHS.iter().position(|mo| line.starts_with(mo))? as u32 + 1;
    let rest = line.get(3..)?.trim_start();
    let (d, rest) = rest.split_once(' ')?;
    let (t, rest) = rest.split_once(' ')?;
    let (d, secs) = (num(d)?, hms(t)?);
    let year = 1970 + (now / DAY / 365) as i64 + 1;
    // Try this year and the years before until the time is not in the future (a day of
    // slack for clock differences between hosts).
    (year - 3..=year)
        .rev()
        .filter_map(|y| unix(y, m, d, secs))
        .find(|t| *t <= now + DAY)
        .map(|t| (t, rest))
}

/// The value of `key` (`to=<`, `relay=`) up to its terminator.
fn field<'a>(line: &'a str, key: &str, end: char) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    Some(rest.split(end).next().unwrap_or(rest))
}

fn domain_of(address: &str) -> Option<&str> {
    let (_, d) = address.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('.');
    (!d.is_empty() && d.len() <= 253 && d.contains('.')).then_some(d)
}

/// A Postfix smtp client line: `… postfix/smtp[pid]: QID: to=<a@b>, relay=h[ip]:25, …,
/// status=sent (…)`.
fn postfix(rest: &str) -> Result<&str, Skip> {
    let Some(tag) = rest.split_whitespace().nth(1) else {
        return Err(Skip::NotDelivery);
    };
    // `postfix/smtp[123]:`, also `postfix-out/smtp[…]` for a second instance.
    let program = tag.split('[').next().unwrap_or("");
    if !program.ends_with("/smtp") || !rest.contains(" status=sent ") {
        return Err(Skip::NotDelivery);
    }
    let relay = field(rest, " relay=", ',').ok_or(Skip::Malformed)?;
    if !relay.contains('[') {
        return Err(Skip::NotRemote);
    }
    let to = field(rest, " to=<", '>').ok_or(Skip::Malformed)?;
    domain_of(to).ok_or(Skip::Malformed)
}

/// An Exim main-log delivery: `… ID => a@b R=… T=remote_smtp H=host [ip] …` (or `->`
/// for a further recipient of the same message).
fn exim(rest: &str) -> Result<&str, Skip> {
    let mut words = rest.split_whitespace();
    let _id = words.next();
    match words.next() {
        Some("=>" | "->") => {}
        _ => return Err(Skip::NotDelivery),
    }
    let to = words.next().ok_or(Skip::Malformed)?;
    if !rest.contains(" H=") {
        return Err(Skip::NotRemote);
    }
    domain_of(to.trim_start_matches('<').trim_end_matches('>')).ok_or(Skip::Malformed)
}

/// The delivery a log line records, if any; `now` places year-less syslog times.
pub fn parse_line(line: &str, now: u64) -> Result<Delivery<'_>, Skip> {
    if let Some((at, rest)) = iso_time(line) {
        // Exim's own log: `2026-11-30 17:07:01 ID => …`; a syslog-style line with an
        // ISO time: `2026-…T…+00:00 host postfix/smtp[…]: …`.
        let domain = if line.as_bytes().get(10) == Some(&b' ') {
            exim(rest)?
        } else {
            postfix(rest)?
        };
        return Ok(Delivery { at, domain });
    }
    let (at, rest) = syslog_time(line, now).ok_or(Skip::NotDelivery)?;
    Ok(Delivery {
        at,
        domain: postfix(rest)?,
    })
}

/// Reads `input` (plain or gzip) line by line into `ledger`; `registrable` turns a
/// recipient domain into the domain the ledger keeps (`None`: not a domain).
pub fn import(
    input: impl Read,
    ledger: &mut Ledger,
    now: u64,
    registrable: impl Fn(&str) -> Option<String>,
) -> std::io::Result<ImportStats> {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzip {
        let decoded = flate2::bufread::MultiGzDecoder::new(reader);
        read_lines(
            BufReader::with_capacity(256 * 1024, decoded),
            ledger,
            now,
            &registrable,
        )
    } else {
        read_lines(reader, ledger, now, &registrable)
    }
}

fn read_lines(
    mut r: impl BufRead,
    ledger: &mut Ledger,
    now: u64,
    registrable: &impl Fn(&str) -> Option<String>,
) -> std::io::Result<ImportStats> {
    let mut stats = ImportStats::default();
    let mut buf = Vec::with_capacity(1024);
    while let Some(long) = next_line(&mut r, &mut buf)? {
        stats.lines += 1;
        if long {
            stats.too_long += 1;
            continue;
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            stats.not_text += 1;
            continue;
        };
        match parse_line(line.trim_end_matches(['\n', '\r']), now) {
            Ok(d) => match registrable(d.domain) {
                Some(domain) => {
                    ledger.record(&domain, d.at);
                    stats.recorded += 1;
                }
                None => stats.malformed += 1,
            },
            Err(Skip::NotDelivery) => stats.not_delivery += 1,
            Err(Skip::NotRemote) => stats.not_remote += 1,
            Err(Skip::Malformed) => stats.malformed += 1,
        }
    }
    Ok(stats)
}

/// Reads the next line into `buf` (at most `MAX_LINE` bytes kept); `Some(true)` when it
/// was longer and the rest was skipped, `None` at the end.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut long = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any.then_some(long));
        }
        any = true;
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !long {
            if buf.len() + take > MAX_LINE {
                long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if done {
            return Ok(Some(long));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// 2026-11-30 12:00:00 UTC.
    const NOW: u64 = 1_796_040_000;

    fn reg(d: &str) -> Option<String> {
        Some(d.to_string())
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(unix(2026, 11, 30, 12 * 3600), Some(NOW));
    }

    #[test]
    fn postfix_sent_lines_count_and_others_do_not() {
        let sent = "Nov 30 11:07:01 mail postfix/smtp[4242]: 4XyZ1: to=<bob@Partner.Example>, relay=mx.partner.example[192.0.2.1]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)";
        let d = parse_line(sent, NOW).unwrap();
        assert_eq!(d.domain, "Partner.Example");
        assert_eq!(d.at, NOW - 3600 + 7 * 60 + 1);
        let deferred = sent.replace("status=sent", "status=deferred");
        assert_eq!(parse_line(&deferred, NOW), Err(Skip::NotDelivery));
        let local = "Nov 30 11:07:01 mail postfix/local[1]: 4XyZ1: to=<root@mail.example>, relay=local, delay=0, dsn=2.0.0, status=sent (delivered to mailbox)";
        assert_eq!(parse_line(local, NOW), Err(Skip::NotDelivery));
        let none = sent.replace("relay=mx.partner.example[192.0.2.1]:25", "relay=none");
        assert_eq!(parse_line(&none, NOW), Err(Skip::NotRemote));
        let iso = "2026-11-30T11:07:01.123456+00:00 mail postfix/smtp[4242]: 4XyZ1: to=<bob@partner.example>, relay=mx.partner.example[192.0.2.1]:25, status=sent (250 Ok)";
        assert_eq!(parse_line(iso, NOW).unwrap().domain, "partner.example");
    }

    #[test]
    fn a_syslog_time_later_than_now_is_last_year() {
        let line = "Dec 31 23:59:59 mail postfix/smtp[1]: Q: to=<a@b.example>, relay=h[1.2.3.4]:25, status=sent (ok)";
        let at = parse_line(line, NOW).unwrap().at;
        assert_eq!(at, unix(2025, 12, 31, 86_399).unwrap());
    }

    #[test]
    fn exim_remote_deliveries() {
        let line = "2026-11-30 11:07:01 1tGx2a-000Abc-12 => bob@partner.example R=dnslookup T=remote_smtp H=mx.partner.example [192.0.2.1] C=\"250 OK\"";
        assert_eq!(parse_line(line, NOW).unwrap().domain, "partner.example");
        let more = line.replace("=>", "->");
        assert!(parse_line(&more, NOW).is_ok());
        let local = "2026-11-30 11:07:01 1tGx2a-000Abc-12 => bob <bob@mail.example> R=localuser T=local_delivery";
        assert_eq!(parse_line(local, NOW), Err(Skip::NotRemote));
        let arrival =
            "2026-11-30 11:07:01 1tGx2a-000Abc-12 <= alice@mail.example H=client [198.51.100.1]";
        assert_eq!(parse_line(arrival, NOW), Err(Skip::NotDelivery));
    }

    #[test]
    fn hostile_input_is_counted_and_bounded() {
        let mut input = Vec::new();
        input.extend_from_slice(&[0xff, 0xfe, 0x00, b'\n']);
        input.extend(std::iter::repeat_n(b'x', 1 << 20));
        input.push(b'\n');
        for i in 0..5_000 {
            writeln!(input, "Nov 30 11:00:00 m postfix/smtp[1]: Q: to=<a@d{i}.example>, relay=h[1.2.3.4]:25, status=sent (ok)").unwrap();
        }
        input.extend_from_slice(b"Nov 30 11:00:00 m postfix/smtp[1]: Q: to=<nobody>, relay=h[1.2.3.4]:25, status=sent (ok)");
        let mut l = Ledger::new(100);
        let s = import(&input[..], &mut l, NOW, reg).unwrap();
        assert_eq!(s.lines, 5_003);
        assert_eq!(
            (s.not_text, s.too_long, s.recorded, s.malformed),
            (1, 1, 5_000, 1)
        );
        assert!(l.len() <= 110);
    }

    #[test]
    fn gzip_input_is_read_the_same() {
        let text = "Nov 30 11:07:01 mail postfix/smtp[1]: Q: to=<bob@partner.example>, relay=h[1.2.3.4]:25, status=sent (ok)\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let mut l = Ledger::new(10);
        let s = import(&bytes[..], &mut l, NOW, reg).unwrap();
        assert_eq!(s.recorded, 1);
        assert!(l.get("partner.example").is_some());
    }
}
