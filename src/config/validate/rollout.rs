//! `rollout`: its settings, and each wave's (`rollout.waves`): limits, soak and verify
//! commands that can run.

use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::{Environment, Rollout};
use std::collections::{BTreeMap, BTreeSet};

/// `rollout`'s own settings: a concurrency and timeouts that can run.
pub(super) fn check_rollout(problems: &mut Problems, at: &FieldPath, rollout: &Rollout) {
    if rollout.concurrency == 0 {
        problems.add(
            &at.key("concurrency"),
            "0 would deploy to no cluster; give the number of clusters in flight at once (1 or more)",
        );
    }
    if rollout.timeout.is_zero() {
        problems.add(
            &at.key("timeout"),
            "0s leaves no time for a rollout; give a duration such as 5m",
        );
    }
    if rollout.rollback_timeout.is_some_and(|t| t.is_zero()) {
        problems.add(
            &at.key("rollback_timeout"),
            "0s leaves no time to put a cluster back; give a duration such as 5m",
        );
    }
}

/// `rollout.waves`: each entry names a wave some cluster is in, once, with settings
/// that can run.
pub(super) fn check_waves(problems: &mut Problems, at: &FieldPath, env: &Environment) {
    let known: BTreeSet<u32> = env.clusters.iter().map(|c| c.wave).collect();
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, settings) in env.rollout.waves.iter().enumerate() {
        let at = at.index(i);
        if let Some(first) = seen.insert(settings.wave, i) {
            problems.add(
                &at.key("wave"),
                format!(
                    "wave {} already has its settings in rollout.waves[{first}]; give each wave one entry",
                    settings.wave
                ),
            );
        } else if !known.contains(&settings.wave) {
            let waves: Vec<String> = known.iter().map(u32::to_string).collect();
            problems.add(
                &at.key("wave"),
                format!(
                    "{} is not the wave of any cluster (the clusters' waves: {})",
                    settings.wave,
                    waves.join(", ")
                ),
            );
        }
        if settings.concurrency == Some(0) {
            problems.add(
                &at.key("concurrency"),
                "0 would deploy to no cluster of the wave; give the number of its clusters in flight at once (1 or more)",
            );
        }
        if settings.soak.is_some_and(|d| d.is_zero()) {
            problems.add(
                &at.key("soak"),
                "0s watches nothing; give a duration such as 10m, or leave soak out",
            );
        }
        for (j, command) in settings.verify.iter().enumerate() {
            let at = at.key("verify").index(j);
            if command.helm_tests && !command.run.is_empty() {
                problems.add(
                    &at.key("helm_tests"),
                    "true with a `run` command: a verify gate is one or the other; give each its own entry",
                );
            } else if !command.helm_tests && command.run.trim().is_empty() {
                problems.add(
                    &at.key("run"),
                    "\"\" is an empty command: it verifies nothing; give a shell command line such as ./scripts/smoke.sh (or helm_tests: true for the chart's test hooks)",
                );
            }
            if command.timeout.is_zero() {
                problems.add(
                    &at.key("timeout"),
                    "0s leaves no time for the command; give a duration such as 2m",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;

    fn with_rollout(rollout: &str) -> Vec<String> {
        environment_problems(&format!("{DEV}rollout:\n{rollout}"))
    }

    #[test]
    fn a_rollout_has_room_and_time_to_run() {
        assert_eq!(
            with_rollout("  concurrency: 0\n  timeout: 0s\n  rollback_timeout: 0s\n"),
            [
                "environments/dev.yaml:12: rollout.concurrency: 0 would deploy to no cluster; give the number of clusters in flight at once (1 or more)",
                "environments/dev.yaml:13: rollout.timeout: 0s leaves no time for a rollout; give a duration such as 5m",
                "environments/dev.yaml:14: rollout.rollback_timeout: 0s leaves no time to put a cluster back; give a duration such as 5m",
            ]
        );
    }

    #[test]
    fn each_wave_of_a_cluster_has_one_entry_that_can_run() {
        let waves = "  waves:\n    - { wave: 1, concurrency: 0, soak: 0s }\n    - { wave: 1 }\n    - { wave: 7 }\n";
        assert_eq!(
            with_rollout(waves),
            [
                "environments/dev.yaml:13: rollout.waves[0].concurrency: 0 would deploy to no cluster of the wave; give the number of its clusters in flight at once (1 or more)",
                "environments/dev.yaml:13: rollout.waves[0].soak: 0s watches nothing; give a duration such as 10m, or leave soak out",
                "environments/dev.yaml:14: rollout.waves[1].wave: wave 1 already has its settings in rollout.waves[0]; give each wave one entry",
                "environments/dev.yaml:15: rollout.waves[2].wave: 7 is not the wave of any cluster (the clusters' waves: 0, 1)",
            ]
        );
    }

    #[test]
    fn a_verify_command_runs_something_in_some_time() {
        let waves = "  waves:\n    - wave: 0\n      verify: [ { run: \" \", timeout: 0s } ]\n";
        assert_eq!(
            with_rollout(waves),
            [
                "environments/dev.yaml:14: rollout.waves[0].verify[0].run: \"\" is an empty command: it verifies nothing; give a shell command line such as ./scripts/smoke.sh (or helm_tests: true for the chart's test hooks)",
                "environments/dev.yaml:14: rollout.waves[0].verify[0].timeout: 0s leaves no time for the command; give a duration such as 2m",
            ]
        );
        let both = "  waves:\n    - wave: 0\n      verify: [ { run: ./smoke.sh, helm_tests: true }, { helm_tests: true }, { timeout: 1m } ]\n";
        assert_eq!(
            with_rollout(both),
            [
                "environments/dev.yaml:14: rollout.waves[0].verify[0].helm_tests: true with a `run` command: a verify gate is one or the other; give each its own entry",
                "environments/dev.yaml: rollout.waves[0].verify[2].run: \"\" is an empty command: it verifies nothing; give a shell command line such as ./scripts/smoke.sh (or helm_tests: true for the chart's test hooks)",
            ]
        );
    }
}
