//! `mxsentry replay`: a capture through the pipeline, without privileges.

use super::{args::ReplayArgs, check::protect_entry};
use crate::{
    agent::pcap::replay as replay_capture,
    config::{ConfigSource, Overrides},
};

/// Replays the capture with the config (explicit, or the default when present).
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let source = ConfigSource {
        explicit: args.config,
        use_default: true,
        overrides: Overrides {
            mode: args.mode,
            protect: args
                .protect
                .iter()
                .map(|p| protect_entry(p))
                .collect::<anyhow::Result<_>>()?,
            ..Overrides::default()
        },
    };
    let (loaded, _) = source.load()?;
    replay_capture(&args.pcap, loaded)
}
