//! Attached-vs-not ratios, event throughput and agent memory (`mxbench` again).

use std::fmt::Write as _;

use super::kernel::mxbench;

/// Runs them (after `kernel::run`, which builds `mxbench`) and returns their sections.
pub fn run() -> anyhow::Result<String> {
    let mut s = String::new();
    connect_ratio(&mut s)?;
    net_ratio(&mut s)?;
    dns_rate(&mut s)?;
    pending_flood(&mut s)?;
    resolver_ratio(&mut s)?;
    memory(&mut s)?;
    Ok(s)
}

/// The section on connect() attached vs not.
fn connect_ratio(s: &mut String) -> anyhow::Result<()> {
    let ratio = mxbench(&["connect-ratio", "30", "4000"])?;
    let _ = writeln!(s, "\n## connect() attached vs not\n");
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench connect-ratio 30 4000`. The agent runs attached to a \
         test cgroup throughout; each of 30 rounds times 4,000 loopback connects (each closed \
         with a reset, so no TIME_WAIT builds up) from a client in that cgroup and from one in \
         a sibling cgroup with nothing attached, alternating which goes first; the figure is the \
         median of the per-round ratios. The control row times two sibling cgroups with nothing \
         attached against each other: the method's own noise. The empty-programs row times a \
         sibling with only empty programs (`r0 = 1; exit`) on the same hooks (connect4, \
         cgroup_skb ingress and egress) against the bare one: what attaching anything there \
         costs a loopback connect.\n"
    );
    let _ = writeln!(
        s,
        "| connect to | median ratio attached / not | target |\n|---|---:|---:|"
    );
    for (what, key, target) in [
        (
            "SMTP port (25), with its event",
            "smtp_median_ratio",
            "≤ 1.03",
        ),
        ("non-SMTP port (8080)", "non_smtp_median_ratio", "≤ 1.01"),
        (
            "empty programs on the same hooks (8080)",
            "empty_programs_median_ratio",
            "(floor)",
        ),
        (
            "control: nothing attached on either side (8080)",
            "control_median_ratio",
            "1",
        ),
    ] {
        let _ = writeln!(s, "| {what} | {} | {target} |", ratio[key]);
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "What an attached connect pays on loopback is not only connect4: the handshake's \
         packets (SYN, SYN-ACK, ACK and the closing RST) each pass the `cgroup_skb` hooks, DNS \
         or not, on a connect that takes only some 30 µs. Compare the non-SMTP row with the \
         empty-programs row: where they are close, the gap to 1.01 is the cost of having any \
         program on these hooks, not of what mxsentry's programs do there (their fast paths are \
         within a few ns of the empty program, see the kernel-cost table above). On a real \
         network a connect takes hundreds of microseconds and the same cost is a tenth of that \
         share.\n"
    );
    Ok(())
}

/// The section on throughput attached vs not.
fn net_ratio(s: &mut String) -> anyhow::Result<()> {
    let net = mxbench(&["net-ratio", "6", "2"])?;
    let _ = writeln!(s, "## Throughput attached vs not\n");
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench net-ratio 6 2`. Over the test veth pair, with the \
         agent attached to the client's cgroup: 6 alternating rounds of a 2-second `iperf3` TCP \
         run (Debian's iperf3) and a burst of 200,000 64-byte UDP datagrams to a non-DNS port, \
         from the attached cgroup, from a bare sibling, and from a sibling with only an empty \
         pass-through cgroup_skb program (ingress and egress); medians of the per-round ratios. \
         Bare side: {} Gbit/s TCP, {} datagrams/s.\n",
        net["tcp_bare_gbit_s"], net["udp_bare_pps"]
    );
    let _ = writeln!(
        s,
        "| traffic | median ratio attached / not | an empty program / not (the hook's floor) | target |\n|---|---:|---:|---:|"
    );
    let _ = writeln!(
        s,
        "| bulk TCP (iperf3) | {} | {} | ≥ 0.99 |",
        net["tcp_median_ratio"], net["tcp_floor_ratio"]
    );
    let _ = writeln!(
        s,
        "| small UDP packets | {} | {} | ≥ 0.95 |\n",
        net["udp_median_ratio"], net["udp_floor_ratio"]
    );
    let _ = writeln!(
        s,
        "Every packet of an attached socket passes the `cgroup_skb` programs, DNS or not; the \
         fast path that rejects a non-DNS packet is what this costs. The empty-program column \
         is what the hook costs with no work at all: where the attached ratio misses its target \
         and sits near that floor, the gap is the kernel's per-packet dispatch, which capturing \
         DNS payloads needs (among cgroup hooks only `cgroup_skb` sees payloads).\n"
    );
    Ok(())
}

