//! Harness for the privileged end-to-end tests: network namespaces, a test
//! cgroup, the test peer (`mxprobe`) and a running `mxsentry` agent.
//!
//! Every test builds its own namespaces and cgroup and removes them on drop.

pub mod agent;
pub mod checksum;
pub mod dnsclient;
pub mod flood;
pub mod hostile;
pub mod http;
pub mod mail;
pub mod pins;
pub mod privilege;
pub mod rawbpf;
pub mod rawsock;
pub mod synjection;
pub mod topology;
pub mod v6ext;

use std::process::Command;

pub use agent::Agent;
pub use privilege::{cannot_run, require_privileges};
pub use topology::Topology;

/// How much longer than on bare metal a timing-bound wait may take: `MXSENTRY_TIME_SCALE`
/// (the VM tests under emulation set it), else 1.
pub fn time_scale() -> f64 {
    std::env::var("MXSENTRY_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| *f >= 1.0)
        .unwrap_or(1.0)
}

/// `d` stretched by [`time_scale`].
pub fn patience(d: std::time::Duration) -> std::time::Duration {
    d.mul_f64(time_scale())
}

/// Runs a command to completion, failing with its stderr when it fails.
pub fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `name` in DNS wire format (the encoding the kernel and agent hash).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut buf = [0u8; sensor_common::qname::MAX_QNAME_WIRE];
    let n = sensor_common::qname::encode_name(name, &mut buf).unwrap_or(0);
    buf[..n].to_vec()
}
