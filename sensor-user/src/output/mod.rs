//! What the agent says to the outside world, shared by the pipeline, the runtime and the
//! alert push: the event schema and its JSON log, the Prometheus metrics and their HTTP
//! endpoint, and the clocks that stamp them. Depends on nothing else in the agent.

pub mod agentlog;
pub mod clock;
pub mod eventlog;
pub mod history;
pub mod http;
pub mod metrics;
pub mod schema;
pub mod sets;
pub mod text;

pub use eventlog::EventLog;
pub use metrics::Metrics;
pub use schema::{Event, Line, Severity};
