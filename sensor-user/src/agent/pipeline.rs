//! The decision pipeline: kernel events in; map updates, event lines, metrics and alerts
//! out. No I/O of its own beyond what it is handed, so replay and tests drive it directly.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use sensor_common::{Verdict, domain_hash, event::Direction};

use super::{
    clock::{rfc3339, since_kernel},
    enforcer::Enforcer,
    eventlog::EventLog,
    events::{Event, Line, Lookalike, Route, Severity, SocketOwner},
    metrics::Metrics,
    pending::Pending,
};
use crate::{
    alert::{Alert, Pusher},
    attrib::{CgroupPaths, Place, Process, describe},
    config::Config,
    detect::{
        Action, Classification as Classified, Engine, Finding, Policy, PolicyError,
        candidates::candidates,
    },
    dns::{self, Message, QType},
    kernel::maps::{Mode, name_hash},
    state::lru::TtlLru,
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

#[derive(Clone)]
struct Attribution {
    route: Route,
    expires: Instant,
}

/// Settings that reloads may change.
struct Settings {
    mode: Mode,
    ttl_floor: Duration,
    ttl_ceiling: Duration,
    alert_resolve: Duration,
}

impl Settings {
    fn from(c: &Config) -> Self {
        Self {
            mode: c.agent.mode,
            ttl_floor: Duration::from_secs(c.cache.ttl_floor_secs),
            ttl_ceiling: Duration::from_secs(c.cache.ttl_ceiling_secs),
            alert_resolve: Duration::from_secs(c.alertmanager.resolve_after_secs),
        }
    }
}

/// The outside world the pipeline talks to.
pub struct Outputs {
    /// Event lines.
    pub log: EventLog,
    /// Metrics.
    pub metrics: Metrics,
    /// Alertmanager push, when configured.
    pub alerts: Option<Pusher>,
    /// Unresolved-lookalike memory.
    pub pending: Pending,
    /// cgroup id → path for DNS events (None in replay).
    pub cgroups: Option<CgroupPaths>,
    /// procfs for process details.
    pub proc_root: PathBuf,
    /// Node name for events and alerts.
    pub host: String,
}

/// Joins DNS answers to SMTP connects and decides.
pub struct Pipeline<E: Enforcer> {
    /// Where blocks land.
    pub enforcer: E,
    engine: Engine,
    settings: Settings,
    cache: TtlLru<IpAddr, Attribution>,
    mx_of: TtlLru<String, String>,
    nodata: TtlLru<String, (bool, bool)>,
    /// Blocked name and domain hashes, with the name each stands for.
    blocked_names: HashMap<u64, String>,
    blocked_addrs: HashMap<IpAddr, (String, Instant)>,
    /// Entries of `blocked_names` put there by `preload`.
    preloaded: HashSet<u64>,
    out: Outputs,
    evictions_seen: u64,
}

/// Most lookalike domains `preload` puts in `BLOCKED_NAMES` (a quarter of its capacity;
/// the rest is for what queries reveal).
pub const PRELOAD_MAX: usize = sensor_common::maps::BLOCKED_NAMES_MAX as usize / 4;

/// What `put_block` did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Put {
    /// The hash went into the map now.
    Added,
    /// It was there already.
    Present,
    /// The map update failed (counted and logged), or the name has no hash.
    Failed,
}

fn registrable(name: &str) -> &str {
    psl::domain(name.as_bytes())
        .and_then(|d| std::str::from_utf8(d.as_bytes()).ok())
        .map_or(name, |d| &name[name.len() - d.len()..])
}

impl<E: Enforcer> Pipeline<E> {
    /// Builds the pipeline for `config`, writing its mode and ports to the enforcer.
    pub fn new(config: &Config, mut enforcer: E, out: Outputs) -> Result<Self, PolicyError> {
        let policy = config.policy.to_policy()?;
        let engine = Engine::new(&policy)?;
        for (what, r) in [
            ("mode", enforcer.set_mode(config.agent.mode)),
            (
                "SMTP ports",
                enforcer.set_smtp_ports(&config.agent.smtp_ports),
            ),
        ] {
            if let Err(e) = r {
                log::error!("setting {what}: {e}");
            }
        }
        out.metrics.lookalikes_pending.set(out.pending.len() as i64);
        let mut p = Self {
            enforcer,
            engine,
            settings: Settings::from(config),
            cache: TtlLru::new(config.cache.max_entries),
            mx_of: TtlLru::new(config.cache.max_entries),
            nodata: TtlLru::new(config.cache.max_entries),
            blocked_names: HashMap::new(),
            blocked_addrs: HashMap::new(),
            preloaded: HashSet::new(),
            out,
            evictions_seen: 0,
        };
        p.preload(&policy);
        Ok(p)
    }

