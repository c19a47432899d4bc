//! The JSON event log: one line per event, to stdout or a file rotated by size.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::metrics::Metrics;

enum Sink {
    Stdout,
    Memory(std::sync::Arc<std::sync::Mutex<Vec<String>>>),
    File {
        path: PathBuf,
        file: File,
        written: u64,
        max_bytes: u64,
        keep: u32,
    },
}

/// Writes event lines; a failed write is logged and counted, never fatal.
pub struct EventLog {
    sink: Sink,
    metrics: Metrics,
}

impl EventLog {
    /// Lines go to stdout.
    pub fn stdout(metrics: Metrics) -> Self {
        Self {
            sink: Sink::Stdout,
            metrics,
        }
    }

    /// Lines are kept in memory (tests); the handle reads them.
    pub fn memory(metrics: Metrics) -> (Self, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        (
            Self {
                sink: Sink::Memory(lines.clone()),
                metrics,
            },
            lines,
        )
    }

    /// Lines are appended to `path`, rotated to `path.1`..`path.keep` past `max_bytes`.
    pub fn file(path: &Path, max_bytes: u64, keep: u32, metrics: Metrics) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            sink: Sink::File {
                path: path.to_path_buf(),
                file,
                written,
                max_bytes,
                keep,
            },
            metrics,
        })
    }

    /// Writes one event as a JSON line.
    pub fn write(&mut self, event: &impl Serialize) {
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => {
                self.metrics.event_log_errors.inc();
                log::warn!("event not serialisable: {e}");
                return;
            }
        };
        line.push(b'\n');
        let result = match &mut self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line).and_then(|()| out.flush())
            }
            Sink::Memory(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(String::from_utf8_lossy(&line).trim_end().to_string());
                }
                Ok(())
            }
            Sink::File {
                path,
                file,
                written,
                max_bytes,
                keep,
            } => {
                let r = file.write_all(&line);
                *written += line.len() as u64;
                if r.is_ok() && *written >= *max_bytes {
                    match rotate(path, *keep) {
                        Ok(f) => {
                            *file = f;
                            *written = 0;
                        }
                        Err(e) => log::warn!("rotating {}: {e}", path.display()),
                    }
                }
                r
            }
        };
        if let Err(e) = result {
            self.metrics.event_log_errors.inc();
            log::warn!("writing event log: {e}");
        }
    }
}

/// Shifts `path.N-1` → `path.N` ... `path` → `path.1` and opens a fresh `path`.
fn rotate(path: &Path, keep: u32) -> std::io::Result<File> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        std::fs::remove_file(path)?;
    } else {
        for n in (1..keep).rev() {
            if numbered(n).exists() {
                std::fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        std::fs::rename(path, numbered(1))?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("mxsentry-evlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("events.jsonl");
        let metrics = Metrics::new("test").unwrap();
        let mut log = EventLog::file(&path, 100, 2, metrics.clone()).unwrap();
        for i in 0..20 {
            log.write(&serde_json::json!({ "event": "test", "n": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }));
        }
        assert!(path.exists());
        assert!(dir.join("events.jsonl.1").exists());
        assert!(dir.join("events.jsonl.2").exists());
        assert!(!dir.join("events.jsonl.3").exists());
        let last = std::fs::read_to_string(dir.join("events.jsonl.1")).unwrap();
        assert!(
            last.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        );
        assert_eq!(metrics.event_log_errors.get(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
