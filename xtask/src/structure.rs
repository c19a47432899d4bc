//! `cargo xtask structure`: the shape rules of the code base, checked on every test run.
//!
//! - no source file over 500 lines outside tests;
//! - no function over 80 lines outside tests and the eBPF programs;
//! - no import cycle between the agent's top-level modules (`crate::X` uses).
//!
//! A plain line scanner, not a parser: it skips comments and string literals well enough
//! for this code base, and a test below pins what it counts.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::bail;

use crate::cmd::root;

/// Longest source file allowed outside tests.
const MAX_FILE_LINES: usize = 500;
/// Longest function allowed outside tests and the eBPF programs.
const MAX_FN_LINES: usize = 80;
/// Crates whose sources the rules cover, and whether their functions count.
const CRATES: [(&str, bool); 4] = [
    ("sensor-common/src", true),
    ("sensor-ebpf/src", false),
    ("sensor-user/src", true),
    ("xtask/src", true),
];

/// Checks every rule and fails with every breach listed.
pub fn check() -> anyhow::Result<()> {
    let mut breaches = Vec::new();
    for (dir, functions) in CRATES {
        for file in sources(&root().join(dir))? {
            let text = std::fs::read_to_string(&file)?;
            let code = non_test_part(&text);
            let shown = file.strip_prefix(root()).unwrap_or(&file).display();
            let n = code.lines().count();
            if n > MAX_FILE_LINES {
                breaches.push(format!("{shown}: {n} lines (most {MAX_FILE_LINES})"));
            }
            if functions {
                for (name, line, len) in long_functions(code) {
                    breaches.push(format!(
                        "{shown}:{line}: fn {name} has {len} lines (most {MAX_FN_LINES})"
                    ));
                }
            }
        }
    }
    for cycle in import_cycles(&root().join("sensor-user/src"))? {
        breaches.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    if !breaches.is_empty() {
        bail!("structure rules broken:\n  {}", breaches.join("\n  "));
    }
    eprintln!("structure: files, functions and module imports within the rules");
    Ok(())
}

/// Every `.rs` file under `dir` that is not a test file (`tests.rs`, `tests/`).
fn sources(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() {
                if name != "tests" {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The text before the file's test module (`#[cfg(test)]` followed by `mod`).
fn non_test_part(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(l) = lines.next() {
        if l.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            return &text[..offset];
        }
        offset += l.len();
    }
    text
}

/// A line with its comment and the insides of its string and char literals removed, so
/// braces in them do not count.
fn code_only(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_str = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push('"');
            }
            '/' if chars.peek() == Some(&'/') => break,
            // A char literal such as '{' (not a lifetime such as 'a).
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let lit = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if lit {
                    while let Some(n) = chars.next() {
                        if n == '\\' {
                            chars.next();
                        } else if n == '\'' {
                            break;
                        }
                    }
                }
                out.push('\'');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Functions longer than `MAX_FN_LINES`: (name, first line, length).
fn long_functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = code.lines().map(code_only).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = fn_name(l) else { continue };
        let mut depth = 0i64;
        let mut opened = false;
        for (j, body) in lines.iter().enumerate().skip(i) {
            for c in body.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // A declaration without a body (trait method, extern).
            if !opened && body.trim_end().ends_with(';') {
                break;
            }
            if opened && depth <= 0 {
                let len = j - i + 1;
                if len > MAX_FN_LINES {
                    out.push((name.clone(), i + 1, len));
                }
                break;
            }
        }
    }
    out
}

/// The name of the function this line starts, if it starts one.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let mut words = t.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w {
            "pub" | "const" | "async" | "unsafe" | "extern" | "\"C\"" => continue,
            w if w.starts_with("pub(") => continue,
            "fn" => {
                let name: String = words
                    .next()?
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                return (!name.is_empty()).then_some(name);
            }
            _ => return None,
        }
    }
    None
}

/// The top-level modules each top-level module of `src` uses through `crate::`.
fn module_graph(src: &Path) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(src)? {
        let rel = file.strip_prefix(src).unwrap_or(&file);
        let Some(first) = rel.components().next() else {
            continue;
        };
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        let code: String = non_test_part(&text)
            .lines()
            .map(code_only)
            .collect::<Vec<_>>()
            .join("\n");
        let deps = graph.entry(module.clone()).or_default();
        for used in crate_uses(&code) {
            if used != module {
                deps.insert(used);
            }
        }
    }
    Ok(graph)
}

/// The first segment of every `crate::` path in `code`, braces included
/// (`use crate::{a::b, c}` uses `a` and `c`).
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group's top level at commas.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// Every cycle in the module graph of `src`, each as the path that closes it.
fn import_cycles(src: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    Ok(cycles(&module_graph(src)?))
}

fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        walk(graph, start, &mut path, &mut found, &mut seen);
    }
    found
}

fn walk(
    graph: &BTreeMap<String, BTreeSet<String>>,
    at: &str,
    path: &mut Vec<String>,
    found: &mut Vec<Vec<String>>,
    seen: &mut BTreeSet<BTreeSet<String>>,
) {
    for next in graph.get(at).into_iter().flatten() {
        if let Some(i) = path.iter().position(|p| p == next) {
            let members: BTreeSet<String> = path[i..].iter().cloned().collect();
            if seen.insert(members) {
                let mut cycle = path[i..].to_vec();
                cycle.push(next.clone());
                found.push(cycle);
            }
        } else if path.len() < graph.len() {
            path.push(next.clone());
            walk(graph, next, path, found, seen);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_function_lines_ignoring_braces_in_strings_and_comments() {
        let body = "    let s = \"}}}\"; // }\n    let c = '}';\n".repeat(40);
        let code = format!("pub(crate) fn long() {{\n{body}}}\nfn short() {{}}\n");
        assert_eq!(long_functions(&code), vec![("long".to_string(), 1, 82)]);
        assert!(long_functions("fn f<'a>(x: &'a str) {\n}\n").is_empty());
    }

    #[test]
    fn finds_crate_uses_in_groups_and_paths() {
        let code =
            "use crate::{\n    agent::x,\n    output::{a, b},\n};\nlet m = crate::kernel::f();";
        let uses: Vec<String> = crate_uses(code).into_iter().collect();
        assert_eq!(uses, ["agent", "kernel", "output"]);
    }

    #[test]
    fn finds_cycles() {
        let g: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(cycles(&g), vec![vec!["a", "b", "c", "a"]]);
    }

    #[test]
    fn stops_at_the_test_module() {
        let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n}\n";
        assert_eq!(non_test_part(text), "fn a() {}\n");
    }
}
