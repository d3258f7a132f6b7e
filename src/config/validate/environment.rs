//! One environment file on its own: its name, branch and promotion source, then each
//! section's checks.

use super::clusters::check_clusters;
use super::freeze::check_freeze;
use super::names::dns_label_problem;
use super::notify::check_notify;
use super::problems::Problems;
use super::rollout::{check_rollout, check_waves};
use super::vault::check_vault;
use crate::config::yaml::FieldPath;
use crate::config::{ConfigError, Environment};
use std::path::Path;

/// The checks of one environment file on its own.
pub(crate) fn check_environment(
    file: &Path,
    text: &str,
    env: &Environment,
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(file, Some(text));
    let root = FieldPath::root();

    if let Some(why) = dns_label_problem(&env.name, 63) {
        problems.add(&root.key("name"), why);
    } else if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
        if stem != env.name {
            problems.add(
                &root.key("name"),
                format!(
                    "{:?} differs from the file name {stem:?}; an environment is named by its file, so rename one of them",
                    env.name
                ),
            );
        }
    }
    if let Some(branch) = &env.branch {
        if branch.trim().is_empty() || branch.chars().any(char::is_whitespace) {
            problems.add(
                &root.key("branch"),
                format!("{branch:?} is not a git branch name"),
            );
        }
    }

    if let Some(chain) = &env.promotion {
        if chain.from == env.name {
            problems.add(
                &root.key("promotion").key("from"),
                format!(
                    "{:?} is this environment; name the environment whose artifacts come here (dev for staging, staging for prod)",
                    chain.from
                ),
            );
        }
    }

    if let Some(vault) = &env.vault {
        check_vault(&mut problems, &root.key("vault"), vault, &env.name);
    }
    let rollout = root.key("rollout");
    check_rollout(&mut problems, &rollout, &env.rollout);
    check_notify(&mut problems, &root.key("notify"), &env.notify);
    if let Some(freeze) = &env.freeze {
        check_freeze(&mut problems, &root.key("freeze"), freeze);
    }
    check_waves(&mut problems, &rollout.key("waves"), env);
    check_clusters(&mut problems, &root.key("clusters"), &env.clusters);
    problems.finish()
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;

    #[test]
    fn an_environment_is_named_by_its_file_with_a_dns_label() {
        let other = DEV.replace("name: dev", "name: staging");
        assert_eq!(
            environment_problems(&other),
            ["environments/dev.yaml:1: name: \"staging\" differs from the file name \"dev\"; an environment is named by its file, so rename one of them"]
        );
        let upper = DEV.replace("name: dev", "name: Dev");
        assert_eq!(
            environment_problems(&upper),
            ["environments/dev.yaml:1: name: \"Dev\" is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"]
        );
    }

    #[test]
    fn a_branch_is_one_word() {
        let text = format!("{DEV}branch: feature one\n");
        assert_eq!(
            environment_problems(&text),
            ["environments/dev.yaml:11: branch: \"feature one\" is not a git branch name"]
        );
    }

    #[test]
    fn an_environment_is_not_promoted_from_itself() {
        let text = format!("{DEV}promotion: {{ from: dev }}\n");
        assert_eq!(
            environment_problems(&text),
            ["environments/dev.yaml:11: promotion.from: \"dev\" is this environment; name the environment whose artifacts come here (dev for staging, staging for prod)"]
        );
    }

    #[test]
    fn every_problem_of_the_file_is_reported_in_the_order_of_its_sections() {
        let text = DEV
            .replace("name: dev", "name: dev\nrollout: { concurrency: 0 }\nnotify: [ { kind: slack, url_env: \"1X\" } ]")
            .replace("version: 2", "version: 3")
            .replace("region: east", "region: \"\"");
        assert_eq!(
            environment_problems(&text),
            [
                "environments/dev.yaml:6: vault.kv.version: 3 is not a KV version; use 1 or 2",
                "environments/dev.yaml:2: rollout.concurrency: 0 would deploy to no cluster; give the number of clusters in flight at once (1 or more)",
                "environments/dev.yaml:3: notify[0].url_env: \"1X\" is not an environment variable name (letters, digits and '_')",
                "environments/dev.yaml:12: clusters[1].global.region: must not be empty",
            ]
        );
    }
}
