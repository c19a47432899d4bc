//! The TOML configuration file (`/etc/mxsentry/mxsentry.toml` by default).

mod agent;
mod error;
mod learning;
mod policy;
mod restart;
pub mod secure;
mod source;
mod spans;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use agent::{AgentSection, AlertmanagerSection, CacheSection, EventsSection, MetricsSection};
pub use error::ConfigError;
pub use learning::LearnSection;
pub use policy::{Domain, FullEntry, PolicySection, ProtectItem};
pub use restart::restart_only_changes;
use serde::Deserialize;
pub use source::{ConfigFile, ConfigSource, Loaded, Overrides};
use spans::Spans;

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
        let cfg = Self::parse_unchecked(text, origin)?;
        cfg.checked(text, origin).map(|(c, _)| c)
    }

    /// TOML and the shape of its values, not yet their sense (overrides come first).
    fn parse_unchecked(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let spans = Spans::new(text);
        if spans.is_empty() {
            return Err(ConfigError::Empty {
                path: origin.to_path_buf(),
            });
        }
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |key: &str, message: String| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: format!(
                "{}{message}",
                spans.at(
                    key.split('.').next().unwrap_or(""),
                    key.split('.').nth(1).unwrap_or("")
                )
            ),
        };
        if let Some(url) = &cfg.alertmanager.url
            && crate::alert::Alertmanager::parse(url).is_none()
        {
            return Err(invalid(
                "alertmanager.url",
                format!("alertmanager.url {url:?} must look like http://host:port"),
            ));
        }
        if !cfg.metrics.path.starts_with('/') {
            return Err(invalid(
                "metrics.path",
                format!("metrics.path {:?} must start with /", cfg.metrics.path),
            ));
        }
        Ok(cfg)
    }

    /// Checks the values make sense (errors name their line in `text`) and returns the
    /// conflicts worth a warning, each prefixed with the file.
    fn checked(self, text: &str, origin: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let spans = Spans::new(text);
        let errors = validate::errors(&self, &spans);
        if !errors.is_empty() {
            return Err(ConfigError::Values {
                path: origin.to_path_buf(),
                errors,
            });
        }
        let warnings = validate::warnings(&self, &spans)
            .into_iter()
            .map(|w| format!("config {}: {w}", origin.display()))
            .collect();
        Ok((self, warnings))
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
