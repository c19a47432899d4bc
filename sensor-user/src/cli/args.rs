//! clap definitions for every command.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    detect::Action,
    kernel::{
        DEFAULT_PIN_DIR,
        maps::{Cidr, Mode},
    },
    output::agentlog::LogFormat,
};

/// mxsentry: stop mail leaving for a lookalike of the domain it was meant for.
#[derive(Parser, Debug)]
#[command(name = "mxsentry", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// The agent's own log on stderr: text, or JSON lines (also MXSENTRY_LOG_FORMAT).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load and attach the kernel programs and print every event as a JSON line.
    Run(RunArgs),
    /// Change the verdict maps of a running (or kept-attached) sensor.
    Ctl(CtlArgs),
    /// Classify domains: protected, allowed, clean, typosquat (and why) or invalid.
    Check(CheckArgs),
    /// Run the pipeline over a packet capture (no privileges) and print its events.
    Replay(ReplayArgs),
    /// The correspondents ledger: list it, seed it from an MTA log, export it.
    Correspondents(CorrespondentsArgs),
}

/// Options of `mxsentry correspondents`.
#[derive(clap::Args, Debug)]
pub struct CorrespondentsArgs {
    /// TOML config whose `[agent] state_dir` and `[learn]` to use (default: the default
    /// config when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Overrides `agent.state_dir`.
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<CorrespondentsAction>,
    /// List as one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `mxsentry correspondents` can do.
#[derive(Subcommand, Debug)]
pub enum CorrespondentsAction {
    /// List the ledger (with what waits to be merged), most established first.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Seed the ledger from Postfix or Exim delivery logs (plain or gzip, rotated files
    /// included) or from another node's export; read from stdin when no file is given.
    /// The running agent merges the result within a second; a stopped one at its start.
    Import {
        /// Log files or exports.
        files: Vec<PathBuf>,
    },
    /// Write the ledger as JSON (for seeding other nodes).
    Export {
        /// File to write; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Options of `mxsentry check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// TOML config whose [policy] section to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Protect a domain or public suffix; `ENTRY=block` gives it its own action.
    #[arg(long, value_name = "ENTRY[=alert|block]")]
    pub protect: Vec<String>,
    /// Never report this name or anything under it.
    #[arg(long, value_name = "ENTRY")]
    pub allow: Vec<String>,
    /// Do not allow the built-in list of major mail providers.
    #[arg(long)]
    pub no_builtin_allow: bool,
    /// Action for protected entries that name none.
    #[arg(long, value_enum)]
    pub default_action: Option<Action>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also protect the established correspondents of this ledger (the agent's
    /// correspondents.json, or `mxsentry correspondents export`), as the agent would with
    /// the config's [learn] settings; their findings say `source: learned`.
    #[arg(long, value_name = "FILE")]
    pub correspondents: Option<PathBuf>,
    /// Names to classify; read one per line from stdin when none are given.
    pub names: Vec<String>,
}

/// Options of `mxsentry run`. Command-line values win over the config file, also
/// across reloads.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// TOML config (default /etc/mxsentry/mxsentry.toml; without it, nothing is protected).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Validate the config and exit.
    #[arg(long)]
    pub check_config: bool,
    /// bpffs directory for pinned maps and links.
    #[arg(long)]
    pub pin_dir: Option<PathBuf>,
    /// cgroup v2 directory to attach to (default: the cgroup v2 root).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Global mode: monitor reports, enforce refuses.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Destination ports that count as SMTP.
    #[arg(long, value_delimiter = ',')]
    pub smtp_ports: Option<Vec<u16>>,
    /// Address of the metrics endpoint (default 0.0.0.0:9464).
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Directory for state kept across restarts.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Leave programs attached and maps pinned on exit (for upgrades).
    #[arg(long)]
    pub keep_attached: bool,
    /// Also log every kernel record (SMTP connects, DNS packets) as a JSON line.
    #[arg(long)]
    pub raw_events: bool,
    /// Have the connect programs name the caller through helper calls instead of
    /// reading task_struct by the kernel's BTF (slower; for kernels where that is wrong).
    #[arg(long)]
    pub no_task_btf: bool,
}

/// Options of `mxsentry replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A pcap or pcapng capture.
    pub pcap: PathBuf,
    /// TOML config whose policy to apply.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Protect a domain or public suffix (added to the config's).
    #[arg(long, value_name = "ENTRY[=alert|block]")]
    pub protect: Vec<String>,
    /// Simulate this mode (default: the config's).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
}

/// Options of `mxsentry ctl`.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// bpffs directory of the running sensor's pins.
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// The change to make.
    #[command(subcommand)]
    pub action: CtlAction,
}

/// Changes `mxsentry ctl` can make.
#[derive(Subcommand, Debug)]
pub enum CtlAction {
    /// Switch the global mode live.
    Mode {
        /// monitor or enforce.
        #[arg(value_enum)]
        mode: Mode,
    },
    /// Block SMTP connects to an address or range (CIDR).
    BlockAddr {
        /// Address or range, e.g. 192.0.2.0/24 or 2001:db8::1.
        cidr: Cidr,
        /// Enforce this entry even in monitor mode.
        #[arg(long)]
        enforce: bool,
        /// Lift it by itself after this many seconds (kept in the kernel: it lapses even
        /// with no agent running); without it, it stays until removed.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
    /// Remove an address block.
    UnblockAddr {
        /// Exactly as it was blocked.
        cidr: Cidr,
    },
    /// Drop DNS answers whose question is this name (in enforce mode).
    BlockName {
        /// Domain name, any case.
        name: String,
        /// Enforce this entry even in monitor mode.
        #[arg(long)]
        enforce: bool,
        /// Lift it by itself after this many seconds; without it, it stays until removed.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
    /// Remove a name block.
    UnblockName {
        /// Domain name.
        name: String,
    },
    /// Print the mode and the kernel's event-loss counters as JSON.
    Status,
    /// Print every block entry in the kernel (names as hashes) as JSON lines: its kind,
    /// origin (learned, policy or operator), flags, target and seconds left.
    Blocks,
    /// Detach the programs and remove every pin, map and the lock; a running agent that
    /// owns the pins is asked to, and does when it stops.
    Detach,
}
