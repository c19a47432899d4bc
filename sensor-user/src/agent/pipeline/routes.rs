//! Route learning: which recipient domain and mail host each address leads to, from the
//! DNS answers that carried it (MX answers and their glue, CNAME chains, address answers).

use std::{net::IpAddr, time::Instant};

use super::registrable;
use crate::{
    dns::{Learned, Message, QType},
    output::{Metrics, schema::Route},
    state::lru::TtlLru,
};

/// An address's route and when it stops being believed.
#[derive(Clone)]
pub struct Attribution {
    /// Where the address leads.
    pub route: Route,
    /// The answer's TTL, clamped.
    pub expires: Instant,
}

/// One address an answer taught, with its route and expiry.
pub struct Learnt {
    /// The address.
    pub ip: IpAddr,
    /// Where it leads.
    pub route: Route,
    /// When the answer expires (TTL clamped).
    pub expires: Instant,
}

/// The attribution cache: address → route, and exchanger → recipient domain.
pub struct Routes {
    cache: TtlLru<IpAddr, Attribution>,
    mx_of: TtlLru<String, String>,
    evictions_seen: u64,
}

impl Routes {
    /// Empty, holding at most `capacity` entries of each kind.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: TtlLru::new(capacity),
            mx_of: TtlLru::new(capacity),
            evictions_seen: 0,
        }
    }

    /// Changes the bound.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.cache.set_capacity(capacity);
        self.mx_of.set_capacity(capacity);
    }

    /// The route of `ip`, if an unexpired answer taught one.
    pub fn get(&mut self, ip: &IpAddr, now: Instant) -> Option<Route> {
        self.cache.get(ip, now).map(|a| a.route.clone())
    }

    /// Every cached address with its attribution.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &Attribution)> {
        self.cache.iter()
    }

    /// Drops what has expired.
    pub fn expire(&mut self, now: Instant) {
        self.cache.expire(now);
        self.mx_of.expire(now);
    }

    /// Learns the routes in one answer; `expiry` turns a TTL into an expiry instant.
    pub fn learn(
        &mut self,
        msg: &Message,
        learned: &Learned,
        expiry: impl Fn(u32) -> Instant,
        now: Instant,
    ) -> Vec<Learnt> {
        // Who the addresses are for: an MX question names the recipient domain; an
        // address question names a mail host, whose domain an earlier MX answer told us.
        let mut out = Vec::new();
        if msg.qtype == QType::Mx {
            for (ex, ttl) in &learned.mx {
                self.mx_of
                    .insert(ex.clone(), msg.qname.clone(), expiry(*ttl));
            }
            for (ex, ip, ttl) in &learned.glue {
                out.push(Learnt {
                    ip: *ip,
                    route: Route {
                        recipient_domain: msg.qname.clone(),
                        mx_host: ex.clone(),
                        qname: msg.qname.clone(),
                    },
                    expires: expiry(*ttl),
                });
            }
        }
        // An alias of a known exchanger is that exchanger too: a resolver may answer the
        // CNAME alone and leave the target to a second lookup.
        if learned.chain.len() > 1
            && let Some(recipient) = self.recipient_of(&learned.chain, now)
        {
            let exp = expiry(learned.addrs.first().map_or(0, |a| a.1));
            for name in &learned.chain {
                self.mx_of.insert(name.clone(), recipient.clone(), exp);
            }
        }
        if !learned.addrs.is_empty() {
            let recipient = self
                .recipient_of(&learned.chain, now)
                // No MX history (a direct lookup, or an exchanger past a cut capture):
                // the host's registrable domain is the best recipient guess.
                .unwrap_or_else(|| registrable(&msg.qname).to_string());
            for (ip, ttl) in &learned.addrs {
                out.push(Learnt {
                    ip: *ip,
                    route: Route {
                        recipient_domain: recipient.clone(),
                        mx_host: msg.qname.clone(),
                        qname: msg.qname.clone(),
                    },
                    expires: expiry(*ttl),
                });
            }
        }
        for l in &out {
            let a = Attribution {
                route: l.route.clone(),
                expires: l.expires,
            };
            self.cache.insert(l.ip, a, l.expires);
        }
        out
    }

    /// The recipient domain an earlier MX answer named for any name of `chain`.
    fn recipient_of(&mut self, chain: &[String], now: Instant) -> Option<String> {
        chain.iter().find_map(|n| self.mx_of.get(n, now).cloned())
    }

    /// Moves the cache gauge and the eviction counter.
    pub fn report(&mut self, metrics: &Metrics) {
        metrics.cache_entries.set(self.cache.len() as i64);
        let ev = self.cache.evictions();
        if ev > self.evictions_seen {
            metrics.cache_evictions.inc_by(ev - self.evictions_seen);
            self.evictions_seen = ev;
        }
    }
}
