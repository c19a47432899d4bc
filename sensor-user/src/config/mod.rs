//! The TOML configuration file (`/etc/mxsentry/mxsentry.toml` by default).

mod agent;
mod error;
mod policy;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use agent::{AgentSection, AlertmanagerSection, CacheSection, EventsSection, MetricsSection};
pub use error::ConfigError;
pub use policy::{Domain, FullEntry, PolicySection, ProtectItem};

/// Where the agent looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/mxsentry/mxsentry.toml";

/// The whole file. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kernel-side settings.
    #[serde(default)]
    pub agent: AgentSection,
    /// What to protect and allow.
    #[serde(default)]
    pub policy: PolicySection,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// The event log.
    #[serde(default)]
    pub events: EventsSection,
    /// Direct alert push.
    #[serde(default)]
    pub alertmanager: AlertmanagerSection,
    /// Cache bounds and TTL clamps.
    #[serde(default)]
    pub cache: CacheSection,
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
        let invalid = |message: String| ConfigError::Parse {
            path: origin.to_path_buf(),
            message,
        };
        cfg.cache.validate().map_err(invalid)?;
        if let Some(url) = &cfg.alertmanager.url
            && crate::alert::Endpoint::parse(url).is_none()
        {
            return Err(invalid(format!(
                "alertmanager.url {url:?} must look like http://host:port"
            )));
        }
        if !cfg.metrics.path.starts_with('/') {
            return Err(invalid(format!(
                "metrics.path {:?} must start with /",
                cfg.metrics.path
            )));
        }
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
