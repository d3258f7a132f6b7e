//! `spec.scaling`: replica counts per context.

use super::names::dns_subdomain_problem;
use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::Scaling;
use std::collections::BTreeMap;

/// `spec.scaling`: one entry per context, each naming a workload once, by an object
/// name.
pub(super) fn check_scaling(problems: &mut Problems, at: &FieldPath, scaling: &[Scaling]) {
    let mut contexts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in scaling.iter().enumerate() {
        let at = at.index(i);
        if entry.context.trim().is_empty() {
            problems.add(&at.key("context"), "must not be empty");
        } else if let Some(first) = contexts.get(entry.context.as_str()) {
            problems.add(
                &at.key("context"),
                format!("{:?} already has replica counts in spec.scaling[{first}]; merge the two entries", entry.context),
            );
        } else {
            contexts.insert(&entry.context, i);
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (j, replicas) in entry.replicas.iter().enumerate() {
            let name_at = at.key("replicas").index(j).key("name");
            if let Some(why) = dns_subdomain_problem(&replicas.name) {
                problems.add(&name_at, why);
            } else if let Some(first) = names.get(replicas.name.as_str()) {
                problems.add(
                    &name_at,
                    format!(
                        "{:?} is already counted in replicas[{first}] of this entry",
                        replicas.name
                    ),
                );
            } else {
                names.insert(&replicas.name, j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;

    #[test]
    fn one_entry_per_context_each_counting_a_workload_once() {
        let scaling = "  scaling:\n    - { context: default, replicas: [ { name: web, count: 2 }, { name: Web_1, count: 1 }, { name: web, count: 3 } ] }\n    - { context: default, replicas: [] }\n    - { context: \"\", replicas: [] }\n";
        let text = APP1.replace("  secrets:\n", &format!("{scaling}  secrets:\n"));
        assert_eq!(
            release_problems(&text),
            [
                "releases/app1/release.yaml:8: spec.scaling[0].replicas[1].name: \"Web_1\" is not a valid object name (DNS-1123 subdomain): use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
                "releases/app1/release.yaml:8: spec.scaling[0].replicas[2].name: \"web\" is already counted in replicas[0] of this entry",
                "releases/app1/release.yaml:9: spec.scaling[1].context: \"default\" already has replica counts in spec.scaling[0]; merge the two entries",
                "releases/app1/release.yaml:10: spec.scaling[2].context: must not be empty",
            ]
        );
    }
}
