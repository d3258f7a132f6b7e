//! The plan of a run: the environment, the clusters it touches (all, or those named by
//! `--clusters`), grouped into waves in order, and the rollout settings.

use crate::config::{Cluster, LoadedEnvironment, OnFailure, Repo, WaveSettings};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("{file}: --clusters names {unknown:?}, not a cluster of environment `{env}` (it has: {known})")]
    UnknownCluster {
        file: PathBuf,
        env: String,
        unknown: String,
        known: String,
    },
    #[error("--clusters is empty: name at least one kube context")]
    EmptyLimit,
    #[error("{file}: rollout.concurrency is 0: at least one cluster must be in flight")]
    ZeroConcurrency { file: PathBuf },
    #[error("give --env ENV or --branch BRANCH")]
    NoEnvironment,
    #[error("{file}: --until-wave {wave}: no cluster of this run is in wave {wave} (its waves: {known})")]
    UnknownWave {
        file: PathBuf,
        wave: u32,
        known: String,
    },
}

impl From<PlanError> for crate::Error {
    /// Bad input: nothing was changed (exit code 2).
    fn from(err: PlanError) -> crate::Error {
        crate::Error::Reported(err.to_string())
    }
}

/// Which clusters a run touches and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub environment: String,
    pub env_file: PathBuf,
    /// Non-empty waves in ascending wave number; clusters in environment-file order.
    pub waves: Vec<Vec<Cluster>>,
    pub concurrency: usize,
    pub timeout: Duration,
    /// The time budget of each cluster's restore (`rollout.rollback_timeout`; when not
    /// set, the run's timeout).
    pub rollback_timeout: Option<Duration>,
    pub on_failure: OnFailure,
    /// `rollout.waves`: concurrency, soak and verify commands of single waves.
    pub wave_settings: Vec<WaveSettings>,
    /// Stop once this wave succeeded, its gates included (`deploy --until-wave`).
    pub until_wave: Option<u32>,
    /// The waves up to this one ran in an earlier part of the same deployment
    /// (`deploy --resume`): this run starts with the next.
    pub resume_after: Option<u32>,
}

/// `--env`, or the one environment whose `branch` is `--branch`.
pub fn select_environment(
    repo: &Repo,
    env: Option<&str>,
    branch: Option<&str>,
) -> crate::Result<LoadedEnvironment> {
    match (env, branch) {
        (Some(env), _) => Ok(repo.environment(env)?),
        (None, Some(branch)) => Ok(repo.environment_for_branch(branch)?),
        (None, None) => Err(crate::Error::Reported(PlanError::NoEnvironment.to_string())),
    }
}

