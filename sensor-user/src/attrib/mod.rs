//! Attribution: naming the process, container and pod behind an event.

pub mod cgroups;
pub mod container;
pub mod process;
pub mod resolver_scan;

pub use cgroups::CgroupPaths;
pub use container::{Container, from_cgroup_path};
pub use process::{Place, Process, describe};
