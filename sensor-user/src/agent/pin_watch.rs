//! Keeping the pin directory true while the agent runs (every second): pins someone
//! removed are put back from the objects the agent holds, within a second and said in an
//! `pins_restored` event (enforcement never depended on them: the agent's descriptors
//! keep links and maps alive, but `ctl`, the next agent and `--keep-attached` need them);
//! a directory removed is made and locked again; and a detach request left by
//! `mxsentry ctl detach` is acknowledged and makes the agent detach everything when it
//! stops.

use super::{Pipeline, runtime::Exit};
use crate::{
    kernel::{
        KernelError, Sensor, VerdictMaps,
        pins::{detach_request, write_detach_request},
    },
    output::schema::Event,
};

/// Puts back missing pins and answers a detach request. An error means the pin
/// directory is another agent's now.
pub fn check(
    sensor: &mut Sensor,
    pipeline: &mut Pipeline<VerdictMaps>,
    exit: &mut Exit,
) -> Result<(), KernelError> {
    let restored = sensor.keep_pins()?;
    if !restored.is_empty() {
        log::warn!(
            "pins under {} were removed while running; put back: {}",
            sensor.pin_dir().display(),
            restored.join(", ")
        );
        pipeline.emit(Event::PinsRestored { restored });
    }
    if *exit == Exit::Detach {
        return Ok(());
    }
    if let Some(request) = detach_request(sensor.pin_dir()) {
        let ack = format!(
            "{} pid {}: detaching everything when it stops",
            crate::kernel::pins::ACKNOWLEDGED,
            std::process::id()
        );
        write_detach_request(sensor.pin_dir(), &ack)?;
        log::warn!("{request}: detaching everything when stopped");
        pipeline.emit(Event::DetachRequested { request });
        *exit = Exit::Detach;
    }
    Ok(())
}
