//! Route learning: which recipient domains and mail hosts each address leads to, from
//! the DNS answers that carried it (MX answers and their glue, CNAME chains, address
//! answers). An address keeps every name it was learned for (a few per address): a later
//! clean answer never hides a lookalike sharing the host.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use sensor_common::Verdict;

use super::registrable;
use crate::{
    dns::{Learned, Message, QType},
    kernel::maps::canonical,
    output::{Metrics, schema::Route},
    state::lru::TtlLru,
};

/// Most routes remembered per address; past it, one no asker received gives way first
/// (whoever writes a lookalike's DNS can send those with any TTL), then a clean one but
/// the last (`make_room`), then the one expiring first.
pub const ROUTES_PER_ADDR: usize = 8;

/// How long past its TTL a route still names a connect's recipient (never a block): an
/// MTA tries the exchangers it resolved in turn, each for up to its connect timeout
/// (Postfix: 30 s, five addresses), so whoever writes a lookalike's DNS could list dead
/// hosts first and have the real delivery come after a short TTL ran out, unattributed.
pub const ATTRIBUTION_GRACE: Duration = Duration::from_secs(300);

/// One route of an address and when it stops being believed.
#[derive(Clone, Debug)]
pub struct Attribution {
    /// Where the address leads.
    pub route: Route,
    /// The answer's TTL, clamped.
    pub expires: Instant,
    /// When an answer last named its recipient domain: the MX answer behind it, or the
    /// address answer itself when none was. An MTA's delivery follows its own lookup of
    /// the recipient, so the delivery to a shared host is the freshest one's (whoever
    /// writes a lookalike's DNS sets its TTL, not when the host looks the names up).
    pub asked: Instant,
    /// An asker received it: some answer that taught it (and, for a route through an MX
    /// answer, that MX answer too) was neither dropped nor seen only at a local
    /// resolver's upstream socket. Only such a route can be why an MTA connected, so only
    /// such a route teaches an address block or earns a delivery's credit (a resolver
    /// keeps back records its client never gets: out-of-zone glue, say).
    pub delivered: bool,
    /// Its recipient came from an MX answer (else it is the registrable-domain guess for
    /// an address no MX answer led to: a sender check's lookup, a resolver's own lookup
    /// of a name server).
    pub via_mx: bool,
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

/// When an answer last named a route's recipient, and whether an asker received one: the
/// latest received answer's time once any was received (an answer nobody received, which
/// whoever writes a lookalike's DNS can have arrive at will, does not make it fresher).
fn latest(old: (Instant, bool), new: (Instant, bool)) -> (Instant, bool) {
    match (old.1, new.1) {
        (true, false) => old,
        (false, true) => new,
        _ => (old.0.max(new.0), old.1),
    }
}

/// Makes room for one more in `list` at `ROUTES_PER_ADDR`: of the entries `(received,
/// recipient domain, expiry)` says, the least goes: one no asker received, then a
/// received clean one but the last, then a lookalike's, the last received clean one
/// never before them, each the one expiring first. Clean answers naming the same host
/// must not push a lookalike's route out (its deliveries would go unreported), nor
/// received lookalike routes the last clean one (the host would look like the
/// lookalike's alone, and be blocked).
fn make_room<T>(
    list: &mut Vec<T>,
    entry: impl Fn(&T) -> (bool, &str, Instant),
    lookalike: &dyn Fn(&str) -> bool,
) {
    if list.len() < ROUTES_PER_ADDR {
        return;
    }
    // Each entry's domain judged once: whoever names a host in many answers makes this
    // run for every route he adds.
    let looks: Vec<bool> = list.iter().map(|e| lookalike(entry(e).1)).collect();
    let clean = |i: usize| entry(&list[i]).0 && !looks[i];
    let last_clean = (0..list.len()).filter(|i| clean(*i)).count() == 1;
    let key = |i: usize| {
        let (received, _, expires) = entry(&list[i]);
        let rank = if last_clean && clean(i) {
            2
        } else {
            u8::from(looks[i])
        };
        (received, rank, expires)
    };
    if let Some(i) = (0..list.len()).min_by_key(|i| key(*i)) {
        list.remove(i);
    }
}

/// Adds (or refreshes) `a` among an address's routes; `lookalike` says which recipient
/// domains are lookalikes (asked only when the list is full).
fn merge(list: &mut Vec<Attribution>, a: Attribution, lookalike: &dyn Fn(&str) -> bool) {
    let same = list.iter_mut().find(|o| o.route == a.route);
    match same {
        Some(o) => {
            o.expires = o.expires.max(a.expires);
            (o.asked, o.delivered) = latest((o.asked, o.delivered), (a.asked, a.delivered));
            o.via_mx |= a.via_mx;
            if rank(a.answer) > rank(o.answer) {
                o.answer = a.answer;
            }
        }
        None => {
            make_room(
                list,
                |o| (o.delivered, o.route.recipient_domain.as_str(), o.expires),
                lookalike,
            );
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
            cache: TtlLru::new(capacity),
            mx_of: TtlLru::new(capacity),
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
        let mut recipients = self.recipients_of(&learned.chain, now);
        // An address keeps ROUTES_PER_ADDR routes: more recipients only multiply the
        // work by the answer's addresses (whoever writes the chain's MX answers chooses
        // how many). Lookalikes' first, then the latest asked.
        if recipients.len() > ROUTES_PER_ADDR {
            recipients.sort_by_key(|r| (!lookalike(&r.domain), std::cmp::Reverse(r.asked)));
            recipients.truncate(ROUTES_PER_ADDR);
        }
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

    /// Sixteen names, each an exchanger eight MX answers named (one a lookalike's), then
    /// an address answer whose CNAME chain runs through all sixteen, with 100 addresses.
    /// Before, every address got a route per recipient of the chain (12,800 routes, each
    /// merged into a full list: from a 64 KiB answer, hundreds of MB built and millions
    /// of judgements); an address keeps eight, so eight are taught.
    #[test]
    fn an_address_answer_teaches_at_most_the_routes_an_address_keeps() {
        use crate::dns::{Answer, Data, Message, QType, learn};
        let mut routes = Routes::new(1_000);
        let now = Instant::now();
        let expiry = |ttl: u32| now + Duration::from_secs(u64::from(ttl));
        let judged = Judged {
            verdict: Verdict::Allowed,
            resolver: false,
        };
        let army = |d: &str| d == "army.ml";
        let message = |qname: &str, qtype, records: Vec<Answer>| Message {
            id: 1,
            response: true,
            nxdomain: false,
            failed: false,
            truncated: false,
            qname: qname.into(),
            qtype,
            records,
            partial: false,
            skipped: 0,
        };
        let record = |name: &str, data| Answer {
            name: name.into(),
            ttl: 300,
            data,
        };
        let host = |i: usize| format!("e{i}.shared.example");
        for i in 0..16 {
            for j in 0..ROUTES_PER_ADDR {
                let d = if (i, j) == (7, 3) {
                    "army.ml".to_string()
                } else {
                    format!("d{i}-{j}.example")
                };
                let mx = Data::Mx {
                    preference: 10,
                    exchange: host(i),
                };
                let m = message(&d, QType::Mx, vec![record(&d, mx)]);
                routes.learn(&m, &learn(&m), expiry, judged, now, &army);
            }
        }
        let mut records: Vec<Answer> = (0..15)
            .map(|i| record(&host(i), Data::Cname(host(i + 1))))
            .collect();
        records.extend((0..100u8).map(|i| record(&host(15), Data::Addr([192, 0, 2, i].into()))));
        let m = message(&host(0), QType::A, records);
        let out = routes.learn(&m, &learn(&m), expiry, judged, now, &army);
        assert_eq!(out.len(), 100 * ROUTES_PER_ADDR);
        let ip = IpAddr::from([192, 0, 2, 42]);
        let kept = routes.get(&ip, now);
        assert_eq!(kept.len(), ROUTES_PER_ADDR);
        assert!(kept.iter().any(|a| a.route.recipient_domain == "army.ml"));
    }
}
