//! The CI recipes of docs/ci/ run (`ci_recipes` checks that they hold the steps): every
//! `flotilla ...` command each recipe contains (GitHub Actions, GitLab CI,
//! Jenkinsfile), with `$BRANCH` set to `dev`, is run in order against the shared fleet,
//! in a copy of this repo's environments and `hello` (in a namespace of its own), and
//! exits 0: lint, the deploy plan, the deploy, status and the rollback to what ran
//! before. A recipe without those steps fails the test.

use crate::support::rollout as rollout_support;

use crate::ci_recipes::{commands, RECIPES};
use flotilla_fleet::testing::Fleet;
use rollout_support::{at_root, copy_of_this_repo};
use std::path::Path;

/// `flotilla --root ROOT ARGS` with the fleet's variables, logging in to Vault with
/// AppRole as the environment file says.
fn run(fleet: &Fleet, root: &Path, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    at_root(fleet, root, &args).output().unwrap()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn every_command_of_every_ci_recipe_runs_against_the_fleet() {
    let fleet = Fleet::shared();
    for (i, recipe) in RECIPES.iter().enumerate() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs/ci")
                .join(recipe),
        )
        .unwrap();
        let namespace = format!("ci-{}-{i}", std::process::id() % 10000);
        let dir = copy_of_this_repo(&namespace);
        // What ran before the pipeline: the rollback step goes back to it.
        let before: Vec<String> = "deploy hello --env dev --create-namespace --version 0.9.0"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let out = run(fleet, dir.path(), &before);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for command in commands(&text, "dev") {
            let out = run(fleet, dir.path(), &command);
            assert!(
                out.status.success(),
                "{recipe}: `flotilla {}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
                command.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
