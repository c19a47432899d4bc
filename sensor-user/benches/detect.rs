//! Typosquat engine speed: classification of clean names and of lookalikes with 10,000
//! protected domains, index build time and memory, and throughput with 20 protected.
//!
//! Names are synthetic but shaped like real ones: pronounceable labels of 5 to 14
//! letters (some hyphenated) under a mix of common suffixes, from a fixed seed.

use std::{hint::black_box, time::Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use mxsentry::detect::{Classification, Engine, Policy, ProtectEntry};

const SUFFIXES: &[&str] = &[
    "com", "com", "com", "net", "org", "co.uk", "gov.uk", "mil", "de", "fr", "io", "gov",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn label(rng: &mut Rng) -> String {
    const C: &[u8] = b"bcdfghjklmnprstvwz";
    const V: &[u8] = b"aeiou";
    let len = 5 + rng.below(10);
    let mut s = String::with_capacity(len + 1);
    for i in 0..len {
        let set = if i % 2 == 0 { C } else { V };
        s.push(set[rng.below(set.len())] as char);
    }
    if len > 9 && rng.below(4) == 0 {
        s.insert(len / 2, '-');
    }
    s
}

fn domains(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n)
        .map(|_| format!("{}.{}", label(rng), SUFFIXES[rng.below(SUFFIXES.len())]))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn engine(protect: &[String]) -> Engine {
    let policy = Policy {
        protect: protect
            .iter()
            .map(|e| ProtectEntry::new(e.clone()))
            .collect(),
        ..Policy::default()
    };
    Engine::new(&policy).expect("valid policy")
}

/// One typing slip in the label: swap, drop or double a letter.
fn slip(rng: &mut Rng, domain: &str) -> String {
    let (label, suffix) = domain.split_once('.').expect("has a dot");
    let mut c: Vec<char> = label.chars().collect();
    let i = 1 + rng.below(c.len() - 2);
    match rng.below(3) {
        0 => c.swap(i, i + 1),
        1 => {
            c.remove(i);
        }
        _ => c.insert(i, c[i]),
    }
    format!("{}.{suffix}", c.into_iter().collect::<String>())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let mut rng = Rng(0x6d78_7365_6e74_7279);
    let protected = domains(&mut rng, 10_000);

    let before = rss_kib();
    let start = Instant::now();
    let big = engine(&protected);
    let built = start.elapsed();
    let after = rss_kib();
    println!(
        "index: {} protected, {} keys, built in {:.3} s, RSS +{:.1} MB",
        big.targets(),
        big.index_keys(),
        built.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / 1024.0
    );

    let clean: Vec<String> = domains(&mut rng, 2_000)
        .into_iter()
        .filter(|d| matches!(big.classify(d), Classification::Clean))
        .take(1_000)
        .collect();
    let lookalikes: Vec<String> = (0..4_000)
        .map(|_| {
            let i = rng.below(protected.len());
            slip(&mut rng, &protected[i])
        })
        .filter(|d| matches!(big.classify(d), Classification::Typosquat(_)))
        .take(1_000)
        .collect();
    assert_eq!(clean.len(), 1_000, "not enough clean names");
    assert_eq!(lookalikes.len(), 1_000, "not enough lookalikes");

    let mut g = c.benchmark_group("classify_10k_protected");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("clean_x1000", |b| {
        b.iter(|| clean.iter().for_each(|d| drop(black_box(big.classify(d)))))
    });
    g.bench_function("lookalike_x1000", |b| {
        b.iter(|| {
            lookalikes
                .iter()
                .for_each(|d| drop(black_box(big.classify(d))))
        })
    });
    g.finish();

    let small = engine(&protected[..20]);
    let clean20: Vec<&String> = clean
        .iter()
        .filter(|d| matches!(small.classify(d), Classification::Clean))
        .collect();
    let mut g = c.benchmark_group("classify_20_protected");
    g.throughput(Throughput::Elements(clean20.len() as u64));
    g.bench_function("clean_x1000", |b| {
        b.iter(|| {
            clean20
                .iter()
                .for_each(|d| drop(black_box(small.classify(d))))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("build_index");
    g.sample_size(10);
    g.bench_function("10k_protected", |b| {
        b.iter_batched(|| (), |()| engine(&protected), BatchSize::PerIteration)
    });
    g.finish();
}

criterion_group!(detect, benches);

fn main() {
    detect();
    Criterion::default().configure_from_args().final_summary();
}
