//! The per-cluster steps of `deploy`, `rollback`, `uninstall`, `status`, `diff` and
//! `history`, as Helm's `action` package composes its kube client and storage: lock,
//! records, apply, prune, wait, record the outcome. Each function works on one
//! [`ClusterHandle`]; the multi-cluster commands run many of them concurrently and
//! decide what to do with the outcomes.
//!
//! A run killed at any point leaves at worst a `pending` record and a lease that stops
//! being renewed: the next run takes the stale lease over and repairs the record
//! (marks it failed and prunes what it may have applied) instead of refusing forever.

use crate::cluster::{
    labels, ApplyOptions, CancellationToken, ClusterError, ClusterHandle, Event, FieldChange,
    Health, LockOptions, ObjectDiff, ObjectRef, Progress, WaitOptions,
};
use crate::release::{self, ChartRef, Operation, ReleaseRecord, Status};
use crate::storage::RecordStore;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// What every run against one cluster shares: who it is, how long to wait, how to
/// report and stop.
#[derive(Clone)]
pub struct RunOptions {
    pub force_conflicts: bool,
    pub timeout: Duration,
    pub history_limit: usize,
    pub lock: LockOptions,
    pub progress: Progress,
    pub cancel: CancellationToken,
    /// Test hook: called after every object was applied, before prune, wait and the
    /// final record. Lets tests kill a run at the worst moment.
    pub after_apply: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl RunOptions {
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions {
            force_conflicts: false,
            timeout,
            history_limit: crate::storage::DEFAULT_HISTORY_LIMIT,
            lock: LockOptions::for_this_process(),
            progress: crate::cluster::no_progress(),
            cancel: CancellationToken::new(),
            after_apply: None,
        }
    }
}

/// One release's rendered content for one cluster.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub release: String,
    pub namespace: String,
    pub chart: ChartRef,
    pub app_version: String,
    /// The objects, secret data included (it is applied, never recorded).
    pub objects: Vec<Value>,
    /// Merged values; `secrets` is removed before recording.
    pub values: Value,
}

/// How a deploy or rollback on one cluster ended, once something may have changed.
#[derive(Debug)]
pub struct Outcome {
    pub context: String,
    /// The revision this run recorded.
    pub revision: u32,
    /// The revision that was deployed before (what a rollback goes back to).
    pub previous: Option<u32>,
    pub status: Status,
    /// Pending revisions of killed runs that this run repaired.
    pub repaired: Vec<u32>,
    /// Secrets a rollback left as they are live (their values are never recorded).
    pub kept_live: Vec<ObjectRef>,
    pub pruned: Vec<ObjectRef>,
    /// Why it failed (`status` is then `failed`).
    pub error: Option<ClusterError>,
}

fn release_error(cluster: &ClusterHandle, message: String) -> ClusterError {
    ClusterError::Release {
        context: cluster.context().to_owned(),
        message,
    }
}

/// Installs or upgrades a release on one cluster. `Err` means nothing was changed
/// (lock refused, cluster unreachable); once something may have changed the answer is
/// an [`Outcome`], failed or not.
pub async fn deploy(
    cluster: &ClusterHandle,
    rendered: &Rendered,
    deployment_id: &str,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let target = Target {
        objects: rendered.objects.clone(),
        record_manifest: release::redact_manifest(&rendered.objects),
        values: release::values_without_secrets(&rendered.values),
        chart: rendered.chart.clone(),
        app_version: rendered.app_version.clone(),
        rollback_of: None,
    };
    run(
        cluster,
        &rendered.release,
        &rendered.namespace,
        target,
        deployment_id,
        opts,
    )
    .await
}

