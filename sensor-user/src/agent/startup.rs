//! Start-up: load and attach the programs, open the outputs, and build the pipeline.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sensor_common::{EventKind, PortSet};
use tokio::task::JoinHandle;

use super::{
    Pipeline, Sink,
    learning::Learning,
    pending::Pending,
    pipeline::who::Who,
    resolver_watch::LocalResolvers,
    rings::Rings,
    runtime::{Exit, RunOptions, StopFlag},
};
use crate::{
    alert::{Alertmanager, Pusher},
    attrib::CgroupPaths,
    config::{Config, Loaded},
    kernel::{
        Sensor, SensorOptions, VerdictMaps, cgroup, collector::KernelCounters,
        loader::check_before_load, lock::PinLock, port_builds::ConnectBuilds, upgrade::ProgState,
    },
    output::{
        EventLog, Metrics,
        http::{self, MetricsServer},
        schema::Event,
    },
};

/// A started agent: programs attached, outputs open, pipeline ready.
pub struct Running {
    /// The loaded programs and their links.
    pub sensor: Sensor,
    /// The kernel's rings.
    pub rings: Rings,
    /// The decisions.
    pub pipeline: Pipeline<VerdictMaps>,
    /// Local resolvers kept exempt from answer drops.
    pub resolvers: LocalResolvers,
    /// `/readyz`.
    pub ready: Arc<AtomicBool>,
    /// The metrics endpoint's task.
    pub server: JoinHandle<()>,
    /// The start line and what the start found, said by [`Running::announce`].
    announced: Vec<Event>,
    /// The kernel's per-program statistics, enabled while this lives.
    _stats: Option<std::os::fd::OwnedFd>,
}

impl Running {
    /// Sets readiness and says `agent_started`: only once the stop handlers are live
    /// and no stop was asked for during start-up.
    pub fn announce(&mut self) {
        self.ready.store(true, Ordering::Relaxed);
        for e in std::mem::take(&mut self.announced) {
            self.pipeline.emit(e);
        }
    }
}

/// How a start ended.
pub enum Started {
    /// Running, not yet announced.
    Running(Box<Running>),
    /// A stop was asked for during start-up: said with `agent_stopped`, and what was
    /// attached is detached (unless `--keep-attached`).
    Stopped,
}

