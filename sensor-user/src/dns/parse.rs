//! Reading a captured DNS message with hickory-proto, record by record, so a capture cut
//! short still yields every record before the cut.

use std::net::IpAddr;

use hickory_proto::{
    op::{Header, MessageType, OpCode, Query, ResponseCode},
    rr::RecordType,
    serialize::binary::{BinDecodable, BinDecoder, DecodeError},
};

use super::wire;

/// Question types the agent acts on; everything else is counted as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Canonical name.
    Cname,
    /// Anything else.
    Other,
}

impl QType {
    /// Label value for metrics.
    pub fn name(self) -> &'static str {
        match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
            QType::Mx => "MX",
            QType::Cname => "CNAME",
            QType::Other => "other",
        }
    }

    fn from(t: RecordType) -> Self {
        match t {
            RecordType::A => QType::A,
            RecordType::AAAA => QType::Aaaa,
            RecordType::MX => QType::Mx,
            RecordType::CNAME => QType::Cname,
            _ => QType::Other,
        }
    }
}

/// What a record says, for the records the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An address for the owner name.
    Addr(IpAddr),
    /// The owner is an alias of this name.
    Cname(String),
    /// A mail exchanger for the owner.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The exchange host.
        exchange: String,
    },
}

/// One resource record from the answer or additional section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Owner name, lower case, no trailing dot.
    pub name: String,
    /// Time to live, seconds.
    pub ttl: u32,
    /// The data.
    pub data: Data,
}

/// A parsed DNS message: the question and the records the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// A response (QR set) rather than a query.
    pub response: bool,
    /// NXDOMAIN: the name does not exist.
    pub nxdomain: bool,
    /// The response code is an error other than NXDOMAIN (SERVFAIL, REFUSED...).
    pub failed: bool,
    /// The TC bit: the sender cut the message short (the client retries over TCP).
    pub truncated: bool,
    /// The question name, lower case, no trailing dot.
    pub qname: String,
    /// The question type.
    pub qtype: QType,
    /// Address, CNAME and MX records from the answer and additional sections.
    pub records: Vec<Answer>,
    /// The capture ended before the message did; `records` holds what came before.
    pub partial: bool,
    /// Records whose data does not decode, stepped over by their length (as stub
    /// resolvers do): the records after them are still read.
    pub skipped: u32,
}

#[cfg(test)]
impl Message {
    /// A whole answer to `qname` (of `qtype`) holding `records`, for tests.
    pub(crate) fn answer_of(qname: &str, qtype: QType, records: Vec<Answer>) -> Self {
        Self {
            id: 1,
            response: true,
            nxdomain: false,
            failed: false,
            truncated: false,
            qname: qname.into(),
            qtype,
            records,
            partial: false,
            skipped: 0,
        }
    }
}

/// Why a captured payload is not a usable DNS message (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer than 12 bytes.
    #[error("shorter than a DNS header")]
    ShortHeader,
    /// Not a standard query or its response (updates, notifies...).
    #[error("not a standard query")]
    NotQuery,
    /// Zero or several questions: not the shape resolvers send.
    #[error("question count is not 1")]
    QuestionCount,
    /// The question does not decode.
    #[error("question does not decode")]
    BadQuestion,
    /// A record does not decode although the capture holds the whole message, and its
    /// length cannot be read either (counted under the same reason when a record is only
    /// stepped over: `Message::skipped`).
    #[error("record does not decode")]
    BadRecord,
}

impl ParseError {
    /// Every reason, so each metric series exists from the start.
    pub const ALL: [ParseError; 5] = [
        ParseError::ShortHeader,
        ParseError::NotQuery,
        ParseError::QuestionCount,
        ParseError::BadQuestion,
        ParseError::BadRecord,
    ];

    /// Label value for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::ShortHeader => "short_header",
            ParseError::NotQuery => "not_query",
            ParseError::QuestionCount => "question_count",
            ParseError::BadQuestion => "bad_question",
            ParseError::BadRecord => "bad_record",
        }
    }
}

