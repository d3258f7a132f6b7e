//! The CI recipes of docs/ci/ hold the promotion steps: lint, the deploy plan, the
//! pull-request gate (`diff --exit-code`), the deploy with its JSON report (and JUnit
//! where the CI server reads it), a deploy through a freeze with its reason, status and
//! rollback; and no static Vault credential: each logs in with the CI's OIDC token.
//! `fleet::ci_recipes` runs every command they contain.

use std::path::Path;

pub(crate) const RECIPES: &[&str] = &["github-actions.yml", "gitlab-ci.yml", "Jenkinsfile"];

/// The `flotilla` commands of a recipe, in order: from `flotilla ` up to the end of
/// the shell word list (a quote closing a Groovy string, a redirection, a pipe, `;`,
/// `&&`), comment lines skipped, `"$BRANCH"` as `branch`.
pub(crate) fn commands(text: &str, branch: &str) -> Vec<Vec<String>> {
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
pub(crate) fn recipe_auth(recipe: &str, text: &str, mount: &str) -> String {
    let line = text
        .lines()
        .map(|l| l.trim_start_matches(['#', '/', ' ']))
        .find(|l| l.starts_with("auth: { method: jwt,"))
        .unwrap_or_else(|| {
            panic!("{recipe}: no `auth: {{ method: jwt, ... }}` for the environment files")
        });
    line.replacen("method: jwt,", &format!("method: jwt, mount: {mount},"), 1)
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
