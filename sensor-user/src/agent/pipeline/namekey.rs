//! The installation's name-tag key (`sensor_common::tag`): drawn at random by the first
//! agent, kept in `AGENT_STATE` with the pins so the kernel and every later agent use the
//! same one, and never written anywhere else (whoever knows it can compute collisions).

use std::io::Read;

use sensor_common::maps::AGENT_NAME_KEY;

use super::{super::enforcer::Enforcer, ledger::BlockLedger};

/// Eight random bytes from the kernel, as a key (never 0, which means "none").
fn draw() -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b).max(1))
}

impl<E: Enforcer> BlockLedger<E> {
    /// Reads the key the pins hold, or draws and writes one. Without one, whole-name
    /// blocks are kept untagged: met by any name with the same hash, as before tags.
    pub fn ensure_name_key(&mut self) {
        let key = match self.enforcer.agent_slot(AGENT_NAME_KEY) {
            Ok(0) => match draw() {
                Ok(k) => match self.enforcer.set_agent_slot(AGENT_NAME_KEY, k) {
                    Ok(()) => k,
                    Err(e) => {
                        self.map_error("writing the name-tag key", e);
                        0
                    }
                },
                Err(e) => {
                    log::error!("drawing the name-tag key: {e}; name blocks stay untagged");
                    0
                }
            },
            Ok(k) => k,
            Err(e) => {
                self.map_error("reading the name-tag key", e);
                0
            }
        };
        self.name_key = key;
    }

    /// The key (0: none).
    pub fn name_key(&self) -> u64 {
        self.name_key
    }
}
