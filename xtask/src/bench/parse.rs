//! Reading a captured DNS answer under criterion (`sensor-user/benches/parse.rs`): an
//! ordinary answer beside answers of about 4 KiB shaped by whoever writes them.

use std::fmt::Write as _;

use super::engine::{criterion, median_ns, reported};

/// The shapes, as the benchmark names them, and what each is.
const SHAPES: [(&str, &str); 5] = [
    (
        "ordinary",
        "an ordinary MX answer: two exchangers and their addresses",
    ),
    ("addresses_4k", "the same with 240 more address records"),
    (
        "padding_4k",
        "the same with one EDNS padding option of 3,900 bytes",
    ),
    ("texts_4k", "the same with 15 text records of 255 bytes"),
    (
        "pointers_4k",
        "the same with a chain of 1,000 compression pointers and 140 address records named by it",
    ),
];

/// Runs the parse benchmark; returns the report section.
pub fn run() -> anyhow::Result<String> {
    let stdout = criterion("parse")?;
    let mut rows = Vec::new();
    for (id, what) in SHAPES {
        let (_, bytes) = reported(&stdout, &format!("parse shape {id}:"), ": ");
        rows.push((what, bytes, median_ns(&format!("parse/{id}"))?));
    }
    let ordinary_per_byte = rows[0].2 / rows[0].1;
    let mut s = String::new();
    let _ = writeln!(s, "## Reading a DNS answer in the agent\n");
    let _ = writeln!(
        s,
        "Command: `cargo bench -p sensor-user --bench parse` (criterion, one core). The agent \
         reads every answer its hosts receive, and whoever writes an answer chooses its \
         records: an answer that costs the agent many times its size in ordinary answers \
         floods it with few packets. Only the record types the agent uses (A, AAAA, CNAME, \
         MX) are decoded, the rest stepped over by their length, and each name position of a \
         message is decoded once (a chain of compression pointers is followed once). Target: no shape costs \
         more per byte than the ordinary answer (ratio ≤ 1).\n"
    );
    let _ = writeln!(
        s,
        "| answer | bytes | ns per answer (median) | ns per byte | per byte vs ordinary | target |\n\
         |---|---:|---:|---:|---:|---|"
    );
    for (what, bytes, ns) in rows {
        let per_byte = ns / bytes;
        let _ = writeln!(
            s,
            "| {what} | {bytes:.0} | {ns:.0} | {per_byte:.2} | {:.2} | ≤ 1 |",
            per_byte / ordinary_per_byte
        );
    }
    s.push('\n');
    Ok(s)
}
