//! `mxsentry run`: start, then feed kernel events to the pipeline until SIGINT/SIGTERM,
//! reloading the config on SIGHUP or when the file changes.
//!
//! Stop signals are handled from the first instant: `defer_stop_signals` blocks them
//! before the runtime exists, the handlers are installed before the config is read, and
//! start-up looks at the stop request between its steps, so a signal at any point ends
//! with `agent_stopped` and (without `--keep-attached`) nothing attached.

use std::{
    collections::BTreeMap,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use sensor_common::EventKind;
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::watch,
};

use super::{pin_watch, reload::Reloader, startup};
use crate::{
    config::{ConfigSource, DEFAULT_PATH},
    output::schema::Event,
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

/// The signals `run` answers.
const HANDLED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Changes the calling thread's mask for the signals `run` answers.
fn mask(how: libc::c_int) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; the calls
    // only read and write the set we own and the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts
/// afterwards (the runtime's): from here on such a signal waits for `run`'s handlers
/// instead of killing the process. Call first thing in `main` for `run`.
pub fn defer_stop_signals() {
    mask(libc::SIG_BLOCK);
}

/// Undoes [`defer_stop_signals`] (for the commands that are not `run`).
pub fn undefer_stop_signals() {
    mask(libc::SIG_UNBLOCK);
}

/// Whether a stop (SIGINT or SIGTERM) was asked for.
#[derive(Clone)]
pub struct StopFlag(watch::Receiver<bool>);

impl StopFlag {
    /// A stop was asked for.
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until a stop is asked for.
    async fn wait(&mut self) {
        // An error means the watcher task is gone: the runtime is ending anyway.
        let _ = self.0.wait_for(|s| *s).await;
    }
}

/// The signals the agent answers, handled from before the config is read.
struct Signals {
    hup: Signal,
    stop: StopFlag,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        // The handlers are live: a signal that came while blocked is delivered now.
        undefer_stop_signals();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(Self {
            hup,
            stop: StopFlag(rx),
        })
    }
}

/// How the agent leaves the kernel when it stops.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Programs stay attached, maps pinned (`--keep-attached`).
    Keep,
    /// Everything detached and removed.
    Detach,
    /// The pin directory is someone else's now: touch nothing in it.
    Abandon,
}

impl Exit {
    /// The exit `--keep-attached` asks for.
    pub fn asked(keep_attached: bool) -> Self {
        if keep_attached {
            Exit::Keep
        } else {
            Exit::Detach
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions, check_only: bool) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let (loaded, file) = opts.source.load()?;
    log::debug!("start-up: config loaded");
    let path = file.as_ref().map(|f| f.path.clone());
    if check_only {
        let where_ = path.map_or("built-in defaults".to_string(), |p| p.display().to_string());
        let n = loaded.config.policy.protect.len();
        println!("config ok ({where_}): {n} protected entries");
        return Ok(());
    }
    let stop_flag = signals.stop.clone();
    let mut reloader = Reloader::new(opts.source.clone(), loaded.config.clone(), file.as_ref());
    let mut a = match startup::start(loaded, &opts, path.as_deref(), &stop_flag).await? {
        startup::Started::Running(a) => *a,
        startup::Started::Stopped => return Ok(()),
    };
    let mut exit = Exit::asked(opts.keep_attached);
    if stop_flag.requested() {
        return stop(a, exit);
    }
    a.announce();
    if path.is_none() {
        log::warn!("no config at {DEFAULT_PATH}: running with no protected domains (see --config)");
    }
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
            _ = signals.hup.recv() => reloader.sighup(&mut a.pipeline),
            _ = ticker.tick() => {
                let now = Instant::now();
                a.pipeline.tick(now);
                for e in a.resolvers.refresh(now) {
                    a.pipeline.emit(e);
                }
                if let Err(e) = pin_watch::check(&mut a.sensor, &mut a.pipeline, &mut exit) {
                    stop(a, Exit::Abandon)?;
                    return Err(e.into());
                }
                // A ConfigMap update swaps a symlink: compare contents, not mtimes.
                reloader.tick(&mut a.pipeline);
            }
            _ = signals.stop.wait() => break,
        }
    }
    stop(a, exit)
}

/// Drains what the kernel wrote before the signal, says so, and detaches (or not).
fn stop(mut a: startup::Running, exit: Exit) -> anyhow::Result<()> {
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
    a.pipeline.stopping();
    a.pipeline.emit(Event::AgentStopped {
        received: tally.received,
        undecodable: tally.undecodable,
        lost,
        detached: exit != Exit::Keep,
    });
    drop(a.pipeline);
    startup::release(a.sensor, exit)
}
