//! A configuration reload: the new config applied whole, or refused whole with the
//! running one kept, and either way said as an event and a metric.

use super::Pipeline;
use crate::{
    config::{ConfigError, ConfigFile, ConfigSource},
    kernel::VerdictMaps,
    output::schema::{Event, ReloadResult, ReloadTrigger},
};

/// Applies `file` (as just read), or keeps the running config, and says which. Returns
/// the text that was read (applied or refused), so it is not tried again until it changes.
pub fn reload(
    p: &mut Pipeline<VerdictMaps>,
    source: &ConfigSource,
    file: Result<Option<ConfigFile>, ConfigError>,
    trigger: ReloadTrigger,
) -> Option<String> {
    let outcome = match &file {
        Ok(f) => source
            .load_from(f.as_ref())
            .map(|loaded| p.reload(loaded))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (result, error) = match outcome {
        Ok(()) => (ReloadResult::Ok, None),
        Err(e) => (ReloadResult::Error, Some(e)),
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
    let (protected, mode) = (p.protected(), p.mode().name());
    p.emit(Event::ConfigReloaded {
        result,
        trigger,
        error,
        protected,
        mode,
    });
    file.ok().flatten().map(|f| f.text)
}
