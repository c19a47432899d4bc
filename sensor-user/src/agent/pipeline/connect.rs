//! SMTP connects: each is attributed through the route cache to every recipient domain
//! its address was learned for that can be why the host connected (`explain.rs`), and
//! judged; each lookalike among them is reported (or its refusal is), an address without
//! such a route is reported as unattributed.
//!
//! In monitor mode a detection says `would_block` whenever enforce mode would have
//! stopped that delivery: by dropping the answer that gave the address (the kernel judged
//! it `would_block`), or at the connect itself.

use std::time::Instant;

use sensor_common::Verdict;

use super::{
    ConnectIn, Pipeline,
    credit::{Credit, credit},
    explain::explaining,
    routes::Attribution,
};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{
            ConnectRefused, CreditWithheld, Detected, DirectDestination, LookalikeEstablished,
            LookalikeNotReceived, Outcome, Unattributed,
        },
    },
    attrib::Process,
    detect::{Action, Finding},
    kernel::maps::canonical,
    output::{
        clock::since_kernel,
        schema::{BlockKind, Route},
    },
};

/// What enforce mode would have done with a delivery monitor mode let through, and how:
/// first by dropping the answer that gave the address, else at the connect.
fn enforce_would(kernel: Verdict, answer: Verdict) -> (Verdict, Option<BlockKind>) {
    match (kernel, answer) {
        (Verdict::Blocked, _) => (Verdict::Blocked, Some(BlockKind::Connect)),
        (_, Verdict::WouldBlock) => (Verdict::WouldBlock, Some(BlockKind::DnsAnswer)),
        (Verdict::WouldBlock, _) => (Verdict::WouldBlock, Some(BlockKind::Connect)),
        (v, _) => (v, None),
    }
}

impl<E: Enforcer> Pipeline<E> {
    /// One SMTP connect.
    pub fn on_connect(&mut self, c: ConnectIn) {
        let family = if c.addr.is_ipv4() { "ipv4" } else { "ipv6" };
        self.metrics()
            .smtp_connects
            .with_label_values(&[&c.port.to_string(), family, c.verdict.name()])
            .inc();
        let all = self.routes.for_connect(&c.addr, Instant::now());
        let blocked = c.verdict == Verdict::Blocked;
        let routes = self.naming(&c, &all, blocked);
        let mut found = self.lookalikes(&routes);
        if found.is_empty() && blocked {
            found = self.adopted_block(&c);
        }
        let unreceived = if blocked {
            Vec::new()
        } else {
            self.not_received(&c, &all, &found)
        };
        // Whether an event line is written for this connect (clean ones get none).
        let wrote = blocked || !found.is_empty() || routes.is_empty();
        if wrote {
            let process = self.who.process(&c);
            if blocked {
                self.refused(
                    &c,
                    &found,
                    routes.first().map(|a| a.route.clone()),
                    &process,
                );
            }
            if !blocked {
                for (a, f) in &found {
                    // Only a `block` lookalike's answers are dropped by enforce mode; an
                    // `alert` one's MX answer held for the agent's verdict (`would_block`
                    // here) is let through on the resolver's retry.
                    let answer = if f.action == Action::Block {
                        a.answer
                    } else {
                        Verdict::Allowed
                    };
                    let (verdict, mechanism) = enforce_would(c.verdict, answer);
                    Detected {
                        lookalike: self.detection(&a.route.recipient_domain, f),
                        address: c.addr.to_string(),
                        port: c.port,
                        verdict,
                        mechanism,
                        route: a.route.clone(),
                        process: process.clone(),
                    }
                    .emit(&mut self.sink);
                }
            }
            if routes.is_empty() && found.is_empty() {
                self.unattributed(&c, process, unreceived);
            }
        }
        // One delivery for the ledger, once the events read it as it was (`credit.rs`).
        if !blocked {
            self.credit(&c, &routes, &found);
        }
        let latency = since_kernel(c.ts_ns);
        self.metrics().decision_latency.observe(latency);
        if wrote {
            self.metrics().connect_event_latency.observe(latency);
        }
    }

    /// The routes that name connect `c`'s recipient among `all` of its address: every one
    /// behind a refusal's block; for a delivery, those that can be why the host connected,
    /// none at a direct destination (`direct.rs`), whose evidence this connect may be.
    fn naming(&mut self, c: &ConnectIn, all: &[Attribution], blocked: bool) -> Vec<Attribution> {
        if blocked {
            return all.to_vec();
        }
        let now = Instant::now();
        let direct = self.direct.contains(c.addr, now);
        let explained = explaining(all, |a| self.routes.mx_dropped(a, now));
        // A direct destination's evidence: no route an asker received, where the host's
        // askers are seen (a lookalike's answer naming the relay, dropped or kept from
        // the asker by its resolver, must not keep it from counting, nor, once it is one,
        // any route); no route that can be why the host connected, where they are not
        // (its MTA asks through a local API: every busy mail host would be direct).
        let evidence = if self.askers.seen(now) {
            explained.iter().any(|a| a.delivered)
        } else {
            !explained.is_empty()
        };
        if (!evidence || direct) && self.direct.note(c.addr, now) {
            DirectDestination { address: c.addr }.emit(&mut self.sink);
        }
        if direct {
            return Vec::new();
        }
        explained
    }

