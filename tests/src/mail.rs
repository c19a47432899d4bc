//! A real mail path between network namespaces: Unbound authoritative for the test zones
//! (server side), two `smtp-sink` receivers that keep what they receive (server side), and
//! a Postfix instance (client side, in the test cgroup) that resolves through Unbound and
//! delivers by MX. All three are Debian's packages; everything is removed on drop.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{Topology, sh, topology::SRV4};

/// The protected domain's MX host address.
pub const PROTECTED_MX: &str = SRV4[1];
/// The lookalike's MX host address.
pub const LOOKALIKE_MX: &str = SRV4[2];
/// The IPv6-only lookalike's MX host address.
pub const LOOKALIKE_MX6: &str = crate::topology::SRV6[2];

/// Zone data, short TTLs: army.mil (protected); army.ml (its lookalike, MX through a
/// CNAME); army.mi (a lookalike whose only MX host is IPv6); arrmy.mil (a lookalike with
/// 30 MX hosts, so its MX answer does not fit 512 bytes of UDP and the client retries
/// over TCP); contoso.com, fabrikam.com and adatum.com (partners, on the protected
/// side's receiver) and fabrikm.com (fabrikam.com's lookalike); every name under
/// other.org (anyone else's lookups).
fn zones() -> String {
    let mut z = format!(
        r#"  local-zone: "army.mil." static
  local-data: "army.mil. 5 IN MX 10 mx.army.mil."
  local-data: "mx.army.mil. 5 IN A {PROTECTED_MX}"
  local-zone: "army.ml." static
  local-data: "army.ml. 5 IN MX 10 mail.army.ml."
  local-data: "mail.army.ml. 5 IN CNAME mx.army.ml."
  local-data: "mx.army.ml. 5 IN A {LOOKALIKE_MX}"
  local-zone: "army.mi." static
  local-data: "army.mi. 5 IN MX 10 mx6.army.mi."
  local-data: "mx6.army.mi. 5 IN AAAA {LOOKALIKE_MX6}"
  local-zone: "arrmy.mil." static
  local-zone: "contoso.com." static
  local-data: "contoso.com. 5 IN MX 10 mx.contoso.com."
  local-data: "mx.contoso.com. 5 IN A {PROTECTED_MX}"
  local-zone: "fabrikam.com." static
  local-data: "fabrikam.com. 5 IN MX 10 mx.fabrikam.com."
  local-data: "mx.fabrikam.com. 5 IN A {PROTECTED_MX}"
  local-zone: "adatum.com." static
  local-data: "adatum.com. 5 IN MX 10 mx.adatum.com."
  local-data: "mx.adatum.com. 5 IN A {PROTECTED_MX}"
  local-zone: "fabrikm.com." static
  local-data: "fabrikm.com. 5 IN MX 10 mx.fabrikm.com."
  local-data: "mx.fabrikm.com. 5 IN A {LOOKALIKE_MX}"
  local-zone: "other.org." redirect
  local-data: "other.org. 5 IN A 10.77.0.9"
"#
    );
    for i in 0..30 {
        z.push_str(&format!(
            "  local-data: \"arrmy.mil. 5 IN MX 10 mx{i:02}.arrmy.mil.\"\n"
        ));
        z.push_str(&format!(
            "  local-data: \"mx{i:02}.arrmy.mil. 5 IN A {LOOKALIKE_MX}\"\n"
        ));
    }
    z
}

/// Where the local caching resolver listens, when the lab has one.
pub const LOCAL_RESOLVER: &str = "127.0.0.1:53";

/// `n` lookups of distinct names `l<i>.<run>.other.org` through the local resolver, one
/// after another (`mxprobe lookup-many`, 2 s timeout each): its JSON report (answered,
/// failed, timeouts, latency quantiles).
pub fn lookups(t: &Topology, run: &str, n: u32) -> anyhow::Result<Value> {
    let out = t.client(&[
        "lookup-many",
        LOCAL_RESOLVER,
        &format!("{run}.other.org"),
        &n.to_string(),
        "2000",
    ])?;
    Ok(serde_json::from_str(&out)?)
}

/// Variations of the mail path.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// A caching Unbound in the client namespace and test cgroup, forwarding to the
    /// server side's Unbound, as Postfix's only resolver (the common production shape).
    pub local_resolver: bool,
    /// `(domain, host, address)`: Postfix delivers `domain` to `host` and finds its
    /// address in /etc/hosts, not DNS — an MTA holding an address it resolved earlier.
    pub pinned_route: Option<(String, String, String)>,
    /// More zone data for the server side's Unbound (`local-zone:`/`local-data:` lines,
    /// see [`mx_zone`]).
    pub zones: String,
}

