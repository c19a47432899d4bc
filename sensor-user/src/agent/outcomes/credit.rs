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

/// A lookalike of a `block` entry became an established correspondent with a delivery
/// (monitor mode, a lost race): from now on reported at info and never blocked. A real
/// partner that resembles a protected name (`hpe.com` beside `hp.com`) is why old friends
/// exist; whoever owns a lookalike can also have this host bounce to it for days, so it
/// is said loudly, for a person to confirm (`also`) or refuse (take it out of the
/// ledger's file with the agent stopped).
pub struct LookalikeEstablished<'a> {
    /// The lookalike, now an established correspondent.
    pub lookalike: &'a str,
    /// The `block` entry it resembles.
    pub target: &'a str,
}

impl Outcome for LookalikeEstablished<'_> {
    fn emit(self, sink: &mut Sink) {
        sink.metrics.lookalikes_established.inc();
        log::warn!(
            "{} became an established correspondent of this host although it looks like {} \
             (action block): it is no longer blocked; confirm it (also), or take it out of \
             correspondents.json with the agent stopped",
            self.lookalike,
            self.target
        );
    }
}
