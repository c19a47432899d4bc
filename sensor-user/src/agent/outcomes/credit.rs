//! Outcomes of the correspondents ledger's credit: deliveries not credited, and why.

use std::net::IpAddr;

use super::Outcome;
use crate::agent::sink::Sink;

/// A delivery to a shared host not credited to the lookalike whose answer was freshest,
/// because a legitimate recipient of that host was asked for close to it (`credit.rs`):
/// whoever writes a lookalike's DNS must not make it an established correspondent with
/// other domains' deliveries.
pub struct CreditWithheld<'a> {
    /// The lookalike that would have had the credit.
    pub lookalike: &'a str,
    /// The legitimate recipient asked for closest to it.
    pub legitimate: &'a str,
    /// The address connected to.
    pub address: IpAddr,
}

impl Outcome for CreditWithheld<'_> {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.credits_withheld.inc();
        log::info!(
            "delivery to {} not credited to lookalike {} in the correspondents ledger: {} \
             shares the host and was asked for close to it",
            self.address,
            self.lookalike,
            self.legitimate
        );
    }
}

/// A delivery to a lookalike of a `block` entry that went through (monitor mode, a lost
/// race): not credited in the correspondents ledger (`pipeline/connect.rs`).
pub struct LookalikeCreditRefused<'a> {
    /// The lookalike delivered to.
    pub lookalike: &'a str,
    /// The address connected to.
    pub address: IpAddr,
}

impl Outcome for LookalikeCreditRefused<'_> {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.lookalike_credits_refused.inc();
        log::info!(
            "delivery to {} not credited to {} in the correspondents ledger: a lookalike of a \
             block entry, which enforce mode refuses",
            self.address,
            self.lookalike
        );
    }
}
