//! The decision pipeline: kernel events in; map updates, event lines, metrics and alerts
//! out. No I/O of its own beyond what it is handed, so replay and tests drive it directly.
//!
//! `query` decides on lookups as they leave, `answer` learns routes and tracks lookalikes
//! from what comes back, `connect` judges SMTP connects; `ledger` holds the blocks,
//! `routes` the attribution cache, `tracking` the unresolved lookalikes, and every outcome
//! leaves through `super::outcomes`.

pub mod addrs;
mod adopted;
mod answer;
mod askers;
pub mod bound;
pub mod collide;
mod connect;
pub mod credit;
mod direct;
mod explain;
mod lease;
pub mod ledger;
mod namekey;
mod query;
mod route_lists;
pub mod routes;
pub mod tracking;
pub mod who;

#[cfg(test)]
mod collision_tests;
#[cfg(test)]
mod delivered_tests;
#[cfg(test)]
mod learning_tests;
#[cfg(test)]
mod tests;

use std::{
    collections::HashSet,
    net::IpAddr,
    time::{Duration, Instant},
};

use sensor_common::{Verdict, event::Direction, maps::target_id};

use self::{ledger::BlockLedger, routes::Routes, tracking::Tracker, who::Who};
use super::{
    enforcer::Enforcer,
    learning::Learning,
    outcomes::{BlocksEvicted, Outcome},
    pending::Pending,
    sink::Sink,
};
use crate::{
    config::{Config, Loaded},
    detect::{Action, Classification, Finding, Memo, Policy},
    dns::{self, registrable},
    kernel::maps::Mode,
    output::{
        Event, Metrics,
        clock::{monotonic_ns, since_kernel},
        schema::Lookalike,
    },
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
    /// It came from a DNS server's port to a client's: an answer, whatever its QR bit
    /// says (`sensor_common::event::from_server`).
    pub from_server: bool,
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

    /// How long an answer with `ttl` is believed (clamped to the floor and ceiling).
    fn believed(&self, ttl: u32) -> Duration {
        Duration::from_secs(ttl.into()).clamp(self.ttl_floor, self.ttl_ceiling)
    }

    /// When an answer with `ttl` stops being believed.
    fn expiry(&self, ttl: u32) -> Instant {
        Instant::now() + self.believed(ttl)
    }

    /// The same, in kernel time (what block entries carry).
    fn expiry_ns(&self, ttl: u32) -> u64 {
        monotonic_ns().saturating_add(self.believed(ttl).as_nanos() as u64)
    }

    /// The longest any answer is believed, from now, in kernel time.
    fn ceiling_ns(&self) -> u64 {
        monotonic_ns().saturating_add(self.ttl_ceiling.as_nanos() as u64)
    }
}

/// Kernel time at `now` (a test's or the loop's instant, possibly in the future).
fn kernel_time(now: Instant) -> u64 {
    let ahead = now.saturating_duration_since(Instant::now());
    monotonic_ns().saturating_add(ahead.as_nanos() as u64)
}

/// Joins DNS answers to SMTP connects and decides.
pub struct Pipeline<E: Enforcer> {
    engine: Memo,
    settings: Settings,
    routes: Routes,
    tracker: Tracker,
    blocks: BlockLedger<E>,
    sink: Sink,
    who: Who,
    learning: Learning,
    /// Name hash collisions already reported.
    collisions_reported: collide::Reported,
    /// Addresses this host connects to with no DNS answer behind it (`direct.rs`).
    direct: direct::Direct,
    /// What this host's own askers were seen asking (`askers.rs`).
    askers: askers::Askers,
}

impl<E: Enforcer> Pipeline<E> {
    /// Builds the pipeline for a loaded config, writing its mode and ports to the enforcer;
    /// `learning` adds the entries learned from this host's correspondents.
    pub fn new(
        loaded: Loaded,
        enforcer: E,
        mut sink: Sink,
        who: Who,
        pending: Pending,
        learning: Learning,
    ) -> Self {
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
        ledger.ensure_name_key();
        ledger.adopt(monotonic_ns());
        let capacity = config.cache.max_entries;
        let mut tracker = Tracker::new(pending, capacity, m.lookalikes_pending.clone());
        tracker.set_bounds(
            capacity,
            config.cache.pending_max,
            config.cache.per_target(),
        );
        sink.alert_resolve = Duration::from_secs(config.alertmanager.resolve_after_secs);
        let mut p = Self {
            engine: Memo::new(engine),
            settings: Settings::from(&config),
            routes: Routes::new(capacity),
            tracker,
            blocks: ledger,
            sink,
            who,
            learning,
            collisions_reported: collide::Reported::default(),
            direct: direct::Direct::default(),
            askers: askers::Askers::default(),
        };
        let policy = p.with_learned(policy);
        p.policy_applied(&policy);
        // Adopted blocks of targets the policy no longer blocks go now.
        p.rebalance_blocks();
        p.blocks.heartbeat(monotonic_ns());
        p
    }

