//! The on-call runbook's commands are commands flotilla accepts: every `flotilla ...`
//! line of docs/runbooks/rollback.md parses, and so does the command a report prints to
//! finish an interrupted rollback. (`fleet::runbook` runs the page's commands as written
//! on a fleet of the demo's clusters; the incidents they answer are tested in
//! tests/testsuite/fleet/rollout.rs and tests/testsuite/fleet/rollout_stop.rs.)

use clap::Parser;
use flotilla::cli::Cli;
use flotilla::rollout::executor::finish_command;
use flotilla::rollout::report::RevisionRef;

fn parses(line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    if let Err(err) = Cli::try_parse_from(&words) {
        panic!("runbook command does not parse: {line}\n{err}");
    }
}

#[test]
fn every_command_of_the_rollback_runbook_parses() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks/rollback.md"),
    )
    .unwrap();
    let commands: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("flotilla "))
        .collect();
    assert!(commands.len() >= 5, "{commands:?}");
    for command in commands {
        parses(command);
    }
}

#[test]
fn the_command_that_finishes_a_rollback_parses() {
    let before = RevisionRef {
        revision: 3,
        deployment_id: "20261123T172800Z-3f9a".into(),
    };
    parses(&finish_command(
        "hello",
        "prod",
        "prod-paris-dc1",
        Some(&before),
    ));
    parses(&finish_command("hello", "prod", "prod-paris-dc1", None));
}
