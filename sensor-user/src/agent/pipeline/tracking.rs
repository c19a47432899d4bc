//! Lookalike tracking: lookalikes that were looked up and did not resolve are remembered
//! (across restarts), so the day one starts to resolve — someone registered it — is known.
//! The memory is saved in batches on the tick, never per answer; what its bounds forget
//! and every save or load that fails is said on the tick as an outcome.

use std::time::Instant;

use prometheus::IntGauge;

use super::super::{
    outcomes::Outcome,
    pending::{Forgotten, Pending, PendingEntry},
    sink::Sink,
};
use crate::{
    dns::{Message, QType},
    output::schema::Event,
    state::lru::TtlLru,
};

/// Unresolved lookalikes: NODATA halves seen so far, and the persisted memory.
pub struct Tracker {
    /// Registrable domain → (MX said NODATA, an address query said NODATA).
    nodata: TtlLru<String, (bool, bool)>,
    pending: Pending,
    /// `mxsentry_lookalikes_pending`.
    gauge: IntGauge,
}

impl Tracker {
    /// Tracks into `pending`, with at most `capacity` NODATA halves in memory.
    pub fn new(pending: Pending, capacity: usize, gauge: IntGauge) -> Self {
        gauge.set(pending.len() as i64);
        Self {
            nodata: TtlLru::new(capacity),
            pending,
            gauge,
        }
    }

    /// Applies new bounds: NODATA halves kept, unresolved lookalikes in all and per target.
    pub fn set_bounds(&mut self, capacity: usize, pending_max: usize, per_target: usize) {
        self.nodata.set_capacity(capacity);
        self.pending.set_bounds(pending_max, per_target);
        self.gauge.set(self.pending.len() as i64);
    }

    /// Forgets NODATA halves past their TTL.
    pub fn expire(&mut self, now: Instant) {
        self.nodata.expire(now);
    }

    /// Once a second: expiry, a save when one is due, and what to say about the memory.
    pub fn tick(&mut self, now: Instant) -> Vec<StateOutcome> {
        self.expire(now);
        let file = self
            .pending
            .path()
            .map_or_else(String::new, |p| p.display().to_string());
        let mut out = Vec::new();
        if let Some(error) = self.pending.take_load_problem() {
            out.push(StateOutcome::Failed {
                op: "load",
                file: file.clone(),
                error,
            });
        }
        for (bound, forgotten) in self.pending.take_forgotten() {
            out.push(StateOutcome::Forgotten { bound, forgotten });
        }
        match self.pending.flush(now) {
            Some(Ok(())) => out.push(StateOutcome::Saved),
            Some(Err(error)) => out.push(StateOutcome::Failed {
                op: "save",
                file,
                error: format!("{error}; kept in memory, the previous file intact, tried again"),
            }),
            None => {}
        }
        self.gauge.set(self.pending.len() as i64);
        out
    }

    /// `domain` resolves now: what was remembered about it, if it had not before.
    pub fn resolved(&mut self, domain: &str) -> Option<PendingEntry> {
        self.nodata.remove(&domain.to_string());
        let was = self.pending.resolved(domain);
        self.gauge.set(self.pending.len() as i64);
        was
    }

    /// NXDOMAIN, or NODATA for both MX and addresses: remembered in case it goes live. An
    /// MX question is a delivery on its way, which outranks a name only queried.
    pub fn unresolved(
        &mut self,
        domain: &str,
        target: &str,
        rule: &str,
        msg: &Message,
        expires: Instant,
    ) {
        let gone = msg.nxdomain || {
            let (mut mx, mut addr) = self
                .nodata
                .get(&domain.to_string(), Instant::now())
                .copied()
                .unwrap_or((false, false));
            match msg.qtype {
                QType::Mx => mx = true,
                QType::A | QType::Aaaa => addr = true,
                _ => {}
            }
            self.nodata.insert(domain.to_string(), (mx, addr), expires);
            mx && addr
        };
        if gone {
            let attempted = msg.qtype == QType::Mx;
            self.pending.remember(domain, target, rule, attempted);
            self.gauge.set(self.pending.len() as i64);
        }
    }
}

/// What the tick has to say about the unresolved-lookalike memory.
pub enum StateOutcome {
    /// Saved (counted).
    Saved,
    /// A bound forgot names (counted, and said: this is where a flood shows).
    Forgotten {
        /// `pending_max` or `pending_per_target`.
        bound: &'static str,
        /// How many, with a few names.
        forgotten: Forgotten,
    },
    /// A save or a load failed (counted, and said).
    Failed {
        /// save or load.
        op: &'static str,
        /// The file.
        file: String,
        /// What went wrong.
        error: String,
    },
}

impl Outcome for StateOutcome {
    fn emit(self, sink: &mut Sink) {
        match self {
            StateOutcome::Saved => sink.metrics.state_saves.inc(),
            StateOutcome::Forgotten { bound, forgotten } => {
                sink.metrics
                    .pending_evicted
                    .with_label_values(&[bound])
                    .inc_by(forgotten.count);
                sink.emit(Event::PendingEvicted {
                    count: forgotten.count,
                    bound,
                    examples: forgotten.examples,
                });
            }
            StateOutcome::Failed { op, file, error } => {
                sink.metrics.state_errors.with_label_values(&[op]).inc();
                log::error!("unresolved lookalikes: {op} failed: {error}");
                sink.emit(Event::StateError { op, file, error });
            }
        }
    }
}
