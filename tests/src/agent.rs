//! A running `mxsentry run`, its JSON lines collected on a thread.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The agent binary: `MXSENTRY_BIN`, else the workspace's release build (the agent as
/// shipped; enforcement races the DNS answer and a debug build loses that race).
pub fn agent_bin() -> anyhow::Result<PathBuf> {
    built(
        "MXSENTRY_BIN",
        "release/mxsentry",
        "build it with `cargo build --release -p sensor-user` (cargo xtask test does)",
    )
}

/// The binary named by `env`, else `target/<path>` of the workspace; `how` says how to
/// build it when missing.
pub fn built(env: &str, path: &str, how: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(path);
    if !p.exists() {
        bail!("{} missing: {how}", p.display());
    }
    Ok(p)
}

/// A pin directory private to one test.
pub fn test_pin_dir(tag: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/mxt-{}-{tag}", std::process::id()))
}

/// A running agent.
pub struct Agent {
    child: Option<Child>,
    lines: Receiver<Value>,
    /// Every line received so far.
    pub seen: Vec<Value>,
    /// Its pin directory.
    pub pin_dir: PathBuf,
    /// Its metrics endpoint.
    pub metrics_addr: std::net::SocketAddr,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A state directory private to one test (emptied first).
pub fn test_state_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mxt-state-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

impl Agent {
    /// Starts `mxsentry run` with `args` plus `--pin-dir`, a private metrics port and
    /// raw kernel records in the log, and waits for `agent_started`.
    pub fn start(pin_dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(&agent_bin()?, pin_dir, args, true)
    }

    /// [`Agent::start`] with another `mxsentry` (or a wrapper that execs one), such as the
    /// binary from the container image.
    pub fn start_as(program: &Path, pin_dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(program, pin_dir, args, true)
    }

    /// [`Agent::start`] without raw kernel records in the log (for benchmarks, where
    /// printing every packet would be most of the agent's work).
    pub fn start_quiet(pin_dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(&agent_bin()?, pin_dir, args, false)
    }

    /// [`Agent::start_as`] without raw kernel records in the log (under a flood of
    /// connects, where printing every one would be most of the agent's work).
    pub fn start_quiet_as(program: &Path, pin_dir: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(program, pin_dir, args, false)
    }

    /// [`Agent::start`] with `env` added to its environment.
    pub fn start_env(pin_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::spawn(&agent_bin()?, pin_dir, args, true, env)
    }

    fn start_with(
        program: &Path,
        pin_dir: &Path,
        args: &[&str],
        raw: bool,
    ) -> anyhow::Result<Self> {
        Self::spawn(program, pin_dir, args, raw, &[])
    }

    fn spawn(
        program: &Path,
        pin_dir: &Path,
        args: &[&str],
        raw: bool,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let metrics_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut child = Command::new(program)
            .arg("run")
            .arg("--pin-dir")
            .arg(pin_dir)
            .arg("--metrics-listen")
            .arg(metrics_addr.to_string())
            .args(raw.then_some("--raw-events"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawn mxsentry")?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("agent printed a non-JSON line ({e}): {line}"),
                }
            }
        });
        let mut a = Self {
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            pin_dir: pin_dir.to_path_buf(),
            metrics_addr,
        };
        a.wait_for(Duration::from_secs(20), |v| v["event"] == "agent_started")
            .context("agent did not start")?;
        Ok(a)
    }

    /// Waits until a line matching `pred` arrives, returning it.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Ok(v.clone());
        }
        // Under emulation (the VM tests) everything takes longer.
        let timeout = crate::patience(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "no matching line within {timeout:?}; saw {} lines",
                    self.seen.len()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("agent exited; saw {:?}", self.seen.last())
                }
            }
        }
    }

    /// Collects what arrives within `d`.
    pub fn collect_for(&mut self, d: Duration) {
        let deadline = Instant::now() + crate::patience(d);
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
    }

    /// Lines seen so far with `event == kind`.
    pub fn events(&self, kind: &str) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == kind).collect()
    }

    /// Sends SIGINT (or SIGTERM), waits for `agent_stopped` and the exit.
    pub fn stop(&mut self, signal: i32) -> anyhow::Result<Value> {
        let child = self.child.as_mut().context("already stopped")?;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let stopped = self.wait_for(Duration::from_secs(20), |v| v["event"] == "agent_stopped")?;
        let status = self.child.take().context("child")?.wait()?;
        anyhow::ensure!(status.success(), "agent exited with {status}");
        Ok(stopped)
    }

    /// Waits for the agent to exit by itself (up to `timeout`), returning how it ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().context("already stopped")?;
        loop {
            if let Some(s) = child.try_wait()? {
                self.child = None;
                self.collect_for(Duration::from_millis(100));
                return Ok(s);
            }
            anyhow::ensure!(Instant::now() < deadline, "still running after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Pauses or resumes the agent process (SIGSTOP / SIGCONT).
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: as in stop.
            unsafe { libc::kill(c.id() as i32, signal) };
        }
    }

    /// GETs `path` from the agent's HTTP endpoint: (status code, body).
    pub fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        crate::http::get(&self.metrics_addr.to_string(), path)
    }

    /// The value of one sample on `/metrics`, e.g. `mxsentry_blocked_total{kind="connect"}`.
    pub fn metric(&self, sample: &str) -> anyhow::Result<f64> {
        let (status, body) = self.http_get("/metrics")?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        metric_in(&body, sample).with_context(|| format!("no sample {sample} on /metrics"))
    }

    /// SMTP connects counted on `/metrics` for `family` and `port`, under either kernel
    /// verdict that lets a monitor-mode connect through (`allowed`, `would_block`): which
    /// one depends on whether the agent had put the address in the map by the connect.
    pub fn smtp_connects_let_through(&self, family: &str, port: u16) -> f64 {
        ["allowed", "would_block"]
            .iter()
            .map(|v| {
                self.metric(&format!(
                    r#"mxsentry_smtp_connects_total{{family="{family}",port="{port}",verdict="{v}"}}"#
                ))
                .unwrap_or(0.0)
            })
            .sum()
    }

    /// Runs `mxsentry ctl` against this agent's pins.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(agent_bin()?)
            .arg("ctl")
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Leave nothing attached or pinned behind, whatever the test did.
        if let Ok(bin) = agent_bin() {
            let _ = Command::new(bin)
                .arg("ctl")
                .arg("--pin-dir")
                .arg(&self.pin_dir)
                .arg("detach")
                .output();
        }
    }
}

/// Finds `sample` (name with its labels, in exposition order) in a metrics page.
pub fn metric_in(body: &str, sample: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Writes an agent config protecting army.mil with the block action, in `mode`, keeping
/// state under `state`; `extra` (more TOML sections) is appended.
pub fn write_config(path: &Path, state: &Path, mode: &str, extra: &str) -> anyhow::Result<()> {
    let text = format!(
        "[agent]\nmode = \"{mode}\"\nstate_dir = \"{}\"\n\n[policy]\nprotect = [{{ entry = \"army.mil\", action = \"block\" }}]\n{extra}",
        state.display()
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    // Group- or world-writable configs are refused (whatever the umask of the test run).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("chmod {}", path.display()))
}