/// Splits `--clusters a,b` (spaces and empty items ignored).
pub fn parse_limit(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Plan {
    /// The plan for `env`, limited to `only` when given (every name must be a cluster of
    /// the environment: a typo must not silently deploy less).
    pub fn new(env: &LoadedEnvironment, only: Option<&[String]>) -> Result<Plan, PlanError> {
        let e = &env.environment;
        if e.rollout.concurrency == 0 {
            return Err(PlanError::ZeroConcurrency {
                file: env.file.clone(),
            });
        }
        let mut chosen: Vec<Cluster> = match only {
            None => e.clusters.clone(),
            Some([]) => return Err(PlanError::EmptyLimit),
            Some(names) => {
                if let Some(unknown) = names
                    .iter()
                    .find(|n| !e.clusters.iter().any(|c| &c.context == *n))
                {
                    return Err(PlanError::UnknownCluster {
                        file: env.file.clone(),
                        env: e.name.clone(),
                        unknown: unknown.clone(),
                        known: e
                            .clusters
                            .iter()
                            .map(|c| c.context.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                e.clusters
                    .iter()
                    .filter(|c| names.contains(&c.context))
                    .cloned()
                    .collect()
            }
        };
        // Stable: within a wave, the environment file's order.
        chosen.sort_by_key(|c| c.wave);
        let mut waves: Vec<Vec<Cluster>> = Vec::new();
        for cluster in chosen {
            match waves.last_mut() {
                Some(last) if last.first().is_some_and(|c| c.wave == cluster.wave) => {
                    last.push(cluster)
                }
                _ => waves.push(vec![cluster]),
            }
        }
        Ok(Plan {
            environment: e.name.clone(),
            env_file: env.file.clone(),
            waves,
            concurrency: e.rollout.concurrency,
            timeout: e.rollout.timeout,
            rollback_timeout: e.rollout.rollback_timeout,
            on_failure: e.rollout.on_failure,
            wave_settings: e.rollout.waves.clone(),
            until_wave: None,
            resume_after: None,
        })
    }

    /// The settings of wave `wave`, if the environment gives any.
    pub fn settings(&self, wave: u32) -> Option<&WaveSettings> {
        self.wave_settings.iter().find(|w| w.wave == wave)
    }

    /// Clusters of wave `wave` in flight at once.
    pub fn concurrency_of(&self, wave: u32) -> usize {
        self.settings(wave)
            .and_then(|w| w.concurrency)
            .unwrap_or(self.concurrency)
            .max(1)
    }

    /// The same plan without soaks or verify commands: a rollback never waits on a
    /// gate (incidents do not wait), it only waits for health.
    pub fn without_gates(mut self) -> Plan {
        for wave in &mut self.wave_settings {
            wave.soak = None;
            wave.verify.clear();
        }
        self
    }

    /// The wave numbers of the plan, in order.
    pub fn wave_numbers(&self) -> Vec<u32> {
        self.waves
            .iter()
            .filter_map(|w| w.first().map(|c| c.wave))
            .collect()
    }

    /// Stops the run after wave `wave` (which must be one of the plan's).
    pub fn until(&mut self, wave: u32) -> Result<(), PlanError> {
        let known = self.wave_numbers();
        if !known.contains(&wave) {
            return Err(PlanError::UnknownWave {
                file: self.env_file.clone(),
                wave,
                known: known
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.until_wave = Some(wave);
        Ok(())
    }

    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.waves.iter().flatten()
    }

    pub fn contexts(&self) -> Vec<String> {
        self.clusters().map(|c| c.context.clone()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Environment, Globals, Rollout};

    pub(crate) fn env(clusters: &[(&str, u32)], concurrency: usize) -> LoadedEnvironment {
        LoadedEnvironment {
            file: PathBuf::from("environments/prod.yaml"),
            environment: Environment {
                name: "prod".into(),
                branch: Some("prod".into()),
                vault: None,
                rollout: Rollout {
                    concurrency,
                    ..Rollout::default()
                },
                promotion: None,
                clusters: clusters
                    .iter()
                    .map(|(name, wave)| Cluster {
                        context: (*name).into(),
                        wave: *wave,
                        global: Globals {
                            cloud: true,
                            env: "prod".into(),
                            region: "r".into(),
                            cluster_name: (*name).into(),
                            extra: Default::default(),
                        },
                    })
                    .collect(),
                notify: Vec::new(),
                freeze: None,
            },
        }
    }

    fn names(plan: &Plan) -> Vec<Vec<&str>> {
        plan.waves
            .iter()
            .map(|w| w.iter().map(|c| c.context.as_str()).collect())
            .collect()
    }

    #[test]
    fn waves_go_in_order_and_keep_file_order_inside() {
        let e = env(&[("c", 1), ("a", 0), ("d", 5), ("b", 1), ("e", 0)], 10);
        let plan = Plan::new(&e, None).unwrap();
        assert_eq!(names(&plan), [vec!["a", "e"], vec!["c", "b"], vec!["d"]]);
    }

    #[test]
    fn limit_keeps_only_named_clusters_and_drops_empty_waves() {
        let e = env(&[("a", 0), ("b", 1), ("c", 1)], 10);
        let plan = Plan::new(&e, Some(&parse_limit(" c, ,b"))).unwrap();
        assert_eq!(names(&plan), [vec!["b", "c"]]);
    }

    #[test]
    fn unknown_cluster_in_limit_is_named_with_the_known_ones() {
        let e = env(&[("a", 0), ("b", 1)], 10);
        let err = Plan::new(&e, Some(&["a".into(), "bb".into()])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("environments/prod.yaml"), "{text}");
        assert!(text.contains("\"bb\"") && text.contains("a, b"), "{text}");
    }

    #[test]
    fn zero_concurrency_and_empty_limit_are_refused() {
        assert!(matches!(
            Plan::new(&env(&[("a", 0)], 0), None),
            Err(PlanError::ZeroConcurrency { .. })
        ));
        assert!(matches!(
            Plan::new(&env(&[("a", 0)], 1), Some(&[])),
            Err(PlanError::EmptyLimit)
        ));
    }
}
