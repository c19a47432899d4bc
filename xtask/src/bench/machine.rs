//! The machine a benchmark ran on, for the report.

use std::process::Command;

use crate::cmd::output;

/// Date and a one-line description.
pub struct Machine {
    /// `YYYY-MM-DD HH:MM`.
    pub date: String,
    /// CPU, cores, memory, kernel.
    pub summary: String,
}

/// Reads /proc and uname.
pub fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0);
    let kernel = output(Command::new("uname").arg("-r")).unwrap_or_default();
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M"])).unwrap_or_default();
    Machine {
        date: date.trim().to_string(),
        summary: format!(
            "{model}, {cores} vCPUs, {:.0} GiB RAM, Linux {}",
            mem_kib as f64 / 1024.0 / 1024.0,
            kernel.trim()
        ),
    }
}