/// Unbound zone lines for `domain` with one MX host, `mx.<domain>` or `host` when given,
/// at `addr` (TTL `ttl` seconds).
pub fn mx_zone(domain: &str, host: Option<&str>, addr: &str, ttl: u32) -> String {
    let mx = host.map_or_else(|| format!("mx.{domain}"), str::to_string);
    let mut z = format!(
        "  local-zone: \"{domain}.\" static\n  local-data: \"{domain}. {ttl} IN MX 10 {mx}.\"\n"
    );
    if host.is_none() {
        z.push_str(&format!("  local-data: \"{mx}. {ttl} IN A {addr}\"\n"));
    }
    z
}

/// Unbound zone lines for a mail host name at `addr` (a provider's host that several
/// domains' MX records name).
pub fn host_zone(host: &str, addr: &str, ttl: u32) -> String {
    format!("  local-zone: \"{host}.\" static\n  local-data: \"{host}. {ttl} IN A {addr}\"\n")
}

/// The running pieces and their files.
pub struct MailLab {
    /// Scratch directory (configs, spool, receivers' mail).
    pub dir: PathBuf,
    postfix: PathBuf,
    resolv: PathBuf,
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

impl MailLab {
    /// Starts Unbound and the receivers in the server namespace and Postfix in the client
    /// namespace and test cgroup.
    pub fn start(t: &mut Topology, tag: &str) -> anyhow::Result<Self> {
        Self::start_with(t, tag, &LabOptions::default())
    }

    /// [`MailLab::start`] with variations.
    pub fn start_with(t: &mut Topology, tag: &str, opts: &LabOptions) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("mxt-mail-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in [
            "postfix",
            "spool",
            "data",
            "mx-protected",
            "mx-lookalike",
            "mx-lookalike6",
        ] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        // smtp-sink drops privileges to postfix before writing.
        for d in ["mx-protected", "mx-lookalike", "mx-lookalike6"] {
            sh("chmod", &["777", &dir.join(d).display().to_string()])?;
        }
        sh(
            "chown",
            &["postfix", &dir.join("data").display().to_string()],
        )?;

        // Postfix resolves through the client namespace's resolv.conf.
        let resolv_dir = PathBuf::from("/etc/netns").join(&t.cli);
        std::fs::create_dir_all(&resolv_dir)?;
        let resolv = resolv_dir.join("resolv.conf");
        let nameserver = if opts.local_resolver {
            "127.0.0.1"
        } else {
            SRV4[0]
        };
        write(
            &resolv,
            &format!("nameserver {nameserver}\noptions timeout:1 attempts:2\n"),
        )?;
        if let Some((_, host, addr)) = &opts.pinned_route {
            write(
                &resolv_dir.join("hosts"),
                &format!("127.0.0.1 localhost\n{addr} {host}\n"),
            )?;
        }
        let lab = Self {
            postfix: dir.join("postfix"),
            dir,
            resolv: resolv_dir,
        };

        let unbound = lab.dir.join("unbound.conf");
        write(
            &unbound,
            &format!(
                "server:\n  interface: {}\n  port: 53\n  access-control: 0.0.0.0/0 allow\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n  directory: \"{}\"\n  use-syslog: no\n  logfile: \"{}\"\n  do-ip6: no\n{}",
                SRV4[0],
                lab.dir.display(),
                lab.dir.join("unbound.log").display(),
                zones() + &opts.zones
            ),
        )?;
        t.spawn_server("unbound", &["-d", "-c", &unbound.display().to_string()])?;
        let receivers = [
            (format!("{PROTECTED_MX}:25"), "mx-protected"),
            (format!("{LOOKALIKE_MX}:25"), "mx-lookalike"),
            (format!("[{LOOKALIKE_MX6}]:25"), "mx-lookalike6"),
        ];
        for (addr, sub) in &receivers {
            let template = format!("{}/%H%M%S.", lab.dir.join(sub).display());
            t.spawn_server("smtp-sink", &["-u", "postfix", "-d", &template, addr, "10"])?;
        }
        lab.wait_for_dns(t, &format!("{}:53", SRV4[0]))?;
        if opts.local_resolver {
            let local = lab.dir.join("unbound-local.conf");
            write(&local, &lab.local_unbound_conf())?;
            t.spawn_in_cgroup("unbound", &["-d", "-c", &local.display().to_string()])?;
            lab.wait_for_dns(t, LOCAL_RESOLVER)?;
        }
        for (addr, _) in &receivers {
            lab.wait_for_port(t, addr)?;
        }

