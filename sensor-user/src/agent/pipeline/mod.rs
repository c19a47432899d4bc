//! The decision pipeline: kernel events in; map updates, event lines, metrics and alerts
//! out. No I/O of its own beyond what it is handed, so replay and tests drive it directly.
//!
//! `query` decides on lookups as they leave, `answer` learns routes and tracks lookalikes
//! from what comes back, `connect` judges SMTP connects; `ledger` holds the blocks,
//! `routes` the attribution cache, `tracking` the unresolved lookalikes, and every outcome
//! leaves through `super::outcomes`.

mod answer;
mod connect;
pub mod ledger;
mod query;
pub mod routes;
pub mod tracking;
pub mod who;

#[cfg(test)]
mod tests;

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use sensor_common::{Verdict, event::Direction};

use self::{ledger::BlockLedger, routes::Routes, tracking::Tracker, who::Who};
use super::{enforcer::Enforcer, outcomes::Outcome as _, pending::Pending, sink::Sink};
use crate::{
    config::{Config, Loaded},
    detect::{Action, Classification, Engine, Finding, Policy},
    dns::{self, registrable},
    kernel::maps::Mode,
    output::{Event, Metrics, clock::since_kernel},
};

/// A DNS packet as the kernel (or a capture) reports it.
pub struct DnsIn<'a> {
    /// Kernel monotonic time of the packet (0 when unknown).
    pub ts_ns: u64,
    /// Leaving or arriving.
    pub direction: Direction,
    /// What the kernel did with it.
    pub verdict: Verdict,
    /// cgroup of the socket.
    pub cgroup_id: u64,
    /// The message bytes captured.
    pub payload: &'a [u8],
    /// The message's full length.
    pub msg_len: usize,
    /// The socket is a local resolver's upstream socket (answers never dropped there).
    pub resolver: bool,
}

/// An SMTP connect as the kernel (or a capture) reports it.
pub struct ConnectIn {
    /// Kernel monotonic time (0 when unknown).
    pub ts_ns: u64,
    /// Process id.
    pub tgid: u32,
    /// Command name.
    pub comm: String,
    /// cgroup of the process (0 when unknown).
    pub cgroup_id: u64,
    /// Destination.
    pub addr: IpAddr,
    /// Destination port.
    pub port: u16,
    /// What the kernel did.
    pub verdict: Verdict,
}

/// Settings that reloads may change.
struct Settings {
    mode: Mode,
    ttl_floor: Duration,
    ttl_ceiling: Duration,
}

impl Settings {
    fn from(c: &Config) -> Self {
        Self {
            mode: c.agent.mode,
            ttl_floor: Duration::from_secs(c.cache.ttl_floor_secs),
            ttl_ceiling: Duration::from_secs(c.cache.ttl_ceiling_secs),
        }
    }

    /// When an answer with `ttl` stops being believed (TTL clamped to the floor and
    /// ceiling).
    fn expiry(&self, ttl: u32) -> Instant {
        let ttl = Duration::from_secs(ttl.into()).clamp(self.ttl_floor, self.ttl_ceiling);
        Instant::now() + ttl
    }
}

/// Joins DNS answers to SMTP connects and decides.
pub struct Pipeline<E: Enforcer> {
    engine: Engine,
    settings: Settings,
    routes: Routes,
    tracker: Tracker,
    blocks: BlockLedger<E>,
    sink: Sink,
    who: Who,
}

impl<E: Enforcer> Pipeline<E> {
    /// Builds the pipeline for a loaded config, writing its mode and ports to the enforcer.
    pub fn new(loaded: Loaded, enforcer: E, mut sink: Sink, who: Who, pending: Pending) -> Self {
        let Loaded {
            config,
            policy,
            engine,
            ..
        } = loaded;
        let m = &sink.metrics;
        let mut ledger =
            BlockLedger::new(enforcer, m.map_update_errors.clone(), m.preloaded.clone());
        ledger.configure(config.agent.mode, &config.agent.smtp_ports);
        let capacity = config.cache.max_entries;
        let mut tracker = Tracker::new(pending, capacity, m.lookalikes_pending.clone());
        tracker.set_bounds(
            capacity,
            config.cache.pending_max,
            config.cache.per_target(),
        );
        sink.alert_resolve = Duration::from_secs(config.alertmanager.resolve_after_secs);
        let mut p = Self {
            engine,
            settings: Settings::from(&config),
            routes: Routes::new(capacity),
            tracker,
            blocks: ledger,
            sink,
            who,
        };
        p.policy_applied(&policy);
        p
    }

