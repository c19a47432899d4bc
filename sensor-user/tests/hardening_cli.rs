//! Bad input for the commands that need no privileges: configs that would drop protection
//! or be obeyed from an unsafe place, nonsense values, and `check` fed terminal control
//! characters or one enormous line. The real binary, real files, real pipes.

use std::{
    io::{Read as _, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The binary under test: `MXSENTRY_BIN` (an older build, to see these tests fail
/// against it), else this build's.
fn bin() -> Command {
    Command::new(std::env::var_os("MXSENTRY_BIN").unwrap_or(env!("CARGO_BIN_EXE_mxsentry").into()))
}

/// A directory private to one test, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("mxsentry-hard-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(d)
    }

    /// Writes `name` with `text`, mode 0644.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `run --check-config` on `path`: (success, stdout + stderr).
fn check_config(path: &Path) -> (bool, String) {
    let out = bin()
        .args(["run", "--check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn refused(d: &Dir, text: &str, want: &[&str]) {
    let p = d.file("mxsentry.toml", text);
    let (ok, out) = check_config(&p);
    assert!(!ok, "accepted:\n{text}\n{out}");
    for w in want {
        assert!(out.contains(w), "{w:?} not in {out:?} for\n{text}");
    }
}

#[test]
fn an_empty_or_comment_only_file_is_an_error() {
    let d = Dir::new("empty");
    refused(&d, "", &["empty"]);
    refused(&d, "\n# nothing here yet\n\n", &["empty"]);
}

#[test]
fn nonsense_values_are_rejected_with_their_line() {
    let d = Dir::new("values");
    refused(
        &d,
        "[policy]\nprotect = [\"army.mil\"]\n[events]\nmax_bytes = 0\nkeep = 1\n",
        &["line 4", "max_bytes"],
    );
    refused(
        &d,
        "[policy]\nprotect = [\"army.mil\"]\n[events]\nkeep = 0\n",
        &["line 4", "keep"],
    );
    refused(
        &d,
        "[policy]\nprotect = [\"army.mil\"]\n\n[alertmanager]\nattempts = 4294967295\n",
        &["line 5", "attempts"],
    );
    refused(
        &d,
        "[agent]\nsmtp_ports = []\n[policy]\nprotect = [\"army.mil\"]\n",
        &["line 2", "smtp_ports"],
    );
    refused(
        &d,
        "[agent]\nsmtp_ports = [25, 0]\n[policy]\nprotect = [\"army.mil\"]\n",
        &["line 2", "smtp_ports"],
    );
    refused(
        &d,
        "[policy]\nprotect = [\"army.mil\"]\n[cache]\npending_max = 0\n",
        &["line 4", "pending_max"],
    );
}

#[test]
fn conflicts_are_warned_with_their_line() {
    let d = Dir::new("conflicts");
    let p = d.file(
        "mxsentry.toml",
        "[agent]\nsmtp_ports = [25, 587, 25]\n\n[policy]\nprotect = [\n  \"army.mil\",\n  \"Army.Mil\",\n  \"example.com\",\n]\nallow = [\"example.com\"]\n",
    );
    let (ok, out) = check_config(&p);
    assert!(ok, "{out}");
    for want in [
        "line 2",
        "smtp_ports",
        "port 25 twice",
        "line 7",
        "army.mil",
        "twice (also at line 6)",
        "line 10",
        "example.com",
        "both protected and allowed",
    ] {
        assert!(out.contains(want), "{want:?} not warned: {out}");
    }
}

#[test]
fn a_config_writable_by_others_is_refused_as_sshd_strictmodes_does() {
    let d = Dir::new("perms");
    let good = "[policy]\nprotect = [\"army.mil\"]\n";
    let p = d.file("mxsentry.toml", good);
    assert!(
        check_config(&p).0,
        "a 0644 file in a 0755 directory is fine"
    );
    for mode in [0o666, 0o664, 0o646] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let (ok, out) = check_config(&p);
        assert!(!ok, "mode {mode:o} accepted: {out}");
        assert!(out.contains("writable"), "{out}");
    }
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The directory holding it is writable by anyone: the file can be swapped.
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, out) = check_config(&p);
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!ok, "a world-writable directory accepted: {out}");
    assert!(out.contains("writable"), "{out}");
    // A symlink from a safe place into an unsafe one.
    let unsafe_dir = d.0.join("open");
    std::fs::create_dir(&unsafe_dir).unwrap();
    std::fs::set_permissions(&unsafe_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = unsafe_dir.join("real.toml");
    std::fs::write(&target, good).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = d.0.join("link.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (ok, out) = check_config(&link);
    assert!(
        !ok,
        "a symlink into a world-writable directory accepted: {out}"
    );
    assert!(
        out.contains("open"),
        "the message names the unsafe directory: {out}"
    );
}

/// `check` with `input` on stdin: (stdout, peak RSS in KiB). Reaped with wait4 for its
/// resource usage, which `Child::wait` does not give.
#[allow(clippy::zombie_processes)]
fn check_stdin(args: &[&str], input: impl FnOnce(&mut std::process::ChildStdin)) -> (String, u64) {
    let mut child = bin()
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdin = child.stdin.take().unwrap();
    input(&mut stdin);
    drop(stdin);
    let pid = child.id() as libc::pid_t;
    // SAFETY: rusage is plain data; wait4 on our own child fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    // SAFETY: waits for our own child, writing into locals we own.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    (reader.join().unwrap(), ru.ru_maxrss as u64)
}

#[test]
fn check_escapes_terminal_control_characters_in_the_table() {
    let (out, _) = check_stdin(&["--protect", "army.mil"], |s| {
        s.write_all(b"arm\x1b[2Jy.ml\nevil\x07\x9b.com\nok\xe2\x80\xaename.com\narmy.ml\n")
            .unwrap();
    });
    assert!(!out.contains('\x1b'), "raw ESC in the table: {out:?}");
    assert!(!out.contains('\x07'), "raw BEL in the table: {out:?}");
    assert!(
        !out.contains('\u{202e}'),
        "raw bidi override in the table: {out:?}"
    );
    assert!(out.contains("\\u{1b}"), "ESC not shown escaped: {out}");
    assert!(out.lines().any(|l| l.starts_with("army.ml ")), "{out}");
}

#[test]
fn check_streams_a_huge_line_with_a_bounded_buffer() {
    const HUGE: usize = 300 * 1024 * 1024;
    let (out, peak_kib) = check_stdin(&["--json", "--protect", "army.mil"], |s| {
        s.write_all(b"army.ml\n").unwrap();
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..HUGE / chunk.len() {
            s.write_all(&chunk).unwrap();
        }
        s.write_all(b"\narmy.mi\n").unwrap();
    });
    assert!(
        peak_kib < 64 * 1024,
        "a {HUGE}-byte line took {peak_kib} KiB resident"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one answer per input line");
    assert!(lines[1].contains("\"invalid\"") && lines[1].contains("longer than"));
    assert!(lines[2].contains("army.mi"));
}