/// Rolls a release on one cluster back to `revision`, or to the previous good one
/// (the last deployed when the latest run failed or was killed, else the newest
/// revision that was deployed before the current one). Secrets whose recorded values
/// are redacted are taken from `fresh_secrets` (re-read from Vault by the caller) when
/// given there, else left as they are live and reported in [`Outcome::kept_live`].
pub async fn rollback(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    revision: Option<u32>,
    fresh_secrets: &[Value],
    deployment_id: &str,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let store = RecordStore::new(cluster, namespace, release);
    let records = store.list().await?;
    let target = match revision {
        Some(n) => records.iter().find(|r| r.revision == n).ok_or_else(|| {
            release_error(
                cluster,
                format!(
                    "release `{release}` has no revision {n} (it has: {})",
                    revisions(&records)
                ),
            )
        })?,
        None => rollback_target(&records).ok_or_else(|| {
            release_error(
                cluster,
                format!(
                    "release `{release}` has no earlier good revision to roll back to (it has: {})",
                    revisions(&records)
                ),
            )
        })?,
    };
    let mut objects = Vec::with_capacity(target.manifest.len());
    for object in &target.manifest {
        if !release::is_secret(object) {
            objects.push(object.clone());
            continue;
        }
        let id = ObjectRef::of(object).map_err(|m| release_error(cluster, m))?;
        match fresh_secrets.iter().find(|s| {
            ObjectRef::of(s)
                .ok()
                .is_some_and(|f| f.kind == id.kind && f.name == id.name)
        }) {
            Some(fresh) => objects.push(fresh.clone()),
            None => objects.push(Value::Null),
        }
    }
    let target = Target {
        objects,
        record_manifest: target.manifest.clone(),
        values: target.values.clone(),
        chart: target.chart.clone(),
        app_version: target.app_version.clone(),
        rollback_of: Some(target.revision),
    };
    run(cluster, release, namespace, target, deployment_id, opts).await
}

/// The revision a plain `rollback` goes to.
pub fn rollback_target(records: &[ReleaseRecord]) -> Option<&ReleaseRecord> {
    let latest = records.last()?;
    if latest.status != Status::Deployed {
        return records.iter().rev().find(|r| r.status == Status::Deployed);
    }
    records
        .iter()
        .rev()
        .filter(|r| r.revision < latest.revision)
        .find(|r| matches!(r.status, Status::Superseded | Status::RolledBack))
}

