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
            buf.clear();
            // About to wait for input: let the reader see every answer so far.
            if input.buffer().is_empty()
                && let Err(e) = out.flush()
            {
                break Err(e);
            }
            if input.read_until(b'\n', &mut buf).context("reading stdin")? == 0 {
                break Ok(());
            }
            // Not UTF-8 is not a domain; the replacement character makes it invalid.
            let line = String::from_utf8_lossy(&buf);
            if let Err(e) = emit(
                &engine,
                line.trim_end_matches(['\n', '\r']),
                args.json,
                &mut out,
            ) {
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
        let score = report.score.map(|s| format!("{s:.2}")).unwrap_or_default();
        writeln!(
            out,
            "{:<40} {:<10} {:<20} {:<22} {:>5}  {}",
            report.domain,
            report.verdict,
            report.target.unwrap_or("-"),
            report.rule.unwrap_or("-"),
            score,
            report.explanation.as_deref().unwrap_or("")
        )
    }
}