    /// What a new policy sets off: its series exported at zero, its likely slips
    /// preloaded as blocks.
    fn policy_applied(&mut self, policy: &Policy) {
        let engine = &self.engine;
        self.sink
            .metrics
            .known_targets(engine.target_actions().map(|(t, a)| (t, a.name())));
        self.blocks.preload(policy, |n| blocks(engine, n));
    }

    /// Applies a new configuration without losing the cache.
    pub fn reload(&mut self, loaded: Loaded) {
        let Loaded {
            config,
            policy,
            engine,
            ..
        } = loaded;
        self.engine = engine;
        self.settings = Settings::from(&config);
        self.sink.alert_resolve = Duration::from_secs(config.alertmanager.resolve_after_secs);
        self.blocks
            .configure(config.agent.mode, &config.agent.smtp_ports);
        self.routes.set_capacity(config.cache.max_entries);
        self.tracker.set_bounds(
            config.cache.max_entries,
            config.cache.pending_max,
            config.cache.per_target(),
        );
        self.rebalance_blocks();
        self.policy_applied(&policy);
        self.routes.report(&self.sink.metrics);
    }

    /// After a policy change: lift blocks the policy no longer wants, and block cached
    /// addresses of names it now does (mail already headed there gets refused).
    fn rebalance_blocks(&mut self) {
        let engine = &self.engine;
        self.blocks.rebalance(|n| blocks(engine, n));
        let wanted: Vec<_> = self
            .routes
            .iter()
            .filter(|(_, a)| {
                blocks(engine, &a.route.recipient_domain) || blocks(engine, &a.route.mx_host)
            })
            .map(|(ip, a)| (*ip, a.route.recipient_domain.clone(), a.expires))
            .collect();
        for (ip, recipient, expires) in wanted {
            self.blocks.put_addr(ip, &recipient, expires);
        }
    }

    /// Housekeeping: expired answers leave the cache, expired address blocks leave the kernel.
    pub fn tick(&mut self, now: Instant) {
        self.routes.expire(now);
        for o in self.tracker.tick(now) {
            o.emit(&mut self.sink);
        }
        self.blocks.expire(now);
        self.routes.report(&self.sink.metrics);
        self.sink.tick();
    }

    /// One DNS packet.
    pub fn on_dns(&mut self, d: &DnsIn) {
        let msg = match dns::parse(d.payload, d.msg_len) {
            Ok(m) => m,
            Err(e) => {
                self.metrics()
                    .dns_parse_errors
                    .with_label_values(&[e.reason()])
                    .inc();
                log::debug!("skipping DNS payload: {e}");
                return;
            }
        };
        if msg.partial {
            self.metrics()
                .dns_parse_errors
                .with_label_values(&["truncated_capture"])
                .inc();
        }
        let direction = match d.direction {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        };
        self.metrics()
            .dns_messages
            .with_label_values(&[direction, msg.qtype.name()])
            .inc();
        match (msg.response, d.direction) {
            (false, Direction::Egress) => self.on_query(&msg, d),
            (true, Direction::Ingress) => self.on_answer(&msg, d),
            // Answers we serve and queries we receive: a DNS server on this host.
            _ => {}
        }
        self.metrics()
            .decision_latency
            .observe(since_kernel(d.ts_ns));
    }

    /// The engine's finding for `name` when it is a lookalike.
    fn lookalike(&self, name: &str) -> Option<Finding> {
        lookalike(&self.engine, name)
    }

    /// Number of protected entries in force.
    pub fn protected(&self) -> usize {
        self.engine.targets()
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }

    /// The metrics handle.
    pub fn metrics(&self) -> &Metrics {
        &self.sink.metrics
    }

    /// Where events go.
    pub fn sink(&mut self) -> &mut Sink {
        &mut self.sink
    }

    /// Writes one event line.
    pub fn emit(&mut self, event: Event) {
        self.sink.emit(event);
    }

    /// The enforcer (the kernel's maps, or their simulation).
    pub fn enforcer(&self) -> &E {
        self.blocks.enforcer()
    }

    /// The enforcer, mutable (replay and tests set the simulated mode).
    pub fn enforcer_mut(&mut self) -> &mut E {
        self.blocks.enforcer_mut()
    }
}

fn lookalike(engine: &Engine, name: &str) -> Option<Finding> {
    match engine.classify(name) {
        Classification::Typosquat(f) | Classification::Lookalike(f) => Some(f),
        _ => None,
    }
}

/// Whether the policy blocks deliveries to `name`.
fn blocks(engine: &Engine, name: &str) -> bool {
    lookalike(engine, name).is_some_and(|f| f.action == Action::Block)
}
