//! Direct push of detections to Alertmanager, so an alert fires without waiting for a scrape.

pub mod alertmanager;
pub mod names;
pub mod push;

pub use alertmanager::{Alertmanager, PushError};
pub use names::AlertName;
pub use push::{Alert, Pusher};
