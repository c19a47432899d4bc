//! Route learning: which recipient domains and mail hosts each address leads to, from
//! the DNS answers that carried it (MX answers and their glue, CNAME chains, address
//! answers). An address keeps every name it was learned for (a few per address): a later
//! clean answer never hides a lookalike sharing the host.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use sensor_common::Verdict;

pub use super::route_lists::{Attribution, ROUTES_PER_ADDR};
use super::{
    registrable,
    route_lists::{latest, make_room, merge, rank},
};
use crate::{
    dns::{Learned, Message, QType},
    kernel::maps::canonical,
    output::{Metrics, schema::Route},
    state::lru::TtlLru,
};

/// How long past its TTL a route still names a connect's recipient (never a block): an
/// MTA tries the exchangers it resolved in turn, each for up to its connect timeout
/// (Postfix: 30 s, five addresses), so whoever writes a lookalike's DNS could list dead
/// hosts first and have the real delivery come after a short TTL ran out, unattributed.
pub const ATTRIBUTION_GRACE: Duration = Duration::from_secs(300);

/// One address an answer taught, with its route and expiry.
pub struct Learnt {
    /// The address.
    pub ip: IpAddr,
    /// Where it leads.
    pub route: Route,
    /// When the answer expires (TTL clamped).
    pub expires: Instant,
    /// When an answer named its recipient domain (see `Attribution`).
    pub asked: Instant,
    /// An asker received it (see `Attribution`).
    pub delivered: bool,
    /// Its recipient came from an MX answer (see `Attribution`).
    pub via_mx: bool,
    /// The kernel's verdict on the answers behind this route (see `Attribution`).
    pub answer: Verdict,
}

/// How the kernel judged the answer a route is learned from.
#[derive(Clone, Copy, Debug)]
pub struct Judged {
    /// The kernel's verdict on the answer; for a resolver's upstream copy (never dropped
    /// there), `Blocked` when the kernel drops every asker's copy.
    pub verdict: Verdict,
    /// It arrived at a local resolver's upstream socket (never dropped there).
    pub resolver: bool,
}

/// A recipient domain an MX answer named an exchanger for.
#[derive(Clone, Debug)]
struct Recipient {
    domain: String,
    /// The kernel's verdict on that MX answer (as `Attribution::answer`).
    answer: Verdict,
    expires: Instant,
    /// When that MX answer last arrived.
    asked: Instant,
    /// An asker received that MX answer (see `Attribution`).
    delivered: bool,
}

/// The attribution cache: address → routes, and exchanger → every recipient domain an MX
/// answer named it for (a provider's host serves many).
pub struct Routes {
    cache: TtlLru<IpAddr, Vec<Attribution>>,
    mx_of: TtlLru<String, Vec<Recipient>>,
    /// (exchanger, recipient domain) of MX answers dropped at an asker, remembered as
    /// long as any route through them can be (the TTL ceiling and `ATTRIBUTION_GRACE`),
    /// whatever the MX record's own TTL and however many recipients the exchanger serves.
    dropped_mx: TtlLru<(String, String), ()>,
    evictions_seen: u64,
}

/// Most dropped MX answers' (exchanger, recipient) pairs remembered.
pub const DROPPED_MX_MAX: usize = 16_384;

/// Most bytes the attribution cache's routes hold, and the exchangers' recipients. The
/// entry count alone (`max_entries`, 100,000 by default) let whoever writes the answers
/// fill 8 routes an address of three 253-byte names each: about 0.6 GB, where the
/// shipped DaemonSet gives the agent 256 MiB. Ordinary routes take about 200 bytes, so
/// 100,000 of them fit well within.
pub const ROUTE_BYTES_MAX: usize = 64 << 20;
/// (See `ROUTE_BYTES_MAX`.)
pub const MX_OF_BYTES_MAX: usize = 32 << 20;

/// What an address's routes take in memory, about.
fn routes_bytes(list: &[Attribution]) -> usize {
    let route = |a: &Attribution| {
        let r = &a.route;
        size_of::<Attribution>() + r.recipient_domain.len() + r.mx_host.len() + r.qname.len()
    };
    size_of::<IpAddr>() + list.iter().map(route).sum::<usize>()
}

