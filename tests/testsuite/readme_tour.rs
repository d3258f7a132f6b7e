//! The README's commands parse: its second block (commands for clusters of your own)
//! and the flotilla lines of its tour; `fleet::readme_tour` runs the tour.

use clap::Parser;
use flotilla::cli::Cli;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub(crate) fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The lines of the `n`th ```sh block after `heading` in the README.
pub(crate) fn readme_block(heading: &str, n: usize) -> Vec<String> {
    let text = read("README.md");
    let (_, after) = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in README.md"));
    let block = after
        .split("```sh\n")
        .nth(n + 1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("no sh block {n} under `{heading}`"));
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The commands for clusters of your own are commands flotilla accepts.
#[test]
fn the_readme_commands_beyond_the_demos_clusters_parse() {
    let lines = readme_block("## A tour", 1);
    assert!(lines.len() >= 4, "{lines:?}");
    for line in lines {
        let command = line.split(" # ").next().unwrap_or(&line);
        let words: Vec<&str> = command.split_whitespace().collect();
        if let Err(err) = Cli::try_parse_from(&words) {
            panic!("README command does not parse: {line}\n{err}");
        }
    }
    for line in readme_block("## A tour", 0) {
        let command = line.split(" # ").next().unwrap_or(&line);
        if command.starts_with("flotilla ") {
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Err(err) = Cli::try_parse_from(&words) {
                panic!("README command does not parse: {line}\n{err}");
            }
        }
    }
}
