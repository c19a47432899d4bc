//! Answers arriving: a dropped answer is reported; every answer teaches routes; an answer
//! about a lookalike updates its tracking and blocks the addresses it gave.

use sensor_common::Verdict;

use super::{DnsIn, Pipeline, registrable, routes::Learnt};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{AnswerDropped, Outcome, WentLive},
    },
    detect::Action,
    dns::{self, Learned, Message},
    output::{clock::since_kernel, schema::Lookalike},
};

impl<E: Enforcer> Pipeline<E> {
    /// An answer arriving at a local socket.
    pub(super) fn on_answer(&mut self, msg: &Message, d: &DnsIn) {
        if d.verdict == Verdict::Blocked {
            AnswerDropped {
                lookalike: self
                    .lookalike(&msg.qname)
                    .map(|f| self.detection(&msg.qname, &f)),
                socket: self.who.socket(d.cgroup_id),
            }
            .emit(&mut self.sink);
        }
        let learned = dns::learn(msg);
        let settings = &self.settings;
        let routes = self.routes.learn(
            msg,
            &learned,
            |ttl| settings.expiry(ttl),
            std::time::Instant::now(),
        );
        self.routes.report(&self.sink.metrics);
        self.track(msg, &learned, routes, d.ts_ns);
    }

    /// Lookalike bookkeeping: remember the unresolved, report one going live, block the
    /// addresses a `block` lookalike's answer gave.
    fn track(&mut self, msg: &Message, learned: &Learned, routes: Vec<Learnt>, ts_ns: u64) {
        let recipient = routes
            .first()
            .map_or(msg.qname.as_str(), |l| l.route.recipient_domain.as_str());
        let Some(f) = self
            .lookalike(recipient)
            .or_else(|| self.lookalike(&msg.qname))
        else {
            return;
        };
        let domain = registrable(recipient).to_string();
        if learned.resolved() {
            if let Some(entry) = self.tracker.resolved(&domain) {
                let mut live = went_live(&domain, &f, entry.first_seen, learned);
                self.learning.annotate(&mut live.lookalike);
                live.emit(&mut self.sink);
            }
        } else if !msg.failed && !msg.partial && !msg.truncated {
            let expires = self
                .settings
                .expiry(msg.records.first().map_or(0, |r| r.ttl));
            self.tracker
                .unresolved(&domain, &f.target, f.rule.name(), msg, expires);
        }
        if f.action == Action::Block {
            for l in routes {
                let added = self
                    .blocks
                    .put_addr(l.ip, &l.route.recipient_domain, l.expires);
                if added && ts_ns != 0 {
                    self.sink
                        .metrics
                        .map_update_latency
                        .with_label_values(&["blocked_addrs"])
                        .observe(since_kernel(ts_ns));
                }
            }
        }
    }
}

fn went_live(domain: &str, f: &crate::detect::Finding, since: u64, learned: &Learned) -> WentLive {
    WentLive {
        lookalike: Lookalike::new(domain, f),
        since,
        addresses: learned
            .addrs
            .iter()
            .map(|(ip, _)| ip.to_string())
            .chain(learned.glue.iter().map(|(_, ip, _)| ip.to_string()))
            .collect(),
        mx: learned.mx.iter().map(|(m, _)| m.clone()).collect(),
    }
}
