//! What a descriptor names outside itself: each context of its scaling and secrets is a
//! cluster's in some environment (or `default`), each key of `spec.environments` an
//! environment.

use super::names::{nearest, quoted_list};
use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::{ConfigError, LoadedEnvironment, LoadedRelease, DEFAULT_CONTEXT};
use std::collections::BTreeSet;

/// The checks that need every environment: each context a descriptor names (in scaling
/// and secrets) is the context of a cluster of some environment, or `default`; each key of
/// `spec.environments` is an environment.
pub fn check_release_contexts(
    release: &LoadedRelease,
    environments: &[LoadedEnvironment],
) -> Result<(), ConfigError> {
    let mut problems = Problems::new(&release.file, None);
    let known: BTreeSet<&str> = environments
        .iter()
        .flat_map(|e| e.environment.clusters.iter().map(|c| c.context.as_str()))
        .collect();
    let unknown = |context: &str| context != DEFAULT_CONTEXT && !known.contains(context);
    let hint = |context: &str| {
        let mut message = format!(
            "{context:?} is not the context of any cluster in environments/ (nor {DEFAULT_CONTEXT:?})"
        );
        let candidates = known.iter().copied().chain([DEFAULT_CONTEXT]);
        if let Some(near) = nearest(context, candidates) {
            message.push_str(&format!("; did you mean {near:?}?"));
        }
        message
    };
    let spec = FieldPath::root().key("spec");
    let desc = &release.descriptor;
    for (i, entry) in desc.spec.scaling.iter().enumerate() {
        if unknown(&entry.context) {
            problems.add(
                &spec.key("scaling").index(i).key("context"),
                hint(&entry.context),
            );
        }
    }
    for (i, secret) in desc.spec.secrets.iter().enumerate() {
        for (j, source) in secret.contexts.iter().enumerate() {
            if unknown(&source.name) {
                let at = spec
                    .key("secrets")
                    .index(i)
                    .key("contexts")
                    .index(j)
                    .key("name");
                problems.add(&at, hint(&source.name));
            }
        }
    }
    let env_names: Vec<&str> = environments
        .iter()
        .map(|e| e.environment.name.as_str())
        .collect();
    for name in desc.spec.environments.keys() {
        if !env_names.contains(&name.as_str()) {
            problems.add(
                &spec.key("environments").key(name),
                format!(
                    "{name:?} is not an environment; environments/ has {}",
                    quoted_list(env_names.iter().copied())
                ),
            );
        }
    }
    problems.finish()
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn contexts_and_environments_a_descriptor_names_exist() {
        let text = APP1
            .replace("name: default", "name: dev-wset")
            .replace("  secrets:", "  environments: { prod: { values: {} } }\n  scaling: [ { context: staging-x, replicas: [] } ]\n  secrets:");
        let release = LoadedRelease {
            // No such file: the lines are left out, as for a descriptor that moved.
            file: PathBuf::from("no-such-dir/release.yaml"),
            chart_dir: PathBuf::from("chart"),
            descriptor: super::super::problems::testing::release(&text),
        };
        let dev = LoadedEnvironment {
            file: PathBuf::from("environments/dev.yaml"),
            environment: environment(DEV),
        };
        assert_eq!(
            messages(check_release_contexts(&release, &[dev])),
            [
                "no-such-dir/release.yaml: spec.scaling[0].context: \"staging-x\" is not the context of any cluster in environments/ (nor \"default\")",
                "no-such-dir/release.yaml: spec.secrets[0].contexts[0].name: \"dev-wset\" is not the context of any cluster in environments/ (nor \"default\"); did you mean \"dev-west\"?",
                "no-such-dir/release.yaml: spec.environments.prod: \"prod\" is not an environment; environments/ has \"dev\"",
            ]
        );
    }
}
