//! The CI recipes of docs/ci/ run: every `flotilla ...` command each recipe contains
//! (GitHub Actions, GitLab CI, Jenkinsfile), with `$BRANCH` set to `dev`, is run in
//! order against the shared fleet, in a copy of this repo's environments and `hello`
//! (in a namespace of its own), and exits 0 (a `diff --exit-code` gate 0 or 2): lint,
//! the deploy plan, the pull-request gate, the deploy (also through a freeze), status
//! and the rollback to what ran before. No static Vault credential: each recipe's
//! environment file logs in with the CI's OIDC token, as the recipe's own comment says
//! (`vault.auth.method: jwt`), at a `jwt` mount of the fleet's Vault that trusts a key
//! the test signs with; GitHub's token endpoint is a local server. A recipe without
//! those steps fails the test.

mod rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::copy_of_this_repo;
use rollout_support::jwt::{fake_token_endpoint, JwtIssuer};
use std::path::Path;

/// The `aud` of the recipes' ID tokens.
const AUDIENCE: &str = "https://vault.example.com";

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
            let command = rest[..end]
                .replace("\"$BRANCH\"", branch)
                .replace("\"$OVERRIDE_FREEZE\"", "recipe-test-override");
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

/// The recipe's `auth: { method: jwt, ... }` (from its comment on the environment
/// files), at `mount`.
fn recipe_auth(recipe: &str, text: &str, mount: &str) -> String {
    let line = text
        .lines()
        .map(|l| l.trim_start_matches(['#', '/', ' ']))
        .find(|l| l.starts_with("auth: { method: jwt,"))
        .unwrap_or_else(|| {
            panic!("{recipe}: no `auth: {{ method: jwt, ... }}` for the environment files")
        });
    line.replacen("method: jwt,", &format!("method: jwt, mount: {mount},"), 1)
}

fn flotilla(
    fleet: &Fleet,
    root: &Path,
    args: &[String],
    oidc: &[(String, String)],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        // The recipes' report files (junit.xml, summary.md) go to the copy, as in a job.
        .current_dir(root)
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(fleet.env())
        // No static credential: the OIDC login the environment file says.
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ROLE_ID")
        .env_remove("VAULT_SECRET_ID")
        .envs(oidc.iter().map(|(k, v)| (k, v)))
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
            "diff hello --branch dev --exit-code",
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
        // Freeze-aware: a deploy through a freeze, with its reason.
        assert!(
            found.iter().any(|c| c.starts_with("deploy hello --branch dev --create-namespace --override-freeze --reason recipe-test-override")),
            "{recipe}: no deploy through a freeze in {found:#?}"
        );
        // OIDC login: no static Vault credential anywhere.
        for static_credential in ["VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_TOKEN"] {
            assert!(
                !text.contains(static_credential),
                "{recipe}: {static_credential}"
            );
        }
        recipe_auth(recipe, &text, "jwt");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn every_command_of_every_ci_recipe_runs_against_the_fleet() {
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
        // dev logs in as the recipe says, at a jwt mount of this test's own.
        let issuer = JwtIssuer::start(fleet, &namespace, AUDIENCE).await;
        let auth = recipe_auth(recipe, &text, &issuer.mount);
        let env_file = dir.path().join("environments/dev.yaml");
        let env_text = std::fs::read_to_string(&env_file).unwrap();
        let approle =
            "auth: { method: approle, role_id_env: VAULT_ROLE_ID, secret_id_env: VAULT_SECRET_ID }";
        assert!(env_text.contains(approle), "{env_text}");
        std::fs::write(&env_file, env_text.replace(approle, &auth)).unwrap();
        let jwt = issuer.token("dev", AUDIENCE);
        let oidc: Vec<(String, String)> = if auth.contains("jwt_env: VAULT_ID_TOKEN") {
            vec![("VAULT_ID_TOKEN".into(), jwt.clone())]
        } else {
            let (url, _) = fake_token_endpoint("recipe-request-token", jwt.clone());
            vec![
                ("ACTIONS_ID_TOKEN_REQUEST_URL".into(), url),
                (
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
                    "recipe-request-token".into(),
                ),
            ]
        };
        // What ran before the pipeline: the rollback step goes back to it.
        let before: Vec<String> = "deploy hello --env dev --create-namespace --version 0.9.0"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let out = flotilla(fleet, dir.path(), &before, &oidc);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for command in commands(&text, "dev") {
            let out = flotilla(fleet, dir.path(), &command, &oidc);
            // A pull-request gate: 0 nothing would change, 2 changes; 1 an error.
            let gate = command.iter().any(|w| w == "--exit-code");
            assert!(
                out.status.success() || (gate && out.status.code() == Some(2)),
                "{recipe}: `flotilla {}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
                command.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            for stream in [&out.stdout, &out.stderr] {
                let text = String::from_utf8_lossy(stream);
                assert!(
                    !text.contains(&jwt) && !text.contains("recipe-request-token"),
                    "{recipe}: {text}"
                );
            }
        }
        // Every login of the recipe's commands was revoked at the end of its command.
        assert_eq!(issuer.live_logins(fleet).await, 0, "{recipe}");
    }
}
