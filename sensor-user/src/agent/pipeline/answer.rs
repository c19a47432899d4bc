//! Answers arriving: a dropped answer is reported (or counted as held for a verdict);
//! every answer teaches routes; a learned name block lasts as long as its answer; an
//! answer that reached a lookalike's asker blocks its addresses — those no legitimate
//! name shares — and a legitimate answer lifts any block on the addresses it carries.

use std::net::IpAddr;

use sensor_common::{Verdict, maps::target_id, qname_hashes, tag::question_tag_of};

use super::{
    DnsIn, Pipeline, block_finding, lookalike, registrable,
    routes::{Judged, Learnt},
};
use crate::{
    agent::{
        enforcer::Enforcer,
        outcomes::{
            AddressShared, AnswerDropped, AnswerHeld, GlueSkipped, Outcome, WentLive, listed,
        },
    },
    detect::{Action, Finding},
    dns::{self, Learned, Message, QType},
    output::{clock::since_kernel, schema::Lookalike},
};

impl<E: Enforcer> Pipeline<E> {
    /// An answer arriving at a local socket.
    pub(super) fn on_answer(&mut self, msg: &Message, d: &DnsIn) {
        let finding = self.lookalike(&msg.qname);
        let hashes = qname_hashes(d.payload);
        let tag = hashes.and_then(|h| question_tag_of(self.blocks.name_key(), d.payload, &h));
        // A legitimate name that only collides with a learned block must not extend it.
        let collides = match (&finding, &hashes) {
            (None, Some(h)) => self.report_collisions(&msg.qname, h, tag),
            _ => false,
        };
        if d.verdict == Verdict::Blocked {
            self.on_dropped(msg, d, finding.as_ref());
        }
        // A previous agent's block this question meets takes its name, or is lifted, or
        // at least not extended.
        let block = finding.as_ref().is_some_and(|f| f.action == Action::Block);
        let unheld = hashes
            .as_ref()
            .is_some_and(|h| self.settle_adopted(&msg.qname, h, tag, block));
        if let Some(h) = hashes.as_ref().filter(|_| !collides && !unheld) {
            let ttl = msg.records.iter().map(|r| r.ttl).min().unwrap_or(0);
            self.blocks.answered(h, self.settings.expiry_ns(ttl));
        }
        let learned = dns::learn(msg);
        if learned.glue_skipped > 0 {
            GlueSkipped {
                qname: msg.qname.clone(),
                skipped: learned.glue_skipped,
            }
            .emit(&mut self.sink);
        }
        // A local resolver's upstream copy of an answer the kernel drops at its askers
        // (a `block` lookalike's, in enforce mode) teaches routes as dropped as theirs:
        // none of them can be why the host connected. Left to the bounded memory of
        // dropped MX answers, a flood of them made a lookalike's glue naming a provider's
        // host explain its deliveries again. (Where no asker is seen, the MTA asks the
        // resolver through a local API: nothing is dropped, and these routes are the
        // only ones it has: `askers.rs`.)
        let dropped_at_askers = d.resolver
            && block
            && self.askers.seen(std::time::Instant::now())
            && self.blocks.enforcing();
        let settings = &self.settings;
        let judged = Judged {
            verdict: if dropped_at_askers {
                Verdict::Blocked
            } else {
                d.verdict
            },
            resolver: d.resolver,
        };
        let now = std::time::Instant::now();
        let (engine, learning) = (&self.engine, &self.learning);
        let is_lookalike = |d: &str| lookalike(engine, learning, d).is_some();
        let routes = self.routes.learn(
            msg,
            &learned,
            |ttl| settings.expiry(ttl),
            judged,
            now,
            &is_lookalike,
        );
        self.routes.report(&self.sink.metrics);
        // Only an answer the asker received can have taught it an address.
        let delivered = d.verdict != Verdict::Blocked && !d.resolver;
        self.block_addresses(&routes, delivered, d.ts_ns);
        self.track(msg, &learned, &routes);
    }

