//! Which of an address's routes can be why a host connected to it.
//!
//! A route learned from an answer no asker received (the kernel dropped it, or it was
//! seen only at a local resolver's upstream socket) cannot be why the MTA connected while
//! a route it did receive leads to the same address. Whoever writes a lookalike's DNS can
//! name any address in it: a provider's host, the victim's relay host. Reporting every
//! delivery there as one to the lookalike would page the operator, in enforce mode, for
//! mail that went where it was meant to. Such a route is left out then, and counted.
//!
//! With no received route, a route whose answer was seen only at a resolver's upstream
//! socket still counts (a host whose lookups the sensor cannot see, say through a
//! resolver's local API, has only such routes), but not one whose answer the kernel
//! dropped at its asker: that host was never told.

use sensor_common::Verdict;

use super::routes::Attribution;

/// The routes of `routes` that can be why a host connected to their address.
pub fn explaining(routes: &[Attribution]) -> Vec<Attribution> {
    let any_received = routes.iter().any(|a| a.delivered);
    routes
        .iter()
        .filter(|a| a.delivered || (!any_received && a.answer != Verdict::Blocked))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::output::schema::Route;

    fn route(domain: &str, delivered: bool, answer: Verdict) -> Attribution {
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
    fn a_received_route_outweighs_any_unreceived_one() {
        let routes = [
            route("army.ml", false, Verdict::Blocked),
            route("army.mx", false, Verdict::Allowed),
            route("partner.example", true, Verdict::Allowed),
        ];
        assert_eq!(domains(&explaining(&routes)), ["partner.example"]);
    }

    #[test]
    fn with_none_received_only_a_dropped_answer_s_route_is_left_out() {
        let routes = [
            route("army.ml", false, Verdict::Blocked),
            route("army.mx", false, Verdict::Allowed),
        ];
        assert_eq!(domains(&explaining(&routes)), ["army.mx"]);
        assert!(explaining(&[route("army.ml", false, Verdict::Blocked)]).is_empty());
    }

    #[test]
    fn received_routes_all_count() {
        let routes = [
            route("army.ml", true, Verdict::Blocked),
            route("partner.example", true, Verdict::Allowed),
        ];
        assert_eq!(explaining(&routes).len(), 2);
    }
}