        let mut main_cf = lab.main_cf();
        if let Some((domain, host, _)) = &opts.pinned_route {
            let transport = lab.postfix.join("transport");
            write(&transport, &format!("{domain} smtp:[{host}]\n"))?;
            main_cf.push_str(&format!(
                "transport_maps = texthash:{}\nsmtp_host_lookup = native\n",
                transport.display()
            ));
        }
        write(&lab.postfix.join("main.cf"), &main_cf)?;
        write(&lab.postfix.join("master.cf"), MASTER_CF)?;
        let pf = lab.postfix.display().to_string();
        sh("postfix", &["-c", &pf, "set-permissions", "create-missing"]).ok();
        t.exec("postfix", &["-c", &pf, "start"])
            .context("starting Postfix")?;
        Ok(lab)
    }

    fn main_cf(&self) -> String {
        let d = self.dir.display();
        format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/spool\ndata_directory = {d}/data\n\
             command_directory = /usr/sbin\ndaemon_directory = /usr/lib/postfix/sbin\n\
             shlib_directory = /usr/lib/postfix\nmeta_directory = /etc/postfix\nmail_owner = postfix\n\
             setgid_group = postdrop\nmyhostname = mailer.test\nmydomain = test\nmyorigin = mailer.test\n\
             mydestination =\ninet_interfaces = loopback-only\ninet_protocols = all\nmynetworks = 127.0.0.0/8\n\
             relayhost =\nsmtp_tls_security_level = none\nsmtputf8_enable = no\nalias_maps =\nalias_database =\n\
             maillog_file = {d}/maillog\nmaillog_file_prefixes = {d}\n\
             queue_run_delay = 300s\nminimal_backoff_time = 300s\nmaximal_backoff_time = 600s\n\
             smtp_connect_timeout = 5s\n"
        )
    }

    /// A caching Unbound on the mail host's loopback that forwards everything upstream.
    fn local_unbound_conf(&self) -> String {
        format!(
            "server:\n  interface: 127.0.0.1\n  port: 53\n  access-control: 127.0.0.0/8 allow\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n  directory: \"{d}\"\n  use-syslog: no\n  logfile: \"{d}/unbound-local.log\"\n  do-ip6: no\n  num-threads: 1\n  module-config: \"iterator\"\n  qname-minimisation: no\nforward-zone:\n  name: \".\"\n  forward-addr: {up}\n",
            d = self.dir.display(),
            up = SRV4[0],
        )
    }

    fn wait_for_dns(&self, t: &Topology, server: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = t.client(&["dns", "udp", server, "army.mil", "MX", "500"])?;
            let v: Value = serde_json::from_str(&out)?;
            if !v["answer"].is_null() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Unbound at {server} did not answer");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_port(&self, t: &Topology, addr: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Value = serde_json::from_str(&t.client(&["connect", addr])?)?;
            if v["result"] == "ok" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("receiver {addr} not listening: {v}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Submits a message to `rcpt` with Postfix's sendmail, as a local program would.
    pub fn send(&self, t: &Topology, rcpt: &str, subject: &str) -> anyhow::Result<()> {
        let msg =
            format!("From: sender@mailer.test\nTo: {rcpt}\nSubject: {subject}\n\n{subject}\n");
        let pf = self.postfix.display().to_string();
        t.exec_with_input(
            "sendmail",
            &["-C", &pf, "-f", "sender@mailer.test", rcpt],
            Some(&msg),
        )?;
        Ok(())
    }

    /// Postfix's queue (`postqueue -j`), one JSON object per message.
    pub fn queue(&self) -> anyhow::Result<Vec<Value>> {
        let out = sh(
            "postqueue",
            &["-c", &self.postfix.display().to_string(), "-j"],
        )?;
        out.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }

    /// The lines of Postfix's log that mention `rcpt`.
    pub fn log_for(&self, rcpt: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default();
        let needle = format!("<{rcpt}>");
        log.lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Asks Postfix to retry everything queued now.
    pub fn flush(&self) -> anyhow::Result<()> {
        sh(
            "postqueue",
            &["-c", &self.postfix.display().to_string(), "-f"],
        )
        .map(drop)
    }

    /// Messages a receiver holds whose text contains `subject`.
    pub fn received(&self, receiver: &str, subject: &str) -> usize {
        let dir = self.dir.join(receiver);
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(subject))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Waits until `pred` holds, polling.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !pred() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(12).collect();
                bail!(
                    "{what}: not within {timeout:?}; Postfix log (newest first):\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for MailLab {
    fn drop(&mut self) {
        let pf = self.postfix.display().to_string();
        let _ = sh("postfix", &["-c", &pf, "abort"]);
        let _ = std::fs::remove_dir_all(&self.resolv);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Postfix services, none chrooted (the test's spool is not set up for it).
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";