/// The node's name for events: `MXSENTRY_NODE_NAME` (the Kubernetes downward API's
/// `spec.nodeName`), else the host name.
pub fn node_name() -> String {
    std::env::var("MXSENTRY_NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

fn sink(config: &Config, metrics: &Metrics, node: String) -> anyhow::Result<Sink> {
    let log = EventLog::open(&config.events.log_options(), metrics.clone())?;
    let mut sink = Sink::new(log, metrics.clone(), node);
    sink.alerts = config
        .alertmanager
        .url
        .as_deref()
        .and_then(Alertmanager::parse)
        .map(|am| {
            Pusher::start(
                am,
                config.alertmanager.attempts,
                Duration::from_millis(config.alertmanager.backoff_ms),
                metrics.alert_pushes.clone(),
            )
        });
    Ok(sink)
}

/// The programs attached and the port taken.
struct Attached {
    sensor: Sensor,
    cgroup: PathBuf,
    listener: tokio::net::TcpListener,
}

/// Checks what loading needs, locks the pin directory, takes the metrics port, then
/// loads and attaches.
async fn attach(config: &Config, opts: &RunOptions) -> anyhow::Result<Attached> {
    let cgroup = cgroup::attach_cgroup(config.agent.cgroup.as_deref())?;
    let sensor_opts = SensorOptions {
        pin_dir: config.agent.pin_dir.clone(),
        cgroup: cgroup.clone(),
        task_btf: opts.task_btf,
        ports: PortSet::of(&config.agent.smtp_ports),
    };
    // Say what is missing before taking the port, and take the port before attaching;
    // a second agent on these pins is told so before anything else.
    check_before_load(&sensor_opts)?;
    let lock = PinLock::acquire(&sensor_opts.pin_dir)?;
    log::debug!("start-up: pin directory locked");
    let listener = http::bind(config.metrics.listen).await?;
    let sensor = Sensor::load(&sensor_opts, lock)?;
    log::debug!("start-up: programs attached");
    Ok(Attached {
        sensor,
        cgroup,
        listener,
    })
}

/// Takes the rings and registers the kernel's counters.
fn kernel_outputs(
    sensor: &mut Sensor,
    opts: &RunOptions,
    metrics: &Metrics,
) -> anyhow::Result<(Rings, Option<std::os::fd::OwnedFd>)> {
    let rings = Rings::take(sensor, opts.raw_events)?;
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| log::warn!("kernel program statistics unavailable: {e}"))
        .ok();
    metrics.programs_attached.set(sensor.attached() as i64);
    metrics
        .registry
        .register(Box::new(KernelCounters::new(VerdictMaps::open(
            sensor.pin_dir(),
        )?)?))?;
    Ok((rings, stats))
}

/// The pipeline over the pinned maps, with the persisted unresolved lookalikes.
fn pipeline(
    loaded: Loaded,
    mut sink: Sink,
    builds: Option<ConnectBuilds>,
) -> anyhow::Result<Pipeline<VerdictMaps>> {
    let config = &loaded.config;
    let (pending, warning) = Pending::load(&config.agent.state_dir, config.cache.pending_max);
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    let who = Who::new(
        cgroup::cgroup2_mount().ok().map(|m| CgroupPaths::new(&m)),
        config.agent.proc_root.clone(),
    );
    let maps = VerdictMaps::open(&config.agent.pin_dir)?.with_connect_builds(builds);
    let learning = Learning::open(
        &config.agent.state_dir,
        &config.learn,
        loaded.policy.clone(),
        &mut sink,
    );
    Ok(Pipeline::new(loaded, maps, sink, who, pending, learning))
}

/// Leaves the kernel as `exit` says.
pub fn release(sensor: Sensor, exit: Exit) -> anyhow::Result<()> {
    match exit {
        Exit::Keep => sensor.keep_attached(),
        Exit::Detach => sensor.detach()?,
        Exit::Abandon => sensor.abandon(),
    }
    Ok(())
}

/// A stop asked for before the pipeline existed: says `agent_stopped` through `sink`
/// and leaves what was attached as `--keep-attached` says.
fn stopped_early(
    mut sink: Sink,
    sensor: Option<Sensor>,
    keep_attached: bool,
) -> anyhow::Result<Started> {
    let lost = sensor
        .as_ref()
        .and_then(|s| VerdictMaps::open(s.pin_dir()).ok())
        .map(|maps| {
            EventKind::ALL
                .iter()
                .filter_map(|k| Some((k.name(), maps.lost(*k).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    sink.emit(Event::AgentStopped {
        received: BTreeMap::new(),
        undecodable: 0,
        lost,
        detached: !keep_attached || sensor.is_none(),
    });
    if let Some(sensor) = sensor {
        release(sensor, Exit::asked(keep_attached))?;
    }
    Ok(Started::Stopped)
}

/// The start line, from what the start found and did.
fn started_event(
    config: &Config,
    sensor: &Sensor,
    cgroup: &Path,
    pipeline: &Pipeline<VerdictMaps>,
    path: Option<&Path>,
) -> Event {
    let report = sensor.report();
    Event::AgentStarted {
        version: env!("CARGO_PKG_VERSION"),
        mode: config.agent.mode.name(),
        cgroup: cgroup.display().to_string(),
        attached: sensor.attached(),
        adopted: sensor.adopted(),
        upgraded: report.count(ProgState::Upgraded),
        programs: report
            .programs
            .iter()
            .map(|(p, s)| (*p, s.name()))
            .collect(),
        layout: report.layout,
        migrated: report.migrated.clone(),
        pin_dir: sensor.pin_dir().display().to_string(),
        caller_reads: sensor.caller_reads().name(),
        smtp_ports: config.agent.smtp_ports.clone(),
        protected: pipeline.protected(),
        learned: pipeline.learned(),
        config: path.map(|p| p.display().to_string()),
        metrics: format!("http://{}{}", config.metrics.listen, config.metrics.path),
    }
}

/// Opens the outputs, attaches and builds the pipeline, looking at `stop` between the
/// steps; `path` is the config file in use, for the start line. Not yet ready: the
/// caller announces once it has looked at `stop` one last time.
pub async fn start(
    loaded: Loaded,
    opts: &RunOptions,
    path: Option<&Path>,
    stop: &StopFlag,
) -> anyhow::Result<Started> {
    let config = loaded.config.clone();
    let node = node_name();
    let metrics = Metrics::new(&node)?;
    // The event log first: a stop at any later point is said there.
    let sink = sink(&config, &metrics, node)?;
    if stop.requested() {
        return stopped_early(sink, None, opts.keep_attached);
    }
    let mut a = attach(&config, opts).await?;
    if stop.requested() {
        return stopped_early(sink, Some(a.sensor), opts.keep_attached);
    }
    let builds = a.sensor.take_connect_builds();
    let built = kernel_outputs(&mut a.sensor, opts, &metrics)
        .and_then(|outputs| Ok((outputs, pipeline(loaded, sink, builds)?)));
    let ((rings, stats), pipeline) = match built {
        Ok(b) => b,
        Err(e) => {
            // Nothing may stay attached after a failed start that would not after a stop.
            release(a.sensor, Exit::asked(opts.keep_attached))?;
            return Err(e);
        }
    };
    log::debug!("start-up: pipeline built");
    // Before ready: a resolver's upstream answers must never be dropped.
    let mut resolvers = LocalResolvers::new(
        VerdictMaps::open(a.sensor.pin_dir())?,
        config.agent.proc_root.clone(),
        metrics.clone(),
    );
    let found = resolvers.refresh(Instant::now());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(http::serve(
        a.listener,
        MetricsServer {
            metrics: metrics.clone(),
            path: config.metrics.path.clone(),
            ready: ready.clone(),
        },
    ));
    let mut announced = vec![started_event(
        &config, &a.sensor, &a.cgroup, &pipeline, path,
    )];
    announced.extend(found);
    Ok(Started::Running(Box::new(Running {
        sensor: a.sensor,
        rings,
        pipeline,
        resolvers,
        ready,
        server,
        announced,
        _stats: stats,
    })))
}
