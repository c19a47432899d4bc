//! The agent: the decision pipeline and everything around it (event log, metrics
//! endpoint, unresolved-lookalike memory, the runtime loop).

pub mod alloc;
pub mod clock;
pub mod enforcer;
pub mod eventlog;
pub mod events;
pub mod http;
pub mod metrics;
pub mod pending;
pub mod pipeline;
pub mod replay;
pub mod resolvers;
pub mod runtime;

pub use pipeline::{ConnectIn, DnsIn, Outputs, Pipeline};

#[cfg(test)]
mod tests;