/// Why a message reached the pipeline cut short, though the kernel captures whole
/// messages (the `reason` label of `mxsentry_dns_incomplete_messages_total`). The part
/// that came is parsed as far as it goes (`Message::partial`); the kernel's own reasons
/// are in `mxsentry_dns_capture_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The rest did not come within a second of the last part (a part lost in a full
    /// ring, or a TCP sender that stopped).
    Timeout,
    /// A part of its stream is missing (lost in a full ring) before its end.
    Gap,
    /// Pushed out of the bounded table of messages being put together.
    Evicted,
    /// A blocked answer whose rest the kernel dropped at the asking socket (enforce mode):
    /// cut on purpose, the question and what came before the drop are all there is.
    Dropped,
}

impl Cut {
    /// Every reason, so each metric series exists from the start.
    pub const ALL: [Cut; 4] = [Cut::Timeout, Cut::Gap, Cut::Evicted, Cut::Dropped];

    /// Label value for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Cut::Timeout => "timeout",
            Cut::Gap => "gap",
            Cut::Evicted => "evicted",
            Cut::Dropped => "dropped",
        }
    }
}

/// Lower-case text form of a name, without the root dot.
pub fn name_text(n: &hickory_proto::rr::Name) -> String {
    let mut s = n.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// Parses `captured`, the first bytes of a message that was `msg_len` bytes long.
pub fn parse(captured: &[u8], msg_len: usize) -> Result<Message, ParseError> {
    let cut = captured.len() < msg_len;
    let mut d = BinDecoder::new(captured);
    let header = Header::read(&mut d).map_err(|_| ParseError::ShortHeader)?;
    let meta = header.metadata;
    if meta.op_code != OpCode::Query {
        return Err(ParseError::NotQuery);
    }
    if header.counts.queries != 1 {
        return Err(ParseError::QuestionCount);
    }
    let query = Query::read(&mut d).map_err(|_| ParseError::BadQuestion)?;
    let mut msg = Message {
        id: meta.id,
        response: meta.message_type == MessageType::Response,
        nxdomain: meta.response_code == ResponseCode::NXDomain,
        failed: !matches!(
            meta.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ),
        truncated: meta.truncation,
        qname: name_text(query.name()),
        qtype: QType::from(query.query_type()),
        records: Vec::new(),
        partial: false,
        skipped: 0,
    };
    let c = header.counts;
    // Authorities sit between answers and additionals: read them to reach the glue.
    let sections = [
        (c.answers, true),
        (c.authorities, false),
        (c.additionals, true),
    ];
    let mut names = wire::Names::new(captured);
    for (count, keep) in sections {
        for _ in 0..count {
            let start = d.index();
            match read_record(captured, &mut d, keep, &mut names) {
                Ok(r) => msg.records.extend(r),
                Err(_) if cut => {
                    msg.partial = true;
                    return Ok(msg);
                }
                // A record a stub resolver steps over (data it cannot read, of a type it
                // does not know) must not hide the records after it: whoever writes the
                // answer could put one before the mail host's address.
                Err(_) => match step_over(captured, start) {
                    Some(next) => {
                        d = next;
                        msg.skipped += 1;
                    }
                    None => return Err(ParseError::BadRecord),
                },
            }
        }
    }
    Ok(msg)
}

/// A decoder just past the record at `start` of `captured`, read by its owner name, fixed
/// fields and data length only; `None` when even those do not hold.
fn step_over(captured: &[u8], start: usize) -> Option<BinDecoder<'_>> {
    let mut d = BinDecoder::new(captured);
    d.read_slice(wire::skip_name(captured, start)?).ok()?;
    // Type, class and TTL, then the data's length.
    d.read_slice(8).ok()?;
    let len = d.read_u16().ok()?.unverified();
    d.read_slice(usize::from(len)).ok()?;
    Some(d)
}

