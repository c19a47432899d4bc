//! The TOML configuration file (`/etc/mxsentry/mxsentry.toml` by default).

mod error;
mod policy;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use error::ConfigError;
pub use policy::PolicySection;

/// Where the agent looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/mxsentry/mxsentry.toml";

/// The whole file. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to protect and allow.
    #[serde(default)]
    pub policy: PolicySection,
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.policy.to_policy().map_err(|e| ConfigError::Policy {
            path: origin.to_path_buf(),
            source: e,
        })?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: PathBuf::from(path),
            source,
        })?;
        Self::parse(&text, path)
    }
}