/// What an exchanger's recipients take in memory, about.
fn recipients_bytes(exchanger: &str, list: &[Recipient]) -> usize {
    let recipient = |r: &Recipient| size_of::<Recipient>() + r.domain.len();
    size_of::<String>() + exchanger.len() + list.iter().map(recipient).sum::<usize>()
}

/// The recipients an address answer's routes are taught for: an address keeps
/// `ROUTES_PER_ADDR` routes, and more recipients only multiply the work by the answer's
/// addresses (whoever writes the chain's MX answers chooses how many). Kept in
/// `make_room`'s order: ones an asker received first, lookalikes' before clean ones
/// among each, the later expiry first; and the received clean one expiring last always
/// (else the host would look like the lookalikes' alone).
fn keep_recipients(
    mut recipients: Vec<Recipient>,
    lookalike: &dyn Fn(&str) -> bool,
) -> Vec<Recipient> {
    if recipients.len() <= ROUTES_PER_ADDR {
        return recipients;
    }
    let mut judged: Vec<(bool, Recipient)> = recipients
        .drain(..)
        .map(|r| (lookalike(&r.domain), r))
        .collect();
    judged.sort_by_key(|(look, r)| std::cmp::Reverse((r.delivered, *look, r.expires)));
    let clean = |(look, r): &(bool, Recipient)| r.delivered && !look;
    if !judged[..ROUTES_PER_ADDR].iter().any(clean)
        && let Some(i) = judged.iter().position(clean)
    {
        judged.swap(ROUTES_PER_ADDR - 1, i);
    }
    judged.truncate(ROUTES_PER_ADDR);
    judged.into_iter().map(|(_, r)| r).collect()
}

/// Adds `r` among an exchanger's recipients (a few at most; as `merge` chooses which goes).
fn add_recipient(
    list: &mut Vec<Recipient>,
    r: Recipient,
    now: Instant,
    lookalike: &dyn Fn(&str) -> bool,
) {
    list.retain(|o| o.expires > now);
    if let Some(o) = list.iter_mut().find(|o| o.domain == r.domain) {
        o.expires = o.expires.max(r.expires);
        (o.asked, o.delivered) = latest((o.asked, o.delivered), (r.asked, r.delivered));
        if rank(r.answer) > rank(o.answer) {
            o.answer = r.answer;
        }
        return;
    }
    make_room(
        list,
        |o| (o.delivered, o.domain.as_str(), o.expires),
        lookalike,
    );
    list.push(r);
}

