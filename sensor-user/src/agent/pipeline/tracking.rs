//! Lookalike tracking: lookalikes that were looked up and did not resolve are remembered
//! (across restarts), so the day one starts to resolve — someone registered it — is known.

use std::time::Instant;

use prometheus::IntGauge;

use super::super::pending::{Pending, PendingEntry};
use crate::{
    dns::{Message, QType},
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

    /// Applies new bounds.
    pub fn set_bounds(&mut self, capacity: usize, pending_max: usize) {
        self.nodata.set_capacity(capacity);
        self.pending.set_max(pending_max);
        self.gauge.set(self.pending.len() as i64);
    }

    /// Forgets NODATA halves past their TTL.
    pub fn expire(&mut self, now: Instant) {
        self.nodata.expire(now);
    }

    /// `domain` resolves now: what was remembered about it, if it had not before.
    pub fn resolved(&mut self, domain: &str) -> Option<PendingEntry> {
        self.nodata.remove(&domain.to_string());
        let (was, saved) = self.pending.resolved(domain);
        if let Err(e) = saved {
            log::warn!("saving unresolved lookalikes: {e}");
        }
        self.gauge.set(self.pending.len() as i64);
        was
    }

    /// NXDOMAIN, or NODATA for both MX and addresses: remembered in case it goes live.
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
            if let Err(e) = self.pending.remember(domain, target, rule) {
                log::warn!("saving unresolved lookalikes: {e}");
            }
            self.gauge.set(self.pending.len() as i64);
        }
    }
}
