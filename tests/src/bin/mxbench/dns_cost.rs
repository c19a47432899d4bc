//! Kernel cost per DNS answer packet by message size, and per segment of DNS over TCP:
//! a hostile DNS server per size (answers padded to about 100 B, 1 KiB and 4 KiB, the last
//! under the 4,096 bytes EDNS offers), asked over UDP, and 4 KiB answers over TCP with
//! their replies cut every 1,000 bytes; each row is the change of the kernel's
//! `run_time_ns / run_cnt` of `mx_dns_ingress` over its phase, beside an empty cgroup_skb
//! program on the same packets (the hook's floor).
//!
//! TCP twice: segments back to back, as the UDP answers come (a busy stream), and 30 ms
//! apart, as the reassembly tests send them. Each of the latter reaches a CPU that went
//! idle meanwhile, with its caches cold, and costs several times as much for that alone
//! (an empty program too): a property of the host's idleness, not of the program, so
//! it is reported beside the other rather than in its place.

use anyhow::Context as _;
use mxsentry_tests::{Agent, Topology, agent::test_pin_dir, topology::SRV4};

use crate::{floor_per_run, floor_stats, median, per_run, prog_stats};

/// Answer sizes asked for, each from its own server (port 53 of its own address).
const SIZES: [(usize, &str); 3] = [(100, SRV4[0]), (1024, SRV4[1]), (4000, SRV4[2])];
/// Questions per TCP connection (within what the kernel decides in one segment).
const PER_CONNECTION: usize = 4;
/// Pause between segments, in ms, of the servers that pause as the tests' do.
const PAUSED_MS: u32 = 30;
/// The TCP servers of 4 KiB answers: (pause between segments in ms, address). The paused
/// one is the 4 KiB UDP server.
const TCP_SERVERS: [(u32, &str); 2] = [(0, SRV4[3]), (PAUSED_MS, SRV4[2])];

/// Mean answer length of a `mxprobe dns` report; errors if any answer is missing.
fn mean_answer(out: &str) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_str(out)?;
    let answers = v["answers"].as_array().context("no answers")?;
    let mut total = 0usize;
    for a in answers {
        total += a.as_str().context("a question went unanswered")?.len() / 2;
    }
    Ok(total as f64 / answers.len().max(1) as f64)
}

/// One row: what, the samples (ns per run, runs) of mx_dns_ingress and of the floor, and
/// the mean answer size.
struct Row {
    what: String,
    ingress: Vec<(f64, f64)>,
    floor: Vec<(f64, f64)>,
    bytes: f64,
}

/// `rounds` rounds of `n` answers of each size over UDP, and `n` over TCP.
pub fn dns_cost(n: usize, rounds: u32) -> anyhow::Result<()> {
    anyhow::ensure!(rounds > 0 && n > 0, "dnscost needs answers and rounds");
    let mut t = Topology::new()?;
    // One server per size, pausing between TCP segments, and one more of 4 KiB answers
    // writing them back to back; each says its pause rather than rely on the default.
    let (busy_pause, busy) = TCP_SERVERS[0];
    let servers = SIZES
        .iter()
        .map(|&(size, addr)| (size, addr, PAUSED_MS))
        .chain([(SIZES[2].0, busy, busy_pause)]);
    for (size, addr, pause) in servers {
        t.serve(&[
            "serve-hostile",
            &format!("{addr}:53"),
            "BIG=big.ml",
            &format!("SIZE={size}"),
            "TCP=every:1000",
            &format!("PAUSE={pause}"),
        ])?;
    }
    let cg = t.cgroup.display().to_string();
    let agent = Agent::start_quiet(&test_pin_dir("dnscost"), &["--cgroup", &cg])?;
    let _floor = mxsentry_tests::rawbpf::Pass::attach(&t.cgroup)?;
    let names = vec!["big.ml"; n].join(",");
    let tcp_names = ["big.ml"; PER_CONNECTION].join(",");
    let mut rows: Vec<Row> = SIZES
        .iter()
        .map(|(size, _)| Row {
            what: format!("UDP answer of about {size} B (EDNS)"),
            ingress: vec![],
            floor: vec![],
            bytes: 0.0,
        })
        .chain(TCP_SERVERS.iter().map(|(pause, _)| Row {
            what: format!(
                "TCP, per segment of 4 KiB answers cut every 1,000 B, {} (handshake, ACKs \
                 and FIN included)",
                if *pause == 0 {
                    "back to back".to_string()
                } else {
                    format!("{pause} ms apart (each on an idle CPU)")
                }
            ),
            ingress: vec![],
            floor: vec![],
            bytes: 0.0,
        }))
        .collect();
    // One phase into `row`: the client run with `args`, between two snapshots of the
    // program's and the floor's accounting (the floor runs on both directions: the
    // queries' packets and the answers').
    let phase = |row: &mut Row, args: &[&str]| -> anyhow::Result<()> {
        let (s0, f0) = (prog_stats(&agent)?, floor_stats("floor_pass")?);
        let out = t.client(args)?;
        let (s1, f1) = (prog_stats(&agent)?, floor_stats("floor_pass")?);
        row.bytes = mean_answer(&out)?;
        row.ingress.push(per_run(&s0, &s1, "mx_dns_ingress"));
        row.floor.push(floor_per_run(f0, f1));
        Ok(())
    };
    let per_connection = n.div_ceil(PER_CONNECTION).to_string();
    for _ in 0..rounds {
        for (row, (_, addr)) in rows.iter_mut().zip(SIZES) {
            // The largest answer must fit (EDNS 4,096), or the server sends a truncated one.
            let server = format!("{addr}:53");
            phase(
                row,
                &["dns", "udp-edns:4096", &server, &names, "MX", "2000"],
            )?;
        }
        for (row, (_, addr)) in rows[SIZES.len()..].iter_mut().zip(TCP_SERVERS) {
            // One client process for every connection, as a resolver or MTA that stays up
            // (a process started per connection put its own start-up in the figure).
            let server = format!("{addr}:53");
            let args = [
                "dns-repeat",
                "tcp",
                &server,
                &tcp_names,
                "MX",
                "2000",
                &per_connection,
            ];
            phase(row, &args)?;
        }
    }
    // Back to back, the writes must still leave as separate segments, or that row would
    // be per coalesced packet: as many packets as the paused server's, give or take a
    // retransmission.
    let packets = |row: &Row| row.ingress.iter().map(|s| s.1).sum::<f64>();
    let (busy, paused) = (&rows[SIZES.len()], &rows[SIZES.len() + 1]);
    anyhow::ensure!(
        packets(busy) >= 0.95 * packets(paused),
        "the back-to-back server's segments were merged: {} packets against {}",
        packets(busy),
        packets(paused)
    );
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let spread = |s: &[(f64, f64)]| {
        let ns: Vec<f64> = s.iter().map(|x| x.0).collect();
        (
            round1(median(ns.clone())),
            round1(ns.iter().copied().fold(f64::INFINITY, f64::min)),
            round1(ns.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        )
    };
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            let (ns, lo, hi) = spread(&r.ingress);
            let (floor, ..) = spread(&r.floor);
            serde_json::json!({
                "what": r.what,
                "answer_bytes": r.bytes.round(),
                "ns_per_run": ns,
                "min": lo,
                "max": hi,
                "floor_ns_per_run": floor,
                "runs_per_round": r.ingress.first().map_or(0.0, |s| s.1),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "measurement": "dns_cost", "rounds": rounds, "rows": rows })
    );
    Ok(())
}
