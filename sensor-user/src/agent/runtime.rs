//! `mxsentry run`: load and attach, then feed kernel events to the pipeline until
//! SIGINT/SIGTERM, reloading the config on SIGHUP or when the file changes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sensor_common::{
    EventKind, Verdict,
    event::{DNS_FLAG_RESOLVER, Direction},
    maps::{CONNECT_EVENTS, DNS_EVENTS, PROGRAMS},
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use super::{
    ConnectIn, DnsIn, Outputs, Pipeline, eventlog::EventLog, events::Event, http, metrics::Metrics,
    pending::Pending, resolvers::LocalResolvers,
};
use crate::{
    alert::{Endpoint, Pusher},
    attrib::CgroupPaths,
    config::{Config, ConfigError, DEFAULT_PATH},
    events::{
        KernelEvent, decode,
        decode::{comm, ip},
        record::{ConnectRecord, DnsRecord},
    },
    kernel::{
        KernelError, Sensor, SensorOptions, VerdictMaps, cgroup, loader::check_before_load,
        maps::Mode,
    },
};

/// How often the connect ring is drained: the most a connect event waits.
const CONNECT_DRAIN: Duration = Duration::from_millis(10);

/// What `mxsentry run` was asked on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Config file; `None` means the default path, which may be absent.
    pub config: Option<PathBuf>,
    /// Overrides `agent.mode` (also across reloads).
    pub mode: Option<Mode>,
    /// Overrides `agent.smtp_ports`.
    pub smtp_ports: Option<Vec<u16>>,
    /// Overrides `agent.cgroup`.
    pub cgroup: Option<PathBuf>,
    /// Overrides `agent.pin_dir`.
    pub pin_dir: Option<PathBuf>,
    /// Overrides `metrics.listen`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Overrides `agent.state_dir`.
    pub state_dir: Option<PathBuf>,
    /// Leave programs attached on exit.
    pub keep_attached: bool,
    /// Also log every kernel record.
    pub raw_events: bool,
    /// Let the connect programs read the caller by the kernel's BTF.
    pub task_btf: bool,
}

impl RunOptions {
    fn apply(&self, c: &mut Config) {
        if let Some(m) = self.mode {
            c.agent.mode = m;
        }
        if let Some(p) = &self.smtp_ports {
            c.agent.smtp_ports = p.clone();
        }
        if let Some(p) = &self.cgroup {
            c.agent.cgroup = Some(p.clone());
        }
        if let Some(p) = &self.pin_dir {
            c.agent.pin_dir = p.clone();
        }
        if let Some(a) = self.metrics_listen {
            c.metrics.listen = a;
        }
        if let Some(d) = &self.state_dir {
            c.agent.state_dir = d.clone();
        }
    }

    /// The file to read, if any: an explicit path must exist, the default may not.
    fn path(&self) -> Option<PathBuf> {
        match &self.config {
            Some(p) => Some(p.clone()),
            None => Path::new(DEFAULT_PATH)
                .exists()
                .then(|| PathBuf::from(DEFAULT_PATH)),
        }
    }

    /// The config file and its text, if there is a file. Read once per (re)load, so the
    /// text that is applied is the text remembered as seen.
    fn read(&self) -> Result<Option<ConfigFile>, ConfigError> {
        let Some(path) = self.path() else {
            return Ok(None);
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(ConfigFile { path, text })),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// The config from `file` (defaults without one), with the command-line overrides.
    fn config(&self, file: Option<&ConfigFile>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(f) => Config::parse(&f.text, &f.path)?,
            None => Config::default(),
        };
        self.apply(&mut c);
        Ok(c)
    }
}

/// A config file as read.
struct ConfigFile {
    path: PathBuf,
    text: String,
}

fn take_ring(sensor: &mut Sensor, name: &str) -> anyhow::Result<RingBuf<MapData>> {
    let map = sensor
        .ebpf_mut()
        .take_map(name)
        .ok_or_else(|| KernelError::MissingMap(name.into()))?;
    RingBuf::try_from(map).with_context(|| format!("ring buffer {name}"))
}

