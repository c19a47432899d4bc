//! The agent's own log (stderr): plain text for a person at a terminal, or one JSON object
//! per line for the same collectors that read the event log.

use std::io::Write as _;

use super::clock::rfc3339;

/// How the agent's own log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `[time LEVEL module] message`.
    #[default]
    Text,
    /// `{"ts":..,"level":..,"target":..,"msg":..}`.
    Json,
}

/// One log record as a JSON line.
fn json_line(level: log::Level, target: &str, msg: &std::fmt::Arguments) -> String {
    serde_json::json!({
        "ts": rfc3339(std::time::SystemTime::now()),
        "level": level.as_str().to_ascii_lowercase(),
        "target": target,
        "msg": msg.to_string(),
    })
    .to_string()
}

/// Starts the logger: `RUST_LOG` filters (default info), stderr, in `format`.
pub fn init(format: LogFormat) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    b.target(env_logger::Target::Stderr);
    if format == LogFormat::Json {
        b.format(|buf, r| writeln!(buf, "{}", json_line(r.level(), r.target(), r.args())));
    }
    b.init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_object() {
        let l = json_line(
            log::Level::Warn,
            "mxsentry::x",
            &format_args!("a \"quoted\"\nline"),
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "a \"quoted\"\nline");
        assert!(!l.contains('\n'));
    }
}
