//! `mxsentry replay`: a capture through the pipeline, without privileges.

use super::{args::ReplayArgs, check::protect_entry};
use crate::{
    agent::replay::replay as replay_capture,
    config::{Config, DEFAULT_PATH},
};

/// Replays the capture with the config (explicit, or the default when present).
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(p) => Config::load(p)?,
        None if std::path::Path::new(DEFAULT_PATH).exists() => {
            Config::load(std::path::Path::new(DEFAULT_PATH))?
        }
        None => Config::default(),
    };
    for p in &args.protect {
        config.policy.protect.push(protect_entry(p)?);
    }
    if let Some(m) = args.mode {
        config.agent.mode = m;
    }
    replay_capture(&args.pcap, &config)
}