/// Registers a ring with the runtime, to be woken when the kernel submits to it.
fn watch(ring: RingBuf<MapData>, name: &str) -> anyhow::Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long
    // as the AsyncFd (which owns the RingBuf) lives.
    let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
    fd.map_err(|e| anyhow::anyhow!("polling {name}: {}", e.into_parts().1))
}

/// What the agent received, for the stop line.
#[derive(Default)]
struct Tally {
    received: BTreeMap<&'static str, u64>,
    undecodable: u64,
}

fn drain(ring: &mut RingBuf<MapData>, p: &mut Pipeline<VerdictMaps>, tally: &mut Tally, raw: bool) {
    while let Some(item) = ring.next() {
        match decode(&item) {
            Ok(KernelEvent::Connect(e)) => {
                *tally.received.entry(EventKind::Connect.name()).or_default() += 1;
                if raw {
                    p.emit_raw(&ConnectRecord::from(&*e));
                }
                let Some(addr) = ip(e.family, &e.addr) else {
                    continue;
                };
                p.on_connect(ConnectIn {
                    ts_ns: e.ts_ns,
                    tgid: e.tgid,
                    comm: comm(&e.comm),
                    cgroup_id: e.cgroup_id,
                    addr,
                    port: e.port,
                    verdict: Verdict::from_u32(e.verdict).unwrap_or(Verdict::Allowed),
                });
            }
            Ok(KernelEvent::Dns(e)) => {
                *tally.received.entry(EventKind::Dns.name()).or_default() += 1;
                if raw {
                    p.emit_raw(&DnsRecord::from(&*e));
                }
                let cap = (e.cap_len as usize).min(e.data.len());
                p.on_dns(&DnsIn {
                    ts_ns: e.ts_ns,
                    direction: if e.direction == Direction::Ingress as u8 {
                        Direction::Ingress
                    } else {
                        Direction::Egress
                    },
                    verdict: Verdict::from_u32(e.verdict).unwrap_or(Verdict::Allowed),
                    cgroup_id: e.cgroup_id,
                    payload: &e.data[..cap],
                    msg_len: e.msg_len as usize,
                    resolver: e.flags & DNS_FLAG_RESOLVER != 0,
                });
            }
            Err(e) => {
                tally.undecodable += 1;
                p.metrics().undecodable.inc();
                log::warn!("skipping undecodable kernel record: {e}");
            }
        }
    }
}

/// Drains the DNS ring, then the connect ring: an answer is known before the connect
/// it led to.
fn drain_both(
    dns: &mut RingBuf<MapData>,
    connect: &mut RingBuf<MapData>,
    p: &mut Pipeline<VerdictMaps>,
    tally: &mut Tally,
    raw: bool,
) {
    drain(dns, p, tally, raw);
    drain(connect, p, tally, raw);
}

