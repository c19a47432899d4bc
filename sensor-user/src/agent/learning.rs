//! What the agent learns from its own deliveries: the correspondents ledger, the entries
//! it protects from it, and what a detection's history says. The pipeline asks it three
//! things: which engine to run, what to add to a detection, and whether a lookalike is
//! an old friend that must not be blocked.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use super::sink::Sink;
use crate::{
    config::LearnSection,
    correspondents::{Correspondents, learned::LearnedProtection, store::Problem},
    detect::{Action, Engine, Policy},
    dns::registrable_of,
    output::{Event, history::History, schema::Lookalike},
};

/// How often the learned entries are chosen again (a ledger changes by the day).
const RELEARN_EVERY: Duration = Duration::from_secs(60);

/// The ledger, the learned entries and the configured policy they join.
pub struct Learning {
    correspondents: Correspondents,
    /// The entries of the engine last handed out; `None` until one is.
    learned: Option<LearnedProtection>,
    /// The policy as configured (learned entries are added to a copy).
    configured: Policy,
    /// Its engine: what the configured policy says of a candidate before it is learned
    /// (`None` only if it failed to build again, which turns learning off).
    configured_engine: Option<Engine>,
    action: Action,
    enabled: bool,
    evictions_seen: u64,
    next_relearn: Instant,
}

impl Learning {
    /// Opens the ledger under `state_dir` (problems reported through `sink`) for the
    /// configured `policy`. The pipeline asks [`Learning::relearn`] for its engine next.
    pub fn open(state_dir: &Path, learn: &LearnSection, policy: Policy, sink: &mut Sink) -> Self {
        let (correspondents, problems) = Correspondents::open(state_dir, learn);
        report(problems, sink);
        Self::with(correspondents, learn, policy, sink)
    }

    /// A ledger that starts empty and is never saved (replay, tests).
    pub fn in_memory(learn: &LearnSection, policy: Policy, sink: &mut Sink) -> Self {
        Self::with(Correspondents::in_memory(learn), learn, policy, sink)
    }

    fn with(
        correspondents: Correspondents,
        learn: &LearnSection,
        policy: Policy,
        sink: &mut Sink,
    ) -> Self {
        let mut l = Self {
            correspondents,
            learned: None,
            configured: Policy::default(),
            configured_engine: None,
            action: learn.action,
            enabled: learn.enabled,
            evictions_seen: 0,
            next_relearn: Instant::now(),
        };
        l.set_policy(policy);
        l.export(sink);
        l
    }

    /// A reloaded config: the new policy and `[learn]`. The pipeline asks
    /// [`Learning::relearn`] for its engine next.
    pub fn reconfigure(&mut self, learn: &LearnSection, policy: Policy) {
        self.correspondents.configure(learn);
        self.action = learn.action;
        self.enabled = learn.enabled;
        self.set_policy(policy);
    }

    fn set_policy(&mut self, policy: Policy) {
        self.configured_engine = match Engine::new(&policy) {
            Ok(e) => Some(e),
            Err(e) => {
                log::error!("learning off: the configured policy did not build again: {e}");
                None
            }
        };
        self.configured = policy;
        // The next relearn hands out an engine for the new policy.
        self.learned = None;
    }

