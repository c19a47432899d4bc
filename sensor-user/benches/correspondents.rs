//! The correspondents ledger: the cost of counting one attributed connect in a full
//! ledger (100,000 domains), the memory such a ledger takes, and the speed of seeding it
//! from a Postfix log.

use std::{hint::black_box, io::Write as _, time::Instant};

use criterion::{Criterion, Throughput, criterion_group};
use mxsentry::correspondents::{ledger::Ledger, ledger_key, maillog::import};

const DOMAINS: usize = 100_000;
const T0: u64 = 1_796_000_000;

fn domain(i: usize) -> String {
    format!("partner{i:06}.example.com")
}

/// A ledger with `DOMAINS` domains seen on a few days each.
fn full_ledger() -> Ledger {
    let mut l = Ledger::new(DOMAINS);
    for i in 0..DOMAINS {
        for d in 0..(i % 4) as u64 {
            l.record(&domain(i), T0 + d * 86_400);
        }
        l.record(&domain(i), T0);
    }
    l
}

/// `n` Postfix smtp lines, sent and otherwise, over 10,000 domains.
fn postfix_log(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 200);
    for i in 0..n {
        let status = if i % 10 == 0 { "deferred" } else { "sent" };
        let _ = writeln!(
            out,
            "Nov 30 11:{:02}:{:02} mail postfix/smtp[{}]: 4Xy{i:06}: to=<user{i}@mail.d{}.example.com>, relay=mx.d{}.example.com[192.0.2.{}]:25, delay=0.4, delays=0.1/0/0.1/0.2, dsn=2.0.0, status={status} (250 2.0.0 Ok: queued)",
            i / 60 % 60,
            i % 60,
            1000 + i % 500,
            i % 10_000,
            i % 10_000,
            i % 250
        );
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut ledger = full_ledger();
    let mut g = c.benchmark_group("correspondents");
    let mut i = 0usize;
    // One delivery recorded in a ledger of 100,000 domains.
    g.bench_function("record_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % DOMAINS;
            ledger.record(black_box(&domain(i)), T0 + 3 * 86_400);
        })
    });
    let log = postfix_log(1_000_000);
    g.throughput(Throughput::Elements(1_000_000));
    g.sample_size(10);
    // A Postfix log of 1,000,000 lines imported.
    g.bench_function("import_1m_lines", |b| {
        b.iter(|| {
            let mut l = Ledger::new(DOMAINS);
            import(&log[..], &mut l, T0 + 86_400, ledger_key)
        })
    });
    g.finish();
}

/// Resident memory of the process (VmRSS), in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Prints what a full ledger adds to resident memory (not a criterion figure).
fn memory() {
    let before = rss();
    let start = Instant::now();
    let l = full_ledger();
    let after = rss();
    println!(
        "ledger memory: {} domains, +{:.1} MB RSS (built in {:.2} s)",
        l.len(),
        after.saturating_sub(before) as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    black_box(l);
}

criterion_group!(benches, bench);

fn main() {
    memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
