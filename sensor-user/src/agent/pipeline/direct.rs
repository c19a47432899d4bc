//! Destinations this host connects to with no DNS answer behind the connect: a relay host
//! given by address, a static transport. Whoever writes a lookalike's DNS can name such
//! an address (its A record, its exchanger's glue) and have this host look it up (a
//! sender check), and nothing legitimate in DNS would ever contest a block there: every
//! relayed delivery would be reported as one to the lookalike, and refused for as long as
//! the lookalike's TTL says. So once this host connected to an address `DIRECT_AFTER`
//! times with no DNS route to it that can be why the host connected (`explain.rs`: a
//! lookalike's dropped answer naming it does not count), that address is a direct destination (said once,
//! counted): never address-blocked for a lookalike, and a connect there is reported as
//! unattributed, naming the lookalikes whose answers named it. It stays one while the host
//! keeps connecting to it, and `DIRECT_FOR` after the last connect.
//!
//! The price: whoever owns a lookalike can make its own host direct by having this host
//! connect to it by address (bounces to an address literal). Its answers are still dropped
//! by name in enforce mode, and its deliveries in monitor mode are still named, as
//! unattributed connects (warning); what it loses is the address block behind a lost race.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{kernel::maps::canonical, state::lru::TtlLru};

/// Most direct destinations remembered (a host has a few relays, not thousands).
pub const DIRECT_MAX: usize = 4_096;
/// How long one is remembered after its last connect.
pub const DIRECT_FOR: Duration = Duration::from_secs(7 * 86_400);
/// Connects with no route that make an address a direct destination.
pub const DIRECT_AFTER: u32 = 5;

/// The direct destinations seen lately, with their unexplained connects.
pub struct Direct {
    seen: TtlLru<IpAddr, u32>,
}

impl Default for Direct {
    fn default() -> Self {
        Self {
            seen: TtlLru::new(DIRECT_MAX),
        }
    }
}

impl Direct {
    /// A connect to `ip` with no route to it (or one to a direct destination); whether
    /// `ip` became a direct destination with it.
    pub fn note(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical(ip);
        let n = self.seen.remove(&ip).unwrap_or(0).saturating_add(1);
        self.seen.insert(ip, n, now + DIRECT_FOR);
        n == DIRECT_AFTER
    }

    /// Whether `ip` is a direct destination.
    pub fn contains(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.seen
            .get(&canonical(ip), now)
            .is_some_and(|n| *n >= DIRECT_AFTER)
    }

    /// Forgets the ones not seen for `DIRECT_FOR`.
    pub fn expire(&mut self, now: Instant) {
        self.seen.expire(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_destination_is_remembered_for_a_while_and_v4_mapped_is_v4() {
        let mut d = Direct::default();
        let t = Instant::now();
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 1..DIRECT_AFTER {
            assert!(!d.note("::ffff:198.51.100.7".parse().unwrap(), t));
        }
        assert!(!d.contains(v4, t), "a few missed lookups too few");
        assert!(d.note(v4, t), "said once");
        assert!(!d.note(v4, t));
        assert!(d.contains(v4, t + Duration::from_secs(86_400)));
        assert!(!d.contains(v4, t + DIRECT_FOR + Duration::from_secs(1)));
    }
}