    /// Blocks, before any query, the likeliest lookalikes of each `block` domain (those
    /// the engine confirms), as whole domains: no race with a fast local resolver for
    /// them. At most `PRELOAD_MAX` entries; the rest is decided at query time.
    fn preload(&mut self, policy: &Policy) {
        let mut added = 0usize;
        'entries: for e in &policy.protect {
            let action = e.action.unwrap_or(policy.default_action);
            let entry = e.entry.trim_end_matches('.').to_ascii_lowercase();
            // A public-suffix entry (`mil`) has no spelling to vary.
            if action != Action::Block || registrable(&entry) != entry {
                continue;
            }
            for c in candidates(&entry) {
                if self.preloaded.len() >= PRELOAD_MAX {
                    break 'entries;
                }
                if self.blocks(&c)
                    && let Some(h) = domain_hash(&c)
                    && self.put_block(h, &c, true) == Put::Added
                {
                    self.preloaded.insert(h);
                    added += 1;
                }
            }
        }
        self.out.metrics.preloaded.set(self.preloaded.len() as i64);
        if added > 0 {
            log::info!("preloaded {added} likely lookalike domains into BLOCKED_NAMES");
        }
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
        &self.out.metrics
    }

    /// Writes one event line.
    pub fn emit(&mut self, event: Event) {
        let line = Line {
            ts: rfc3339(std::time::SystemTime::now()),
            host: &self.out.host,
            event: &event,
        };
        self.out.log.write(&line);
    }

    /// Writes a raw record (for `--raw-events`).
    pub fn emit_raw(&mut self, record: &impl serde::Serialize) {
        self.out.log.write(record);
    }

    fn lookalike(&self, name: &str) -> Option<Finding> {
        match self.engine.classify(name) {
            Classified::Typosquat(f) => Some(f),
            _ => None,
        }
    }

    fn expiry(&self, ttl: u32) -> Instant {
        let ttl = Duration::from_secs(ttl.into())
            .clamp(self.settings.ttl_floor, self.settings.ttl_ceiling);
        Instant::now() + ttl
    }

    fn alert(&self, name: &str, severity: &str, l: &Lookalike, who: String) {
        if let Some(p) = &self.out.alerts {
            let labels = [
                ("alertname", name),
                ("severity", severity),
                ("host", self.out.host.as_str()),
                ("target", l.target.as_str()),
                ("rule", l.rule),
                ("action", l.action),
            ];
            let annotations = [
                ("lookalike", l.domain.clone()),
                ("process", who),
                ("explanation", l.explanation.clone()),
            ];
            p.send(Alert::new(
                &labels,
                &annotations,
                self.settings.alert_resolve,
            ));
        }
    }

    fn map_error(&self, what: &str, e: impl std::fmt::Display) {
        self.out.metrics.map_update_errors.inc();
        log::error!("{what}: {e}");
    }

    fn socket(&mut self, cgroup_id: u64) -> SocketOwner {
        let path = self
            .out
            .cgroups
            .as_mut()
            .and_then(|c| c.path(cgroup_id))
            .map(String::from);
        SocketOwner {
            cgroup_id,
            place: Place::from_cgroup(path),
        }
    }

    /// One DNS packet.
    pub fn on_dns(&mut self, d: &DnsIn) {
        let msg = match dns::parse(d.payload, d.msg_len) {
            Ok(m) => m,
            Err(e) => {
                self.out
                    .metrics
                    .dns_parse_errors
                    .with_label_values(&[e.reason()])
                    .inc();
                log::debug!("skipping DNS payload: {e}");
                return;
            }
        };
        if msg.partial {
            self.out
                .metrics
                .dns_parse_errors
                .with_label_values(&["truncated_capture"])
                .inc();
        }
        let direction = match d.direction {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        };
        self.out
            .metrics
            .dns_messages
            .with_label_values(&[direction, msg.qtype.name()])
            .inc();
        match (msg.response, d.direction) {
            (false, Direction::Egress) => self.on_query(&msg, d),
            (true, Direction::Ingress) => self.on_answer(&msg, d),
            // Answers we serve and queries we receive: a DNS server on this host.
            _ => {}
        }
        self.out
            .metrics
            .decision_latency
            .observe(since_kernel(d.ts_ns));
    }

    fn on_query(&mut self, msg: &Message, d: &DnsIn) {
        let Some(f) = self.lookalike(&msg.qname) else {
            return;
        };
        let l = Lookalike::new(&msg.qname, &f);
        self.out
            .metrics
            .lookalike_lookups
            .with_label_values(&[&l.target, l.rule])
            .inc();
        let mut name_blocked = false;
        if f.action == Action::Block {
            // Block the registrable domain with every name under it when that domain is
            // itself a lookalike (army.ml for mx.army.ml, or army.ml asked directly; only
            // 2- and 3-label domains have a domain hash): the mail-host lookups that follow
            // an MX answer are then dropped with no race against this agent, and a flood of
            // random names under one lookalike takes one map entry, not one each.
            let domain = registrable(&msg.qname).to_string();
            let whole = if self.blocks(&domain) {
                domain_hash(&domain)
            } else {
                None
            };
            let put = match (whole, name_hash(&msg.qname)) {
                (Some(h), _) => self.put_block(h, &domain, true),
                (None, Some(h)) => self.put_block(h, &msg.qname, false),
                (None, None) => Put::Failed,
            };
            if put == Put::Added {
                self.out
                    .metrics
                    .map_update_latency
                    .with_label_values(&["blocked_names"])
                    .observe(since_kernel(d.ts_ns));
            }
            name_blocked = put != Put::Failed;
        }
        let socket = self.socket(d.cgroup_id);
        self.emit(Event::LookalikeLookup {
            severity: Severity::Info,
            qtype: msg.qtype.name(),
            lookalike: l,
            name_blocked,
            local_resolver_upstream: d.resolver,
            socket,
        });
    }

    /// Puts hash `h`, standing for `name`, in `BLOCKED_NAMES` once: a name hash, or with
    /// `subtree` a domain hash (which the kernel matches against a question's last two
    /// and three labels).
    fn put_block(&mut self, h: u64, name: &str, subtree: bool) -> Put {
        if self.blocked_names.contains_key(&h) {
            return Put::Present;
        }
        match self.enforcer.block_name(h, subtree) {
            Ok(()) => {
                self.blocked_names.insert(h, name.to_string());
                Put::Added
            }
            Err(e) => {
                self.map_error("blocking a name", e);
                Put::Failed
            }
        }
    }

    fn on_answer(&mut self, msg: &Message, d: &DnsIn) {
        if d.verdict == Verdict::Blocked {
            self.out
                .metrics
                .blocked
                .with_label_values(&["dns_answer"])
                .inc();
            let lookalike = self
                .lookalike(&msg.qname)
                .map(|f| Lookalike::new(&msg.qname, &f));
            if let Some(l) = &lookalike {
                self.alert(
                    "MxsentryDeliveryBlocked",
                    "warning",
                    l,
                    "DNS answer dropped".into(),
                );
            }
            let socket = Some(self.socket(d.cgroup_id));
            self.emit(Event::Block {
                severity: Severity::Warning,
                kind: "dns_answer",
                lookalike,
                address: None,
                port: None,
                route: None,
                process: None,
                socket,
            });
        }
        let learned = dns::learn(msg);
        let now = Instant::now();
        // Who the addresses are for: an MX question names the recipient domain; an
        // address question names a mail host, whose domain an earlier MX answer told us.
        let mut routes: Vec<(IpAddr, u32, Route)> = Vec::new();
        if msg.qtype == QType::Mx {
            for (ex, ttl) in &learned.mx {
                let exp = self.expiry(*ttl);
                self.mx_of.insert(ex.clone(), msg.qname.clone(), exp);
            }
            for (ex, ip, ttl) in &learned.glue {
                let route = Route {
                    recipient_domain: msg.qname.clone(),
                    mx_host: ex.clone(),
                    qname: msg.qname.clone(),
                };
                routes.push((*ip, *ttl, route));
            }
        }
        // An alias of a known exchanger is that exchanger too: a resolver may answer the
        // CNAME alone and leave the target to a second lookup.
        if learned.chain.len() > 1
            && let Some(recipient) = learned
                .chain
                .iter()
                .find_map(|n| self.mx_of.get(n, now).cloned())
        {
            let ttl = learned.addrs.first().map_or(0, |a| a.1);
            let exp = self.expiry(ttl);
            for name in &learned.chain {
                self.mx_of.insert(name.clone(), recipient.clone(), exp);
            }
        }
        if !learned.addrs.is_empty() {
            let recipient = learned
                .chain
                .iter()
                .find_map(|n| self.mx_of.get(n, now).cloned())
                // No MX history (a direct lookup, or an exchanger past a cut capture):
                // the host's registrable domain is the best recipient guess.
                .unwrap_or_else(|| registrable(&msg.qname).to_string());
            for (ip, ttl) in &learned.addrs {
                let route = Route {
                    recipient_domain: recipient.clone(),
                    mx_host: msg.qname.clone(),
                    qname: msg.qname.clone(),
                };
                routes.push((*ip, *ttl, route));
            }
        }
        for (ip, ttl, route) in &routes {
            let expires = self.expiry(*ttl);
            self.cache.insert(
                *ip,
                Attribution {
                    route: route.clone(),
                    expires,
                },
                expires,
            );
        }
        self.cache_metrics();

        // Lookalike bookkeeping: block learned addresses, remember the unresolved.
        let recipient = routes
            .first()
            .map_or(msg.qname.as_str(), |(_, _, r)| r.recipient_domain.as_str());
        let Some(f) = self
            .lookalike(recipient)
            .or_else(|| self.lookalike(&msg.qname))
        else {
            return;
        };
        let domain = registrable(recipient).to_string();
        if learned.resolved() {
            self.nodata.remove(&domain);
            let (was, saved) = self.out.pending.resolved(&domain);
            if let Err(e) = saved {
                log::warn!("saving unresolved lookalikes: {e}");
            }
            if let Some(entry) = was {
                self.went_live(&domain, &f, entry.first_seen, &learned);
            }
        } else if !msg.failed && !msg.partial && !msg.truncated {
            self.unresolved(&domain, &f, msg);
        }
        if f.action == Action::Block {
            for (ip, ttl, route) in routes {
                let expires = self.expiry(ttl);
                self.block_addr(ip, &route.recipient_domain, expires, d.ts_ns);
            }
        }
    }

    fn block_addr(&mut self, ip: IpAddr, recipient: &str, expires: Instant, ts_ns: u64) {
        if let Some(entry) = self.blocked_addrs.get_mut(&ip) {
            entry.1 = entry.1.max(expires);
            return;
        }
        match self.enforcer.block_addr(ip) {
            Ok(()) => {
                if ts_ns != 0 {
                    let secs = since_kernel(ts_ns);
                    self.out
                        .metrics
                        .map_update_latency
                        .with_label_values(&["blocked_addrs"])
                        .observe(secs);
                }
                self.blocked_addrs
                    .insert(ip, (recipient.to_string(), expires));
            }
            Err(e) => self.map_error("blocking an address", e),
        }
    }

    /// NXDOMAIN, or NODATA for both MX and addresses: remembered in case it goes live.
    fn unresolved(&mut self, domain: &str, f: &Finding, msg: &Message) {
        let now = Instant::now();
        let gone = if msg.nxdomain {
            true
        } else {
            let (mut mx, mut addr) = self
                .nodata
                .get(&domain.to_string(), now)
                .copied()
                .unwrap_or((false, false));
            match msg.qtype {
                QType::Mx => mx = true,
                QType::A | QType::Aaaa => addr = true,
                _ => {}
            }
            let exp = self.expiry(msg.records.first().map_or(0, |r| r.ttl));
            self.nodata.insert(domain.to_string(), (mx, addr), exp);
            mx && addr
        };
        if gone {
            if let Err(e) = self.out.pending.remember(domain, &f.target, f.rule.name()) {
                log::warn!("saving unresolved lookalikes: {e}");
            }
            self.out
                .metrics
                .lookalikes_pending
                .set(self.out.pending.len() as i64);
        }
    }

    fn went_live(&mut self, domain: &str, f: &Finding, since: u64, learned: &dns::Learned) {
        self.out
            .metrics
            .lookalikes_pending
            .set(self.out.pending.len() as i64);
        let l = Lookalike::new(domain, f);
        self.out
            .metrics
            .detections
            .with_label_values(&[&l.target, l.rule, l.action])
            .inc();
        self.out
            .metrics
            .lookalikes_went_live
            .with_label_values(&[&l.target])
            .inc();
        self.alert("MxsentryLookalikeWentLive", "critical", &l, "DNS".into());
        let addresses: Vec<String> = learned
            .addrs
            .iter()
            .map(|(ip, _)| ip.to_string())
            .chain(learned.glue.iter().map(|(_, ip, _)| ip.to_string()))
            .collect();
        self.emit(Event::LookalikeWentLive {
            severity: Severity::Critical,
            lookalike: l,
            unresolved_since: since,
            addresses,
            mx: learned.mx.iter().map(|(m, _)| m.clone()).collect(),
        });
    }

    /// The process behind a connect, read from /proc only when an event will name it
    /// (not for the common clean, attributed connect).
    fn process(&mut self, c: &ConnectIn) -> Process {
        let mut process = describe(&self.out.proc_root, c.tgid, c.comm.clone());
        // A short-lived sender (sendmail, a test client) may be gone before we look: its
        // cgroup id from the kernel still places it.
        if process.place.cgroup.is_none() && c.cgroup_id != 0 {
            process.place = self.socket(c.cgroup_id).place;
        }
        process
    }

    /// One SMTP connect.
    pub fn on_connect(&mut self, c: ConnectIn) {
        let family = if c.addr.is_ipv4() { "ipv4" } else { "ipv6" };
        let port = c.port.to_string();
        self.out
            .metrics
            .smtp_connects
            .with_label_values(&[&port, family, c.verdict.name()])
            .inc();
        let now = Instant::now();
        let route = self.cache.get(&c.addr, now).map(|a| a.route.clone());
        let blocked = c.verdict == Verdict::Blocked;
        if blocked {
            self.out
                .metrics
                .blocked
                .with_label_values(&["connect"])
                .inc();
        }
        // Whether an event line is written for this connect (clean ones get none).
        let mut wrote = true;
        match route {
            Some(route) => {
                let f = self
                    .lookalike(&route.recipient_domain)
                    .or_else(|| self.lookalike(&route.mx_host));
                if let Some(f) = f {
                    let process = self.process(&c);
                    let l = Lookalike::new(&route.recipient_domain, &f);
                    self.out
                        .metrics
                        .detections
                        .with_label_values(&[&l.target, l.rule, l.action])
                        .inc();
                    let who = format!("{} (pid {})", process.comm, process.tgid);
                    if blocked {
                        self.alert("MxsentryDeliveryBlocked", "warning", &l, who);
                        self.emit(Event::Block {
                            severity: Severity::Warning,
                            kind: "connect",
                            lookalike: Some(l),
                            address: Some(c.addr.to_string()),
                            port: Some(c.port),
                            route: Some(route),
                            process: Some(process),
                            socket: None,
                        });
                    } else {
                        self.alert("MxsentryLookalikeDelivery", "warning", &l, who);
                        self.emit(Event::Detection {
                            severity: Severity::Warning,
                            lookalike: l,
                            address: c.addr.to_string(),
                            port: c.port,
                            verdict: c.verdict.name(),
                            route,
                            process,
                        });
                    }
                } else if blocked {
                    let process = self.process(&c);
                    self.emit_operator_block(&c, Some(route), process);
                } else {
                    wrote = false;
                }
            }
            None => {
                self.out.metrics.unattributed.inc();
                let process = self.process(&c);
                if blocked {
                    self.emit_operator_block(&c, None, process.clone());
                }
                self.emit(Event::UnattributedConnect {
                    severity: Severity::Info,
                    address: c.addr.to_string(),
                    port: c.port,
                    verdict: c.verdict.name(),
                    process,
                });
            }
        }
        let latency = since_kernel(c.ts_ns);
        self.out.metrics.decision_latency.observe(latency);
        if wrote {
            self.out.metrics.connect_event_latency.observe(latency);
        }
    }

    /// A refused connect the policy did not cause (an operator's `ctl block-addr`).
    fn emit_operator_block(&mut self, c: &ConnectIn, route: Option<Route>, process: Process) {
        self.emit(Event::Block {
            severity: Severity::Warning,
            kind: "connect",
            lookalike: None,
            address: Some(c.addr.to_string()),
            port: Some(c.port),
            route,
            process: Some(process),
            socket: None,
        });
    }

    fn cache_metrics(&mut self) {
        self.out.metrics.cache_entries.set(self.cache.len() as i64);
        let ev = self.cache.evictions();
        if ev > self.evictions_seen {
            self.out
                .metrics
                .cache_evictions
                .inc_by(ev - self.evictions_seen);
            self.evictions_seen = ev;
        }
    }

    /// Housekeeping: expired answers leave the cache, expired address blocks leave the kernel.
    pub fn tick(&mut self, now: Instant) {
        self.cache.expire(now);
        self.mx_of.expire(now);
        self.nodata.expire(now);
        let stale: Vec<IpAddr> = self
            .blocked_addrs
            .iter()
            .filter(|(_, (_, e))| *e <= now)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in stale {
            match self.enforcer.unblock_addr(ip) {
                Ok(()) => {
                    self.blocked_addrs.remove(&ip);
                }
                Err(e) => self.map_error("unblocking an expired address", e),
            }
        }
        self.cache_metrics();
    }

    /// Applies a new configuration without losing the cache; on error nothing changes.
    pub fn reload(&mut self, config: &Config) -> Result<(), PolicyError> {
        let policy = config.policy.to_policy()?;
        let engine = Engine::new(&policy)?;
        self.engine = engine;
        self.settings = Settings::from(config);
        if let Err(e) = self.enforcer.set_mode(config.agent.mode) {
            self.map_error("setting the mode", e);
        }
        if let Err(e) = self.enforcer.set_smtp_ports(&config.agent.smtp_ports) {
            self.map_error("setting SMTP ports", e);
        }
        self.cache.set_capacity(config.cache.max_entries);
        self.mx_of.set_capacity(config.cache.max_entries);
        self.out.pending.set_max(config.cache.pending_max);
        self.out
            .metrics
            .lookalikes_pending
            .set(self.out.pending.len() as i64);
        self.rebalance_blocks();
        self.preload(&policy);
        self.cache_metrics();
        Ok(())
    }

    fn blocks(&self, name: &str) -> bool {
        self.lookalike(name)
            .is_some_and(|f| f.action == Action::Block)
    }

    /// After a policy change: lift blocks the policy no longer wants, and block cached
    /// addresses of names it now does (mail already headed there gets refused).
    fn rebalance_blocks(&mut self) {
        let names: Vec<(u64, String)> = self
            .blocked_names
            .iter()
            .map(|(h, n)| (*h, n.clone()))
            .collect();
        for (h, n) in names {
            if !self.blocks(&n) {
                match self.enforcer.unblock_name(h) {
                    Ok(()) => {
                        self.blocked_names.remove(&h);
                        self.preloaded.remove(&h);
                    }
                    Err(e) => self.map_error("unblocking a name", e),
                }
            }
        }
        let addrs: Vec<(IpAddr, String)> = self
            .blocked_addrs
            .iter()
            .map(|(ip, (r, _))| (*ip, r.clone()))
            .collect();
        for (ip, recipient) in addrs {
            if !self.blocks(&recipient) {
                match self.enforcer.unblock_addr(ip) {
                    Ok(()) => {
                        self.blocked_addrs.remove(&ip);
                    }
                    Err(e) => self.map_error("unblocking an address", e),
                }
            }
        }
        let cached: Vec<(IpAddr, Attribution)> =
            self.cache.iter().map(|(ip, a)| (*ip, a.clone())).collect();
        for (ip, a) in cached {
            if self.blocks(&a.route.recipient_domain) || self.blocks(&a.route.mx_host) {
                self.block_addr(ip, &a.route.recipient_domain, a.expires, 0);
            }
        }
    }
}
