//! clap definitions for every command.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::detect::Action;
use crate::kernel::{
    DEFAULT_PIN_DIR,
    maps::{Cidr, Mode},
};

/// mxsentry: stop mail leaving for a lookalike of the domain it was meant for.
#[derive(Parser, Debug)]
#[command(name = "mxsentry", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
    /// Names to classify; read one per line from stdin when none are given.
    pub names: Vec<String>,
}

/// Options of `mxsentry run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// bpffs directory for pinned maps and links.
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// cgroup v2 directory to attach to (default: the cgroup v2 root).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Global mode written to the kernel at start.
    #[arg(long, value_enum, default_value_t = Mode::Monitor)]
    pub mode: Mode,
    /// Destination ports that count as SMTP.
    #[arg(long, value_delimiter = ',', default_value = "25,465,587")]
    pub smtp_ports: Vec<u16>,
    /// Leave programs attached and maps pinned on exit (for upgrades).
    #[arg(long)]
    pub keep_attached: bool,
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
    },
    /// Remove a name block.
    UnblockName {
        /// Domain name.
        name: String,
    },
    /// Print the mode and the kernel's event-loss counters as JSON.
    Status,
    /// Detach kept-attached programs and remove every pin.
    Detach,
}
