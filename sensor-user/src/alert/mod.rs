//! Direct push of detections to Alertmanager, so an alert fires without waiting for a scrape.

pub mod endpoint;
pub mod push;

pub use endpoint::{Endpoint, PushError};
pub use push::{Alert, Pusher};