/// The section on DNS events sustained end to end.
fn dns_rate(s: &mut String) -> anyhow::Result<()> {
    let rate = mxbench(&["dns-rate", "2", "50000", "100000", "200000", "300000"])?;
    let _ = writeln!(s, "## DNS events sustained end to end\n");
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench dns-rate 2 50000 100000 200000 300000`. Two client \
         processes (one per core) together offer distinct A queries at each rate for 2 s (to a server address with no \
         listener, so only query events count); the agent (20 protected domains, no raw event \
         log) captures, parses and classifies each. Received is the agent's \
         `mxsentry_dns_messages_total`, lost the kernel's `mxsentry_events_lost_total{{kind=\"dns\"}}`; \
         agent CPU from `/proc/PID/schedstat`.\n"
    );
    let _ = writeln!(
        s,
        "| offered /s | achieved /s | sent | received | lost | received + lost = sent | agent CPU per 10,000 events |\n|---:|---:|---:|---:|---:|:---:|---:|"
    );
    for r in rate["rows"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} ms |",
            r["offered_per_s"],
            r["achieved_per_s"],
            r["sent"],
            r["received"],
            r["lost"],
            if r["accounted"] == true { "yes" } else { "NO" },
            r["agent_cpu_ms_per_10k"]
        );
    }
    let rows = rate["rows"].as_array().cloned().unwrap_or_default();
    let best = rows
        .iter()
        .filter_map(|r| r["achieved_per_s"].as_f64())
        .fold(0.0, f64::max);
    let all = rows.iter().all(|r| r["accounted"] == true);
    let cpu = rows
        .last()
        .and_then(|r| r["agent_cpu_ms_per_10k"].as_f64())
        .unwrap_or(f64::NAN);
    let _ = writeln!(
        s,
        "\nHighest rate achieved: {best:.0}/s; {}. The offered load is \
         bounded by the senders, whose every packet passes the egress program on the same two \
         cores the agent uses. The agent's own ceiling, from its CPU per event at the highest \
         rate ({cpu} ms per 10,000), is about {:.0} events/s per core.\n",
        if all {
            "every event accounted for at every rate"
        } else {
            "SOME EVENTS UNACCOUNTED (see the table)"
        },
        1e4 / (cpu / 1e3)
    );
    Ok(())
}

