//! What this host's own askers (stub resolvers, MTAs: every DNS socket but a local
//! resolver's upstream one) were seen asking.
//!
//! Two decisions rest on it. A local resolver's upstream copy of a `block` lookalike's
//! answer is as dropped as its askers' copies only when an asker asked that question (a
//! host whose MTA asks the resolver through a local API sends no DNS packet the kernel
//! could drop). And on a host whose askers the sensor sees, only routes an asker received
//! are evidence of DNS behind a connect (`direct.rs`): a lookalike's MX answer whose glue
//! the resolver kept from its client, naming the relay host, must not keep the relay from
//! becoming a direct destination; on a host whose askers it never sees, the routes that
//! explain a connect are all the evidence there is.

use std::time::{Duration, Instant};

use crate::state::lru::TtlLru;

/// How long a question an asker sent is remembered (its answer comes within seconds).
const ASKED_FOR: Duration = Duration::from_secs(30);
/// Most questions remembered.
const ASKED_MAX: usize = 4_096;
/// How long one asker's question says this host's askers are seen.
const SEEN_FOR: Duration = Duration::from_secs(3_600);

/// Recent questions of this host's askers.
pub struct Askers {
    asked: TtlLru<String, ()>,
    last: Option<Instant>,
}

impl Default for Askers {
    fn default() -> Self {
        Self {
            asked: TtlLru::new(ASKED_MAX),
            last: None,
        }
    }
}

impl Askers {
    /// An asker sent a question for `qname`.
    pub fn note(&mut self, qname: &str, now: Instant) {
        self.asked
            .insert(qname.to_ascii_lowercase(), (), now + ASKED_FOR);
        self.last = Some(now);
    }

    /// Whether an asker asked for `qname` lately.
    pub fn asked(&mut self, qname: &str, now: Instant) -> bool {
        self.asked.get(&qname.to_ascii_lowercase(), now).is_some()
    }

    /// Whether this host's askers are seen at all (one asked within the last hour).
    pub fn seen(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|t| now.saturating_duration_since(t) < SEEN_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_remembered_for_a_while_and_case_does_not_matter() {
        let mut a = Askers::default();
        let now = Instant::now();
        assert!(!a.seen(now));
        a.note("Army.ML", now);
        assert!(a.asked("army.ml", now));
        assert!(a.seen(now + Duration::from_secs(60)));
        assert!(!a.asked("army.ml", now + ASKED_FOR + Duration::from_secs(1)));
        assert!(!a.seen(now + SEEN_FOR + Duration::from_secs(1)));
    }
}
