//! Start-up: load and attach the programs, open the outputs, and build the pipeline.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

use super::{
    Pipeline, Sink, pending::Pending, pipeline::who::Who, resolver_watch::LocalResolvers,
    rings::Rings, runtime::RunOptions,
};
use crate::{
    alert::{Alertmanager, Pusher},
    attrib::CgroupPaths,
    config::{Config, Loaded},
    kernel::{
        Sensor, SensorOptions, VerdictMaps, cgroup, collector::KernelCounters,
        loader::check_before_load,
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
    /// The kernel's per-program statistics, enabled while this lives.
    _stats: Option<std::os::fd::OwnedFd>,
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
    rings: Rings,
    cgroup: PathBuf,
    listener: tokio::net::TcpListener,
    stats: Option<std::os::fd::OwnedFd>,
}

/// Checks what loading needs, takes the metrics port, then loads and attaches.
async fn attach(config: &Config, opts: &RunOptions, metrics: &Metrics) -> anyhow::Result<Attached> {
    let cgroup = cgroup::attach_cgroup(config.agent.cgroup.as_deref())?;
    let pin_dir = &config.agent.pin_dir;
    let sensor_opts = SensorOptions {
        pin_dir: pin_dir.clone(),
        cgroup: cgroup.clone(),
        task_btf: opts.task_btf,
    };
    // Say what is missing before taking the port, and take the port before attaching.
    check_before_load(&sensor_opts)?;
    let listener = http::bind(config.metrics.listen).await?;
    let mut sensor = Sensor::load(&sensor_opts)?;
    let rings = Rings::take(&mut sensor, opts.raw_events)?;
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| log::warn!("kernel program statistics unavailable: {e}"))
        .ok();
    metrics.programs_attached.set(sensor.attached() as i64);
    metrics
        .registry
        .register(Box::new(KernelCounters::new(VerdictMaps::open(pin_dir)?)?))?;
    Ok(Attached {
        sensor,
        rings,
        cgroup,
        listener,
        stats,
    })
}

/// The pipeline over the pinned maps, with the persisted unresolved lookalikes.
fn pipeline(
    loaded: Loaded,
    metrics: &Metrics,
    node: String,
) -> anyhow::Result<Pipeline<VerdictMaps>> {
    let config = &loaded.config;
    let (pending, warning) = Pending::load(&config.agent.state_dir, config.cache.pending_max);
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    let who = Who {
        cgroups: cgroup::cgroup2_mount().ok().map(|m| CgroupPaths::new(&m)),
        proc_root: config.agent.proc_root.clone(),
    };
    let maps = VerdictMaps::open(&config.agent.pin_dir)?;
    let sink = sink(config, metrics, node)?;
    Ok(Pipeline::new(loaded, maps, sink, who, pending))
}

/// Attaches, opens the outputs and starts serving metrics; `path` is the config file
/// in use, for the start line.
pub async fn start(
    loaded: Loaded,
    opts: &RunOptions,
    path: Option<&Path>,
) -> anyhow::Result<Running> {
    let config = loaded.config.clone();
    let node = node_name();
    let metrics = Metrics::new(&node)?;
    let a = attach(&config, opts, &metrics).await?;
    let mut pipeline = pipeline(loaded, &metrics, node)?;
    // Before ready: a resolver's upstream answers must never be dropped.
    let mut resolvers = LocalResolvers::new(
        VerdictMaps::open(&config.agent.pin_dir)?,
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
    ready.store(true, Ordering::Relaxed);
    pipeline.emit(Event::AgentStarted {
        version: env!("CARGO_PKG_VERSION"),
        mode: config.agent.mode.name(),
        cgroup: a.cgroup.display().to_string(),
        attached: a.sensor.attached(),
        adopted: a.sensor.adopted(),
        caller_reads: a.sensor.caller_reads().name(),
        smtp_ports: config.agent.smtp_ports.clone(),
        protected: pipeline.protected(),
        config: path.map(|p| p.display().to_string()),
        metrics: format!("http://{}{}", config.metrics.listen, config.metrics.path),
    });
    for e in found {
        pipeline.emit(e);
    }
    Ok(Running {
        sensor: a.sensor,
        rings: a.rings,
        pipeline,
        resolvers,
        ready,
        server,
        _stats: a.stats,
    })
}
