//! Configuration reloads: the new config applied whole, or refused whole with the running
//! one kept, and either way said as an event and a metric.
//!
//! Refused besides a config that does not parse: one that cannot be read or sits where
//! others can write (said once, not every second), and one that would drop every
//! protected entry without saying `[policy] intentionally_empty = true` (an emptied or
//! cut-short file mid-deploy). Keys that only a restart applies are named in the event.

use super::Pipeline;
use crate::{
    config::{Config, ConfigError, ConfigFile, ConfigSource, Loaded, restart_only_changes},
    kernel::VerdictMaps,
    output::schema::{Event, ReloadResult, ReloadTrigger},
};

/// Watches the config file and applies what changes.
pub struct Reloader {
    source: ConfigSource,
    /// The config the agent started with: restart-only keys are compared with it.
    started: Config,
    /// The text last applied or refused, so it is not tried again until it changes.
    seen: Option<String>,
    /// The read error last reported, so an unreadable file is said once.
    failing: Option<String>,
    /// The file was missing on the last tick (a ConfigMap swap takes a moment).
    missing: bool,
}

impl Reloader {
    /// Watches `source`, whose `file` was read at start into `started`.
    pub fn new(source: ConfigSource, started: Config, file: Option<&ConfigFile>) -> Self {
        Self {
            source,
            started,
            seen: file.map(|f| f.text.clone()),
            failing: None,
            missing: false,
        }
    }

    /// SIGHUP: read and apply now, changed or not.
    pub fn sighup(&mut self, p: &mut Pipeline<VerdictMaps>) {
        let file = self.source.read();
        self.apply(p, file, ReloadTrigger::Sighup);
    }

    /// Every second: apply the file if its contents changed; report it once when it
    /// cannot be read. A file missing for one tick (mid-swap) is not a change.
    pub fn tick(&mut self, p: &mut Pipeline<VerdictMaps>) {
        match self.source.read() {
            Ok(Some(f)) => {
                self.missing = false;
                if self.seen.as_ref() != Some(&f.text) || self.failing.is_some() {
                    self.apply(p, Ok(Some(f)), ReloadTrigger::File);
                }
            }
            Ok(None) => {}
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !self.missing =>
            {
                self.missing = true;
            }
            Err(e) => {
                if self.failing.as_deref() != Some(e.to_string().as_str()) {
                    self.apply(p, Err(e), ReloadTrigger::File);
                }
            }
        }
    }

    fn apply(
        &mut self,
        p: &mut Pipeline<VerdictMaps>,
        file: Result<Option<ConfigFile>, ConfigError>,
        trigger: ReloadTrigger,
    ) {
        let mut warnings = Vec::new();
        let mut restart_needed = Vec::new();
        let outcome = match &file {
            Ok(f) => self
                .source
                .load_from(f.as_ref())
                .map_err(|e| e.to_string())
                .and_then(|loaded| keeps_protection(p.protected(), loaded, f.as_ref()))
                .map(|loaded| {
                    restart_needed = restart_only_changes(&self.started, &loaded.config);
                    warnings = loaded.warnings.clone();
                    p.reload(loaded);
                }),
            Err(e) => Err(e.to_string()),
        };
        match &file {
            Ok(f) => {
                self.failing = None;
                self.seen = f.as_ref().map(|f| f.text.clone());
            }
            Err(e) => self.failing = Some(e.to_string()),
        }
        report(p, trigger, outcome.err(), warnings, restart_needed);
    }
}

/// Refuses a config that protects nothing when `running` entries are in force, unless it
/// says it means to.
fn keeps_protection(
    running: usize,
    loaded: Loaded,
    file: Option<&ConfigFile>,
) -> Result<Loaded, String> {
    if running > 0 && loaded.engine.targets() == 0 && !loaded.config.policy.intentionally_empty {
        let path = file.map_or("the config".into(), |f| f.path.display().to_string());
        return Err(format!(
            "{path} protects nothing, while {running} protected entries are in force: \
             refusing it (a cut-short or emptied file looks like this); a config meant to \
             protect nothing says [policy] intentionally_empty = true"
        ));
    }
    Ok(loaded)
}

/// The event and metric of one reload.
fn report(
    p: &mut Pipeline<VerdictMaps>,
    trigger: ReloadTrigger,
    error: Option<String>,
    warnings: Vec<String>,
    restart_needed: Vec<&'static str>,
) {
    let result = match error {
        None => ReloadResult::Ok,
        Some(_) => ReloadResult::Error,
    };
    p.metrics()
        .config_reloads
        .with_label_values(&[result.name()])
        .inc();
    if let Some(e) = &error {
        log::error!(
            "config reload ({}) refused, keeping the running policy: {e}",
            trigger.name()
        );
    }
    if !restart_needed.is_empty() {
        log::warn!(
            "config reload ({}): {} changed, which only a restart applies; the running values stay",
            trigger.name(),
            restart_needed.join(", ")
        );
    }
    let (protected, mode) = (p.protected(), p.mode().name());
    p.emit(Event::ConfigReloaded {
        result,
        trigger,
        error,
        protected,
        mode,
        restart_needed,
        warnings,
    });
}
