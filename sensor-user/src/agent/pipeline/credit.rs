//! Which recipient domain a delivery to an address is credited to in the correspondents
//! ledger.
//!
//! A shared mail host serves many recipient domains, and whoever writes a lookalike's DNS
//! can put a provider's host behind it (in glue or an MX record), with any TTL. Credit by
//! the longest-lived route let one lookup of such a lookalike (TTL a day) take the
//! deliveries to every other customer of that provider, until after a few days it counted
//! as an established correspondent: an old friend, reported at info and never blocked.
//! So a delivery is credited to the recipient this host asked for last (an MTA looks up
//! the recipient right before it connects), and a lookalike's credit is withheld while a
//! legitimate recipient of the same host was asked for within `AMBIGUOUS_WITHIN` of it:
//! whoever writes the lookalike's DNS can make its answers arrive often, by mailing this
//! host from it, but cannot stop the legitimate ones. A lookalike alone on its host (a
//! real delivery to it) is credited as before.

use std::time::Duration;

use super::routes::Attribution;

/// How close a legitimate recipient's lookup makes a lookalike's credit ambiguous.
pub const AMBIGUOUS_WITHIN: Duration = Duration::from_secs(60);

/// Where one delivery's credit goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Credit<'a> {
    /// To this recipient domain.
    To(&'a str),
    /// Nowhere: the freshest route is a lookalike's, and a legitimate recipient of the
    /// same host was asked for within `AMBIGUOUS_WITHIN` of it.
    Withheld {
        /// The lookalike that would have had it.
        lookalike: &'a str,
        /// The legitimate recipient asked for closest to it.
        legitimate: &'a str,
    },
    /// Nowhere: the address has no live route an asker received.
    Unattributed,
}

/// The credit for a delivery to an address with `routes`; `is_lookalike` says which
/// recipient domains are lookalikes. Only routes an asker received count: an answer the
/// kernel dropped, or one seen only at a local resolver's upstream socket, cannot be why
/// the MTA connected (a relay host's address named in a lookalike's dropped answer would
/// otherwise take the credit for every relayed delivery).
pub fn credit<'a>(routes: &'a [Attribution], is_lookalike: impl Fn(&str) -> bool) -> Credit<'a> {
    let domain = |a: &'a Attribution| a.route.recipient_domain.as_str();
    let received = || routes.iter().filter(|a| a.delivered);
    // Freshest first; at the same instant, a legitimate recipient before a lookalike.
    let Some(best) = received().max_by_key(|a| (a.asked, !is_lookalike(domain(a)))) else {
        return Credit::Unattributed;
    };
    if !is_lookalike(domain(best)) {
        return Credit::To(domain(best));
    }
    let rival = received()
        .filter(|a| domain(a) != domain(best) && !is_lookalike(domain(a)))
        .filter(|a| best.asked.saturating_duration_since(a.asked) <= AMBIGUOUS_WITHIN)
        .max_by_key(|a| a.asked);
    match rival {
        Some(r) => Credit::Withheld {
            lookalike: domain(best),
            legitimate: domain(r),
        },
        None => Credit::To(domain(best)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sensor_common::Verdict;

    use super::*;
    use crate::output::schema::Route;

    fn route(domain: &str, asked: Instant, ttl: u64) -> Attribution {
        Attribution {
            route: Route {
                recipient_domain: domain.into(),
                mx_host: "mx.shared.example".into(),
                qname: "mx.shared.example".into(),
            },
            expires: asked + Duration::from_secs(ttl),
            asked,
            delivered: true,
            via_mx: true,
            answer: Verdict::Allowed,
        }
    }

    fn lookalike(d: &str) -> bool {
        d == "army.ml"
    }

    #[test]
    fn the_recipient_asked_for_last_has_it_whatever_the_ttls() {
        let t = Instant::now();
        let routes = [
            route("old.example", t, 86_400),
            route("new.example", t + Duration::from_secs(5), 60),
        ];
        assert_eq!(credit(&routes, lookalike), Credit::To("new.example"));
    }

    #[test]
    fn a_lookalike_asked_for_last_beside_a_legitimate_recipient_gets_nothing() {
        let t = Instant::now();
        let routes = [
            route("partner.example", t, 300),
            route("army.ml", t + Duration::from_secs(1), 86_400),
        ];
        assert_eq!(
            credit(&routes, lookalike),
            Credit::Withheld {
                lookalike: "army.ml",
                legitimate: "partner.example"
            }
        );
    }

    #[test]
    fn a_lookalike_alone_or_long_after_the_others_is_credited() {
        let t = Instant::now();
        assert_eq!(
            credit(&[route("army.ml", t, 300)], lookalike),
            Credit::To("army.ml")
        );
        let later = t + AMBIGUOUS_WITHIN + Duration::from_secs(1);
        let routes = [
            route("partner.example", t, 3_600),
            route("army.ml", later, 300),
        ];
        assert_eq!(credit(&routes, lookalike), Credit::To("army.ml"));
    }

    #[test]
    fn a_route_no_asker_received_has_nothing() {
        let t = Instant::now();
        let dropped = Attribution {
            delivered: false,
            ..route("army.ml", t + Duration::from_secs(1), 300)
        };
        assert_eq!(
            credit(std::slice::from_ref(&dropped), lookalike),
            Credit::Unattributed
        );
        let routes = [route("partner.example", t, 300), dropped];
        assert_eq!(credit(&routes, lookalike), Credit::To("partner.example"));
    }

    #[test]
    fn at_the_same_instant_the_legitimate_recipient_has_it() {
        let t = Instant::now();
        let routes = [route("army.ml", t, 300), route("partner.example", t, 300)];
        assert_eq!(credit(&routes, lookalike), Credit::To("partner.example"));
        assert_eq!(credit(&[], lookalike), Credit::Unattributed);
    }
}
