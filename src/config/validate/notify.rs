//! `notify`: webhooks named by the variable that holds their URL, each event once.

use super::names::is_env_var_name;
use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::NotifyTarget;
use std::collections::BTreeSet;

/// Each webhook names the variable that holds its URL (never the URL), and an event
/// at most once.
pub(super) fn check_notify(problems: &mut Problems, at: &FieldPath, targets: &[NotifyTarget]) {
    for (i, target) in targets.iter().enumerate() {
        let at = at.index(i);
        let name = &target.url_env;
        if name.contains("://") {
            problems.add(
                &at.key("url_env"),
                "is a URL; a webhook URL is a credential and never goes in the repo: name the environment variable that holds it (url_env: SLACK_WEBHOOK_URL)",
            );
        } else if !is_env_var_name(name) {
            problems.add(
                &at.key("url_env"),
                format!("{name:?} is not an environment variable name (letters, digits and '_')"),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, event) in target.on.iter().flatten().enumerate() {
            if !seen.insert(*event) {
                problems.add(
                    &at.key("on").index(j),
                    format!("{:?} is listed twice", event.as_str()),
                );
            }
        }
        if target.on.as_ref().is_some_and(Vec::is_empty) {
            problems.add(
                &at.key("on"),
                "an empty list would send nothing; leave `on` out for every event",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;

    fn with_notify(notify: &str) -> Vec<String> {
        environment_problems(&format!("{DEV}notify:\n{notify}"))
    }

    #[test]
    fn a_webhook_url_is_never_in_the_file() {
        assert_eq!(
            with_notify("  - { kind: slack, url_env: \"https://hooks.example/T0\" }\n"),
            ["environments/dev.yaml:12: notify[0].url_env: is a URL; a webhook URL is a credential and never goes in the repo: name the environment variable that holds it (url_env: SLACK_WEBHOOK_URL)"]
        );
        assert_eq!(
            with_notify("  - { kind: slack, url_env: SLACK-URL }\n"),
            ["environments/dev.yaml:12: notify[0].url_env: \"SLACK-URL\" is not an environment variable name (letters, digits and '_')"]
        );
    }

    #[test]
    fn each_event_is_listed_once_and_the_list_is_not_empty() {
        assert_eq!(
            with_notify("  - { kind: webhook, url_env: HOOK, on: [failed, started, failed] }\n  - { kind: slack, url_env: SLACK, on: [] }\n"),
            [
                "environments/dev.yaml:12: notify[0].on[2]: \"failed\" is listed twice",
                "environments/dev.yaml:13: notify[1].on: an empty list would send nothing; leave `on` out for every event",
            ]
        );
    }
}