    /// Chooses the learned entries again; `Some((engine, policy))` (configured plus
    /// learned) when
    /// they changed since the engine last handed out, or the policy did.
    pub fn relearn(&mut self, sink: &mut Sink) -> Option<(Engine, Policy)> {
        self.next_relearn = Instant::now() + RELEARN_EVERY;
        let learned = match &self.configured_engine {
            Some(engine) if self.enabled => LearnedProtection::choose(&self.correspondents, engine),
            _ => LearnedProtection::default(),
        };
        let m = &sink.metrics.protected_entries;
        m.with_label_values(&["configured"])
            .set(self.configured.protect.len() as i64);
        if self.learned.as_ref() == Some(&learned) {
            return None;
        }
        let policy = learned.policy(&self.configured, self.action);
        match Engine::new(&policy) {
            Ok(engine) => {
                if !learned.is_empty() {
                    log::info!(
                        "protecting {} established correspondents learned from this host's \
                         deliveries: {}",
                        learned.len(),
                        learned.names.iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                }
                m.with_label_values(&["learned"]).set(learned.len() as i64);
                self.learned = Some(learned);
                Some((engine, policy))
            }
            Err(e) => {
                log::error!("learned entries not applied: {e}");
                None
            }
        }
    }

    /// Housekeeping each second: drop-ins merged, the long unseen forgotten, the ledger
    /// saved when due; the learned entries chosen again once a minute or after a merge.
    /// `Some(engine)` when they changed.
    pub fn tick(&mut self, now: Instant, sink: &mut Sink) -> Option<(Engine, Policy)> {
        let (merged, problems) = self.correspondents.tick(now);
        report(problems, sink);
        self.export(sink);
        if merged > 0 || now >= self.next_relearn {
            self.relearn(sink)
        } else {
            None
        }
    }

    /// Saves what changed (at stop).
    pub fn flush(&mut self, sink: &mut Sink) {
        report(self.correspondents.flush().into_iter().collect(), sink);
    }

    /// Counts a delivery (an attributed connect that was not refused) to `recipient`;
    /// whether its domain became an established correspondent with it.
    pub fn record(&mut self, recipient: &str) -> bool {
        let Some(domain) = registrable_of(recipient) else {
            return false;
        };
        let was = self.correspondents.signals(domain).established;
        self.correspondents.record(domain);
        let became = !was && self.correspondents.signals(domain).established;
        if became {
            // A new established correspondent: protect it at the next tick.
            self.next_relearn = Instant::now();
        }
        became
    }

    /// Whether `domain`'s registrable domain is an established correspondent: a
    /// lookalike that is one is an old friend, reported at info and never blocked.
    pub fn established(&self, domain: &str) -> bool {
        self.enabled
            && registrable_of(domain).is_some_and(|d| self.correspondents.signals(d).established)
    }

    /// Adds to `l` where its target came from and, when learning is on, what the ledger
    /// says about it (read before this delivery is counted).
    pub fn annotate(&self, l: &mut Lookalike) {
        if let Some(learned) = &self.learned {
            l.source = learned.source(&l.target);
        }
        if !self.enabled {
            return;
        }
        let signals = |d: &str| {
            registrable_of(d)
                .map(|r| self.correspondents.signals(r))
                .unwrap_or_default()
        };
        let (own, target) = (signals(&l.domain), signals(&l.target));
        l.history = Some(History::new(
            &l.domain,
            &l.target,
            own.first_contact,
            own.established,
            target.established,
        ));
    }

    /// The ledger, for tests that play deliveries on past days.
    #[cfg(test)]
    pub fn correspondents_mut(&mut self) -> &mut Correspondents {
        &mut self.correspondents
    }

    /// Protected entries learned now.
    pub fn learned(&self) -> usize {
        self.learned.as_ref().map_or(0, LearnedProtection::len)
    }

    /// The ledger's gauges and evictions.
    fn export(&mut self, sink: &mut Sink) {
        let ledger = self.correspondents.ledger();
        let m = &sink.metrics;
        m.correspondents.set(ledger.len() as i64);
        m.correspondents_established
            .set(self.correspondents.established() as i64);
        let evictions = ledger.evictions();
        m.correspondents_evicted
            .inc_by(evictions.saturating_sub(self.evictions_seen));
        self.evictions_seen = evictions;
    }
}

/// Each problem with the ledger's files once, as an event and a metric.
fn report(problems: Vec<Problem>, sink: &mut Sink) {
    for p in problems {
        let op = if p.kind == "save_failed" {
            "ledger_save"
        } else {
            "ledger_load"
        };
        sink.metrics.state_errors.with_label_values(&[op]).inc();
        log::error!("correspondents: {}: {}", p.path.display(), p.detail);
        sink.emit(Event::StateError {
            op,
            file: p.path.display().to_string(),
            error: format!("{} ({})", p.detail, p.kind),
        });
    }
}
