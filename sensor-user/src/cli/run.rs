//! `mxsentry run`: load, attach, print events, detach on SIGINT/SIGTERM.

use std::{collections::BTreeMap, io::Write as _};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sensor_common::{
    EventKind,
    maps::{CONNECT_EVENTS, DNS_EVENTS},
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use super::args::RunArgs;
use crate::{
    events::{
        KernelEvent, decode,
        record::{ConnectRecord, DnsRecord},
    },
    kernel::{KernelError, Sensor, SensorOptions, VerdictMaps, cgroup},
};

fn take_ring(sensor: &mut Sensor, name: &str) -> Result<AsyncFd<RingBuf<MapData>>, anyhow::Error> {
    let map = sensor
        .ebpf_mut()
        .take_map(name)
        .ok_or_else(|| KernelError::MissingMap(name.into()))?;
    let ring = RingBuf::try_from(map).with_context(|| format!("ring buffer {name}"))?;
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long
    // as the AsyncFd (which owns the RingBuf) lives.
    let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
    fd.map_err(|e| anyhow::anyhow!("polling {name}: {}", e.into_parts().1))
}

/// Counts of what the agent has received and failed to decode.
#[derive(Default)]
struct Tally {
    received: BTreeMap<&'static str, u64>,
    undecodable: u64,
}

fn emit(line: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (consumer gone) must not kill the sensor; nothing else to do.
    if serde_json::to_writer(&mut out, line).is_ok() {
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

fn drain(ring: &mut RingBuf<MapData>, tally: &mut Tally) {
    while let Some(item) = ring.next() {
        match decode(&item) {
            Ok(KernelEvent::Connect(e)) => {
                *tally.received.entry(EventKind::Connect.name()).or_default() += 1;
                emit(&ConnectRecord::from(&*e));
            }
            Ok(KernelEvent::Dns(e)) => {
                *tally.received.entry(EventKind::Dns.name()).or_default() += 1;
                emit(&DnsRecord::from(&*e));
            }
            Err(e) => {
                tally.undecodable += 1;
                log::warn!("skipping undecodable kernel record: {e}");
            }
        }
    }
}

/// Runs the sensor until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let cgroup = cgroup::attach_cgroup(args.cgroup.as_deref())?;
    let opts = SensorOptions {
        pin_dir: args.pin_dir.clone(),
        cgroup: cgroup.clone(),
    };
    let mut sensor = Sensor::load(&opts)?;
    let mut maps = VerdictMaps::open(&args.pin_dir)?;
    maps.set_smtp_ports(&args.smtp_ports)?;
    maps.set_mode(args.mode)?;
    let mut dns = take_ring(&mut sensor, DNS_EVENTS)?;
    let mut connect = take_ring(&mut sensor, CONNECT_EVENTS)?;
    emit(&serde_json::json!({
        "event": "agent_started",
        "cgroup": cgroup.display().to_string(),
        "attached": sensor.attached(),
        "adopted": sensor.adopted(),
        "mode": args.mode.name(),
        "smtp_ports": args.smtp_ports,
    }));
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut tally = Tally::default();
    loop {
        tokio::select! {
            g = dns.readable_mut() => {
                let mut g = g.context("DNS ring")?;
                drain(g.get_inner_mut(), &mut tally);
                g.clear_ready();
            }
            g = connect.readable_mut() => {
                let mut g = g.context("connect ring")?;
                drain(g.get_inner_mut(), &mut tally);
                g.clear_ready();
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    // Whatever the kernel wrote before the signal still belongs to this run.
    drain(dns.get_mut(), &mut tally);
    drain(connect.get_mut(), &mut tally);
    let mut lost = BTreeMap::new();
    for k in EventKind::ALL {
        lost.insert(k.name(), maps.lost(k)?);
    }
    drop((dns, connect, maps));
    let detached = !args.keep_attached;
    if args.keep_attached {
        sensor.keep_attached();
    } else {
        sensor.detach()?;
    }
    emit(&serde_json::json!({
        "event": "agent_stopped",
        "received": tally.received,
        "undecodable": tally.undecodable,
        "lost": lost,
        "detached": detached,
    }));
    Ok(())
}
