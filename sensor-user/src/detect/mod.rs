//! The typosquat engine: pure code (no I/O, no async) that says whether a domain is
//! protected, allowed, clean, a lookalike of a protected entry (and by which rule), or
//! not a domain at all.

pub mod align;
pub mod candidates;
pub mod classification;
pub mod defaults;
pub mod edit;
pub mod engine;
pub mod fold;
pub mod index;
pub mod keyboard;
pub mod keys;
pub mod memo;
pub mod name;
pub mod policy;
pub mod registry;
pub mod rule;
pub mod score;
pub mod unreadable;

pub use classification::{Classification, Finding, Report};
pub use engine::Engine;
pub use memo::Memo;
pub use name::{InvalidName, Name};
pub use policy::{Action, Policy, PolicyError, ProtectEntry};
pub use registry::{Registry, RegistryKind};
pub use rule::Rule;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verdict_tests;
