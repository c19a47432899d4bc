//! Everything that touches the kernel: preflight checks, loading, pinning,
//! attaching and the verdict maps.

pub mod blockmaps;
pub mod bpf;
pub mod cgroup;
pub mod collector;
pub mod error;
pub mod layout;
pub mod loader;
pub mod lock;
pub mod maps;
pub mod migrate;
pub mod object;
pub mod pins;
pub mod port_builds;
pub mod preflight;
mod start;
pub mod task_layout;
pub mod upgrade;

pub use error::KernelError;
pub use loader::{CallerReads, Sensor, SensorOptions};
pub use maps::VerdictMaps;

/// Where maps and links are pinned unless configured otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/mxsentry";
