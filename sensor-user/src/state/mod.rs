//! State shared by the agent's parts: bounded in-memory maps, and crash-safe files.

pub mod lru;
pub mod persist;
