//! The "not attached" side of a ratio.

use mxsentry_tests::Topology;

/// A cgroup beside the test cgroup with no programs attached: the "detached" side of
/// a ratio, measured while the agent keeps running (starting and stopping it between
/// phases disturbs the machine more than the programs do).
pub struct Bare(std::path::PathBuf);

impl Bare {
    /// Creates it next to `t.cgroup`.
    pub fn new(t: &Topology) -> anyhow::Result<Self> {
        Self::named(t, "bare")
    }

    /// A second one, for A/A controls: `t.cgroup` with extension `ext`.
    pub fn named(t: &Topology, ext: &str) -> anyhow::Result<Self> {
        let p = t.cgroup.with_extension(ext);
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// Runs mxprobe in the client namespace and this cgroup.
    pub fn probe(&self, t: &Topology, args: &[&str]) -> anyhow::Result<String> {
        self.run(t, &Topology::probe_bin(), args)
    }

    /// Runs `program` in the client namespace and this cgroup; returns its stdout.
    pub fn run(&self, t: &Topology, program: &str, args: &[&str]) -> anyhow::Result<String> {
        t.exec_in(&self.0, program, args)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}
