//! Configuration errors: each names the file, and the key and line where it can.

use std::path::PathBuf;

use crate::detect::PolicyError;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad TOML, an unknown key or a bad value (the message carries line and column).
    #[error("config {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with the line, column and key.
        message: String,
    },
    /// The file sets nothing: empty, blank or only comments (a truncated write looks so).
    #[error(
        "config {}: the file is empty (no settings at all); refusing it, as it would drop \
         every protected entry (a config meant to protect nothing says so with \
         [policy] intentionally_empty = true)",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file, or a directory or link on the way to it, is writable by others.
    #[error("config {}: {reason}", path.display())]
    Insecure {
        /// The file as named.
        path: PathBuf,
        /// What is unsafe, and where.
        reason: super::secure::Unsafe,
    },
    /// Values that parse but make no sense, each with its line.
    #[error("config {}: {}", path.display(), errors.join("; "))]
    Values {
        /// The file.
        path: PathBuf,
        /// One message per value.
        errors: Vec<String>,
    },
    /// Well-formed, but the policy cannot be built.
    #[error("config {}: {source}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: PolicyError,
    },
}
