//! The TOML configuration file (`/etc/mxsentry/mxsentry.toml` by default).

mod agent;
mod error;
mod learning;
mod policy;
mod source;

use std::path::{Path, PathBuf};

pub use agent::{AgentSection, AlertmanagerSection, CacheSection, EventsSection, MetricsSection};
pub use error::ConfigError;
pub use learning::LearnSection;
pub use policy::{Domain, FullEntry, PolicySection, ProtectItem};
use serde::Deserialize;
pub use source::{ConfigFile, ConfigSource, Loaded, Overrides};

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
    /// The correspondents ledger and learned protection.
    #[serde(default)]
    pub learn: LearnSection,
}

impl Config {
    /// Parses TOML text and checks every value that needs no engine; `origin` names the
    /// file in errors. The policy is checked when its engine is built ([`Loaded`]).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ConfigError::Parse {
            path: origin.to_path_buf(),
            message,
        };
        cfg.cache.validate().map_err(invalid)?;
        cfg.learn.validate().map_err(invalid)?;
        if let Some(url) = &cfg.alertmanager.url
            && crate::alert::Alertmanager::parse(url).is_none()
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

    /// Reads and parses a file, and builds its engine.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: PathBuf::from(path),
            source,
        })?;
        Loaded::parse(&text, path)
    }
}
