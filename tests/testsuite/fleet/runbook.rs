//! The on-call runbook works as written: every `flotilla` command of
//! docs/runbooks/rollback.md, in the page's order, on a fleet of the demo's clusters
//! (those of environments/dev.yaml), run from the repository root as the page says.
//! The release is deployed twice first; before each command that rolls back, a deploy
//! of a new version is the incident it rolls back. The page's example deployment id is
//! the one word replaced: by the first deploy's id. Every command exits 0, and at the
//! end every cluster is healthy on a deployment a rollback put there.

use crate::support::rollout::{describe, json};
use flotilla_fleet::testing::Fleet;
use std::process::Output;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The deployment id the runbook's examples use.
const EXAMPLE_ID: &str = "20261123T172800Z-3f9a";

/// Every command line of the runbook that starts with `flotilla `, in order.
fn runbook_commands() -> Vec<String> {
    let text =
        std::fs::read_to_string(std::path::Path::new(ROOT).join("docs/runbooks/rollback.md"))
            .expect("the runbook");
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("flotilla "))
        .map(String::from)
        .collect()
}

fn flotilla(fleet: &Fleet, args: &[&str]) -> Output {
    crate::support::flotilla()
        .args(args)
        .current_dir(ROOT)
        .envs(fleet.env())
        .output()
        .expect("run flotilla")
}

/// `deploy hello --env dev --version VERSION -o json`, which must succeed: its id.
fn deploy(fleet: &Fleet, version: &str) -> String {
    let out = flotilla(
        fleet,
        &[
            "deploy",
            "hello",
            "--env",
            "dev",
            "--version",
            version,
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    json(&out)["deployment_id"]
        .as_str()
        .expect("a deployment id")
        .to_owned()
}

/// Whether `words` changes clusters back (a rollback that is not a dry run).
fn rolls_back(words: &[&str]) -> bool {
    words.get(1) == Some(&"rollback") && !words.contains(&"--dry-run")
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn every_command_of_the_runbook_runs_as_written_on_the_demo_fleet() {
    let fleet = Fleet::dedicated(&["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"]);
    let commands = runbook_commands();
    assert!(commands.len() >= 8, "{commands:?}");
    assert!(
        commands.iter().all(|c| c.contains("--env dev")),
        "every command works on the demo's environment: {commands:?}"
    );
    let first = deploy(&fleet, "1.0.1");
    deploy(&fleet, "1.0.2");
    let mut incidents = 0;
    let mut last_rollback = None;
    for command in &commands {
        let command = command.replace(EXAMPLE_ID, &first);
        let words: Vec<&str> = command.split_whitespace().collect();
        if rolls_back(&words) {
            incidents += 1;
            deploy(&fleet, &format!("2.0.{incidents}"));
        }
        let out = flotilla(&fleet, &words[1..]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "runbook command `{command}` failed:\n{}",
            describe(&out)
        );
        if rolls_back(&words) {
            last_rollback = Some(command);
        }
    }
    assert!(incidents >= 5, "{commands:?}");
    // What the first deployment ran, from its records.
    let out = flotilla(
        &fleet,
        &[
            "get", "values", "hello", "--env", "dev", "--to", &first, "-o", "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let got = json(&out);
    for cluster in fleet.clusters() {
        assert_eq!(got[&cluster]["app_version"], "1.0.1", "{got:#}");
        assert_eq!(
            got[&cluster]["values"]["global"]["clusterName"],
            cluster.as_str(),
            "{got:#}"
        );
    }
    // The last rollback left every cluster healthy, on what a rollback recorded.
    let out = flotilla(&fleet, &["status", "hello", "--env", "dev", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status = json(&out);
    for cluster in fleet.clusters() {
        assert_eq!(
            status[&cluster]["health"], "healthy",
            "{cluster} after `{last_rollback:?}`: {status:#}"
        );
    }
}
