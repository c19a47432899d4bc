//! `cargo xtask`: set-up, tests and running the sensor from a fresh machine.

mod bench;
mod cmd;
mod demo;
mod deploy;
mod fuzz;
mod image;
mod quality;
mod run;
mod setup;
mod structure;
mod test;
mod venv;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "mxsentry developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent).
    Setup,
    /// Check deploy/ and dashboards/ with kubectl, kubernetes-validate, checkov, promtool,
    /// amtool and systemd-analyze.
    Deploy,
    /// Only the toolchain pieces (nightly rust-src, bpf-linker): for image builds.
    Toolchain,
    /// Build the agent's image offline (static binary, FROM scratch, podman or buildah),
    /// with OCI labels and an SBOM, and pin its digest in the kustomize image component.
    Image {
        /// The kustomize Component directory to write the digest into.
        #[arg(long, default_value = "deploy/kubernetes/image")]
        component: std::path::PathBuf,
    },
    /// Set up, then fmt check, clippy, unit tests and the privileged tests.
    Test,
    /// File and function lengths, and import cycles between the agent's modules.
    Structure,
    /// The kernel-sensor, agent-pipeline and DNS-capture tests on Debian 12's kernel under QEMU (as
    /// root; after a release build of the agent).
    Vm,
    /// Recall on a dnstwist corpus and false positives on real domains, against targets.
    Quality {
        /// Rewrite docs/quality.md with the results.
        #[arg(long)]
        write: bool,
    },
    /// The narrated Postfix scenario: monitor, then enforce (as root).
    Demo,
    /// Run every benchmark and rewrite docs/benchmarks.md (as root).
    Bench,
    /// Fuzz the DNS parser path (cargo-fuzz, nightly) for a while.
    Fuzz {
        /// How long, in seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// Set up, build and run the sensor; extra arguments go to `mxsentry run`.
    Run {
        /// Arguments for `mxsentry run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::setup(),
        Task::Toolchain => setup::toolchain(),
        Task::Deploy => deploy::check(),
        Task::Image { component } => image::image(&cmd::root().join(component)).map(drop),
        Task::Test => test::test(),
        Task::Structure => structure::check(),
        Task::Vm => vm::vm_tests(),
        Task::Quality { write } => quality::quality(write),
        Task::Fuzz { seconds } => fuzz::fuzz(seconds),
        Task::Bench => bench::bench(),
        Task::Demo => demo::demo(),
        Task::Run { args } => run::run(&args),
    }
}
