//! The CI recipes of docs/ci/ run (`ci_recipes` checks that they hold the steps): every
//! `flotilla ...` command each recipe contains (GitHub Actions, GitLab CI,
//! Jenkinsfile), with `$BRANCH` set to `dev`, is run in order against the shared fleet,
//! in a copy of this repo's environments and `hello` (in a namespace of its own), and
//! exits 0 (a `diff --exit-code` gate 0 or 1): lint, the deploy plan, the pull-request
//! gate, the deploy (also through a freeze), status and the rollback to what ran before.
//! No static Vault credential: each recipe's environment file logs in with the CI's
//! OIDC token, as the recipe's own comment says (`vault.auth.method: jwt`), at a `jwt`
//! mount of the fleet's Vault that trusts a key the test signs with (GitLab-shaped
//! tokens for the GitLab recipe, GitHub-shaped for the others); GitHub's token endpoint
//! is a local server.

use crate::support::rollout as rollout_support;

use crate::ci_recipes::{commands, recipe_auth, RECIPES};
use flotilla_fleet::testing::Fleet;
use rollout_support::copy_of_this_repo;
use rollout_support::jwt::{fake_token_endpoint, Ci, JwtIssuer};
use std::path::Path;

/// The `aud` of the recipes' ID tokens.
const AUDIENCE: &str = "https://vault.example.com";

/// `flotilla --root ROOT ARGS` from the copy (its report files land there, as in a
/// job), with the fleet's variables and no static Vault credential: `oidc` holds what
/// the CI gives its job to log in with.
fn run(
    fleet: &Fleet,
    root: &Path,
    args: &[String],
    oidc: &[(String, String)],
) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rollout_support::at_root(fleet, root, &args)
        .env_remove("VAULT_ROLE_ID")
        .env_remove("VAULT_SECRET_ID")
        .envs(oidc.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
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
        // GitLab's jobs carry GitLab's claims (`project_path`, `ref: dev`, `ref_type`);
        // GitHub's and the Jenkins plugin's (configured alike) GitHub's.
        let ci = if *recipe == "gitlab-ci.yml" {
            Ci::GitLab
        } else {
            Ci::GitHub
        };
        let issuer = JwtIssuer::start_for(fleet, &namespace, AUDIENCE, ci).await;
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
        let out = run(fleet, dir.path(), &before, &oidc);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for command in commands(&text, "dev") {
            let out = run(fleet, dir.path(), &command, &oidc);
            // A pull-request gate: 0 nothing would change, 1 changes; 2 or 3 an error.
            let gate = command.iter().any(|w| w == "--exit-code");
            assert!(
                out.status.success() || (gate && out.status.code() == Some(1)),
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
