//! The agent: the decision pipeline, the runtime that feeds it kernel events, and the
//! state around it (blocks, unresolved lookalikes, local resolvers).

pub mod alloc;
pub mod enforcer;
pub mod outcomes;
pub mod pcap;
pub mod pending;
pub mod pin_watch;
pub mod pipeline;
pub mod reload;
pub mod resolver_watch;
pub mod rings;
pub mod runtime;
pub mod sink;
pub mod startup;

pub use pipeline::{ConnectIn, DnsIn, Pipeline};
pub use sink::Sink;
