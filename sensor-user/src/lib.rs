//! mxsentry: an eBPF sensor that stops mail leaving for a lookalike domain.
//!
//! `kernel` loads and drives the eBPF programs, `events` decodes what they send,
//! `cli` holds the command implementations behind the thin `main.rs`.

pub mod cli;
pub mod config;
pub mod detect;
pub mod events;
pub mod kernel;