    /// The configured `policy` with what was learned, the engine switched to it.
    fn with_learned(&mut self, policy: Policy) -> Policy {
        match self.learning.relearn(&mut self.sink) {
            Some((engine, learned)) => {
                self.engine.replace(engine);
                learned
            }
            None => policy,
        }
    }

    /// What a new policy sets off: its series exported at zero, its prefixes and likely
    /// slips preloaded as blocks, verdicts of another policy forgotten, and the protected
    /// names judged clean at once (the questions asked most; never held).
    fn policy_applied(&mut self, policy: &Policy) {
        let (engine, learning) = (&self.engine, &self.learning);
        self.sink
            .metrics
            .known_targets(engine.engine().target_actions().map(|(t, a)| (t, a.name())));
        self.blocks
            .preload(policy, |n| blocks(engine, learning, n), monotonic_ns());
        let holds = !self.block_targets().is_empty();
        self.blocks.judge_under(fingerprint(policy), holds);
        let clean_until = self.settings.ceiling_ns();
        let protected: Vec<(u64, Option<u64>)> = policy
            .protect
            .iter()
            .filter_map(|e| {
                let h = crate::kernel::maps::name_hash(&e.entry)?;
                Some((h, self.blocks.text_tag(&e.entry)))
            })
            .collect();
        for (h, tag) in protected {
            self.blocks.judged(h, Some(clean_until), tag);
        }
        self.lift_adopted_of(policy);
    }

