//! ARCHITECTURE.md held against the code: every path and item it names exists, the
//! modules import one way (the order it draws), and no files import each other. The
//! imports are read from the source text: `crate::` paths and `super::` paths outside
//! comments and test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules from the top: each may import only those after it.
const LAYERS: &[&str] = &[
    "main",
    "cli",
    "action",
    "dashboard",
    "rollout",
    "ops",
    "storage",
    "release",
    "cluster",
    "notify",
    "vault",
    "engine",
    "config",
    "output",
    "redact",
];

/// Imported by every layer: the crate error and the exit codes.
const EDGE: &[&str] = &["error", "exit", "lib"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, by its path relative to `src/`, with its text up to
/// its test module (tests may reach anywhere).
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let code = text
                    .split("#[cfg(test)]\nmod tests")
                    .next()
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let rel = path.strip_prefix(base).unwrap_or(&path);
                out.insert(rel.to_string_lossy().into_owned(), code);
            }
        }
    }
    let mut out = BTreeMap::new();
    let src = root().join("src");
    walk(&src, &src, &mut out);
    out.retain(|path, _| !path.ends_with("_tests.rs"));
    out
}

/// `rollout/executor.rs` → `["rollout", "executor"]`; `rollout/mod.rs` → `["rollout"]`.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The files each file imports, by `crate::` and `super::` paths: the longest prefix
/// of the path that is a file.
fn file_imports(sources: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let by_module: BTreeMap<Vec<String>, &String> =
        sources.keys().map(|f| (module_path(f), f)).collect();
    let mut imports = BTreeMap::new();
    for (file, code) in sources {
        let me = module_path(file);
        let mut found = BTreeSet::new();
        for (at, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            let rest = &code[at..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let (base, segments): (Vec<String>, &[&str]) = match path.split_first() {
                Some((&"crate", rest)) => (Vec::new(), rest),
                Some((&"super", rest)) => (me[..me.len().saturating_sub(1)].to_vec(), rest),
                _ => continue,
            };
            let mut full = base;
            full.extend(segments.iter().map(|s| (*s).to_owned()));
            let target = (1..=full.len())
                .rev()
                .find_map(|k| by_module.get(&full[..k]).copied());
            if let Some(target) = target.filter(|t| *t != file) {
                found.insert(target.clone());
            }
        }
        imports.insert(file.clone(), found);
    }
    imports
}

fn top_module(file: &str) -> &str {
    file.split('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".rs")
}

#[test]
fn the_layers_point_one_way() {
    let rank = |module: &str| LAYERS.iter().position(|m| *m == module);
    let mut wrong = Vec::new();
    for (file, imported) in file_imports(&sources()) {
        let from = top_module(&file);
        for target in imported {
            let to = top_module(&target);
            if from == to || EDGE.contains(&to) || EDGE.contains(&from) {
                continue;
            }
            match (rank(from), rank(to)) {
                (Some(a), Some(b)) if a < b => {}
                _ => wrong.push(format!("{file} imports {target}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers of ARCHITECTURE.md:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn every_path_and_item_the_architecture_names_exists() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap_or_default();
    assert!(!doc.is_empty(), "ARCHITECTURE.md is missing");
    let sources = sources();
    let all: BTreeMap<String, String> = sources.clone();
    let mut missing = Vec::new();
    for (i, quoted) in doc.split('`').enumerate() {
        if i % 2 == 0 || quoted.contains(' ') {
            continue;
        }
        let looks_like_file = quoted.contains('/')
            && (quoted.ends_with('/') || quoted.ends_with(".rs") || quoted.ends_with(".md"));
        if looks_like_file {
            if !root().join(quoted).exists() {
                missing.push(format!("path {quoted}"));
            }
            continue;
        }
        if let Some(problem) = item_problem(quoted, &all) {
            missing.push(problem);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what the code does not have:\n  {}",
        missing.join("\n  ")
    );
}

/// `module::path::Item::method`: the longest prefix that is a module, then each of the
/// rest defined in that module's files. `None` when it holds, or is not an item path.
fn item_problem(quoted: &str, sources: &BTreeMap<String, String>) -> Option<String> {
    let segments: Vec<&str> = quoted.split("::").collect();
    let is_path = segments.len() > 1
        && segments
            .iter()
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if !is_path || !LAYERS.iter().chain(EDGE).any(|m| *m == segments[0]) {
        return None;
    }
    let module_of = |file: &str| module_path(file);
    let depth = (1..=segments.len()).rev().find(|&k| {
        sources.keys().any(|f| {
            module_of(f)
                .iter()
                .map(String::as_str)
                .eq(segments[..k].iter().copied())
        })
    })?;
    let prefix = &segments[..depth];
    // The module's own file and every file below it.
    let text: String = sources
        .iter()
        .filter(|(f, _)| {
            module_of(f)
                .iter()
                .map(String::as_str)
                .take(depth)
                .eq(prefix.iter().copied())
        })
        .map(|(_, code)| code.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let defines = |name: &str| {
        text.lines().any(|line| {
            let line = line.trim_start();
            let declared = [
                "fn", "struct", "enum", "trait", "type", "const", "static", "mod",
            ]
            .iter()
            .any(|kind| has_word(line, &format!("{kind} {name}")));
            declared || (line.starts_with("pub use") && has_word(line, name))
        })
    };
    segments[depth..]
        .iter()
        .find(|name| !defines(name))
        .map(|name| format!("item {quoted}: no `{name}` in {}", prefix.join("::")))
}

/// Whether `word` is in `line` with no identifier character right after it.
fn has_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        line[at + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}
