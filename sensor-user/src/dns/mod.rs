//! DNS messages as the agent understands them: parsing captures and learning from answers.

pub mod learn;
pub mod parse;

pub use learn::{Learned, learn};
pub use parse::{Answer, Cut, Data, Message, ParseError, QType, parse};
