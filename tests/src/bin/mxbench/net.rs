//! Bulk TCP throughput (iperf3) and small-UDP packet rate over the veth pair, from a
//! client in the attached cgroup vs the bare one, alternating, with the agent running.

use anyhow::Context as _;
use mxsentry_tests::{Agent, Topology, agent::test_pin_dir, topology::SRV4};

use crate::{bare::Bare, median};

/// iperf3's received throughput in bits per second, from its JSON report.
fn bits_per_second(out: &str) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_str(out)?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no sum_received in iperf3's report")
}

fn packets_per_second(out: &str) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_str(out)?;
    let n = v["n"].as_f64().context("n")?;
    Ok(n / (v["ns"].as_f64().context("ns")? / 1e9))
}

/// `rounds` rounds of a `secs`-second iperf3 run and a burst of 200,000 64-byte
/// datagrams, from the attached cgroup, a bare one, and one with an empty program.
pub fn net_ratio(rounds: u32, secs: u32) -> anyhow::Result<()> {
    let mut t = Topology::new()?;
    t.spawn_server("iperf3", &["-s", "-B", SRV4[1]])?;
    // iperf3 prints nothing useful when ready; give it a moment to bind.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let bare = Bare::new(&t)?;
    let cg = t.cgroup.display().to_string();
    let _agent = Agent::start_quiet(&test_pin_dir("net"), &["--cgroup", &cg])?;
    let secs = secs.to_string();
    let iperf = ["-c", SRV4[1], "-t", secs.as_str(), "-J"];
    let udp_to = format!("{}:9999", SRV4[1]);
    let udp = ["udp-timed", udp_to.as_str(), "200000"];
    // A third cgroup with only an empty pass-through program: the hook's own cost.
    let floor = Bare::named(&t, "floor")?;
    let _pass = mxsentry_tests::rawbpf::Pass::attach(floor.path())?;
    let (mut tcp, mut small, mut tcp_abs, mut udp_abs) = (vec![], vec![], vec![], vec![]);
    let (mut tcp_floor, mut udp_floor) = (vec![], vec![]);
    for round in 0..rounds {
        // 0 = attached, 1 = bare, 2 = floor; the order rotates, so drift cancels out.
        let mut got = [(0.0, 0.0); 3];
        for k in 0..3 {
            let side = (round as usize + k) % 3;
            got[side] = match side {
                0 => (
                    bits_per_second(&t.exec("iperf3", &iperf)?)?,
                    packets_per_second(&t.client(&udp)?)?,
                ),
                1 => (
                    bits_per_second(&bare.run(&t, "iperf3", &iperf)?)?,
                    packets_per_second(&bare.probe(&t, &udp)?)?,
                ),
                _ => (
                    bits_per_second(&floor.run(&t, "iperf3", &iperf)?)?,
                    packets_per_second(&floor.probe(&t, &udp)?)?,
                ),
            };
        }
        let [a, d, f] = got;
        eprintln!(
            "round {round}: TCP {:.2} / {:.2} / {:.2} Gbit/s, UDP {:.0} / {:.0} / {:.0} pps (attached / bare / empty program)",
            a.0 / 1e9,
            d.0 / 1e9,
            f.0 / 1e9,
            a.1,
            d.1,
            f.1
        );
        tcp.push(a.0 / d.0);
        small.push(a.1 / d.1);
        tcp_floor.push(f.0 / d.0);
        udp_floor.push(f.1 / d.1);
        tcp_abs.push(d.0);
        udp_abs.push(d.1);
    }
    println!(
        "{}",
        serde_json::json!({
            "measurement": "net_ratio",
            "rounds": rounds,
            "tcp_median_ratio": (median(tcp) * 1000.0).round() / 1000.0,
            "udp_median_ratio": (median(small) * 1000.0).round() / 1000.0,
            "tcp_floor_ratio": (median(tcp_floor) * 1000.0).round() / 1000.0,
            "udp_floor_ratio": (median(udp_floor) * 1000.0).round() / 1000.0,
            "tcp_bare_gbit_s": (median(tcp_abs) / 1e7).round() / 100.0,
            "udp_bare_pps": median(udp_abs).round(),
        })
    );
    Ok(())
}
