//! Bounded in-memory state shared by the agent's parts.

pub mod lru;
