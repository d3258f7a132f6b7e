//! `clusters`: what makes each cluster of an environment one of its own.

use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::{Cluster, DEFAULT_CONTEXT};
use std::collections::BTreeMap;

/// `clusters`: at least one; each with a context and a clusterName of its own, and the
/// globals every chart may read.
pub(super) fn check_clusters(problems: &mut Problems, at: &FieldPath, clusters: &[Cluster]) {
    if clusters.is_empty() {
        problems.add(at, "an environment needs at least one cluster");
    }
    let mut contexts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let at = at.index(i);
        if cluster.context.trim().is_empty() {
            problems.add(&at.key("context"), "must not be empty");
        } else if cluster.context == DEFAULT_CONTEXT {
            problems.add(
                &at.key("context"),
                format!("{DEFAULT_CONTEXT:?} is reserved: in release descriptors it means every other cluster; rename the kube context"),
            );
        } else if let Some(first) = contexts.get(cluster.context.as_str()) {
            problems.add(
                &at.key("context"),
                format!(
                    "{:?} is already the context of clusters[{first}]",
                    cluster.context
                ),
            );
        } else {
            contexts.insert(&cluster.context, i);
        }
        let global = at.key("global");
        let name = &cluster.global.cluster_name;
        if name.trim().is_empty() {
            problems.add(&global.key("clusterName"), "must not be empty");
        } else if let Some(first) = names.get(name.as_str()) {
            problems.add(
                &global.key("clusterName"),
                format!("{name:?} is already the clusterName of clusters[{first}]"),
            );
        } else {
            names.insert(name, i);
        }
        if cluster.global.env.trim().is_empty() {
            problems.add(&global.key("env"), "must not be empty");
        }
        if cluster.global.region.trim().is_empty() {
            problems.add(&global.key("region"), "must not be empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;

    #[test]
    fn an_environment_has_clusters() {
        let text = DEV.split("clusters:").next().unwrap().to_string() + "clusters: []\n";
        assert_eq!(
            environment_problems(&text),
            ["environments/dev.yaml:5: clusters: an environment needs at least one cluster"]
        );
    }

    #[test]
    fn each_cluster_has_its_own_context_and_cluster_name() {
        let text = DEV
            .replace("context: dev-east", "context: dev-west")
            .replace("clusterName: dev-east", "clusterName: dev-west");
        assert_eq!(
            environment_problems(&text),
            [
                "environments/dev.yaml:8: clusters[1].context: \"dev-west\" is already the context of clusters[0]",
                "environments/dev.yaml:10: clusters[1].global.clusterName: \"dev-west\" is already the clusterName of clusters[0]",
            ]
        );
    }

    #[test]
    fn default_is_no_context_and_globals_are_not_empty() {
        let text = DEV
            .replace("context: dev-east", "context: default")
            .replace(
                "env: dev, region: west, clusterName: dev-west",
                "env: \" \", region: west, clusterName: \"\"",
            )
            .replace("context: dev-west", "context: \"\"");
        assert_eq!(
            environment_problems(&text),
            [
                "environments/dev.yaml:6: clusters[0].context: must not be empty",
                "environments/dev.yaml:7: clusters[0].global.clusterName: must not be empty",
                "environments/dev.yaml:7: clusters[0].global.env: must not be empty",
                "environments/dev.yaml:8: clusters[1].context: \"default\" is reserved: in release descriptors it means every other cluster; rename the kube context",
            ]
        );
    }
}
