//! SMTP connects: each is attributed through the route cache to its recipient domain and
//! judged; a lookalike is reported (or its refusal is), an address without DNS history is
//! reported as unattributed.

use sensor_common::Verdict;

use super::{ConnectIn, Pipeline};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{ConnectRefused, Detected, Outcome, Unattributed},
    },
    output::clock::since_kernel,
};

impl<E: Enforcer> Pipeline<E> {
    /// One SMTP connect.
    pub fn on_connect(&mut self, c: ConnectIn) {
        let family = if c.addr.is_ipv4() { "ipv4" } else { "ipv6" };
        self.metrics()
            .smtp_connects
            .with_label_values(&[&c.port.to_string(), family, c.verdict.name()])
            .inc();
        let route = self.routes.get(&c.addr, std::time::Instant::now());
        let blocked = c.verdict == Verdict::Blocked;
        let finding = route.as_ref().and_then(|r| {
            self.lookalike(&r.recipient_domain)
                .or_else(|| self.lookalike(&r.mx_host))
        });
        // Whether an event line is written for this connect (clean ones get none).
        let wrote = blocked || finding.is_some() || route.is_none();
        // A delivery the ledger counts, once its event has read the ledger as it was.
        let delivered = route
            .as_ref()
            .filter(|_| !blocked)
            .map(|r| r.recipient_domain.clone());
        if wrote {
            let process = self.who.process(&c);
            let address = c.addr.to_string();
            let lookalike = match (&route, &finding) {
                (Some(r), Some(f)) => Some(self.detection(&r.recipient_domain, f)),
                _ => None,
            };
            match (lookalike, route) {
                (lookalike, route) if blocked => {
                    let unattributed = route.is_none().then(|| process.clone());
                    ConnectRefused {
                        lookalike,
                        address: address.clone(),
                        port: c.port,
                        route,
                        process,
                    }
                    .emit(&mut self.sink);
                    if let Some(process) = unattributed {
                        self.unattributed(&c, address, process);
                    }
                }
                (Some(lookalike), Some(route)) => Detected {
                    lookalike,
                    address,
                    port: c.port,
                    verdict: c.verdict,
                    route,
                    process,
                }
                .emit(&mut self.sink),
                (_, _) => self.unattributed(&c, address, process),
            }
        }
        if let Some(recipient) = delivered {
            self.learning.record(&recipient);
        }
        let latency = since_kernel(c.ts_ns);
        self.metrics().decision_latency.observe(latency);
        if wrote {
            self.metrics().connect_event_latency.observe(latency);
        }
    }

    fn unattributed(&mut self, c: &ConnectIn, address: String, process: crate::attrib::Process) {
        Unattributed {
            address,
            port: c.port,
            verdict: c.verdict,
            process,
        }
        .emit(&mut self.sink);
    }
}
