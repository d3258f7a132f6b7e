//! The environment files together: a branch deploys to one environment, a cluster
//! belongs to one, and `promotion.from` chains end without a loop.

use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::{ConfigError, LoadedEnvironment};
use std::collections::BTreeMap;

/// The checks across environment files: no two environments deploy from the same branch
/// or share a kube context (a cluster belongs to one environment, or a deploy to one
/// would overwrite the other's release there).
pub fn check_environments(environments: &[LoadedEnvironment]) -> Result<(), ConfigError> {
    let mut errors = Vec::new();
    let mut branches: BTreeMap<&str, &LoadedEnvironment> = BTreeMap::new();
    let mut contexts: BTreeMap<&str, &LoadedEnvironment> = BTreeMap::new();
    for env in environments {
        let mut problems = Problems::new(&env.file, None);
        let root = FieldPath::root();
        if let Some(branch) = &env.environment.branch {
            match branches.get(branch.as_str()) {
                Some(first) => problems.add(
                    &root.key("branch"),
                    format!(
                        "{branch:?} is already the branch of environment {:?} ({}); a merge must deploy to one environment",
                        first.environment.name,
                        first.file.display()
                    ),
                ),
                None => {
                    branches.insert(branch, env);
                }
            }
        }
        for (i, cluster) in env.environment.clusters.iter().enumerate() {
            match contexts.get(cluster.context.as_str()) {
                Some(first) if !std::ptr::eq(*first, env) => problems.add(
                    &root.key("clusters").index(i).key("context"),
                    format!(
                        "{:?} is already a cluster of environment {:?} ({}); a cluster belongs to one environment",
                        cluster.context,
                        first.environment.name,
                        first.file.display()
                    ),
                ),
                Some(_) => {}
                None => {
                    contexts.insert(&cluster.context, env);
                }
            }
        }
        if let Some(problem) = chain_problem(env, environments) {
            problems.add(&root.key("promotion").key("from"), problem);
        }
        if let Err(err) = problems.finish() {
            errors.push(err);
        }
    }
    ConfigError::from_list(errors)
}

/// Why `env`'s `promotion.from` is not a chain: an unknown environment, or a loop back
/// to `env`.
fn chain_problem(env: &LoadedEnvironment, environments: &[LoadedEnvironment]) -> Option<String> {
    let name = &env.environment.name;
    let from_of = |n: &str| {
        environments
            .iter()
            .find(|e| e.environment.name == n)
            .map(|e| e.environment.promotion.as_ref().map(|c| c.from.as_str()))
    };
    let first = env.environment.promotion.as_ref()?.from.as_str();
    if first == name {
        return None; // reported with the file's own checks
    }
    let mut chain = vec![name.as_str()];
    let mut next = Some(first);
    while let Some(current) = next {
        match from_of(current) {
            None => {
                let known: Vec<&str> = environments
                    .iter()
                    .map(|e| e.environment.name.as_str())
                    .collect();
                return Some(format!(
                    "{current:?} is not an environment (known: {})",
                    known.join(", ")
                ));
            }
            Some(_) if chain.contains(&current) => {
                chain.push(current);
                return Some(format!("the promotion chain loops: {}", chain.join(" <- ")));
            }
            Some(before) => {
                chain.push(current);
                next = before;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;
    use super::*;
    use std::path::PathBuf;

    fn loaded(name: &str, text: &str) -> LoadedEnvironment {
        LoadedEnvironment {
            file: PathBuf::from(format!("no-such-dir/{name}.yaml")),
            environment: environment(text),
        }
    }

    fn named(name: &str, extra: &str) -> LoadedEnvironment {
        let text = DEV.replace("dev", name) + extra;
        loaded(name, &text)
    }

    #[test]
    fn a_branch_and_a_cluster_belong_to_one_environment() {
        let dev = named("dev", "branch: main\n");
        let mut staging = named("staging", "branch: main\n");
        staging.environment.clusters[1].context = "dev-east".to_string();
        assert_eq!(
            messages(check_environments(&[dev, staging])),
            [
                "no-such-dir/staging.yaml: branch: \"main\" is already the branch of environment \"dev\" (no-such-dir/dev.yaml); a merge must deploy to one environment",
                "no-such-dir/staging.yaml: clusters[1].context: \"dev-east\" is already a cluster of environment \"dev\" (no-such-dir/dev.yaml); a cluster belongs to one environment",
            ]
        );
    }

    #[test]
    fn a_promotion_chain_names_environments_and_ends() {
        let dev = named("dev", "promotion: { from: prod }\n");
        let staging = named("staging", "promotion: { from: dev }\n");
        let prod = named("prod", "promotion: { from: staging }\n");
        let qa = named("qa", "promotion: { from: uat }\n");
        let problems = messages(check_environments(&[dev, staging, prod, qa]));
        assert_eq!(
            problems,
            [
                "no-such-dir/dev.yaml: promotion.from: the promotion chain loops: dev <- prod <- staging <- dev",
                "no-such-dir/staging.yaml: promotion.from: the promotion chain loops: staging <- dev <- prod <- staging",
                "no-such-dir/prod.yaml: promotion.from: the promotion chain loops: prod <- staging <- dev <- prod",
                "no-such-dir/qa.yaml: promotion.from: \"uat\" is not an environment (known: dev, staging, prod, qa)",
            ]
        );
        let dev = named("dev", "");
        let staging = named("staging", "promotion: { from: dev }\n");
        assert_eq!(
            messages(check_environments(&[dev, staging])),
            Vec::<String>::new()
        );
    }
}
