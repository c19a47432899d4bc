//! `mxsentry run`: command-line options into the agent runtime.

use super::args::RunArgs;
use crate::{
    agent::runtime::{RunOptions, run as run_agent},
    config::{ConfigSource, Overrides},
};

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let opts = RunOptions {
        source: ConfigSource {
            explicit: args.config,
            use_default: true,
            overrides: Overrides {
                mode: args.mode,
                smtp_ports: args.smtp_ports,
                cgroup: args.cgroup,
                pin_dir: args.pin_dir,
                metrics_listen: args.metrics_listen,
                state_dir: args.state_dir,
                ..Overrides::default()
            },
        },
        keep_attached: args.keep_attached,
        raw_events: args.raw_events,
        task_btf: !args.no_task_btf,
    };
    run_agent(opts, args.check_config).await
}
