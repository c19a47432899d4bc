//! The quality report as markdown, and the pass/fail check against the targets.

use std::fmt::Write as _;

use anyhow::bail;

use super::{
    DEFENCE, MAX_FP_RATE, MIN_RECALL, OFFICIAL, Results, WITH_TYPO_DOMAINS, populations::Flagged,
};

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 { 1.0 } else { n as f64 / d as f64 }
}

/// What a score means (the engine's `detect/score.rs` computes it).
const SCALE: &str = "\
The score is monotone in the evidence: more changes never score higher than fewer, and a \
confusable character (one that renders like the original: Cyrillic `а` for `a`, `1` for \
`l`, `rn` for `m`) is no change at all. A `min_score`-style policy reads it as follows.

| score | evidence |
|---:|---|
| 0.95 | renders like the protected name: only confusable characters differ (`paypa1.com`, `аrmy.mil`) |
| 0.90 | the protected label intact (or only confusable) and one change after it: suffix typo, swap, appended, cut short, dot dropped (`army.ml`, `army.mil.com`, `armymil.com`), for a label of 6+ letters |
| 0.85 | one likely slip in a label of 6+ letters: neighbouring key, doubled, dropped or swapped letters, a vowel, a similar glyph (`m`/`n`, `i`/`l`), a hyphen; or the real name as someone else's subdomain |
| 0.75 | one less likely change in a label of 6+ letters: an unrelated letter, a dictionary word, a dot or a plural added, a flipped bit |
| −0.05 per letter under 6 | the same single change on a shorter label (a 2-letter label loses 0.20; a single change never goes below 0.50) |
| 0.50 | two likely slips in a label of 8+ letters |
| 0.45 | two slips, one unlikely, in a label of 8+ letters |

So 0.9 means: one change, and everything that makes the name recognisable is intact. \
Labels of 1–3 letters take only likely slips (a letter dropped, doubled, swapped or added \
at the end, a neighbouring key, a similar glyph, a flipped bit), never an unrelated letter. \
A `lookalike` carries the same score as the `typosquat` it would be in an open registry.
";

fn recall_section(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "Protected set ({}): {}\n",
        r.protected.len(),
        r.protected.join(", ")
    );
    let _ = writeln!(s, "## Recall per rule class\n");
    let _ = writeln!(
        s,
        "A lookalike counts as detected when the verdict names the right target: `typosquat`, \
         or `lookalike` when the name lies under a restricted registry (so `amry.mil` for \
         `army.mil`). Names the generator produced that are themselves protected or allowed \
         are listed as excluded, not counted.\n"
    );
    let _ = writeln!(
        s,
        "| source | class | lookalikes | detected | of which `lookalike` | recall | excluded |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for ((source, class), c) in &r.classes {
        let _ = writeln!(
            s,
            "| {source} | {class} | {} | {} | {} | {:.2}% | {} |",
            c.total,
            c.detected,
            c.lookalikes,
            100.0 * pct(c.detected, c.total),
            c.excluded
        );
    }
    let misses: Vec<String> = r
        .classes
        .iter()
        .filter(|(_, c)| !c.misses.is_empty())
        .map(|((_, class), c)| format!("- {class}: {}", c.misses.join(", ")))
        .collect();
    if !misses.is_empty() {
        let _ = writeln!(s, "\nFirst misses per class:\n\n{}", misses.join("\n"));
    }
}

