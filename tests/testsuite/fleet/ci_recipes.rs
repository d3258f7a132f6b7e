//! The CI recipes of docs/ci/ run: every `flotilla ...` command each recipe contains
//! (GitHub Actions, GitLab CI, Jenkinsfile), with `$BRANCH` set to `dev`, is run in
//! order against the shared fleet, in a copy of this repo's environments and `hello`
//! (in a namespace of its own), and exits 0: lint, the deploy plan, the deploy, status
//! and the rollback to what ran before. A recipe without those steps fails the test.

mod rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::copy_of_this_repo;
use std::path::Path;

const RECIPES: &[&str] = &["github-actions.yml", "gitlab-ci.yml", "Jenkinsfile"];

/// The `flotilla` commands of a recipe, in order: from `flotilla ` up to the end of
/// the shell word list (a quote closing a Groovy string, a redirection, a pipe, `;`,
/// `&&`), comment lines skipped, `"$BRANCH"` as `branch`.
fn commands(text: &str, branch: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with("//"))
        .filter_map(|l| {
            let start = l.find("flotilla ")?;
            let rest = &l[start..];
            let end = rest.find(['\'', '>', '|', ';', '&']).unwrap_or(rest.len());
            let command = rest[..end].replace("\"$BRANCH\"", branch);
            Some(
                command
                    .split_whitespace()
                    .skip(1)
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|words| !words.is_empty())
        .collect()
}

fn flotilla(fleet: &Fleet, root: &Path, args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(fleet.env())
        // AppRole, as the environment file says.
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn every_recipe_has_the_promotion_steps() {
    for recipe in RECIPES {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs/ci")
                .join(recipe),
        )
        .unwrap();
        let found: Vec<String> = commands(&text, "dev").iter().map(|c| c.join(" ")).collect();
        for expected in [
            "lint",
            "deploy hello --branch dev --dry-run",
            "status hello --branch dev",
            "rollback hello --branch dev",
        ] {
            assert!(
                found.iter().any(|c| c == expected),
                "{recipe}: no `flotilla {expected}` in {found:#?}"
            );
        }
        // The deploy keeps its JSON report; GitLab and Jenkins also publish a JUnit one
        // (GitHub shows the summary flotilla appends to $GITHUB_STEP_SUMMARY).
        let deploy = found
            .iter()
            .find(|c| c.starts_with("deploy hello --branch dev --create-namespace"))
            .unwrap_or_else(|| panic!("{recipe}: no deploy step in {found:#?}"));
        assert!(deploy.ends_with("-o json"), "{recipe}: {deploy}");
        if *recipe != "github-actions.yml" {
            assert!(deploy.contains("--junit junit.xml"), "{recipe}: {deploy}");
        }
    }
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
        let out = flotilla(fleet, dir.path(), &before);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for command in commands(&text, "dev") {
            let out = flotilla(fleet, dir.path(), &command);
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
