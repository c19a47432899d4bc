//! The `mxsentry` binary: parse arguments, dispatch, print one clear error line.

use clap::{Parser as _, ValueEnum as _};
use mxsentry::{
    agent::runtime,
    cli::{
        Cli, Command, check::check, correspondents::correspondents, ctl::ctl, replay::replay,
        run::run,
    },
    output::agentlog::{self, LogFormat},
};

fn main() -> std::process::ExitCode {
    // First, before any thread exists: a stop signal now waits for `run`'s handlers
    // instead of killing a half-started agent. The other commands take it back.
    runtime::defer_stop_signals();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        runtime::undefer_stop_signals();
    }
    let from_env = std::env::var("MXSENTRY_LOG_FORMAT")
        .ok()
        .and_then(|f| LogFormat::from_str(&f, true).ok());
    agentlog::init(cli.log_format.or(from_env).unwrap_or_default());
    let result = match cli.command {
        Command::Run(args) => {
            mxsentry::agent::alloc::return_large_allocations();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run(args)))
        }
        Command::Ctl(args) => ctl(args),
        Command::Check(args) => check(args),
        Command::Replay(args) => replay(args),
        Command::Correspondents(args) => correspondents(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mxsentry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
