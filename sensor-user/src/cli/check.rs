//! `mxsentry check`: classify names from the command line or stdin, streaming.

use std::io::{BufRead, BufWriter, Write};

use anyhow::Context as _;

use super::args::CheckArgs;
use crate::{
    config::{ConfigSource, Domain, FullEntry, Overrides, ProtectItem},
    detect::{Action, Classification, Engine, Name, Report},
};

/// `ENTRY[=alert|block]` from `--protect`.
fn split_protect(p: &str) -> anyhow::Result<(String, Option<Action>)> {
    match p.split_once('=') {
        Some((e, a)) => {
            let action = clap::ValueEnum::from_str(a, true)
                .map_err(|_| anyhow::anyhow!("--protect {p}: action must be alert or block"))?;
            Ok((e.to_string(), Some(action)))
        }
        None => Ok((p.to_string(), None)),
    }
}

/// A `--protect` value as a config entry (checked as a domain).
pub fn protect_entry(p: &str) -> anyhow::Result<ProtectItem> {
    let (entry, action) = split_protect(p)?;
    Name::parse(&entry).map_err(|e| anyhow::anyhow!("--protect {entry:?} is not a domain: {e}"))?;
    Ok(ProtectItem::Full(FullEntry {
        entry: Domain(entry),
        action,
        also: Vec::new(),
        block_restricted: false,
    }))
}

/// The engine for the config file (only when given) plus the command-line entries.
fn engine(args: &CheckArgs) -> anyhow::Result<Engine> {
    let protect = args
        .protect
        .iter()
        .map(|p| protect_entry(p))
        .collect::<anyhow::Result<_>>()?;
    let source = ConfigSource {
        explicit: args.config.clone(),
        use_default: false,
        overrides: Overrides {
            protect,
            allow: args.allow.clone(),
            builtin_allow: args.no_builtin_allow.then_some(false),
            default_action: args.default_action,
            ..Overrides::default()
        },
    };
    Ok(source.load()?.0.engine)
}

/// Runs `mxsentry check`.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let engine = engine(&args)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !args.json {
        writeln!(
            out,
            "{:<40} {:<10} {:<20} {:<22} {:>5}  EXPLANATION",
            "DOMAIN", "VERDICT", "TARGET", "RULE", "SCORE"
        )?;
    }
    let result = if args.names.is_empty() {
        // Our own buffer (reads of 64 KiB bypass stdin's) so we can see when it is drained.
        let mut input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
        let mut buf = Vec::with_capacity(256);
        loop {
            // About to wait for input: let the reader see every answer so far.
            if input.buffer().is_empty()
                && let Err(e) = out.flush()
            {
                break Err(e);
            }
            let line = match next_line(&mut input, &mut buf).context("reading stdin")? {
                None => break Ok(()),
                Some(Ok(())) => {
                    // Not UTF-8 is not a domain; the replacement character makes it invalid.
                    let line = String::from_utf8_lossy(&buf);
                    emit(&engine, line.trim_end_matches('\r'), args.json, &mut out)
                }
                Some(Err(len)) => too_long(&buf, len, args.json, &mut out),
            };
            if let Err(e) = line {
                break Err(e);
            }
        }
    } else {
        args.names
            .iter()
            .try_for_each(|n| emit(&engine, n, args.json, &mut out))
    };
    match result.and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not our failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing stdout"),
    }
}

fn emit(engine: &Engine, raw: &str, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    let verdict = engine.classify(raw);
    let domain = match &verdict {
        Classification::Invalid(_) => raw.to_string(),
        _ => crate::detect::Name::parse(raw)
            .map(|n| n.ascii)
            .unwrap_or_else(|_| raw.to_string()),
    };
    let report = Report::new(&domain, &verdict);
    if json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)
    } else {
        table_row(out, &report)
    }
}

/// One row of the table, every text cell with its control characters escaped: a name
/// from stdin must not drive the reader's terminal.
fn table_row(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let score = r.score.map(|s| format!("{s:.2}")).unwrap_or_default();
    writeln!(
        out,
        "{:<40} {:<10} {:<20} {:<22} {:>5}  {}",
        escape(r.domain),
        r.verdict,
        escape(r.target.unwrap_or("-")),
        r.rule.unwrap_or("-"),
        score,
        escape(r.explanation.as_deref().unwrap_or(""))
    )
}

/// Longest input line taken as a name (a DNS name is at most 253 bytes; its Unicode
/// form a few times that): longer lines are read to their end and dropped, so one huge
/// line costs no more memory than this.
pub const MAX_LINE: usize = 4096;

/// The next line into `buf` (without its newline): `None` at the end of input,
/// `Some(Err(length))` for a line longer than [`MAX_LINE`], of which `buf` keeps the start.
fn next_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<(), u64>>> {
    buf.clear();
    let (mut total, mut any) = (0u64, false);
    loop {
        let avail = input.fill_buf()?;
        if avail.is_empty() {
            break;
        }
        any = true;
        let newline = avail.iter().position(|b| *b == b'\n');
        let chunk = &avail[..newline.unwrap_or(avail.len())];
        total += chunk.len() as u64;
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(avail.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            break;
        }
    }
    Ok(match (any, total > MAX_LINE as u64) {
        (false, _) => None,
        (true, false) => Some(Ok(())),
        (true, true) => Some(Err(total)),
    })
}

/// The answer for a line too long to be a name: invalid, shown by its start.
fn too_long(start: &[u8], len: u64, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    let head: String = String::from_utf8_lossy(start).chars().take(40).collect();
    let shown = format!("{head}...");
    let verdict = Classification::Invalid(crate::detect::InvalidName::NameTooLong);
    let mut report = Report::new(&shown, &verdict);
    report.explanation = Some(format!(
        "a line of {len} bytes, longer than {MAX_LINE}: not a domain (skipped)"
    ));
    if json {
        serde_json::to_writer(&mut *out, &report)?;
        writeln!(out)
    } else {
        table_row(out, &report)
    }
}

/// `s` with control characters and bidirectional overrides written as `\u{..}`.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if bad(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_measured() {
        let mut text = b"army.ml\n".to_vec();
        text.extend(std::iter::repeat_n(b'a', 100_000));
        text.extend(b"\nlast");
        let mut input = std::io::BufReader::with_capacity(1024, text.as_slice());
        let mut buf = Vec::new();
        assert_eq!(next_line(&mut input, &mut buf).unwrap(), Some(Ok(())));
        assert_eq!(buf, b"army.ml");
        assert_eq!(next_line(&mut input, &mut buf).unwrap(), Some(Err(100_000)));
        assert_eq!(buf.len(), MAX_LINE);
        assert_eq!(next_line(&mut input, &mut buf).unwrap(), Some(Ok(())));
        assert_eq!(buf, b"last");
        assert_eq!(next_line(&mut input, &mut buf).unwrap(), None);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape("plain.example"), "plain.example");
        assert_eq!(escape("ärmy.mil"), "ärmy.mil");
    }
}
