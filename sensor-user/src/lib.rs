//! mxsentry: an eBPF sensor that stops mail leaving for a lookalike domain.
//!
//! `kernel` loads and drives the eBPF programs, `records` decodes what they send,
//! `dns` parses and learns from DNS messages, `detect` is the typosquat engine,
//! `attrib` names processes and containers, `agent` is the decision pipeline and its
//! runtime, `output` what the agent says (event log, metrics, their endpoint), `alert`
//! the Alertmanager push, `config` the TOML file and its sources, `cli` the commands
//! behind the thin `main.rs`.

pub mod agent;
pub mod alert;
pub mod attrib;
pub mod cli;
pub mod config;
pub mod correspondents;
pub mod detect;
pub mod dns;
pub mod kernel;
pub mod output;
pub mod records;
pub mod state;