/// Pulls the kernel's loss counters and per-program statistics into the metrics.
fn kernel_refresh(maps: VerdictMaps, metrics: Metrics) -> http::Refresh {
    let maps = Mutex::new(maps);
    Arc::new(move || {
        if let Ok(maps) = maps.lock() {
            for k in EventKind::ALL {
                match maps.lost(k) {
                    Ok(n) => {
                        Metrics::raise_to(&metrics.events_lost.with_label_values(&[k.name()]), n)
                    }
                    Err(e) => log::warn!("reading loss counter: {e}"),
                }
            }
        }
        let mut time: BTreeMap<&str, f64> = BTreeMap::new();
        let mut runs: BTreeMap<&str, u64> = BTreeMap::new();
        for info in aya::programs::loaded_programs().flatten() {
            let Some(name) = info
                .name_as_str()
                .and_then(|n| PROGRAMS.iter().find(|p| **p == n))
            else {
                continue;
            };
            *time.entry(name).or_default() += info.run_time().as_secs_f64();
            *runs.entry(name).or_default() += info.run_count();
        }
        for (name, secs) in time {
            let c = metrics.program_run_seconds.with_label_values(&[name]);
            if secs > c.get() {
                c.inc_by(secs - c.get());
            }
        }
        for (name, n) in runs {
            Metrics::raise_to(&metrics.program_runs.with_label_values(&[name]), n);
        }
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Applies a config just read, or keeps the old one, and says which. Returns the text
/// that was read (applied or refused), so it is not tried again until it changes.
fn reload(
    p: &mut Pipeline<VerdictMaps>,
    opts: &RunOptions,
    file: Result<Option<ConfigFile>, ConfigError>,
    trigger: &'static str,
) -> Option<String> {
    let outcome = file
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|f| opts.config(f.as_ref()).map_err(anyhow::Error::from))
        .and_then(|c| p.reload(&c).map_err(anyhow::Error::from));
    let (result, error) = match &outcome {
        Ok(()) => ("ok", None),
        Err(e) => ("error", Some(format!("{e:#}"))),
    };
    p.metrics()
        .config_reloads
        .with_label_values(&[result])
        .inc();
    if let Some(e) = &error {
        log::error!("config reload ({trigger}) refused, keeping the running policy: {e}");
    }
    let (protected, mode) = (p.protected(), p.mode().name());
    p.emit(Event::ConfigReloaded {
        result,
        trigger,
        error,
        protected,
        mode,
    });
    file.ok().flatten().map(|f| f.text)
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions, check_only: bool) -> anyhow::Result<()> {
    let file = opts.read()?;
    let config = opts.config(file.as_ref())?;
    let path = file.as_ref().map(|f| f.path.clone());
    let mut seen_config = file.map(|f| f.text);
    if check_only {
        let where_ = path.map_or("built-in defaults".to_string(), |p| p.display().to_string());
        println!(
            "config ok ({where_}): {} protected entries",
            config.policy.protect.len()
        );
        return Ok(());
    }
    let metrics = Metrics::new()?;
    let cgroup = cgroup::attach_cgroup(config.agent.cgroup.as_deref())?;
    let pin_dir = config.agent.pin_dir.clone();
    let sensor_opts = SensorOptions {
        pin_dir: pin_dir.clone(),
        cgroup: cgroup.clone(),
        task_btf: opts.task_btf,
    };
    // Say what is missing before taking the port, and take the port before attaching.
    check_before_load(&sensor_opts)?;
    let listener = http::bind(config.metrics.listen).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let mut sensor = Sensor::load(&sensor_opts)?;
    let maps = VerdictMaps::open(&pin_dir)?;
    let mut dns = watch(take_ring(&mut sensor, DNS_EVENTS)?, DNS_EVENTS)?;
    // Not watched: the connect programs do not wake the agent (see CONNECT_DRAIN).
    let mut connect = take_ring(&mut sensor, CONNECT_EVENTS)?;
    // The kernel's per-program accounting, for as long as this handle lives.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| log::warn!("kernel program statistics unavailable: {e}"))
        .ok();
    metrics.programs_attached.set(sensor.attached() as i64);

    let log = match &config.events.file {
        Some(f) => EventLog::file(
            f,
            config.events.max_bytes,
            config.events.keep,
            metrics.clone(),
        )
        .with_context(|| format!("event log {}", f.display()))?,
        None => EventLog::stdout(metrics.clone()),
    };
    let (pending, warning) = Pending::load(&config.agent.state_dir, config.cache.pending_max);
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    let alerts = config
        .alertmanager
        .url
        .as_deref()
        .and_then(Endpoint::parse)
        .map(|ep| {
            Pusher::start(
                ep,
                config.alertmanager.attempts,
                Duration::from_millis(config.alertmanager.backoff_ms),
                metrics.clone(),
            )
        });
    let cgroups = cgroup::cgroup2_mount().ok().map(|m| CgroupPaths::new(&m));
    let outputs = Outputs {
        log,
        metrics: metrics.clone(),
        alerts,
        pending,
        cgroups,
        proc_root: config.agent.proc_root.clone(),
        host: host_name(),
    };
    let mut pipeline = Pipeline::new(&config, maps, outputs)?;
    // Before ready: a resolver's upstream answers must never be dropped.
    let mut resolvers = LocalResolvers::new(
        VerdictMaps::open(&pin_dir)?,
        config.agent.proc_root.clone(),
        metrics.clone(),
    );
    let found = resolvers.refresh(Instant::now());

    let refresh = kernel_refresh(VerdictMaps::open(&pin_dir)?, metrics.clone());
    let endpoint = http::Endpoint {
        metrics: metrics.clone(),
        path: config.metrics.path.clone(),
        ready: ready.clone(),
        refresh,
    };
    let server = tokio::spawn(http::serve(listener, endpoint));
    ready.store(true, Ordering::Relaxed);
    pipeline.emit(Event::AgentStarted {
        version: env!("CARGO_PKG_VERSION"),
        mode: config.agent.mode.name(),
        cgroup: cgroup.display().to_string(),
        attached: sensor.attached(),
        adopted: sensor.adopted(),
        caller_reads: sensor.caller_reads().name(),
        smtp_ports: config.agent.smtp_ports.clone(),
        protected: pipeline.protected(),
        config: path.as_ref().map(|p| p.display().to_string()),
        metrics: format!("http://{}{}", config.metrics.listen, config.metrics.path),
    });
    for e in found {
        pipeline.emit(e);
    }

    if path.is_none() {
        log::warn!("no config at {DEFAULT_PATH}: running with no protected domains (see --config)");
    }
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    // The connect programs do not wake the agent (a wakeup costs them more than the
    // rest of their work); their ring is drained on this timer and after DNS wakeups.
    let mut connect_tick = tokio::time::interval(CONNECT_DRAIN);
    connect_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tally = Tally::default();
    let raw = opts.raw_events;
    loop {
        tokio::select! {
            g = dns.readable_mut() => {
                let mut g = g.context("DNS ring")?;
                drain_both(g.get_inner_mut(), &mut connect, &mut pipeline, &mut tally, raw);
                g.clear_ready();
            }
            _ = connect_tick.tick() => {
                drain_both(dns.get_mut(), &mut connect, &mut pipeline, &mut tally, raw);
            }
            _ = sighup.recv() => {
                if let Some(text) = reload(&mut pipeline, &opts, opts.read(), "sighup") {
                    seen_config = Some(text);
                }
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                pipeline.tick(now);
                for e in resolvers.refresh(now) {
                    pipeline.emit(e);
                }
                // A ConfigMap update swaps a symlink: compare contents, not mtimes. A file
                // missing for a moment (mid-swap) is not a change.
                if let Ok(Some(f)) = opts.read()
                    && seen_config.as_ref() != Some(&f.text)
                {
                    seen_config = reload(&mut pipeline, &opts, Ok(Some(f)), "file");
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    ready.store(false, Ordering::Relaxed);
    server.abort();
    // Whatever the kernel wrote before the signal still belongs to this run.
    drain_both(dns.get_mut(), &mut connect, &mut pipeline, &mut tally, raw);
    let mut lost = BTreeMap::new();
    for k in EventKind::ALL {
        lost.insert(k.name(), pipeline.enforcer.lost(k)?);
    }
    let detached = !opts.keep_attached;
    drop((dns, connect));
    pipeline.emit(Event::AgentStopped {
        received: tally.received,
        undecodable: tally.undecodable,
        lost,
        detached,
    });
    drop(pipeline);
    if opts.keep_attached {
        sensor.keep_attached();
    } else {
        sensor.detach()?;
    }
    Ok(())
}
