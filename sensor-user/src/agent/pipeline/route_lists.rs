//! An address's routes (`Attribution`) and an exchanger's recipients as lists: an entry
//! merged into its list, and which goes when the list is full (`ROUTES_PER_ADDR`).

use std::time::Instant;

use sensor_common::Verdict;

use crate::output::schema::Route;

/// Most routes remembered per address; past it, one no asker received gives way first
/// (whoever writes a lookalike's DNS can send those with any TTL), then a clean one but
/// the last (`make_room`), then the one expiring first.
pub const ROUTES_PER_ADDR: usize = 8;

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
pub(super) fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Allowed => 0,
        Verdict::WouldBlock => 1,
        Verdict::Blocked => 2,
    }
}

/// When an answer last named a route's recipient, and whether an asker received one: the
/// latest received answer's time once any was received (an answer nobody received, which
/// whoever writes a lookalike's DNS can have arrive at will, does not make it fresher).
pub(super) fn latest(old: (Instant, bool), new: (Instant, bool)) -> (Instant, bool) {
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
pub(super) fn make_room<T>(
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
pub(super) fn merge(list: &mut Vec<Attribution>, a: Attribution, lookalike: &dyn Fn(&str) -> bool) {
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