    /// Applies a new configuration without losing the cache.
    pub fn reload(&mut self, loaded: Loaded) {
        let Loaded {
            config,
            policy,
            engine,
            ..
        } = loaded;
        self.engine.replace(engine);
        self.learning.reconfigure(&config.learn, policy.clone());
        let policy = self.with_learned(policy);
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

    /// The `target_id`s of the protected entries with the `block` action.
    fn block_targets(&self) -> HashSet<u32> {
        self.engine
            .engine()
            .target_actions()
            .filter(|(_, a)| *a == Action::Block)
            .map(|(t, _)| target_id(t.as_bytes()))
            .collect()
    }

    /// After a policy change: lift blocks the policy no longer wants, and block cached
    /// addresses of names it now does that serve no one else (mail already headed there
    /// gets refused).
    fn rebalance_blocks(&mut self) {
        let targets = self.block_targets();
        let (engine, learning) = (&self.engine, &self.learning);
        self.blocks
            .rebalance(|n| blocks(engine, learning, n), &targets);
        let now = Instant::now();
        let mut wanted = Vec::new();
        for (ip, list) in self.routes.iter() {
            if self.direct.contains(*ip, now) {
                continue;
            }
            let live = || list.iter().filter(|a| a.expires > now);
            let finding = |a: &routes::Attribution| block_finding(engine, learning, &a.route);
            // Only delivered answers teach address blocks, and only exclusive addresses
            // that are no direct destination (`direct.rs`).
            if live().any(|a| finding(a).is_none()) {
                continue;
            }
            for a in live().filter(|a| a.delivered) {
                if let Some(f) = finding(a) {
                    let ttl = a.expires.saturating_duration_since(now);
                    let expires = monotonic_ns().saturating_add(ttl.as_nanos() as u64);
                    let t = target_id(f.target.as_bytes());
                    wanted.push((*ip, a.route.recipient_domain.clone(), t, expires));
                }
            }
        }
        for (ip, recipient, target, expires) in wanted {
            self.blocks.put_addr(ip, &recipient, target, expires);
        }
    }

    /// Housekeeping: expired answers leave the cache, expired blocks leave the kernel
    /// (the programs already ignore them), the policy lease and the heartbeat are renewed,
    /// contested address blocks are lifted and evictions reported.
    pub fn tick(&mut self, now: Instant) {
        self.routes.expire(now);
        self.direct.expire(now);
        for o in self.tracker.tick(now) {
            o.emit(&mut self.sink);
        }
        for (ip, block) in self.blocks.expire(kernel_time(now)) {
            self.shared(ip, block, None);
        }
        self.report_evictions();
        if let Some((engine, policy)) = self.learning.tick(now, &mut self.sink) {
            // The established correspondents changed: learned entries come and go.
            self.engine.replace(engine);
            self.rebalance_blocks();
            self.policy_applied(&policy);
        }
        self.routes.report(&self.sink.metrics);
        self.sink.tick();
    }

    /// Reports the learned blocks the bound evicted since the last tick, per target.
    fn report_evictions(&mut self) {
        let evicted = self.blocks.take_evictions();
        if evicted.is_empty() {
            return;
        }
        let names: std::collections::HashMap<u32, &str> = self
            .engine
            .engine()
            .target_actions()
            .map(|(t, _)| (target_id(t.as_bytes()), t))
            .collect();
        let reports: Vec<BlocksEvicted> = evicted
            .into_iter()
            .map(|e| BlocksEvicted {
                target: names.get(&e.target).unwrap_or(&"unknown").to_string(),
                count: e.count,
                examples: e.examples,
            })
            .collect();
        for r in reports {
            r.emit(&mut self.sink);
        }
    }

    /// The agent stops: answers are no longer held for its verdict.
    pub fn stop(&mut self) {
        self.blocks.stop();
    }

    /// One DNS packet.
    pub fn on_dns(&mut self, d: &DnsIn) {
        // A flood keeps the loop busy: the heartbeat must not lapse meanwhile.
        self.blocks.heartbeat(monotonic_ns());
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
        if msg.skipped > 0 {
            // One payload with an unusable part, as `truncated_capture` counts one.
            self.metrics()
                .dns_parse_errors
                .with_label_values(&[dns::ParseError::BadRecord.reason()])
                .inc();
            log::debug!(
                "{} record(s) of a DNS message for {} do not decode: stepped over",
                msg.skipped,
                msg.qname
            );
        }
        let direction = match d.direction {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        };
        self.metrics()
            .dns_messages
            .with_label_values(&[direction, msg.qtype.name()])
            .inc();
        match (msg.response || d.from_server, d.direction) {
            (false, Direction::Egress) => self.on_query(&msg, d),
            (true, Direction::Ingress) => self.on_answer(&msg, d),
            // Answers we serve and queries we receive: a DNS server on this host.
            _ => {}
        }
        self.metrics()
            .decision_latency
            .observe(since_kernel(d.ts_ns));
    }

    /// The engine's finding for `name` when it is a lookalike (never `block` for an
    /// established correspondent).
    fn lookalike(&self, name: &str) -> Option<Finding> {
        lookalike(&self.engine, &self.learning, name)
    }

    /// A detection's lookalike part, with what the correspondents ledger says of it.
    fn detection(&self, domain: &str, f: &Finding) -> Lookalike {
        let mut l = Lookalike::new(domain, f);
        self.learning.annotate(&mut l);
        l
    }

    /// Saves what must outlive the agent (at stop).
    pub fn stopping(&mut self) {
        self.learning.flush(&mut self.sink);
    }

    /// Protected entries learned from this host's correspondents.
    pub fn learned(&self) -> usize {
        self.learning.learned()
    }

    /// Protected targets the configuration names (learned ones aside).
    pub fn configured(&self) -> usize {
        self.protected().saturating_sub(self.learned())
    }

    /// Number of protected entries in force.
    pub fn protected(&self) -> usize {
        self.engine.engine().targets()
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

/// A fingerprint of what judges questions: the policy and this build. Verdicts kept in
/// the kernel under another fingerprint are forgotten.
fn fingerprint(policy: &Policy) -> u64 {
    let text = format!("{}{policy:?}", env!("CARGO_PKG_VERSION"));
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
        .max(1)
}

/// The finding of a route's recipient (or mail host) when the policy blocks it.
fn block_finding(
    engine: &Memo,
    learning: &Learning,
    route: &crate::output::schema::Route,
) -> Option<Finding> {
    lookalike(engine, learning, &route.recipient_domain)
        .or_else(|| lookalike(engine, learning, &route.mx_host))
        .filter(|f| f.action == Action::Block)
}

/// The engine's finding for `name` when it is a lookalike; an established correspondent
/// is an old friend, reported but never blocked. A name that is not a domain is judged
/// by its readable labels (`detect/unreadable.rs`).
fn lookalike(engine: &Memo, learning: &Learning, name: &str) -> Option<Finding> {
    match engine.classify(name) {
        Classification::Typosquat(mut f) | Classification::Lookalike(mut f) => {
            if f.action == Action::Block && learning.established(name) {
                f.action = Action::Alert;
            }
            Some(f)
        }
        // The readable part is a name, so this recurses once at most.
        Classification::Invalid(_) => engine
            .readable_part(name)
            .and_then(|readable| lookalike(engine, learning, &readable)),
        _ => None,
    }
}

/// Whether the policy blocks deliveries to `name`.
fn blocks(engine: &Memo, learning: &Learning, name: &str) -> bool {
    lookalike(engine, learning, name).is_some_and(|f| f.action == Action::Block)
}
