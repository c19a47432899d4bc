//! Keeps `RESOLVER_TGIDS` true: adds resolvers that bound port 53 before the sensor
//! attached (found by a /proc scan), drops processes that exited, and reports both.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    attrib::resolver_scan::{alive, comm, scan},
    kernel::VerdictMaps,
    output::{Event, Metrics, schema::ResolverState},
};

/// How often the /proc scan runs; the bind hooks cover new resolvers in between.
pub const SCAN_EVERY: Duration = Duration::from_secs(30);

/// The agent's view of the local resolvers.
pub struct LocalResolvers {
    maps: VerdictMaps,
    proc_root: PathBuf,
    metrics: Metrics,
    /// Reported resolvers and their command names.
    known: BTreeMap<u32, String>,
    last_scan: Option<Instant>,
}

impl LocalResolvers {
    /// Starts with nothing reported; the first `refresh` scans.
    pub fn new(maps: VerdictMaps, proc_root: PathBuf, metrics: Metrics) -> Self {
        Self {
            maps,
            proc_root,
            metrics,
            known: BTreeMap::new(),
            last_scan: None,
        }
    }

    /// Scans /proc when due, reconciles the kernel's list, and returns what changed.
    pub fn refresh(&mut self, now: Instant) -> Vec<Event> {
        if self
            .last_scan
            .is_some_and(|t| now.duration_since(t) < SCAN_EVERY)
        {
            // Between scans, only pick up what the bind hooks added.
            return self.reconcile(BTreeMap::new());
        }
        self.last_scan = Some(now);
        let found = scan(&self.proc_root);
        self.metrics
            .resolver_scan_unreadable
            .set(i64::from(found.unreadable));
        for tgid in found.resolvers.keys() {
            if let Err(e) = self.maps.add_resolver(*tgid) {
                self.metrics.map_update_errors.inc();
                log::warn!("listing local resolver {tgid}: {e}");
            }
        }
        self.reconcile(found.resolvers)
    }

    /// Compares the kernel's list with what was reported; `scanned` names new finds.
    fn reconcile(&mut self, mut scanned: BTreeMap<u32, String>) -> Vec<Event> {
        let listed = match self.maps.resolvers() {
            Ok(l) => l,
            Err(e) => {
                log::warn!("reading local resolvers: {e}");
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        let mut live = BTreeMap::new();
        for tgid in listed {
            if !alive(&self.proc_root, tgid) {
                if let Err(e) = self.maps.remove_resolver(tgid) {
                    self.metrics.map_update_errors.inc();
                    log::warn!("unlisting exited resolver {tgid}: {e}");
                }
                continue;
            }
            let name = match self.known.remove(&tgid) {
                Some(name) => name,
                None => {
                    let name = scanned
                        .remove(&tgid)
                        .unwrap_or_else(|| comm(&self.proc_root, tgid));
                    events.push(Event::LocalResolver {
                        state: ResolverState::Found,
                        tgid,
                        comm: name.clone(),
                    });
                    name
                }
            };
            live.insert(tgid, name);
        }
        // What was reported and is no longer listed alive has gone (only this agent
        // unlists, and only the exited).
        for (tgid, comm) in std::mem::replace(&mut self.known, live) {
            events.push(Event::LocalResolver {
                state: ResolverState::Gone,
                tgid,
                comm,
            });
        }
        self.metrics.local_resolvers.set(self.known.len() as i64);
        events
    }
}