fn worst(v: &[Flagged], n: usize) -> String {
    if v.is_empty() {
        return "–".into();
    }
    v.iter()
        .take(n)
        .map(|f| {
            format!(
                "`{}` ({} of `{}`, {:.2})",
                f.domain, f.rule, f.target, f.score
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn populations_section(s: &mut String, r: &Results) {
    let _ = writeln!(s, "\n## Real populations\n");
    let _ = writeln!(
        s,
        "Public lists installed by the quality step itself from registries, at pinned \
         versions (`xtask/src/quality/fixtures.rs`), and cut into populations by \
         `tests/quality/populations.py` (registrable domains, deduplicated):\n"
    );
    for p in &r.populations {
        let _ = writeln!(
            s,
            "- **{}** ({} names): {}",
            p.name,
            p.names.len(),
            p.source
        );
    }
    let _ = writeln!(
        s,
        "\nPackages: PyPI `pymispwarninglists==1.7.0` (the MISP warning lists), npm \
         `top-sites@1.1.222`, `email-providers@2.26.0`, `free-email-domains@1.12.6`; the \
         Public Suffix List of PyPI `tld==0.13.2` for the suffixes.\n"
    );
    let _ = writeln!(
        s,
        "Every population is scored under every configuration in `tests/quality/configs`. \
         Every name is a real, public domain, so every `typosquat` counts against the \
         target (≤ {:.2}% of a population, and none on the military and government \
         populations under `{DEFENCE}`); `lookalike` verdicts are reported (a resemblance \
         inside a restricted registry). Names a configuration protects or allows are \
         excluded. Not held to the target: {} (those lists record the typo domains people \
         signed up with, `gamil.com`, `hotmial.com`, so many of its typosquats are true \
         ones; they are all listed below).\n",
        100.0 * MAX_FP_RATE,
        WITH_TYPO_DOMAINS.join(", ")
    );
    for cfg in &r.configs {
        let _ = writeln!(s, "### `{}`\n\n{}\n", cfg.name, cfg.about);
        let _ = writeln!(
            s,
            "| population | names | excluded | `typosquat` | rate | `lookalike` | worst `typosquat` | worst `lookalike` |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|");
        for p in &r.populations {
            let Some(x) = r.scored.get(&cfg.name).and_then(|m| m.get(&p.name)) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.4}% | {} | {} | {} |",
                p.name,
                x.names,
                x.excluded,
                x.typosquats.len(),
                100.0 * pct(x.typosquats.len(), x.names),
                x.lookalikes.len(),
                worst(&x.typosquats, 5),
                worst(&x.lookalikes, 3)
            );
        }
        for pop in WITH_TYPO_DOMAINS {
            if let Some(x) = r.scored.get(&cfg.name).and_then(|m| m.get(pop))
                && !x.typosquats.is_empty()
            {
                let _ = writeln!(
                    s,
                    "\nEvery `typosquat` in {pop}: {}",
                    worst(&x.typosquats, x.typosquats.len())
                );
            }
        }
        let _ = writeln!(s);
    }
}

/// Before and after a learned correspondents ledger.
fn ledger_section(s: &mut String, r: &Results) {
    let _ = writeln!(
        s,
        "## With a learned correspondents ledger\n\n\
         The same populations through `mxsentry check --correspondents`, with the ledger of a \
         host that mails the first {} names of each population (in the source's own order, \
         alphabetical for most lists: a sample, not the most used) on seven days. A `typosquat` that is \
         itself an established correspondent is reported at info and never blocked; up to \
         `protect_top` (50) established correspondents the configuration has no word for are \
         protected as learned entries, whose findings are new.\n\n\
         | configuration | population | `typosquat` before | after, configured entries | now info (established) | new, learned entries | worst new |\n\
         |---|---|---:|---:|---:|---:|---|",
        super::learned::FREQUENT
    );
    for cfg in &r.configs {
        for p in &r.populations {
            let before = r.scored.get(&cfg.name).and_then(|m| m.get(&p.name));
            let after = r.with_ledger.get(&cfg.name).and_then(|m| m.get(&p.name));
            if let (Some(b), Some(a)) = (before, after) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    cfg.name,
                    p.name,
                    b.typosquats.len(),
                    a.configured,
                    a.established,
                    a.learned.len(),
                    worst(&a.learned, 3)
                );
            }
        }
    }
    let _ = writeln!(s);
}

/// Renders `docs/quality.md`.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Detection quality\n");
    let _ = writeln!(
        s,
        "Generated by `cargo xtask quality --write` (checked, without writing, by `cargo xtask test`).\n\
         Every name goes through the real `mxsentry check --json --config FILE`.\n"
    );
    let _ = writeln!(s, "## What a score means\n\n{SCALE}");
    recall_section(&mut s, r);
    populations_section(&mut s, r);
    ledger_section(&mut s, r);
    let _ = writeln!(
        s,
        "Zero findings on the protected entries, their subdomains and the built-in allow list \
         is a unit test (`detect::tests::never_flags_protected_or_builtin_allowed`)."
    );
    s
}

/// Fails when any class misses the recall target, any population's typosquat rate is
/// too high, or the defence configuration calls an official name a typosquat.
pub fn check(r: &Results) -> anyhow::Result<()> {
    let mut bad = Vec::new();
    for ((source, class), c) in &r.classes {
        let recall = pct(c.detected, c.total);
        if recall < MIN_RECALL {
            bad.push(format!("{source}/{class}: recall {:.2}%", 100.0 * recall));
        }
    }
    for (cfg, pops) in &r.scored {
        for (pop, x) in pops {
            let rate = pct(x.typosquats.len(), x.names);
            if rate > MAX_FP_RATE && !WITH_TYPO_DOMAINS.contains(&pop.as_str()) {
                bad.push(format!(
                    "{cfg} on {pop}: {} typosquats ({:.4}%)",
                    x.typosquats.len(),
                    100.0 * rate
                ));
            }
            if cfg == DEFENCE && OFFICIAL.contains(&pop.as_str()) && !x.typosquats.is_empty() {
                bad.push(format!(
                    "{cfg} on {pop}: {}",
                    worst(&x.typosquats, x.typosquats.len())
                ));
            }
        }
    }
    if !bad.is_empty() {
        bail!("detection quality below target: {}", bad.join("; "));
    }
    Ok(())
}
