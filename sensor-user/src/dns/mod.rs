//! DNS messages as the agent understands them: parsing captures and learning from answers.

pub mod domain;
pub mod learn;
pub mod parse;
pub mod wire;

pub use domain::{registrable, registrable_of};
pub use learn::{Learned, learn};
pub use parse::{Answer, Cut, Data, Message, ParseError, QType, parse};
