//! Two network namespaces joined by a veth pair, and a cgroup for the client.
//!
//! `cli` (10.77.0.1, fd77::1) is the mail host side; `srv` holds the peers at
//! 10.77.0.2/.3/.5 and fd77::2/::3/::5. Names carry the test process id so
//! parallel runs on one machine do not collide.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Context as _;

use crate::sh;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Namespaces, veth pair and test cgroup; removed on drop.
pub struct Topology {
    /// Client namespace name.
    pub cli: String,
    /// Server namespace name.
    pub srv: String,
    /// The test cgroup (cgroup v2) the client runs in.
    pub cgroup: PathBuf,
    children: Vec<Child>,
}

/// Addresses of the server side.
pub const SRV4: [&str; 4] = ["10.77.0.2", "10.77.0.3", "10.77.0.5", "10.77.0.6"];
/// IPv6 addresses of the server side.
pub const SRV6: [&str; 3] = ["fd77::2", "fd77::3", "fd77::5"];

impl Topology {
    /// Builds the namespaces, addresses and the cgroup.
    pub fn new() -> anyhow::Result<Self> {
        let id = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let cli = format!("mxt-c-{id}");
        let srv = format!("mxt-s-{id}");
        let cgroup = mxsentry::kernel::cgroup::cgroup2_mount()?.join(format!("mxt-{id}"));
        std::fs::create_dir_all(&cgroup).with_context(|| format!("mkdir {}", cgroup.display()))?;
        let t = Self {
            cli,
            srv,
            cgroup,
            children: Vec::new(),
        };
        sh("ip", &["netns", "add", &t.cli])?;
        sh("ip", &["netns", "add", &t.srv])?;
        let (vc, vs) = (format!("vc{}", &id), format!("vs{}", &id));
        // Interface names are limited to 15 bytes.
        let (vc, vs) = (
            vc.chars().take(15).collect::<String>(),
            vs.chars().take(15).collect::<String>(),
        );
        sh(
            "ip",
            &[
                "link", "add", &vc, "netns", &t.cli, "type", "veth", "peer", "name", &vs, "netns",
                &t.srv,
            ],
        )?;
        for (ns, dev) in [(&t.cli, &vc), (&t.srv, &vs)] {
            t.ns_sh(ns, &["ip", "link", "set", "lo", "up"])?;
            t.ns_sh(ns, &["ip", "link", "set", dev, "up"])?;
        }
        t.ns_sh(&t.cli, &["ip", "addr", "add", "10.77.0.1/24", "dev", &vc])?;
        t.ns_sh(
            &t.cli,
            &["ip", "-6", "addr", "add", "fd77::1/64", "dev", &vc, "nodad"],
        )?;
        for a in SRV4 {
            t.ns_sh(
                &t.srv,
                &["ip", "addr", "add", &format!("{a}/24"), "dev", &vs],
            )?;
        }
        for a in SRV6 {
            t.ns_sh(
                &t.srv,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/64"),
                    "dev",
                    &vs,
                    "nodad",
                ],
            )?;
        }
        Ok(t)
    }

    fn ns_sh(&self, ns: &str, cmd: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        sh("ip", &args)
    }

    /// The `mxprobe` binary built with these tests.
    pub fn probe_bin() -> String {
        // Tests run from target/debug/deps, the bench binary from target/debug.
        let exe = std::env::current_exe().ok();
        let dirs = exe.iter().flat_map(|p| p.ancestors().skip(1).take(2));
        dirs.map(|d| d.join("mxprobe"))
            .find(|p| p.exists())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "mxprobe".into())
    }

    /// Starts a long-running `mxprobe` in the server namespace and waits for "ready".
    pub fn serve(&mut self, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.srv.clone();
        self.serve_in(&ns, args)
    }

    /// Starts a long-running `mxprobe` in the client namespace (outside the test cgroup)
    /// and waits for "ready".
    pub fn serve_in_client(&mut self, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.cli.clone();
        self.serve_in(&ns, args)
    }

    fn serve_in(&mut self, ns: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, &Self::probe_bin()])
            .args(args);
        let (child, _) = Self::start_ready(cmd)?;
        self.children.push(child);
        Ok(())
    }

    /// Spawns `cmd` and waits for its "ready" line; returns it and its stdout.
    fn start_ready(mut cmd: Command) -> anyhow::Result<(Child, std::process::ChildStdout)> {
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let mut out = child.stdout.take().context("stdout")?;
        let mut buf = [0u8; 6];
        use std::io::Read as _;
        out.read_exact(&mut buf).context("server did not start")?;
        anyhow::ensure!(
            &buf == b"ready\n",
            "server said {:?}",
            String::from_utf8_lossy(&buf)
        );
        Ok((child, out))
    }

    /// Starts a long-running `mxprobe` in the client namespace *and* the test cgroup (a
    /// daemon of the mail host, such as a local resolver), waits for "ready", and returns
    /// its pid and its further output lines.
    pub fn serve_in_cgroup(
        &mut self,
        args: &[&str],
    ) -> anyhow::Result<(u32, std::sync::mpsc::Receiver<String>)> {
        // `ip netns exec` execs in place, so the child's pid is the server's.
        let mut cmd = self.in_cgroup(&Self::probe_bin());
        cmd.args(args);
        let (child, out) = Self::start_ready(cmd)?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.children.push(child);
        Ok((pid, rx))
    }

    /// How many mxsentry programs (`mx_*`) are attached to the test cgroup, as bpftool
    /// lists them.
    pub fn mxsentry_programs(&self) -> usize {
        sh(
            "bpftool",
            &["cgroup", "show", &self.cgroup.display().to_string()],
        )
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" mx_"))
        .count()
    }

    /// Stops every server started with [`Topology::serve`].
    pub fn stop_servers(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A topology with the test DNS responder on the first server address of each family.
    pub fn with_dns() -> anyhow::Result<Self> {
        let mut t = Self::new()?;
        t.serve(&["serve-dns", &format!("{}:53", SRV4[0])])?;
        t.serve(&["serve-dns", &format!("[{}]:53", SRV6[0])])?;
        Ok(t)
    }

    /// A command that runs `program` in the client namespace and the test cgroup; its
    /// arguments are the command's further arguments.
    fn in_cgroup(&self, program: &str) -> Command {
        self.in_cgroup_at(&self.cgroup, program)
    }

    /// [`Topology::in_cgroup`] for another cgroup (a benchmark's bare sibling).
    fn in_cgroup_at(&self, cgroup: &std::path::Path, program: &str) -> Command {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec ip netns exec {} \"$@\"",
            cgroup.display(),
            self.cli
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script.as_str(), "sh", program]);
        cmd
    }

    /// A command running `mxprobe` with `args` as a client (in the client namespace and the
    /// test cgroup), for running it on another thread.
    pub fn client_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.in_cgroup(&Self::probe_bin());
        cmd.args(args);
        cmd
    }

    /// Runs `mxprobe` as a client: in the client namespace and in the test cgroup.
    pub fn client(&self, args: &[&str]) -> anyhow::Result<String> {
        let bin = Self::probe_bin();
        self.exec(&bin, args)
    }

    /// Runs `program` in the client namespace and the test cgroup, as a mail host's
    /// processes run; returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        self.exec_with_input(program, args, None)
    }

    /// [`Topology::exec`] with `input` on stdin.
    pub fn exec_with_input(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> anyhow::Result<String> {
        Self::run(self.in_cgroup(program), program, args, input)
    }

    /// [`Topology::exec`] in `cgroup` instead of the test cgroup.
    pub fn exec_in(
        &self,
        cgroup: &std::path::Path,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<String> {
        Self::run(self.in_cgroup_at(cgroup, program), program, args, None)
    }

    /// Runs `cmd` (which runs `program`) with `args` and `input`; its trimmed stdout.
    fn run(
        mut cmd: Command,
        program: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts a long-running program in the client namespace and the test cgroup (a daemon
    /// of the mail host), not waiting for anything.
    pub fn spawn_in_cgroup(&mut self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let cmd = self.in_cgroup(program);
        self.spawn(cmd, args)
    }

    /// Starts a long-running program in the server namespace, not waiting for anything.
    pub fn spawn_server(&mut self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.srv, program]);
        self.spawn(cmd, args)
    }

    /// Spawns `cmd` with `args` as a daemon stopped with the topology.
    fn spawn(&mut self, mut cmd: Command, args: &[&str]) -> anyhow::Result<()> {
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            // Their complaints belong in the test's output.
            .stderr(Stdio::inherit())
            .spawn()?;
        self.children.push(child);
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.cli, &self.srv] {
            let _ = sh("ip", &["netns", "del", ns]);
        }
        // The cgroup is empty once its clients have exited.
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}
