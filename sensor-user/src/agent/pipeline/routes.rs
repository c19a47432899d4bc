//! Route learning: which recipient domains and mail hosts each address leads to, from
//! the DNS answers that carried it (MX answers and their glue, CNAME chains, address
//! answers). An address keeps every name it was learned for (a few per address): a later
//! clean answer never hides a lookalike sharing the host.

use std::{net::IpAddr, time::Instant};

use sensor_common::Verdict;

use super::registrable;
use crate::{
    dns::{Learned, Message, QType},
    kernel::maps::canonical,
    output::{Metrics, schema::Route},
    state::lru::TtlLru,
};

/// Most routes remembered per address; past it, the one expiring first gives way.
pub const ROUTES_PER_ADDR: usize = 8;

/// One route of an address and when it stops being believed.
#[derive(Clone, Debug)]
pub struct Attribution {
    /// Where the address leads.
    pub route: Route,
    /// The answer's TTL, clamped.
    pub expires: Instant,
    /// The kernel's strongest verdict on an answer that carried it to a socket that uses
    /// answers (a local resolver's upstream socket never drops any): `would_block` or
    /// `blocked` means enforce mode drops that answer.
    pub answer: Verdict,
}

/// How strong a verdict is: allowed < would_block < blocked.
fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Allowed => 0,
        Verdict::WouldBlock => 1,
        Verdict::Blocked => 2,
    }
}

/// Adds (or refreshes) `a` among an address's routes.
fn merge(list: &mut Vec<Attribution>, a: Attribution) {
    let same = list.iter_mut().find(|o| o.route == a.route);
    match same {
        Some(o) => {
            o.expires = o.expires.max(a.expires);
            if rank(a.answer) > rank(o.answer) {
                o.answer = a.answer;
            }
        }
        None => {
            if list.len() >= ROUTES_PER_ADDR
                && let Some(i) = (0..list.len()).min_by_key(|i| list[*i].expires)
            {
                list.remove(i);
            }
            list.push(a);
        }
    }
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

/// How the kernel judged the answer a route is learned from.
#[derive(Clone, Copy, Debug)]
pub struct Judged {
    /// The kernel's verdict on the answer.
    pub verdict: Verdict,
    /// It arrived at a local resolver's upstream socket (never dropped there).
    pub resolver: bool,
}

/// The attribution cache: address → routes, and exchanger → recipient domain.
pub struct Routes {
    cache: TtlLru<IpAddr, Vec<Attribution>>,
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

    /// The live routes of `ip` (a v4-mapped address as its IPv4), newest last.
    pub fn get(&mut self, ip: &IpAddr, now: Instant) -> Vec<Attribution> {
        let ip = canonical(*ip);
        self.cache.get(&ip, now).map_or_else(Vec::new, |list| {
            list.iter().filter(|a| a.expires > now).cloned().collect()
        })
    }

    /// Every cached address with its routes.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &Vec<Attribution>)> {
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
        judged: Judged,
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
        let answer = if judged.resolver {
            Verdict::Allowed
        } else {
            judged.verdict
        };
        for l in &mut out {
            l.ip = canonical(l.ip);
            let a = Attribution {
                route: l.route.clone(),
                expires: l.expires,
                answer,
            };
            let mut list = self.cache.remove(&l.ip).unwrap_or_default();
            list.retain(|o| o.expires > now);
            merge(&mut list, a);
            let until = list.iter().map(|a| a.expires).max().unwrap_or(l.expires);
            self.cache.insert(l.ip, list, until);
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
