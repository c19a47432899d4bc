//! Which of an address's routes can be why a host connected to it.
//!
//! Whoever writes a lookalike's DNS can name any address in it: a provider's host, the
//! victim's relay host. A route counts only when the host can have been told it:
//! - an asker received an answer that taught it (the MX answer included), or
//! - it was seen only at a local resolver's upstream socket, was not dropped at any
//!   asker, and came through an MX answer that no asker's copy of was dropped either: a
//!   host whose lookups the sensor sees only there (its MTA asks the resolver through a
//!   local API) has only such routes. (A resolver keeps out-of-zone glue from its client:
//!   a lookalike's MX answer whose glue names a provider's host reaches the client
//!   without it, dropped, and leaves no dropped copy of the route itself.)
//!
//! So a lookalike's answer the kernel dropped at its asker never makes a delivery to that
//! address a detection (a page, in enforce mode, for mail that went where it was meant
//! to, as often as the lookalike's owner likes), nor does an address the resolver looked
//! up for itself (a name server's) with no MX answer behind it. Such routes are counted.

use sensor_common::Verdict;

use super::routes::Attribution;

/// Whether route `a` can be why a host connected to its address; `mx_dropped` says
/// whether an asker's copy of the MX answer behind it was dropped.
fn explains(a: &Attribution, mx_dropped: &mut impl FnMut(&Attribution) -> bool) -> bool {
    a.delivered || (a.answer != Verdict::Blocked && a.via_mx && !mx_dropped(a))
}

/// The routes of `routes` that can be why a host connected to their address.
pub fn explaining(
    routes: &[Attribution],
    mut mx_dropped: impl FnMut(&Attribution) -> bool,
) -> Vec<Attribution> {
    routes
        .iter()
        .filter(|a| explains(a, &mut mx_dropped))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::output::schema::Route;

    fn route(domain: &str, delivered: bool, answer: Verdict, via_mx: bool) -> Attribution {
        let now = Instant::now();
        Attribution {
            route: Route {
                recipient_domain: domain.into(),
                mx_host: "mx.shared.example".into(),
                qname: "mx.shared.example".into(),
            },
            expires: now + Duration::from_secs(300),
            asked: now,
            delivered,
            via_mx,
            answer,
        }
    }

    fn domains(routes: &[Attribution]) -> Vec<&str> {
        routes
            .iter()
            .map(|a| a.route.recipient_domain.as_str())
            .collect()
    }

    #[test]
    fn a_route_from_a_dropped_answer_never_explains() {
        let routes = [
            route("army.ml", false, Verdict::Blocked, true),
            route("partner.example", true, Verdict::Allowed, true),
        ];
        assert_eq!(
            domains(&explaining(&routes, |_| false)),
            ["partner.example"]
        );
        assert!(
            explaining(&[route("army.ml", false, Verdict::Blocked, true)], |_| {
                false
            })
            .is_empty()
        );
    }

    #[test]
    fn an_upstream_only_route_explains_through_an_mx_answer_only() {
        // Beside a received route too: a clean answer the attacker has the host receive
        // must not hide a delivery whose lookups only the resolver's socket showed.
        let routes = [
            route("army.mx", false, Verdict::Allowed, true),
            route("neutral.example", true, Verdict::Allowed, false),
        ];
        assert_eq!(explaining(&routes, |_| false).len(), 2);
        // A resolver's own lookup of a name server's address: no MX answer behind it.
        assert!(
            explaining(&[route("army.ml", false, Verdict::Allowed, false)], |_| {
                false
            })
            .is_empty()
        );
    }

    #[test]
    fn an_upstream_only_route_whose_mx_answer_an_asker_had_dropped_does_not_explain() {
        let routes = [route("army.ml", false, Verdict::Allowed, true)];
        assert!(explaining(&routes, |_| true).is_empty());
    }

    #[test]
    fn received_routes_all_count() {
        let routes = [
            route("army.ml", true, Verdict::Blocked, false),
            route("partner.example", true, Verdict::Allowed, true),
        ];
        assert_eq!(explaining(&routes, |_| false).len(), 2);
    }
}