/// The section on a flood of NXDOMAIN lookalike answers (persistence under load).
fn pending_flood(s: &mut String) -> anyhow::Result<()> {
    let f = mxbench(&["pending-flood", "50000", "10"])?;
    let _ = writeln!(s, "## A flood of NXDOMAIN lookalike answers\n");
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench pending-flood 50000 10`. Two client processes \
         together ask for distinct names at 50,000 a second for 10 s, under {} distinct \
         lookalikes of `army.mil` (`armymil.f<k>.ck`, the dot dropped); the lab's server \
         answers each NXDOMAIN, so every answer updates the agent's memory of unresolved \
         lookalikes, which it persists. The control row is the same flood of lookalikes \
         (under `.np`) answered NODATA: the same capture, parsing and classification, but an \
         address-only NODATA leaves nothing to remember or save. Expected is the queries sent \
         plus the answers received, each one DNS event; received is the agent's \
         `mxsentry_dns_messages_total`, lost the kernel's \
         `mxsentry_events_lost_total{{kind=\"dns\"}}`. Loss in the NXDOMAIN row beyond the \
         control row is the agent's own persistence (an earlier build rewrote the whole file \
         on every such answer: 88% of DNS events lost at 20,000/s in \
         `tests/tests/hardening.rs`, 0 now).\n",
        f["distinct"]
    );
    let _ = writeln!(
        s,
        "| flood | answers /s | expected | received | lost | received + lost = expected | file saves | agent CPU | agent RSS before → after (peak) |\n|---|---:|---:|---:|---:|:---:|---:|---:|---:|"
    );
    for (name, key) in [
        ("names imitating nothing (control)", "control"),
        ("NXDOMAIN lookalikes", "lookalike"),
    ] {
        let r = &f[key];
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} | {} s | {} → {} MB ({} MB) |",
            r["answers_per_s"],
            r["events_expected"],
            r["received"],
            r["lost"],
            if r["accounted"] == true { "yes" } else { "NO" },
            r["state_saves"],
            r["agent_cpu_s"],
            r["rss_before_mb"],
            r["rss_after_mb"],
            r["rss_peak_mb"]
        );
    }
    let extra = f["lookalike"]["lost"].as_f64().unwrap_or(f64::NAN)
        - f["control"]["lost"].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        s,
        "\nLoss attributable to the agent's persistence (NXDOMAIN row less control row): \
         {} events; the unresolved-lookalike memory held {} entries afterwards (bounded by \
         `pending_max` and `pending_per_target`), saved at most every 5 s. Loss in both rows \
         is the agent's CPU: at 100,000 DNS events a second it classifies each new name (most \
         of its time, in `detect/`; its answer and its parent domains are answered from the \
         engine's memo of its last 3,584 answers) on two cores it shares with the two senders \
         and the server.\n",
        extra.max(0.0),
        f["lookalike"]["pending"]
    );
    Ok(())
}

/// The section on a local caching resolver while a lookalike is blocked.
fn resolver_ratio(s: &mut String) -> anyhow::Result<()> {
    let res = mxbench(&["resolver-ratio", "20", "500"])?;
    let _ = writeln!(
        s,
        "## A local caching resolver while a lookalike is blocked\n"
    );
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench resolver-ratio 20 500`. The e2e mail lab with a \
         caching Unbound on the mail host's loopback (forwarding to the lab's authoritative \
         Unbound) and the agent enforcing `army.mil`. 20 alternating rounds of 500 lookups of \
         distinct other names through that Unbound, once while another process asks it for \
         names under the lookalike `army.ml` (each of those answers dropped at the asker, {} of \
         {}), once without; the median of the per-round ratios of p50 latency. Lookups left \
         unanswered in all rounds: {}.\n",
        res["lookalike_answers_dropped"], res["lookalike_asks"], res["unanswered"]
    );
    let _ = writeln!(
        s,
        "| other lookups, p50 while blocking / while not | target |\n|---:|---:|\n| {} | ≤ 1.05 |\n",
        res["median_ratio"]
    );
    Ok(())
}

/// The section on agent memory.
fn memory(s: &mut String) -> anyhow::Result<()> {
    let mem = mxbench(&["memory", "200000"])?;
    let _ = writeln!(s, "## Agent memory\n");
    let _ = writeln!(
        s,
        "Command: `target/release/mxbench memory 200000`: the agent's VmRSS one second after \
         start, and its peak (VmHWM) after 200,000 queries at 20,000/s (half of them lookalikes \
         of distinct names under one lookalike of a protected name). RssAnon is the agent's \
         own heap and stacks; the rest of VmRSS is the mapped binary, libraries and event-ring \
         pages. (An earlier build grew by 7 MB here: it kept one block entry per lookalike \
         name; it now keeps one per lookalike domain.)\n"
    );
    let _ = writeln!(
        s,
        "| protected domains | idle RSS | peak RSS under load | of which the agent's own (RssAnon) idle / after load | target |\n|---:|---:|---:|---:|---:|"
    );
    for (r, target) in mem["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(["≤ 30 MB", "≤ 250 MB"])
    {
        let _ = writeln!(
            s,
            "| {} | {} MB | {} MB | {} / {} MB | {target} |",
            r["protected"], r["idle_mb"], r["load_peak_mb"], r["idle_anon_mb"], r["load_anon_mb"]
        );
    }
    s.push('\n');
    Ok(())
}