    /// An answer the kernel dropped (or held) at its asker: its question judged (in case
    /// its query's record was lost), and reported.
    fn on_dropped(&mut self, msg: &Message, d: &DnsIn, finding: Option<&Finding>) {
        if !d.resolver && msg.qtype == QType::Mx {
            // Its question judged here too: a query record lost to a full ring (or
            // never sent, as the answer's owner may arrange) left the kernel holding
            // the answer for a verdict nobody wrote, and the retry after the hold
            // unheld, racing the block.
            self.judge_question(msg, d, finding);
        }
        let blocked_name = finding.is_some_and(|f| f.action == Action::Block);
        if !blocked_name && msg.qtype == QType::Mx {
            // Held for a verdict the agent had not given yet: the retry meets it.
            AnswerHeld.emit(&mut self.sink);
        } else {
            AnswerDropped {
                lookalike: finding.map(|f| self.detection(&msg.qname, f)),
                socket: self.who.socket(d.cgroup_id),
            }
            .emit(&mut self.sink);
        }
    }

    /// Blocks the addresses a delivered answer gave for a `block` lookalike, unless a
    /// legitimate name shares them; lifts blocks on addresses a legitimate answer gave.
    fn block_addresses(&mut self, routes: &[Learnt], delivered: bool, ts_ns: u64) {
        let now = std::time::Instant::now();
        for l in routes {
            match block_finding(&self.engine, &self.learning, &l.route) {
                None => {
                    if let Some(block) = self.blocks.lift_addr(l.ip) {
                        self.shared(l.ip, block, Some(l.route.recipient_domain.clone()));
                    }
                }
                // An MX answer enforce dropped, or one only a local resolver's upstream
                // socket saw, never told the asker this host.
                Some(f) if delivered && l.delivered && l.answer != Verdict::Blocked => {
                    if self.direct.contains(l.ip, now) {
                        AddressShared {
                            address: l.ip,
                            lookalikes: vec![l.route.recipient_domain.clone()],
                            legitimate: None,
                            lifted: false,
                        }
                        .emit(&mut self.sink);
                        continue;
                    }
                    let others = self.routes.get(&l.ip, now);
                    let legit = others
                        .iter()
                        .find(|a| block_finding(&self.engine, &self.learning, &a.route).is_none());
                    if let Some(legit) = legit {
                        let legit = legit.route.recipient_domain.clone();
                        AddressShared {
                            address: l.ip,
                            lookalikes: vec![l.route.recipient_domain.clone()],
                            legitimate: Some(legit),
                            lifted: false,
                        }
                        .emit(&mut self.sink);
                        continue;
                    }
                    let expires = self.settings.expiry_ns(self.ttl_of(l));
                    let target = target_id(f.target.as_bytes());
                    let domain = &l.route.recipient_domain;
                    let added = self.blocks.put_addr(l.ip, domain, target, expires);
                    if added && ts_ns != 0 {
                        self.sink
                            .metrics
                            .map_update_latency
                            .with_label_values(&["blocked_addrs"])
                            .observe(since_kernel(ts_ns));
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// The TTL (seconds) of a learned route's answer, from its expiry.
    fn ttl_of(&self, l: &Learnt) -> u32 {
        let left = l
            .expires
            .saturating_duration_since(std::time::Instant::now());
        left.as_secs().try_into().unwrap_or(u32::MAX)
    }

    /// An address block lifted (or never put) because a legitimate name resolves there.
    pub(super) fn shared(
        &mut self,
        ip: IpAddr,
        block: super::addrs::AddrBlock,
        legit: Option<String>,
    ) {
        AddressShared {
            address: ip,
            lookalikes: block.domains,
            legitimate: legit,
            lifted: true,
        }
        .emit(&mut self.sink);
    }

    /// Lookalike bookkeeping: remember the unresolved, report one going live.
    fn track(&mut self, msg: &Message, learned: &Learned, routes: &[Learnt]) {
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
    }
}

fn went_live(domain: &str, f: &crate::detect::Finding, since: u64, learned: &Learned) -> WentLive {
    WentLive {
        lookalike: Lookalike::new(domain, f),
        since,
        addresses: listed(
            learned
                .addrs
                .iter()
                .map(|(ip, _)| ip.to_string())
                .chain(learned.glue.iter().map(|(_, ip, _)| ip.to_string())),
        ),
        mx: listed(learned.mx.iter().map(|(m, _)| m.clone())),
    }
}