/// The record at `d`, as an `Answer` when it is `keep` and of a type the agent uses.
///
/// Only those types' data is read; any other record is stepped over by its length.
/// Whoever writes an answer chooses its other records, and some decoders cost far more
/// per byte than the message is worth (hickory reads an EDNS option a byte at a time: an
/// answer padded to 4 KiB took 16 times an ordinary one's reading). Names are read by
/// `wire::Names`, each position of the message once.
fn read_record<'a>(
    captured: &'a [u8],
    d: &mut BinDecoder<'a>,
    keep: bool,
    names: &mut wire::Names<'a>,
) -> Result<Option<Answer>, Unread> {
    let owner_at = d.index();
    let owner_end = wire::skip_name(captured, owner_at).ok_or(Unread)?;
    d.read_slice(owner_end - owner_at)?;
    let rtype = RecordType::from(d.read_u16()?.unverified(/*any type; only four are used*/));
    // The class (the agent reads the data by its type, as stub resolvers do).
    d.read_u16()?;
    let ttl = d.read_u32()?.unverified(/*any TTL; the agent bounds it*/);
    let len = usize::from(d.read_u16()?.unverified(/*the data must hold it*/));
    let at = d.index();
    let rdata = d.read_slice(len)?.unverified(/*its length checked by type below*/);
    let used = matches!(
        rtype,
        RecordType::A | RecordType::AAAA | RecordType::CNAME | RecordType::MX
    );
    if !keep || !used || len == 0 {
        return Ok(None);
    }
    // A name in the data must end where the data does (as hickory's reading checked).
    let mut name_at = |from: usize| -> Result<String, Unread> {
        if wire::skip_name(captured, from) != Some(at + len) {
            return Err(Unread);
        }
        names.text(from).map(|t| t.to_string()).ok_or(Unread)
    };
    let data = match rtype {
        RecordType::A => {
            let octets: [u8; 4] = rdata.try_into().map_err(|_| Unread)?;
            Data::Addr(IpAddr::from(octets))
        }
        RecordType::AAAA => {
            let octets: [u8; 16] = rdata.try_into().map_err(|_| Unread)?;
            Data::Addr(IpAddr::from(octets))
        }
        RecordType::CNAME => Data::Cname(name_at(at)?),
        _ => {
            let preference = u16::from_be_bytes([rdata[0], *rdata.get(1).ok_or(Unread)?]);
            Data::Mx {
                preference,
                exchange: name_at(at + 2)?,
            }
        }
    };
    let name = names.text(owner_at).ok_or(Unread)?.to_string();
    Ok(Some(Answer { name, ttl, data }))
}

/// A record that cannot be read.
struct Unread;

impl From<DecodeError> for Unread {
    fn from(_: DecodeError) -> Self {
        Unread
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, str::FromStr};

    use hickory_proto::{
        op::{Message as HMessage, Query},
        rr::{
            Name, RData, Record, RecordType,
            rdata::{A, CNAME, MX},
        },
    };

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn response() -> Vec<u8> {
        let mut m = HMessage::response(0x1234, hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(name("Army.ML."), RecordType::MX));
        m.add_answer(Record::from_rdata(
            name("army.ml."),
            300,
            RData::CNAME(CNAME(name("mail.army.ml."))),
        ));
        m.add_answer(Record::from_rdata(
            name("mail.army.ml."),
            300,
            RData::MX(MX::new(10, name("mx.army.ml."))),
        ));
        m.add_additional(Record::from_rdata(
            name("mx.army.ml."),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
        ));
        m.to_vec().unwrap()
    }

    #[test]
    fn answers_with_compression_cname_mx_and_glue() {
        let bytes = response();
        let m = parse(&bytes, bytes.len()).unwrap();
        assert!(m.response && !m.nxdomain && !m.partial);
        assert_eq!(m.qname, "army.ml");
        assert_eq!(m.qtype, QType::Mx);
        assert_eq!(m.records.len(), 3);
        assert_eq!(m.records[0].data, Data::Cname("mail.army.ml".into()));
        assert_eq!(
            m.records[1].data,
            Data::Mx {
                preference: 10,
                exchange: "mx.army.ml".into()
            }
        );
        assert_eq!(m.records[2].name, "mx.army.ml");
        assert_eq!(m.records[2].ttl, 60);
    }

