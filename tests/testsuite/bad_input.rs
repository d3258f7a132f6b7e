//! The bad-input corpus: every folder under `tests/bad_input/` is one case, a small
//! deployment repo (or only what the broken file needs) with
//!
//! - `cmd`: the flotilla arguments, one line, split on spaces (`lint`, `template hello --env dev`);
//! - `expected.txt`: the exact stderr the command must print.
//!
//! The binary runs with the case folder as its current folder, so messages name files as
//! a user sees them (`environments/dev.yaml:12: ...`); any absolute path of the case folder
//! that still appears is written `<case>`. Every case must exit 2 (bad input, nothing
//! changed) without a panic.
//! `FLOTILLA_BLESS=1 cargo test --test testsuite bad_input::` rewrites the expected
//! files from the current output: review each by eye before committing.

use std::path::{Path, PathBuf};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad_input");

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn run_case(dir: &Path) -> Result<Outcome, String> {
    let cmd = std::fs::read_to_string(dir.join("cmd"))
        .map_err(|err| format!("cannot read {}/cmd: {err}", dir.display()))?;
    let args: Vec<&str> = cmd.split_whitespace().collect();
    if args.is_empty() {
        return Err(format!("{}/cmd is empty", dir.display()));
    }
    let output = crate::support::flotilla()
        .args(&args)
        .current_dir(dir)
        // The environment of the machine running the tests must not change the outcome
        // (`support::flotilla` leaves its settings out); Helm charts meet no `helm` (a
        // Helm chart's case is about finding it).
        .env("FLOTILLA_HELM", "./no-helm-here")
        .env("NO_COLOR", "1")
        .output()
        .map_err(|err| format!("cannot run flotilla: {err}"))?;
    let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for form in [dir.to_path_buf(), dir.canonicalize().unwrap_or_default()] {
        let text = form.display().to_string();
        if !text.is_empty() {
            stderr = stderr.replace(&text, "<case>");
        }
    }
    Ok(Outcome {
        code: output.status.code(),
        stderr,
    })
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    cases.sort();
    cases
}

#[test]
fn every_bad_input_case_exits_2_with_its_expected_message() {
    let bless = std::env::var_os("FLOTILLA_BLESS").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 20,
        "the corpus has only {} cases under {CORPUS}",
        cases.len()
    );
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let outcome = match run_case(dir) {
            Ok(outcome) => outcome,
            Err(err) => {
                failures.push(format!("{name}: {err}"));
                continue;
            }
        };
        let expected_file = dir.join("expected.txt");
        if bless {
            if let Err(err) = std::fs::write(&expected_file, &outcome.stderr) {
                failures.push(format!("{name}: cannot write expected.txt: {err}"));
            }
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if outcome.stderr.contains("panicked") || outcome.stderr.contains("RUST_BACKTRACE") {
            failures.push(format!("{name}: panicked:\n{}", outcome.stderr));
        }
        if outcome.code != Some(2) {
            failures.push(format!(
                "{name}: exit code {:?}, expected 2; stderr:\n{}",
                outcome.code, outcome.stderr
            ));
        }
        if outcome.stderr != expected {
            failures.push(format!(
                "{name}: stderr differs from expected.txt\n--- expected\n{expected}--- got\n{}",
                outcome.stderr
            ));
        }
        if outcome.stderr.trim().is_empty() {
            failures.push(format!("{name}: no message at all"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed (FLOTILLA_BLESS=1 rewrites expected.txt):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
