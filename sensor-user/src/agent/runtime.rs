//! `mxsentry run`: start, then feed kernel events to the pipeline until SIGINT/SIGTERM,
//! reloading the config on SIGHUP or when the file changes.

use std::{
    collections::BTreeMap,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use sensor_common::EventKind;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{reload::reload, startup};
use crate::{
    config::{ConfigSource, DEFAULT_PATH},
    output::schema::{Event, ReloadTrigger},
};

/// How often the connect ring is drained: the most a connect event waits.
const CONNECT_DRAIN: Duration = Duration::from_millis(10);

/// What `mxsentry run` was asked on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The config file and the command-line values that win over it.
    pub source: ConfigSource,
    /// Leave programs attached on exit.
    pub keep_attached: bool,
    /// Also log every kernel record.
    pub raw_events: bool,
    /// Let the connect programs read the caller by the kernel's BTF.
    pub task_btf: bool,
}

/// The signals the agent answers, installed before anything is attached.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions, check_only: bool) -> anyhow::Result<()> {
    let (loaded, file) = opts.source.load()?;
    let path = file.as_ref().map(|f| f.path.clone());
    if check_only {
        let where_ = path.map_or("built-in defaults".to_string(), |p| p.display().to_string());
        let n = loaded.config.policy.protect.len();
        println!("config ok ({where_}): {n} protected entries");
        return Ok(());
    }
    let mut signals = Signals::install()?;
    let mut a = startup::start(loaded, &opts, path.as_deref()).await?;
    if path.is_none() {
        log::warn!("no config at {DEFAULT_PATH}: running with no protected domains (see --config)");
    }
    let mut seen_config = file.map(|f| f.text);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    // The connect programs do not wake the agent (a wakeup costs them more than the
    // rest of their work); their ring is drained on this timer and after DNS wakeups.
    let mut connect_tick = tokio::time::interval(CONNECT_DRAIN);
    connect_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            g = a.rings.dns.readable_mut() => {
                // Cleared before draining, so a record arriving meanwhile wakes us again.
                g.context("DNS ring")?.clear_ready();
                a.rings.drain(&mut a.pipeline);
            }
            _ = connect_tick.tick() => a.rings.drain(&mut a.pipeline),
            _ = signals.hup.recv() => {
                let file = opts.source.read();
                if let Some(text) = reload(&mut a.pipeline, &opts.source, file, ReloadTrigger::Sighup) {
                    seen_config = Some(text);
                }
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                a.pipeline.tick(now);
                for e in a.resolvers.refresh(now) {
                    a.pipeline.emit(e);
                }
                // A ConfigMap update swaps a symlink: compare contents, not mtimes. A file
                // missing for a moment (mid-swap) is not a change.
                if let Ok(Some(f)) = opts.source.read()
                    && seen_config.as_ref() != Some(&f.text)
                {
                    seen_config = reload(&mut a.pipeline, &opts.source, Ok(Some(f)), ReloadTrigger::File);
                }
            }
            _ = signals.int.recv() => break,
            _ = signals.term.recv() => break,
        }
    }
    stop(a, opts.keep_attached)
}

/// Drains what the kernel wrote before the signal, says so, and detaches (or not).
fn stop(mut a: startup::Running, keep_attached: bool) -> anyhow::Result<()> {
    a.ready.store(false, Ordering::Relaxed);
    a.server.abort();
    a.rings.drain(&mut a.pipeline);
    // Nothing is held for this agent's verdict once it is gone.
    a.pipeline.stop();
    let mut lost = BTreeMap::new();
    for k in EventKind::ALL {
        lost.insert(k.name(), a.pipeline.enforcer().lost(k)?);
    }
    let tally = std::mem::take(&mut a.rings.tally);
    drop(a.rings);
    a.pipeline.emit(Event::AgentStopped {
        received: tally.received,
        undecodable: tally.undecodable,
        lost,
        detached: !keep_attached,
    });
    drop(a.pipeline);
    if keep_attached {
        a.sensor.keep_attached();
    } else {
        a.sensor.detach()?;
    }
    Ok(())
}
