//! Whether this host's own askers (stub resolvers, MTAs: every DNS socket but a local
//! resolver's upstream one) are seen at all.
//!
//! Two decisions rest on it. A local resolver's upstream copy of a `block` lookalike's
//! answer is as dropped as its askers' copies only where askers are seen: a host whose
//! MTA asks the resolver through a local API sends no DNS packet the kernel could drop,
//! and there those routes are the only ones it has. (Not only where an asker asked that
//! very question: the resolver follows a lookalike's CNAME upstream under names no asker
//! asked, and their glue would name anyone's host.) And where askers are seen, only
//! routes an asker received are evidence of DNS behind a connect (`direct.rs`): a
//! lookalike's MX answer whose glue the resolver kept from its client, naming the relay
//! host, must not keep the relay from becoming a direct destination; where they are not,
//! the routes that explain a connect are all the evidence there is.

use std::time::{Duration, Instant};

/// How long one asker's question says this host's askers are seen.
const SEEN_FOR: Duration = Duration::from_secs(3_600);

/// When this host's askers were last seen.
#[derive(Default)]
pub struct Askers {
    last: Option<Instant>,
}

impl Askers {
    /// An asker sent a question.
    pub fn note(&mut self, now: Instant) {
        self.last = Some(now);
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
    fn askers_are_seen_for_an_hour_after_a_question() {
        let mut a = Askers::default();
        let now = Instant::now();
        assert!(!a.seen(now));
        a.note(now);
        assert!(a.seen(now + Duration::from_secs(60)));
        assert!(!a.seen(now + SEEN_FOR + Duration::from_secs(1)));
    }
}
