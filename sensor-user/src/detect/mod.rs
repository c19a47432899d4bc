//! The typosquat engine: pure code (no I/O, no async) that says whether a domain is
//! protected, allowed, clean, a lookalike of a protected entry (and by which rule), or
//! not a domain at all.

pub mod candidates;
pub mod defaults;
pub mod edit;
pub mod engine;
pub mod fold;
pub mod index;
pub mod keyboard;
pub mod keys;
pub mod name;
pub mod policy;
pub mod rule;
pub mod verdict;

pub use engine::Engine;
pub use name::{InvalidName, Name};
pub use policy::{Action, Policy, PolicyError, ProtectEntry};
pub use rule::Rule;
pub use verdict::{Finding, Report, Verdict};

#[cfg(test)]
mod tests;
