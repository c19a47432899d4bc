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

/// `rounds` alternating rounds of a `secs`-second iperf3 run and a burst of 200,000
/// 64-byte datagrams each way.
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
    let (mut tcp, mut small, mut tcp_abs, mut udp_abs) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let attached = || -> anyhow::Result<(f64, f64)> {
            Ok((
                bits_per_second(&t.exec("iperf3", &iperf)?)?,
                packets_per_second(&t.client(&udp)?)?,
            ))
        };
        let detached = || -> anyhow::Result<(f64, f64)> {
            Ok((
                bits_per_second(&bare.run(&t, "iperf3", &iperf)?)?,
                packets_per_second(&bare.probe(&t, &udp)?)?,
            ))
        };
        // Alternate which side goes first, so drift cancels out.
        let (a, d) = if round % 2 == 0 {
            (attached()?, detached()?)
        } else {
            let d = detached()?;
            (attached()?, d)
        };
        eprintln!(
            "round {round}: TCP {:.2} / {:.2} Gbit/s, UDP {:.0} / {:.0} pps (attached / bare)",
            a.0 / 1e9,
            d.0 / 1e9,
            a.1,
            d.1
        );
        tcp.push(a.0 / d.0);
        small.push(a.1 / d.1);
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
            "tcp_bare_gbit_s": (median(tcp_abs) / 1e7).round() / 100.0,
            "udp_bare_pps": median(udp_abs).round(),
        })
    );
    Ok(())
}
