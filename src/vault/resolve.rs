//! From a [`SecretPlan`] to values: each distinct (path, version) read once, concurrently
//! with a bound, all reads finished before anything is returned; then each cluster's
//! secret_id → value map, or every failure named.

use super::client::{SecretData, VaultSession};
use super::error::{ReadProblem, SecretFailure, VaultError};
use super::plan::{PlannedSecret, ReadKey, SecretPlan};
use super::SecretValue;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Reads in flight at once: enough to hide latency, few enough not to hammer Vault.
pub const READ_CONCURRENCY: usize = 8;

/// Each cluster's secrets: context → secret_id → value.
#[derive(Debug, Default, Clone)]
pub struct ResolvedSecrets {
    clusters: BTreeMap<String, BTreeMap<String, SecretValue>>,
}

impl ResolvedSecrets {
    pub fn for_context(&self, context: &str) -> Option<&BTreeMap<String, SecretValue>> {
        self.clusters.get(context)
    }

    /// One cluster's secrets as the engine takes them (`engine::SecretValues`, what a
    /// chart reads as `Values.secrets`): the values in plain text, for rendering only.
    pub fn exposed(&self, context: &str) -> BTreeMap<String, String> {
        self.clusters
            .get(context)
            .into_iter()
            .flatten()
            .map(|(id, value)| (id.clone(), value.expose().to_string()))
            .collect()
    }

    pub fn contexts(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
    }

    /// Every value held, for tests that check output against them.
    pub fn values(&self) -> impl Iterator<Item = &SecretValue> {
        self.clusters.values().flat_map(BTreeMap::values)
    }
}

/// One row of `secrets check`: a planned secret and whether it resolves.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub entry: PlannedSecret,
    pub outcome: Result<(), ReadProblem>,
}

/// Reads secrets through one session, each distinct (path, version) once for the whole
/// run: a second plan (another release) reuses what the first read.
pub struct SecretReader<'a> {
    session: &'a VaultSession,
    cache: Mutex<HashMap<ReadKey, Result<SecretData, ReadProblem>>>,
}

impl<'a> SecretReader<'a> {
    pub fn new(session: &'a VaultSession) -> Self {
        SecretReader {
            session,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn session(&self) -> &VaultSession {
        self.session
    }

    /// Every secret of the plan, or every mapping that failed. Nothing is returned before
    /// all reads are done. A problem every read would share (Vault sealed or
    /// unreachable, the token gone) stops the reads and is reported once, naming the
    /// mapping it was met on.
    pub async fn resolve(&self, plan: &SecretPlan) -> Result<ResolvedSecrets, VaultError> {
        let (resolved, failures) = self.resolve_available(plan).await?;
        if failures.is_empty() {
            Ok(resolved)
        } else {
            Err(VaultError::Unresolved(failures))
        }
    }

    /// Every secret of the plan that resolves, and every mapping that did not: what a
    /// rollback needs in an incident, where what cannot be read keeps its live value.
    /// A problem every read would share (Vault sealed or unreachable) is still an error.
    pub async fn resolve_available(
        &self,
        plan: &SecretPlan,
    ) -> Result<(ResolvedSecrets, Vec<SecretFailure>), VaultError> {
        self.fetch(plan).await?;
        let mut resolved = ResolvedSecrets::default();
        let mut failures: Vec<(&PlannedSecret, ReadProblem)> = Vec::new();
        for entry in &plan.entries {
            match self.value(entry) {
                Ok(value) => {
                    resolved
                        .clusters
                        .entry(entry.context.clone())
                        .or_default()
                        .insert(entry.secret_id.clone(), value);
                }
                Err(problem) => failures.push((entry, problem)),
            }
        }
        Ok((resolved, group_failures(failures)))
    }

    /// Whether each planned secret resolves; values are dropped as soon as checked.
    pub async fn check(&self, plan: &SecretPlan) -> Result<Vec<CheckRow>, VaultError> {
        self.fetch(plan).await?;
        Ok(plan
            .entries
            .iter()
            .map(|entry| CheckRow {
                entry: entry.clone(),
                outcome: self.value(entry).map(drop),
            })
            .collect())
    }

    fn value(&self, entry: &PlannedSecret) -> Result<SecretValue, ReadProblem> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match cache.get(&entry.read_key()) {
            Some(Ok(data)) => data.string(&entry.key),
            Some(Err(problem)) => Err(problem.clone()),
            // fetch() read every key of the plan; a miss is a bug, not a user's problem.
            None => Err(ReadProblem::Unexpected {
                address: self.session.address().to_string(),
                detail: format!("{} was not read", entry.path),
            }),
        }
    }

    async fn fetch(&self, plan: &SecretPlan) -> Result<(), VaultError> {
        let pending: Vec<ReadKey> = {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            plan.reads()
                .into_iter()
                .filter(|key| !cache.contains_key(key))
                .collect()
        };
        tracing::info!(
            reads = pending.len(),
            release = %plan.release,
            environment = %plan.environment,
            "reading secrets from Vault"
        );
        let mut reads = futures::stream::iter(pending)
            .map(|key| async move {
                let answer = self.session.read(&key.relative, key.version).await;
                (key, answer)
            })
            .buffer_unordered(READ_CONCURRENCY);
        while let Some((key, answer)) = reads.next().await {
            if let Err(problem) = &answer {
                if problem.is_global() {
                    let users: Vec<(&PlannedSecret, ReadProblem)> = plan
                        .entries
                        .iter()
                        .filter(|e| e.read_key() == key)
                        .map(|e| (e, problem.clone()))
                        .collect();
                    let mut failures = group_failures(users);
                    failures.truncate(1);
                    return Err(VaultError::Unresolved(failures));
                }
            }
            self.cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(key, answer);
        }
        Ok(())
    }
}

/// The rows of a check that do not resolve, grouped as [`SecretReader::resolve`] reports
/// them.
pub fn check_failures(rows: &[CheckRow]) -> Vec<SecretFailure> {
    group_failures(
        rows.iter()
            .filter_map(|row| row.outcome.clone().err().map(|p| (&row.entry, p)))
            .collect(),
    )
}

/// One failure per (secret_id, path, version, key, problem), listing its contexts: a
/// default entry that fails says so once, not once per cluster.
fn group_failures(failures: Vec<(&PlannedSecret, ReadProblem)>) -> Vec<SecretFailure> {
    let mut grouped: Vec<SecretFailure> = Vec::new();
    for (entry, problem) in failures {
        let same = grouped.iter_mut().find(|f| {
            f.secret_id == entry.secret_id
                && f.path == entry.path
                && f.version == entry.version
                && f.key == entry.key
                && f.problem == problem
        });
        match same {
            Some(failure) => failure.contexts.push(entry.context.clone()),
            None => grouped.push(SecretFailure {
                secret_id: entry.secret_id.clone(),
                contexts: vec![entry.context.clone()],
                path: entry.path.clone(),
                key: entry.key.clone(),
                version: entry.version,
                problem,
            }),
        }
    }
    grouped
}
