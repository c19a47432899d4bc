//! Command-line interface: argument definitions and one module per command.

pub mod args;
pub mod check;
pub mod correspondents;
pub mod ctl;
pub mod replay;
pub mod run;

pub use args::{Cli, Command};
