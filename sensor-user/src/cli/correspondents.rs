//! `mxsentry correspondents`: list, seed (import) and export the correspondents ledger.

use std::{
    io::{BufWriter, Read, Write as _},
    path::Path,
};

use anyhow::Context as _;

use super::args::{CorrespondentsAction, CorrespondentsArgs};
use crate::{
    config::{ConfigSource, Overrides},
    correspondents::{
        Correspondents,
        ledger::{Established, Ledger},
        ledger_key,
        maillog::{ImportStats, import},
        store::{Snapshot, Store},
    },
    output::text::escape,
};

/// Runs one `correspondents` action.
pub fn correspondents(args: CorrespondentsArgs) -> anyhow::Result<()> {
    let source = ConfigSource {
        explicit: args.config,
        use_default: true,
        overrides: Overrides {
            state_dir: args.state_dir,
            ..Overrides::default()
        },
    };
    let (loaded, _) = source.load()?;
    let config = loaded.config;
    let state = &config.agent.state_dir;
    match args.action {
        None => list(state, &config.learn, args.json),
        Some(CorrespondentsAction::List { json }) => list(state, &config.learn, json || args.json),
        Some(CorrespondentsAction::Export { out }) => export(state, &config.learn, out.as_deref()),
        Some(CorrespondentsAction::Import { files }) => {
            import_files(state, config.learn.max_domains, &files)
        }
    }
}

/// The ledger as the agent would have it now: the saved file with the waiting drop-ins.
fn current(state: &Path, learn: &crate::config::LearnSection) -> (Correspondents, usize) {
    let (c, problems) = Correspondents::view(state, learn);
    for p in &problems {
        eprintln!("{}: {} ({})", p.path.display(), p.kind, p.detail);
    }
    let n = c.ledger().len();
    (c, n)
}

fn list(state: &Path, learn: &crate::config::LearnSection, json: bool) -> anyhow::Result<()> {
    let (c, _) = current(state, learn);
    let bar = Established {
        min_days: learn.min_days,
        min_attempts: learn.min_deliveries,
    };
    let mut rows: Vec<_> = c.ledger().iter().collect();
    rows.sort_by(|a, b| {
        (b.1.days(), b.1.attempts)
            .cmp(&(a.1.days(), a.1.attempts))
            .then(a.0.cmp(b.0))
    });
    let mut out = BufWriter::new(std::io::stdout().lock());
    if !json {
        writeln!(
            out,
            "{:<40} {:>10} {:>5} {:>11} {:>11}  ESTABLISHED",
            "DOMAIN", "DELIVERIES", "DAYS", "FIRST", "LAST"
        )?;
    }
    for (d, e) in rows {
        let established = bar.holds(e);
        if json {
            let v = serde_json::json!({
                "domain": d, "deliveries": e.attempts, "days": e.days(),
                "first_seen": e.first_seen, "last_seen": e.last_seen,
                "established": established,
            });
            writeln!(out, "{v}")?;
        } else {
            let day = |t: u64| {
                crate::output::clock::rfc3339(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(t),
                )[..10]
                    .to_string()
            };
            writeln!(
                out,
                "{:<40} {:>10} {:>5} {:>11} {:>11}  {}",
                escape(d),
                e.attempts,
                e.days(),
                day(e.first_seen),
                day(e.last_seen),
                if established { "yes" } else { "no" }
            )?;
        }
    }
    out.flush().context("writing stdout")
}

fn export(
    state: &Path,
    learn: &crate::config::LearnSection,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let (c, n) = current(state, learn);
    let bytes = serde_json::to_vec_pretty(&Snapshot::of(c.ledger()))?;
    match out {
        Some(p) => crate::state::persist::write_atomic(p, &bytes)
            .with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().write_all(&bytes)?,
    }
    eprintln!("exported {n} domains");
    Ok(())
}

/// Reads one input whole if it is a snapshot (JSON), else as an MTA log.
fn import_one(mut input: impl Read, ledger: &mut Ledger, now: u64) -> anyhow::Result<ImportStats> {
    let mut head = [0u8; 1];
    let n = input.read(&mut head)?;
    let input = (&head[..n]).chain(input);
    if head[..n] == [b'{'] {
        let mut bytes = Vec::new();
        // A snapshot of a bounded ledger: read whole, but never more than 256 MiB.
        input.take(256 << 20).read_to_end(&mut bytes)?;
        let snapshot = Snapshot::parse(&bytes).map_err(|e| anyhow::anyhow!("export: {e}"))?;
        let m = snapshot.merge_into(ledger);
        return Ok(ImportStats {
            recorded: m.merged as u64,
            malformed: m.skipped as u64,
            ..ImportStats::default()
        });
    }
    Ok(import(input, ledger, now, ledger_key)?)
}

fn import_files(state: &Path, max: usize, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let mut ledger = Ledger::new(max);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut total = ImportStats::default();
    let mut add = |s: ImportStats| {
        total.lines += s.lines;
        total.recorded += s.recorded;
        total.not_delivery += s.not_delivery;
        total.not_remote += s.not_remote;
        total.malformed += s.malformed;
        total.too_long += s.too_long;
        total.not_text += s.not_text;
    };
    if files.is_empty() {
        add(import_one(std::io::stdin().lock(), &mut ledger, now)?);
    }
    for f in files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        add(import_one(file, &mut ledger, now)
            .with_context(|| format!("reading {}", f.display()))?);
    }
    let store = Store::new(state, std::time::Duration::ZERO);
    let path = store
        .drop_in(&Snapshot::of(&ledger), "import")
        .with_context(|| format!("writing into {}", state.display()))?;
    eprintln!(
        "{}",
        serde_json::json!({
            "imported": path.display().to_string(),
            "domains": ledger.len(),
            "evicted": ledger.evictions(),
            "lines": total,
        })
    );
    Ok(())
}