impl Routes {
    /// Empty, holding at most `capacity` entries of each kind.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: TtlLru::weighed(capacity, ROUTE_BYTES_MAX, |_, l| routes_bytes(l)),
            mx_of: TtlLru::weighed(capacity, MX_OF_BYTES_MAX, |ex, l| recipients_bytes(ex, l)),
            dropped_mx: TtlLru::new(DROPPED_MX_MAX),
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
        self.within(ip, now, Duration::ZERO)
    }

    /// The routes of `ip` that name a connect's recipient: live ones, and those whose
    /// TTL ran out less than `ATTRIBUTION_GRACE` ago.
    pub fn for_connect(&mut self, ip: &IpAddr, now: Instant) -> Vec<Attribution> {
        self.within(ip, now, ATTRIBUTION_GRACE)
    }

    fn within(&mut self, ip: &IpAddr, now: Instant, grace: Duration) -> Vec<Attribution> {
        let ip = canonical(*ip);
        self.cache.get(&ip, now).map_or_else(Vec::new, |list| {
            list.iter()
                .filter(|a| a.expires + grace > now)
                .cloned()
                .collect()
        })
    }

    /// Whether an asker's copy of the MX answer behind `a` (its recipient under its mail
    /// host) was dropped: enforce mode stopped that recipient's lookup there.
    pub fn mx_dropped(&mut self, a: &Attribution, now: Instant) -> bool {
        // `dropped_mx` holds the exchangers an MX answer named; an alias of one (a CNAME
        // chain, `learn_addrs`) has the exchanger's recipients, verdicts included, only in
        // `mx_of`.
        let key = (a.route.mx_host.clone(), a.route.recipient_domain.clone());
        self.dropped_mx.get(&key, now).is_some()
            || self.mx_of.get(&a.route.mx_host, now).is_some_and(|list| {
                list.iter()
                    .any(|r| r.domain == a.route.recipient_domain && r.answer == Verdict::Blocked)
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
        self.dropped_mx.expire(now);
    }

    fn note_exchanger(
        &mut self,
        ex: &str,
        r: Recipient,
        now: Instant,
        lookalike: &dyn Fn(&str) -> bool,
    ) {
        let mut list = self.mx_of.remove(&ex.to_string()).unwrap_or_default();
        add_recipient(&mut list, r, now, lookalike);
        let until = list.iter().map(|r| r.expires).max().unwrap_or(now);
        self.mx_of.insert(ex.to_string(), list, until);
    }

    /// Learns the routes in one answer; `expiry` turns a TTL into an expiry instant;
    /// `lookalike` says which recipient domains are lookalikes (for the bound).
    pub fn learn(
        &mut self,
        msg: &Message,
        learned: &Learned,
        expiry: impl Fn(u32) -> Instant,
        judged: Judged,
        now: Instant,
        lookalike: &dyn Fn(&str) -> bool,
    ) -> Vec<Learnt> {
        // What an asker's copy met: a resolver's copy says so only when it is dropped at
        // every asker.
        let answer = if judged.resolver && judged.verdict != Verdict::Blocked {
            Verdict::Allowed
        } else {
            judged.verdict
        };
        let delivered = !judged.resolver && judged.verdict != Verdict::Blocked;
        let how = (answer, delivered);
        // Who the addresses are for: an MX question names the recipient domain; an
        // address question names a mail host, whose domains earlier MX answers told us.
        let mut out = if msg.qtype == QType::Mx {
            self.learn_mx(msg, learned, &expiry, how, now, lookalike)
        } else {
            Vec::new()
        };
        out.extend(self.learn_addrs(msg, learned, &expiry, how, now, lookalike));
        for l in &mut out {
            l.ip = canonical(l.ip);
            let a = Attribution {
                route: l.route.clone(),
                expires: l.expires,
                asked: l.asked,
                delivered: l.delivered,
                via_mx: l.via_mx,
                answer: l.answer,
            };
            let mut list = self.cache.remove(&l.ip).unwrap_or_default();
            list.retain(|o| o.expires + ATTRIBUTION_GRACE > now);
            merge(&mut list, a, lookalike);
            let until = list.iter().map(|a| a.expires).max().unwrap_or(l.expires);
            self.cache.insert(l.ip, list, until + ATTRIBUTION_GRACE);
        }
        out
    }

    /// An MX answer: its exchangers serve the question's domain, its glue leads there.
    fn learn_mx(
        &mut self,
        msg: &Message,
        learned: &Learned,
        expiry: &impl Fn(u32) -> Instant,
        (answer, delivered): (Verdict, bool),
        now: Instant,
        lookalike: &dyn Fn(&str) -> bool,
    ) -> Vec<Learnt> {
        for (ex, ttl) in &learned.mx {
            let r = Recipient {
                domain: msg.qname.clone(),
                answer,
                expires: expiry(*ttl),
                asked: now,
                delivered,
            };
            self.note_exchanger(ex, r, now, lookalike);
            if answer == Verdict::Blocked {
                // As long as the longest TTL a glue record can have, and the grace.
                let until = expiry(u32::MAX) + ATTRIBUTION_GRACE;
                let key = (ex.clone(), msg.qname.clone());
                self.dropped_mx.insert(key, (), until);
            }
        }
        let glue = learned.glue.iter().map(|(ex, ip, ttl)| Learnt {
            ip: *ip,
            route: Route {
                recipient_domain: msg.qname.clone(),
                mx_host: ex.clone(),
                qname: msg.qname.clone(),
            },
            expires: expiry(*ttl),
            asked: now,
            delivered,
            via_mx: true,
            answer,
        });
        glue.collect()
    }

    /// An answer's addresses (and CNAME chain): a route to every recipient domain an
    /// earlier MX answer named any name of the chain for.
    fn learn_addrs(
        &mut self,
        msg: &Message,
        learned: &Learned,
        expiry: &impl Fn(u32) -> Instant,
        (answer, delivered): (Verdict, bool),
        now: Instant,
        lookalike: &dyn Fn(&str) -> bool,
    ) -> Vec<Learnt> {
        let recipients = keep_recipients(self.recipients_of(&learned.chain, now), lookalike);
        let via_mx = !recipients.is_empty();
        // An alias of a known exchanger is that exchanger too: a resolver may answer the
        // CNAME alone and leave the target to a second lookup.
        if learned.chain.len() > 1 {
            for r in &recipients {
                for name in &learned.chain {
                    self.note_exchanger(name, r.clone(), now, lookalike);
                }
            }
        }
        // No MX history (a direct lookup, or an exchanger past a cut capture): the host's
        // registrable domain is the best recipient guess.
        let for_whom: Vec<(String, Verdict, Instant, bool)> = if recipients.is_empty() {
            vec![(
                registrable(&msg.qname).to_string(),
                Verdict::Allowed,
                now,
                true,
            )]
        } else {
            recipients
                .iter()
                .map(|r| (r.domain.clone(), r.answer, r.asked, r.delivered))
                .collect()
        };
        let mut out = Vec::new();
        for (ip, ttl) in &learned.addrs {
            for (domain, mx_answer, asked, mx_delivered) in &for_whom {
                // Enforce mode stops a delivery by dropping the MX answer as surely as
                // the address answer: the strongest of the two is the route's.
                let answer = if rank(*mx_answer) > rank(answer) {
                    *mx_answer
                } else {
                    answer
                };
                out.push(Learnt {
                    ip: *ip,
                    route: Route {
                        recipient_domain: domain.clone(),
                        mx_host: msg.qname.clone(),
                        qname: msg.qname.clone(),
                    },
                    expires: expiry(*ttl),
                    asked: *asked,
                    delivered: delivered && *mx_delivered,
                    via_mx,
                    answer,
                });
            }
        }
        out
    }

    /// Every recipient domain earlier MX answers named any name of `chain` for.
    fn recipients_of(&mut self, chain: &[String], now: Instant) -> Vec<Recipient> {
        let mut out: Vec<Recipient> = Vec::new();
        for n in chain {
            if let Some(list) = self.mx_of.get(n, now) {
                for r in list.iter().filter(|r| r.expires > now) {
                    if !out.iter().any(|o| o.domain == r.domain) {
                        out.push(r.clone());
                    }
                }
            }
        }
        out
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_route_is_as_fresh_as_the_last_answer_an_asker_received() {
        let t = Instant::now();
        let later = t + Duration::from_secs(30);
        // Received, then an answer nobody received: still as fresh as the first.
        assert_eq!(latest((t, true), (later, false)), (t, true));
        // Not received until now: the received one's time, whatever came before.
        assert_eq!(latest((later, false), (t, true)), (t, true));
        assert_eq!(latest((t, true), (later, true)), (later, true));
        assert_eq!(latest((t, false), (later, false)), (later, false));
    }

    fn route(domain: &str, ttl: u64, delivered: bool) -> Attribution {
        let now = Instant::now();
        Attribution {
            route: Route {
                recipient_domain: domain.into(),
                mx_host: format!("mx.{domain}"),
                qname: domain.into(),
            },
            expires: now + Duration::from_secs(ttl),
            asked: now,
            delivered,
            via_mx: true,
            answer: Verdict::Allowed,
        }
    }

    /// Routes no asker received, with a day's TTL each, cannot push out one an asker
    /// received that expires sooner.
    #[test]
    fn a_received_route_outlasts_unreceived_ones_at_the_bound() {
        let mut list = vec![route("fabrikam.com", 300, true)];
        for i in 0..2 * ROUTES_PER_ADDR {
            merge(
                &mut list,
                route(&format!("f{i}.example"), 86_400, false),
                &none,
            );
        }
        assert_eq!(list.len(), ROUTES_PER_ADDR);
        assert!(
            list.iter()
                .any(|a| a.route.recipient_domain == "fabrikam.com")
        );
        // Among received routes, the one expiring first still goes.
        let mut list: Vec<Attribution> = (0..ROUTES_PER_ADDR)
            .map(|i| route(&format!("r{i}.example"), 600 + i as u64, true))
            .collect();
        merge(&mut list, route("late.example", 86_400, true), &none);
        assert!(
            !list
                .iter()
                .any(|a| a.route.recipient_domain == "r0.example")
        );
    }

    fn none(_: &str) -> bool {
        false
    }

    /// Clean answers naming the lookalike's host (a CNAME onto an alias eight clean
    /// domains' MX answers named, with a day's TTL) pushed its route out: the delivery
    /// was then credited to a clean domain and reported as nothing.
    #[test]
    fn clean_routes_cannot_push_a_lookalike_s_route_out() {
        let army = |d: &str| d == "army.ml";
        let mut list = vec![route("army.ml", 60, true)];
        for i in 0..2 * ROUTES_PER_ADDR {
            merge(
                &mut list,
                route(&format!("c{i}.example"), 86_400, true),
                &army,
            );
        }
        assert_eq!(list.len(), ROUTES_PER_ADDR);
        assert!(list.iter().any(|a| a.route.recipient_domain == "army.ml"));
    }

    /// Eight received lookalike routes naming a provider's host, with a day's TTL, pushed
    /// out its one clean route: the host then looked like the lookalikes' alone.
    #[test]
    fn lookalike_routes_cannot_push_the_last_clean_route_out() {
        let lookalike = |d: &str| d.starts_with("army");
        let mut list = vec![route("partner.example", 60, true)];
        for i in 0..2 * ROUTES_PER_ADDR {
            merge(
                &mut list,
                route(&format!("army{i}.ml"), 86_400, true),
                &lookalike,
            );
        }
        assert_eq!(list.len(), ROUTES_PER_ADDR);
        assert!(
            list.iter()
                .any(|a| a.route.recipient_domain == "partner.example")
        );
    }

    /// A lookalike listing dead hosts first has its MTA reach the live one after the
    /// route's TTL: the route still names the connect's recipient for a while (and
    /// blocks and every other use still end with the TTL).
    #[test]
    fn a_connect_soon_after_the_ttl_still_has_its_route() {
        let mut routes = Routes::new(16);
        let ip: IpAddr = "192.0.2.25".parse().unwrap();
        let a = route("army.ml", 30, true);
        let mut list = Vec::new();
        merge(&mut list, a.clone(), &none);
        routes.cache.insert(ip, list, a.expires + ATTRIBUTION_GRACE);
        let after_ttl = a.expires + Duration::from_secs(60);
        assert!(routes.get(&ip, after_ttl).is_empty());
        assert_eq!(routes.for_connect(&ip, after_ttl).len(), 1);
        assert!(
            routes
                .for_connect(&ip, a.expires + ATTRIBUTION_GRACE)
                .is_empty()
        );
    }

    use crate::dns::{Answer, Data, Message, QType, learn};

    /// An answer to `qname` holding `records`.
    fn message(qname: &str, qtype: QType, records: Vec<Answer>) -> Message {
        Message::answer_of(qname, qtype, records)
    }

    fn record(name: &str, data: Data) -> Answer {
        Answer {
            name: name.into(),
            ttl: 300,
            data,
        }
    }

    /// `domain`'s MX answer naming `host`.
    fn mx_answer(domain: &str, host: &str) -> Message {
        let mx = Data::Mx {
            preference: 10,
            exchange: host.into(),
        };
        message(domain, QType::Mx, vec![record(domain, mx)])
    }

    /// Teaches `routes` the answer `m` at `now`, judged `verdict` at an asker's socket.
    fn teach(
        routes: &mut Routes,
        m: &Message,
        verdict: Verdict,
        now: Instant,
        lookalike: &dyn Fn(&str) -> bool,
    ) -> Vec<Learnt> {
        let expiry = |ttl: u32| now + Duration::from_secs(u64::from(ttl));
        let judged = Judged {
            verdict,
            resolver: false,
        };
        routes.learn(m, &learn(m), expiry, judged, now, lookalike)
    }

    /// Sixteen names, each an exchanger eight MX answers named (one a lookalike's), then
    /// an address answer whose CNAME chain runs through all sixteen, with 100 addresses.
    /// Before, every address got a route per recipient of the chain (12,800 routes, each
    /// merged into a full list: from a 64 KiB answer, hundreds of MB built and millions
    /// of judgements); an address keeps eight, so eight are taught.
    #[test]
    fn an_address_answer_teaches_at_most_the_routes_an_address_keeps() {
        let mut routes = Routes::new(1_000);
        let now = Instant::now();
        let army = |d: &str| d == "army.ml";
        let host = |i: usize| format!("e{i}.shared.example");
        for i in 0..16 {
            for j in 0..ROUTES_PER_ADDR {
                let d = if (i, j) == (7, 3) {
                    "army.ml".to_string()
                } else {
                    format!("d{i}-{j}.example")
                };
                teach(
                    &mut routes,
                    &mx_answer(&d, &host(i)),
                    Verdict::Allowed,
                    now,
                    &army,
                );
            }
        }
        let mut records: Vec<Answer> = (0..15)
            .map(|i| record(&host(i), Data::Cname(host(i + 1))))
            .collect();
        records.extend((0..100u8).map(|i| record(&host(15), Data::Addr([192, 0, 2, i].into()))));
        let m = message(&host(0), QType::A, records);
        let out = teach(&mut routes, &m, Verdict::Allowed, now, &army);
        assert_eq!(out.len(), 100 * ROUTES_PER_ADDR);
        let ip = IpAddr::from([192, 0, 2, 42]);
        let kept = routes.get(&ip, now);
        assert_eq!(kept.len(), ROUTES_PER_ADDR);
        assert!(kept.iter().any(|a| a.route.recipient_domain == "army.ml"));
    }

    /// 100,000 addresses, each named by an answer for a name of 241 bytes: the routes
    /// stay within `ROUTE_BYTES_MAX` (before, the entry count was the only bound: about
    /// 69 MB here, and eight such routes an address at the default count, 0.6 GB).
    #[test]
    fn the_routes_memory_is_bounded_whatever_the_names() {
        let mut routes = Routes::new(100_000);
        let now = Instant::now();
        let label = "x".repeat(55);
        let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..100_000u32 {
            let name = format!("{i:08}.{label}.{label}.{label}.{label}.example");
            let m = message(&name, QType::A, vec![record(&name, Data::Addr(addr(i)))]);
            teach(&mut routes, &m, Verdict::Allowed, now, &none);
        }
        assert!(routes.cache.weight() <= ROUTE_BYTES_MAX);
        assert!(routes.cache.weight() > ROUTE_BYTES_MAX - 4_096);
        assert!(routes.cache.len() < 100_000);
        assert_eq!(routes.get(&addr(99_999), now).len(), 1);
    }

    /// Two partners' exchanger is an alias of a host eight lookalikes' dropped MX answers
    /// named: cutting the recipients by "lookalikes first" alone taught the address the
    /// eight lookalikes' routes and never the partners' (their deliveries unattributed,
    /// or the host blocked as the lookalikes' alone); received routes go last, as
    /// `make_room` has them go.
    #[test]
    fn the_recipients_cut_keeps_the_received_clean_one() {
        let mut routes = Routes::new(1_000);
        let now = Instant::now();
        let look = |d: &str| d.ends_with(".ml");
        for p in ["partner.example", "other.example"] {
            let partner = mx_answer(p, "x.provider.example");
            teach(&mut routes, &partner, Verdict::Allowed, now, &look);
        }
        for i in 0..ROUTES_PER_ADDR {
            let m = mx_answer(&format!("l{i}.ml"), "y.provider.example");
            teach(&mut routes, &m, Verdict::Blocked, now, &look);
        }
        let ip = IpAddr::from([192, 0, 2, 80]);
        let alias = Data::Cname("y.provider.example".into());
        let records = vec![
            record("x.provider.example", alias),
            record("y.provider.example", Data::Addr(ip)),
        ];
        let m = message("x.provider.example", QType::A, records);
        teach(&mut routes, &m, Verdict::Allowed, now, &look);
        let kept = routes.get(&ip, now);
        for p in ["partner.example", "other.example"] {
            assert!(
                kept.iter().any(|a| a.route.recipient_domain == p),
                "{p}: {kept:?}"
            );
        }
    }
}
