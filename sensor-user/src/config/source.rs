//! Where a configuration comes from, in one place for `run`, `replay` and `check`: a file
//! (explicit, or the default path when present), then the command line's values, which
//! win over the file's and keep winning across reloads. The engine is built here, once
//! per (re)load, which is also what checks the policy.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use super::{Config, ConfigError, DEFAULT_PATH, ProtectItem};
use crate::{
    detect::{Action, Engine, Policy},
    kernel::maps::Mode,
};

/// Command-line values that replace the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `agent.mode`.
    pub mode: Option<Mode>,
    /// `agent.smtp_ports`.
    pub smtp_ports: Option<Vec<u16>>,
    /// `agent.cgroup`.
    pub cgroup: Option<PathBuf>,
    /// `agent.pin_dir`.
    pub pin_dir: Option<PathBuf>,
    /// `metrics.listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `agent.state_dir`.
    pub state_dir: Option<PathBuf>,
    /// Entries added to `policy.protect`.
    pub protect: Vec<ProtectItem>,
    /// Names added to the allow list.
    pub allow: Vec<String>,
    /// `policy.builtin_allow`.
    pub builtin_allow: Option<bool>,
    /// `policy.default_action`.
    pub default_action: Option<Action>,
}

impl Overrides {
    fn apply(&self, c: &mut Config) {
        if let Some(m) = self.mode {
            c.agent.mode = m;
        }
        if let Some(p) = &self.smtp_ports {
            c.agent.smtp_ports = p.clone();
        }
        if let Some(p) = &self.cgroup {
            c.agent.cgroup = Some(p.clone());
        }
        if let Some(p) = &self.pin_dir {
            c.agent.pin_dir = p.clone();
        }
        if let Some(a) = self.metrics_listen {
            c.metrics.listen = a;
        }
        if let Some(d) = &self.state_dir {
            c.agent.state_dir = d.clone();
        }
        c.policy.protect.extend(self.protect.iter().cloned());
    }

    /// The policy-level values that have no place in the file's sections.
    fn apply_policy(&self, p: &mut Policy) {
        p.allow.extend(self.allow.iter().cloned());
        if let Some(b) = self.builtin_allow {
            p.builtin_allow = b;
        }
        if let Some(a) = self.default_action {
            p.default_action = a;
        }
    }
}

/// Where to read the configuration from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `--config`: must exist.
    pub explicit: Option<PathBuf>,
    /// Without `--config`, read `DEFAULT_PATH` when it exists (`run`, `replay`); `check`
    /// reads only what it is given.
    pub use_default: bool,
    /// The command line's values.
    pub overrides: Overrides,
}

/// A config file as read, kept so a reload can tell whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it was read.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// A configuration ready to apply: the settings, the policy, and its engine, built once.
pub struct Loaded {
    /// Every setting, overrides applied.
    pub config: Config,
    /// The policy the engine was built from.
    pub policy: Policy,
    /// The typosquat engine for it.
    pub engine: Engine,
    /// Conflicts in the file worth a word (duplicates, allow entries covering protected
    /// ones), each naming its line; already logged.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// Builds the engine for `config` (which also checks the policy); `origin` names the
    /// file in errors.
    pub fn new(config: Config, origin: &Path) -> Result<Self, ConfigError> {
        Self::with(config, origin, &Overrides::default())
    }

    fn with(config: Config, origin: &Path, o: &Overrides) -> Result<Self, ConfigError> {
        let policy_err = |source| ConfigError::Policy {
            path: origin.to_path_buf(),
            source,
        };
        let mut policy = config.policy.to_policy().map_err(policy_err)?;
        o.apply_policy(&mut policy);
        let engine = Engine::new(&policy).map_err(policy_err)?;
        Ok(Self {
            config,
            policy,
            engine,
            warnings: Vec::new(),
        })
    }

    /// Parses `text` (from `origin`) and builds its engine.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let (config, warnings) = Config::parse_unchecked(text, origin)?.checked(text, origin)?;
        Ok(Self {
            warnings,
            ..Self::new(config, origin)?
        })
    }
}

impl ConfigSource {
    /// The file to read, if any: an explicit path must exist, the default may not.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.explicit {
            Some(p) => Some(p.clone()),
            None if self.use_default && Path::new(DEFAULT_PATH).exists() => {
                Some(PathBuf::from(DEFAULT_PATH))
            }
            None => None,
        }
    }

    /// The config file and its text, if there is a file. Read once per (re)load, so the
    /// text that is applied is the text remembered as seen.
    pub fn read(&self) -> Result<Option<ConfigFile>, ConfigError> {
        let Some(path) = self.path() else {
            return Ok(None);
        };
        // Missing is told apart (a ConfigMap swap); then the path must be safe to obey.
        if let Err(source) = std::fs::metadata(&path) {
            return Err(ConfigError::Read { path, source });
        }
        if let Err(reason) = super::secure::check_file(&path) {
            return Err(ConfigError::Insecure { path, reason });
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(ConfigFile { path, text })),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// The configuration from `file` (defaults without one) with the overrides, and its
    /// engine.
    pub fn load_from(&self, file: Option<&ConfigFile>) -> Result<Loaded, ConfigError> {
        let (mut c, origin, text) = match file {
            Some(f) => (
                Config::parse_unchecked(&f.text, &f.path)?,
                f.path.as_path(),
                f.text.as_str(),
            ),
            None => (Config::default(), Path::new("built-in defaults"), ""),
        };
        self.overrides.apply(&mut c);
        let (c, warnings) = c.checked(text, origin)?;
        for w in &warnings {
            log::warn!("{w}");
        }
        Ok(Loaded {
            warnings,
            ..Loaded::with(c, origin, &self.overrides)?
        })
    }

    /// Reads the file (if any) and loads it.
    pub fn load(&self) -> Result<(Loaded, Option<ConfigFile>), ConfigError> {
        let file = self.read()?;
        Ok((self.load_from(file.as_ref())?, file))
    }
}
