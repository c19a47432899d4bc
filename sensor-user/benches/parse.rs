//! Reading a captured DNS answer: what an ordinary answer costs the agent beside answers of
//! about 4 KiB shaped as whoever writes them pleases (many address records, one EDNS
//! padding option, text records). The agent reads every answer its hosts receive, so an
//! answer that costs it many times an ordinary one is a way to flood it with few packets.

use std::{hint::black_box, net::Ipv4Addr, str::FromStr};

use criterion::{Criterion, criterion_group};
use hickory_proto::{
    op::{Message, OpCode, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, MX, TXT},
    },
};
use mxsentry::dns::parse::parse;

fn name(s: &str) -> Name {
    Name::from_str(s).expect("a valid name")
}

/// An MX answer for `army.ml` with two exchangers and their addresses.
fn ordinary() -> Message {
    let mut m = Message::response(0x1234, OpCode::Query);
    m.add_query(Query::query(name("army.ml."), RecordType::MX));
    for (i, host) in ["mx1.army.ml.", "mx2.army.ml."].iter().enumerate() {
        let pref = 10 * (i as u16 + 1);
        let mx = RData::MX(MX::new(pref, name(host)));
        m.add_answer(Record::from_rdata(name("army.ml."), 300, mx));
        let a = RData::A(A(Ipv4Addr::new(192, 0, 2, i as u8 + 1)));
        m.add_additional(Record::from_rdata(name(host), 300, a));
    }
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().expect("an encodable message")
}

/// The ordinary answer with address records for its exchangers up to about 4 KiB.
fn many_addresses() -> Vec<u8> {
    let mut m = ordinary();
    for i in 0..240u32 {
        let a = Ipv4Addr::from(0xc633_6400 + i);
        m.add_additional(Record::from_rdata(
            name("mx1.army.ml."),
            300,
            RData::A(A(a)),
        ));
    }
    bytes(&m)
}

/// The ordinary answer with an OPT record holding one padding option of about 3,900 bytes.
fn padded() -> Vec<u8> {
    let mut b = bytes(&ordinary());
    let pad = 3_900u16;
    // ARCOUNT + 1; then root owner, type OPT, UDP size 4096, no flags, data length.
    let arcount = u16::from_be_bytes([b[10], b[11]]) + 1;
    b[10..12].copy_from_slice(&arcount.to_be_bytes());
    b.push(0);
    b.extend_from_slice(&41u16.to_be_bytes());
    b.extend_from_slice(&4096u16.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&(pad + 4).to_be_bytes());
    b.extend_from_slice(&12u16.to_be_bytes());
    b.extend_from_slice(&pad.to_be_bytes());
    b.resize(b.len() + usize::from(pad), 0);
    b
}

/// The ordinary answer with 15 text records of 255-byte strings (about 4 KiB).
fn texts() -> Vec<u8> {
    let mut m = ordinary();
    for i in 0..15u8 {
        let s = char::from(b'a' + i).to_string().repeat(255);
        let txt = RData::TXT(TXT::new(vec![s]));
        m.add_additional(Record::from_rdata(name("army.ml."), 300, txt));
    }
    bytes(&m)
}

/// The ordinary answer with a text record whose data is a chain of 1,000 compression
/// pointers, each to the one before, and 140 address records whose owner is its last.
fn pointer_chain() -> Vec<u8> {
    let mut b = bytes(&ordinary());
    let records = 140u16;
    let arcount = u16::from_be_bytes([b[10], b[11]]) + 1 + records;
    b[10..12].copy_from_slice(&arcount.to_be_bytes());
    b.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
    b.extend_from_slice(&2_000u16.to_be_bytes());
    let mut to = 12u16;
    for _ in 0..1_000 {
        let at = b.len() as u16;
        b.extend_from_slice(&(0xc000 | to).to_be_bytes());
        to = at;
    }
    for i in 0..records {
        b.extend_from_slice(&(0xc000 | to).to_be_bytes());
        b.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i as u8]);
    }
    b
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let shapes = [
        ("ordinary", bytes(&ordinary())),
        ("addresses_4k", many_addresses()),
        ("padding_4k", padded()),
        ("texts_4k", texts()),
        ("pointers_4k", pointer_chain()),
    ];
    for (what, msg) in &shapes {
        println!("parse shape {what}: {} bytes", msg.len());
        g.bench_function(*what, |b| b.iter(|| parse(black_box(msg), msg.len())));
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