    #[test]
    fn a_cut_capture_keeps_what_came_before_the_cut() {
        let bytes = response();
        let cut = &bytes[..bytes.len() - 3];
        let m = parse(cut, bytes.len()).unwrap();
        assert!(m.partial);
        assert_eq!(m.records.len(), 2);
        // The same bytes claiming to be whole are a broken record.
        assert_eq!(parse(cut, cut.len()), Err(ParseError::BadRecord));
    }

    #[test]
    fn garbage_is_counted_by_reason_never_a_panic() {
        assert_eq!(parse(&[1, 2, 3], 3), Err(ParseError::ShortHeader));
        let mut q = HMessage::query();
        q.add_query(Query::query(name("a.example."), RecordType::A));
        let mut bytes = q.to_vec().unwrap();
        bytes[2] |= 0x28; // opcode 5 (UPDATE)
        assert_eq!(parse(&bytes, bytes.len()), Err(ParseError::NotQuery));
        let mut two = q.to_vec().unwrap();
        two[5] = 2;
        assert_eq!(parse(&two, two.len()), Err(ParseError::QuestionCount));
        let mut bad = q.to_vec().unwrap();
        bad[12] = 0xc0; // a pointer as the first label, pointing forward
        bad[13] = 0xff;
        assert_eq!(parse(&bad, bad.len()), Err(ParseError::BadQuestion));
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = parse(&junk, junk.len());
        }
    }

    /// `response()` with a record first in the answers whose type says AAAA (16 bytes of
    /// data) and whose data is 4 bytes long: it does not decode, its length still holds.
    fn with_a_bad_record() -> Vec<u8> {
        let mut m = HMessage::from_vec(&response()).unwrap();
        let mut answers = vec![Record::from_rdata(
            name("army.ml."),
            30,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 66))),
        )];
        answers.append(&mut m.answers);
        m.add_answers(answers);
        let mut bytes = m.to_vec().unwrap();
        // After the question (12 + "\x04army\x02ml\x00" + type and class), the first
        // record's owner is a pointer (2 bytes), then its type.
        let at = 12 + 9 + 4 + 2;
        assert_eq!(bytes[at..at + 2], [0, 1], "the A record is first");
        bytes[at..at + 2].copy_from_slice(&[0, 28]);
        bytes
    }

    #[test]
    fn a_record_that_does_not_decode_is_stepped_over_and_the_rest_read() {
        let bytes = with_a_bad_record();
        let m = parse(&bytes, bytes.len()).unwrap();
        assert_eq!(m.skipped, 1);
        assert!(!m.partial);
        assert_eq!(m.records.len(), 3, "{:?}", m.records);
        assert_eq!(m.records[2].name, "mx.army.ml");
        // One whose length runs past the message cannot be stepped over.
        let mut past = with_a_bad_record();
        let at = 12 + 9 + 4 + 10;
        past[at] = 0xff;
        assert_eq!(parse(&past, past.len()), Err(ParseError::BadRecord));
    }

    #[test]
    fn records_of_types_the_agent_does_not_use_are_stepped_over_undecoded() {
        // An OPT record whose option claims more bytes than the record holds, then an
        // address record: hickory's decoder refuses the OPT; the agent has no use for it
        // and does not decode it, so it is neither an error nor a skip.
        let mut bytes = response();
        let arcount = u16::from_be_bytes([bytes[10], bytes[11]]);
        bytes[10..12].copy_from_slice(&(arcount + 2).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 8]);
        bytes.extend_from_slice(&[0, 12, 0xff, 0xff, 0, 0, 0, 0]);
        // Owner: the question's name (a pointer to offset 12); A, IN, TTL 60, 4 bytes.
        bytes.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        let m = parse(&bytes, bytes.len()).unwrap();
        assert_eq!(m.skipped, 0);
        assert_eq!(m.records.len(), 4, "{:?}", m.records);
        assert_eq!(m.records[3].data, Data::Addr("192.0.2.7".parse().unwrap()));
    }

    /// `response()` and, in the additional section, a text record whose data is a chain
    /// of `chain` pointers, each to the one before (the first to the question's name),
    /// then `records` address records whose owner is the chain's last pointer.
    pub(crate) fn with_a_pointer_chain(chain: usize, records: usize) -> Vec<u8> {
        let mut bytes = response();
        let arcount = u16::from_be_bytes([bytes[10], bytes[11]]);
        let count = arcount + 1 + records as u16;
        bytes[10..12].copy_from_slice(&count.to_be_bytes());
        let data = (2 * chain) as u16;
        bytes.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
        bytes.extend_from_slice(&data.to_be_bytes());
        let mut to = 12u16;
        for _ in 0..chain {
            let at = bytes.len() as u16;
            bytes.extend_from_slice(&(0xc000 | to).to_be_bytes());
            to = at;
        }
        for i in 0..records {
            bytes.extend_from_slice(&(0xc000 | to).to_be_bytes());
            bytes.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i as u8]);
        }
        bytes
    }

    #[test]
    fn a_name_behind_a_long_chain_of_pointers_is_read() {
        // Stub resolvers follow a chain of any length within the message, so the agent
        // does too (a name it refused would hide the record from it alone), each
        // position once: before, every record walked the whole chain again.
        let long = with_a_pointer_chain(1_000, 2);
        let m = parse(&long, long.len()).unwrap();
        assert_eq!((m.skipped, m.records.len()), (0, 5), "{:?}", m.records);
        assert_eq!(m.records[4].name, "army.ml");
        // A pointer to itself is no name: that record is stepped over.
        let mut looped = with_a_pointer_chain(1, 1);
        let at = looped.len() - 16;
        looped[at..at + 2].copy_from_slice(&(0xc000 | at as u16).to_be_bytes());
        let m = parse(&looped, looped.len()).unwrap();
        assert_eq!((m.skipped, m.records.len()), (1, 3), "{:?}", m.records);
    }

    #[test]
    fn names_are_written_as_hickory_writes_them() {
        // Case, a dot, a space and a byte past ASCII inside labels, compressed by hickory.
        let hosts: [&[&[u8]]; 4] = [
            &[b"MX", b"Army", b"ML"],
            &[b"a.b", b"army", b"ml"],
            &[b"x y", b"army", b"ml"],
            &[b"\xe9(", b"Army", b"ml"],
        ];
        let mut m = HMessage::response(9, hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(name("Army.ML."), RecordType::MX));
        for (i, h) in hosts.iter().enumerate() {
            let host = Name::from_labels(h.iter().copied()).unwrap();
            let mx = RData::MX(MX::new(i as u16, host.clone()));
            m.add_answer(Record::from_rdata(name("army.ml."), 60, mx));
            let a = RData::A(A(Ipv4Addr::new(192, 0, 2, i as u8)));
            m.add_additional(Record::from_rdata(host, 60, a));
        }
        let bytes = m.to_vec().unwrap();
        let ours = parse(&bytes, bytes.len()).unwrap();
        let theirs = HMessage::from_vec(&bytes).unwrap();
        let expected: Vec<(String, String)> = theirs
            .answers
            .iter()
            .chain(theirs.additionals.iter())
            .map(|r| {
                let data = match &r.data {
                    RData::MX(mx) => name_text(&mx.exchange),
                    RData::A(a) => a.0.to_string(),
                    other => panic!("{other:?}"),
                };
                (name_text(&r.name), data)
            })
            .collect();
        let got: Vec<(String, String)> = ours
            .records
            .iter()
            .map(|r| {
                let data = match &r.data {
                    Data::Mx { exchange, .. } => exchange.clone(),
                    Data::Addr(ip) => ip.to_string(),
                    other => panic!("{other:?}"),
                };
                (r.name.clone(), data)
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn nxdomain_is_seen() {
        let mut m = HMessage::response(7, hickory_proto::op::OpCode::Query);
        m.add_query(Query::query(name("army.ml."), RecordType::A));
        m.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
        let bytes = m.to_vec().unwrap();
        let p = parse(&bytes, bytes.len()).unwrap();
        assert!(p.nxdomain && p.records.is_empty());
    }
}