fn revisions(records: &[ReleaseRecord]) -> String {
    if records.is_empty() {
        return "none".into();
    }
    records
        .iter()
        .map(|r| format!("{} {}", r.revision, r.status))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Target {
    /// To apply; `Value::Null` stands for a recorded Secret kept as it is live.
    objects: Vec<Value>,
    record_manifest: Vec<Value>,
    values: Value,
    chart: ChartRef,
    app_version: String,
    rollback_of: Option<u32>,
}

async fn run(
    cluster: &ClusterHandle,
    release: &str,
    namespace: &str,
    target: Target,
    deployment_id: &str,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    cluster.ensure_namespace(namespace).await?;
    let lock = cluster.lock(namespace, release, &opts.lock).await?;
    let result = run_locked(
        cluster,
        release,
        namespace,
        target,
        deployment_id,
        opts,
        &lock,
    )
    .await;
    lock.release().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    cluster: &ClusterHandle,
    release: &str,
    namespace: &str,
    target: Target,
    deployment_id: &str,
    opts: &RunOptions,
    lock: &crate::cluster::Lock,
) -> Result<Outcome, ClusterError> {
    let store = RecordStore::new(cluster, namespace, release);
    let mut records = store.list().await?;
    let apply_opts = ApplyOptions {
        namespace: namespace.to_owned(),
        release: release.to_owned(),
        force_conflicts: opts.force_conflicts,
    };

    // Repair: a pending record is a run that was killed (we hold the lock, so nobody
    // else is running). Its objects may be live: they count for prune.
    let mut repaired = Vec::new();
    for record in records.iter_mut().filter(|r| r.status == Status::Pending) {
        record.status = Status::Failed;
        record.updated = Utc::now();
        record.description = format!(
            "interrupted: the run that wrote it stopped before finishing; repaired by {}",
            opts.lock.holder
        );
        store.update(record).await?;
        repaired.push(record.revision);
    }
    let previous = records
        .iter()
        .rev()
        .find(|r| r.status == Status::Deployed)
        .map(|r| r.revision);
    let maybe_live: BTreeSet<ObjectRef> = records
        .iter()
        .filter(|r| previous.is_none_or(|p| r.revision >= p))
        .flat_map(|r| r.objects.iter().cloned())
        .collect();

    let revision = records.last().map_or(1, |r| r.revision + 1);
    let now = Utc::now();
    let mut record = ReleaseRecord {
        name: release.to_owned(),
        namespace: namespace.to_owned(),
        revision,
        status: Status::Pending,
        operation: match (target.rollback_of, previous) {
            (Some(_), _) => Operation::Rollback,
            (None, None) => Operation::Install,
            (None, Some(_)) => Operation::Upgrade,
        },
        deployment_id: deployment_id.to_owned(),
        chart: target.chart.clone(),
        app_version: target.app_version.clone(),
        manifest: target.record_manifest.clone(),
        objects: Vec::new(),
        values: target.values.clone(),
        rollback_of: target.rollback_of,
        created: now,
        updated: now,
        user: crate::cluster::lock_user(),
        host: crate::cluster::lock_host(),
        description: String::new(),
    };
    // The identities first, so that a run killed during apply leaves a pending record
    // that knows what it may have created.
    let mut kept_live = Vec::new();
    let mut to_apply = Vec::new();
    for (object, recorded) in target.objects.iter().zip(&target.record_manifest) {
        if object.is_null() {
            let id = ObjectRef::of(recorded).map_err(|m| release_error(cluster, m))?;
            let id = ObjectRef {
                namespace: Some(id.namespace.clone().unwrap_or_else(|| namespace.to_owned())),
                ..id
            };
            if cluster.get_live(&id, namespace).await?.is_none() {
                return Err(release_error(cluster, format!("cannot restore {id}: its values are never recorded, it is not live, and no fresh value was given (is Vault reachable?)")));
            }
            kept_live.push(id.clone());
            record.objects.push(id);
        } else {
            to_apply.push(object.clone());
            record
                .objects
                .push(identity(cluster, object, namespace).await?);
        }
    }
    store.create(&record).await?;

    let finish =
        |mut record: ReleaseRecord, error: Option<ClusterError>, pruned: Vec<ObjectRef>| {
            let store = store.clone();
            let repaired = repaired.clone();
            let kept_live = kept_live.clone();
            async move {
                record.status = if error.is_some() {
                    Status::Failed
                } else {
                    Status::Deployed
                };
                record.updated = Utc::now();
                if let Some(err) = &error {
                    record.description = err.to_string();
                } else if !kept_live.is_empty() {
                    record.description = format!(
                        "kept live (values never recorded): {}",
                        kept_live
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                store.update(&record).await?;
                Ok::<Outcome, ClusterError>(Outcome {
                    context: String::new(),
                    revision: record.revision,
                    previous,
                    status: record.status,
                    repaired,
                    kept_live,
                    pruned,
                    error,
                })
            }
        };

    for id in &kept_live {
        (opts.progress)(cluster.context(), Event::KeptLive(id.clone()));
    }
    let applied = match cluster
        .apply_all(&to_apply, &apply_opts, &opts.progress)
        .await
    {
        Ok(applied) => applied,
        Err(err) => {
            return finish(record, Some(err), Vec::new())
                .await
                .map(|o| with_context(o, cluster))
        }
    };
    // The identities as the server resolved them: a custom kind whose CRD came with
    // this apply was only guessed (namespaced) before it.
    record.objects = kept_live
        .iter()
        .cloned()
        .chain(applied.iter().cloned())
        .collect();
    if let Some(hook) = &opts.after_apply {
        hook();
    }
    let keep: BTreeSet<&ObjectRef> = record.objects.iter().collect();
    let stale: Vec<ObjectRef> = maybe_live
        .iter()
        .filter(|id| !keep.contains(id))
        .cloned()
        .collect();
    let pruned = match cluster
        .delete_owned(&stale, &apply_opts, &opts.progress)
        .await
    {
        Ok(pruned) => pruned,
        Err(err) => {
            return finish(record, Some(err), Vec::new())
                .await
                .map(|o| with_context(o, cluster))
        }
    };

    let stop = opts.cancel.child_token();
    let lost = lock.lost();
    let watchdog = {
        let stop = stop.clone();
        tokio::spawn(async move {
            lost.cancelled().await;
            stop.cancel();
        })
    };
    let wait = WaitOptions {
        namespace: namespace.to_owned(),
        timeout: opts.timeout,
    };
    let health = cluster
        .wait_healthy(&applied, &wait, &stop, &opts.progress)
        .await;
    watchdog.abort();
    let outcome = finish(record, health.err(), pruned).await?;
    if outcome.error.is_none() {
        let replaced = if target.rollback_of.is_some() {
            Status::RolledBack
        } else {
            Status::Superseded
        };
        for mut old in records.into_iter().filter(|r| r.status == Status::Deployed) {
            old.status = replaced;
            old.updated = Utc::now();
            store.update(&old).await?;
        }
        store.prune_history(opts.history_limit).await?;
    }
    Ok(with_context(outcome, cluster))
}

fn with_context(mut outcome: Outcome, cluster: &ClusterHandle) -> Outcome {
    outcome.context = cluster.context().to_owned();
    outcome
}

/// The identity an object will have once applied (namespace defaulted for namespaced
/// kinds), from discovery.
async fn identity(
    cluster: &ClusterHandle,
    object: &Value,
    namespace: &str,
) -> Result<ObjectRef, ClusterError> {
    let mut id = ObjectRef::of(object).map_err(|message| ClusterError::InvalidObject {
        context: cluster.context().to_owned(),
        object: object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("an object")
            .to_owned(),
        message,
    })?;
    let (_, namespaced) =
        cluster
            .resource(&id, Some(Duration::ZERO))
            .await
            .or_else(|err| match err {
                // A kind whose CRD comes with this release: namespaced unless it says otherwise.
                ClusterError::UnknownKind { .. } => Ok((
                    kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(
                        &(),
                    ),
                    true,
                )),
                other => Err(other),
            })?;
    if namespaced {
        id.namespace.get_or_insert_with(|| namespace.to_owned());
    } else {
        id.namespace = None;
    }
    Ok(id)
}

/// Removes a release from one cluster: every object any of its records lists that
/// still carries our labels, then the records and the lock.
pub async fn uninstall(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let lock = cluster.lock(namespace, release, &opts.lock).await?;
    let result = async {
        let store = RecordStore::new(cluster, namespace, release);
        let records = store.list().await?;
        if records.is_empty() {
            return Err(release_error(
                cluster,
                format!("release `{release}` is not installed in namespace `{namespace}`"),
            ));
        }
        let ids: BTreeSet<ObjectRef> = records
            .iter()
            .flat_map(|r| r.objects.iter().cloned())
            .collect();
        let ids: Vec<ObjectRef> = ids.into_iter().collect();
        let apply_opts = ApplyOptions {
            namespace: namespace.to_owned(),
            release: release.to_owned(),
            force_conflicts: false,
        };
        let deleted = cluster
            .delete_owned(&ids, &apply_opts, &opts.progress)
            .await?;
        for record in &records {
            store.delete(record.revision).await?;
        }
        Ok(deleted)
    }
    .await;
    lock.release().await;
    result
}

/// The records of a release in one cluster, oldest first.
pub async fn history(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
) -> Result<Vec<ReleaseRecord>, ClusterError> {
    RecordStore::new(cluster, namespace, release).list().await
}

/// One object of the recorded revision as it is live.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectStatus {
    pub object: ObjectRef,
    /// `ready`, `progressing: ...`, `failed: ...`, `missing`, or `-` for kinds without health.
    pub health: String,
    /// Fields the record sets that live differs on; empty when in sync.
    pub drift: Vec<FieldChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub context: String,
    pub release: String,
    pub revision: u32,
    pub status: Status,
    pub deployment_id: String,
    pub app_version: String,
    pub objects: Vec<ObjectStatus>,
}

impl StatusReport {
    pub fn drifted(&self) -> bool {
        self.objects
            .iter()
            .any(|o| !o.drift.is_empty() || o.health == "missing")
    }
}

/// Live health of the recorded revision (the deployed one, else the latest) and drift
/// of every object from it.
pub async fn status(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
) -> Result<StatusReport, ClusterError> {
    let records = history(cluster, namespace, release).await?;
    let record = records
        .iter()
        .rev()
        .find(|r| r.status == Status::Deployed)
        .or(records.last())
        .ok_or_else(|| {
            release_error(
                cluster,
                format!("release `{release}` is not installed in namespace `{namespace}`"),
            )
        })?;
    let opts = ApplyOptions {
        namespace: namespace.to_owned(),
        release: release.to_owned(),
        force_conflicts: false,
    };
    let mut objects = Vec::new();
    for recorded in &record.manifest {
        let (id, drift) = cluster.drift(recorded, &opts).await?;
        let health = match drift {
            None => "missing".to_owned(),
            Some(_) => match cluster.health_of(&id, namespace).await? {
                None => "-".into(),
                Some(Health::Ready) => "ready".into(),
                Some(Health::Progressing(why)) => format!("progressing: {why}"),
                Some(Health::Failed(why)) => format!("failed: {why}"),
            },
        };
        objects.push(ObjectStatus {
            object: id,
            health,
            drift: drift.unwrap_or_default(),
        });
    }
    Ok(StatusReport {
        context: cluster.context().to_owned(),
        release: release.to_owned(),
        revision: record.revision,
        status: record.status,
        deployment_id: record.deployment_id.clone(),
        app_version: record.app_version.clone(),
        objects,
    })
}

/// What deploying `rendered` would change on one cluster (server-side dry run).
pub async fn diff(
    cluster: &ClusterHandle,
    rendered: &Rendered,
) -> Result<Vec<ObjectDiff>, ClusterError> {
    let records = history(cluster, &rendered.namespace, &rendered.release).await?;
    let previous: Vec<ObjectRef> = records
        .iter()
        .rev()
        .find(|r| r.status == Status::Deployed)
        .map(|r| r.objects.clone())
        .unwrap_or_default();
    let opts = ApplyOptions {
        namespace: rendered.namespace.clone(),
        release: rendered.release.clone(),
        force_conflicts: false,
    };
    cluster.diff(&rendered.objects, &previous, &opts).await
}

/// Whether a live object is ours for this release (for callers that list objects).
pub fn owned(
    labels_of: Option<&std::collections::BTreeMap<String, String>>,
    release: &str,
) -> bool {
    labels::owned_by(labels_of, release)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: u32, status: Status) -> ReleaseRecord {
        ReleaseRecord {
            name: "app1".into(),
            namespace: "ns1".into(),
            revision,
            status,
            operation: Operation::Upgrade,
            deployment_id: format!("d{revision}"),
            chart: ChartRef {
                name: "app1".into(),
                version: "0.1.0".into(),
            },
            app_version: revision.to_string(),
            manifest: Vec::new(),
            objects: Vec::new(),
            values: Value::Null,
            rollback_of: None,
            created: Utc::now(),
            updated: Utc::now(),
            user: "u".into(),
            host: "h".into(),
            description: String::new(),
        }
    }

    fn target(records: &[ReleaseRecord]) -> Option<u32> {
        rollback_target(records).map(|r| r.revision)
    }

    #[test]
    fn plain_rollback_goes_to_the_previous_good_revision() {
        use Status::*;
        // After a successful upgrade: the one it superseded, skipping failed attempts.
        let records = [
            record(1, Superseded),
            record(2, Failed),
            record(3, Deployed),
        ];
        assert_eq!(target(&records), Some(1));
        // After a failed or killed deploy: what is still deployed.
        let records = [
            record(1, Superseded),
            record(2, Deployed),
            record(3, Failed),
        ];
        assert_eq!(target(&records), Some(2));
        let records = [record(1, Deployed), record(2, Pending)];
        assert_eq!(target(&records), Some(1));
        // A revision rolled back from was good before: a second rollback may return to it.
        let records = [
            record(1, Superseded),
            record(2, RolledBack),
            record(3, Deployed),
        ];
        assert_eq!(target(&records), Some(2));
        // Nothing to go back to.
        assert_eq!(target(&[record(1, Deployed)]), None);
        assert_eq!(target(&[]), None);
    }
}