    /// Credits one delivery in the correspondents ledger (`credit.rs`).
    fn credit(&mut self, c: &ConnectIn, routes: &[Attribution], found: &[(Attribution, Finding)]) {
        let is_lookalike = |d: &str| found.iter().any(|(a, _)| a.route.recipient_domain == d);
        match credit(routes, is_lookalike) {
            Credit::To(domain) => {
                // An old friend is never blocked: a `block` entry's lookalike becoming
                // one is said loudly (its owner can make this host bounce to it).
                let lookalike = found
                    .iter()
                    .find(|(a, f)| a.route.recipient_domain == domain && f.action == Action::Block);
                if self.learning.record(domain)
                    && let Some((_, f)) = lookalike
                {
                    LookalikeEstablished {
                        lookalike: domain,
                        target: &f.target,
                    }
                    .emit(&mut self.sink);
                }
            }
            Credit::Withheld {
                lookalike,
                legitimate,
            } => CreditWithheld {
                lookalike,
                legitimate,
                address: c.addr,
            }
            .emit(&mut self.sink),
            Credit::Unattributed => {}
        }
    }

    /// The lookalikes among an address's routes, one per recipient domain.
    fn lookalikes(&self, routes: &[Attribution]) -> Vec<(Attribution, Finding)> {
        let mut out: Vec<(Attribution, Finding)> = Vec::new();
        for a in routes {
            if out
                .iter()
                .any(|(o, _)| o.route.recipient_domain == a.route.recipient_domain)
            {
                continue;
            }
            let f = self
                .lookalike(&a.route.recipient_domain)
                .or_else(|| self.lookalike(&a.route.mx_host));
            if let Some(f) = f {
                out.push((a.clone(), f));
            }
        }
        out
    }

    /// Counts the lookalikes among `all` left out of `found` (no asker received them),
    /// and returns them.
    fn not_received(
        &mut self,
        c: &ConnectIn,
        all: &[Attribution],
        found: &[(Attribution, Finding)],
    ) -> Vec<String> {
        let left: Vec<String> = self
            .lookalikes(all)
            .iter()
            .filter(|(a, _)| {
                !found
                    .iter()
                    .any(|(f, _)| f.route.recipient_domain == a.route.recipient_domain)
            })
            .map(|(a, _)| a.route.recipient_domain.clone())
            .collect();
        if !left.is_empty() {
            LookalikeNotReceived {
                lookalikes: left.clone(),
                address: c.addr,
            }
            .emit(&mut self.sink);
        }
        left
    }

    /// A refusal by a block this agent has no route for (a previous agent's, adopted):
    /// named by the domains that block was learned for.
    fn adopted_block(&self, c: &ConnectIn) -> Vec<(Attribution, Finding)> {
        let Some(block) = self.blocks.addr(&canonical(c.addr)) else {
            return Vec::new();
        };
        block
            .domains
            .iter()
            .filter_map(|d| {
                let f = self.lookalike(d)?;
                let route = Route {
                    recipient_domain: d.clone(),
                    mx_host: String::new(),
                    qname: String::new(),
                };
                let a = Attribution {
                    route,
                    expires: Instant::now(),
                    asked: Instant::now(),
                    delivered: false,
                    via_mx: false,
                    answer: Verdict::Allowed,
                };
                Some((a, f))
            })
            .collect()
    }

    /// The refusal, once per lookalike it stopped (or once, unnamed, for an operator's
    /// block of an address with no lookalike behind it).
    fn refused(
        &mut self,
        c: &ConnectIn,
        found: &[(Attribution, Finding)],
        first: Option<Route>,
        process: &Process,
    ) {
        let address = c.addr.to_string();
        if found.is_empty() {
            ConnectRefused {
                lookalike: None,
                address,
                port: c.port,
                route: first,
                process: process.clone(),
                repeat: false,
            }
            .emit(&mut self.sink);
            return;
        }
        for (i, (a, f)) in found.iter().enumerate() {
            ConnectRefused {
                lookalike: Some(self.detection(&a.route.recipient_domain, f)),
                address: address.clone(),
                port: c.port,
                route: (!a.route.mx_host.is_empty()).then(|| a.route.clone()),
                process: process.clone(),
                repeat: i > 0,
            }
            .emit(&mut self.sink);
        }
    }

    fn unattributed(
        &mut self,
        c: &ConnectIn,
        process: Process,
        unreceived_lookalikes: Vec<String>,
    ) {
        Unattributed {
            address: c.addr.to_string(),
            port: c.port,
            verdict: c.verdict,
            process,
            unreceived_lookalikes,
        }
        .emit(&mut self.sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_says_what_enforce_would_have_done_and_how() {
        use BlockKind::{Connect, DnsAnswer};
        use Verdict::{Allowed, Blocked, WouldBlock};
        assert_eq!(
            enforce_would(Allowed, WouldBlock),
            (WouldBlock, Some(DnsAnswer))
        );
        assert_eq!(
            enforce_would(WouldBlock, Allowed),
            (WouldBlock, Some(Connect))
        );
        // The answer's drop comes first.
        assert_eq!(enforce_would(WouldBlock, WouldBlock).1, Some(DnsAnswer));
        assert_eq!(enforce_would(Allowed, Allowed), (Allowed, None));
        // Enforce mode dropped the answer, yet the host connected: it knew the address
        // some other way, and nothing stopped it.
        assert_eq!(enforce_would(Allowed, Blocked), (Allowed, None));
    }
}
