//! Install or upgrade one release in one cluster, and the state machine that a restore
//! shares: lock, repair killed runs, record `pending`, apply, prune, wait, record the
//! outcome, supersede what was deployed.

use super::{
    release_error, Adopted, HeldLock, KubeClient, Outcome, Ownership, Rendered, RunOptions,
};
use crate::cluster::labels;
use crate::cluster::{
    ApplyOptions, ClusterError, ClusterHandle, Event, Kept, ObjectRef, Removal, WaitOptions,
};
use crate::release::{
    self, ChartRef, History, Operation, Phase, PhaseTime, ReleaseRecord, RevisionSource, Status,
};
use crate::storage::{RecordStore, SecretStore};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// Installs or upgrades a release on one cluster. `Err` means nothing was changed
/// (lock refused, cluster unreachable); once something may have changed the answer is
/// an [`Outcome`], failed or not.
pub async fn deploy(
    cluster: &ClusterHandle,
    rendered: &Rendered,
    deployment_id: &str,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let store = SecretStore::new(cluster, &rendered.namespace, &rendered.release);
    deploy_with(cluster, &store, rendered, deployment_id, opts).await
}

/// [`deploy`] on any cluster client and record store.
pub async fn deploy_with<K: KubeClient, S: RecordStore>(
    cluster: &K,
    store: &S,
    rendered: &Rendered,
    deployment_id: &str,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let (namespace, release) = (&rendered.namespace, &rendered.release);
    super::with_lease(cluster, namespace, release, opts, async |lease| {
        deploy_under(cluster, lease, store, rendered, deployment_id, opts).await
    })
    .await
}

/// [`deploy`] under the release's lease, which the caller holds (a multi-cluster run
/// holds every cluster's for its whole length), `store` the records as read under it.
pub async fn deploy_under<K: KubeClient, L: HeldLock, S: RecordStore>(
    cluster: &K,
    lock: &L,
    store: &S,
    rendered: &Rendered,
    deployment_id: &str,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    if rendered.stored.len() != rendered.objects.len() {
        return Err(release_error(
            cluster.context(),
            format!(
                "{} objects to apply but {} to record: the two renders disagree",
                rendered.objects.len(),
                rendered.stored.len()
            ),
        ));
    }
    let desired = Desired {
        objects: rendered.objects.iter().cloned().map(Some).collect(),
        record_manifest: rendered.record_manifest(),
        values: release::values_without_secrets(&rendered.values),
        chart: rendered.chart.clone(),
        app_version: rendered.app_version.clone(),
        rollback_of: None,
        restores: None,
        source: rendered.source.clone(),
        hooks: rendered
            .hooks
            .iter()
            .map(|h| (h.hook.clone(), h.object.clone()))
            .collect(),
        recorded_hooks: rendered.record_hooks(),
    };
    let target = Scope {
        release: &rendered.release,
        namespace: &rendered.namespace,
        deployment_id,
    };
    run(cluster, lock, store, &target, desired, opts).await
}

/// The ownership check, before the first change: every object of `rendered` that
/// exists must be this release's. One that is not refuses the run naming object and
/// owner ([`ClusterError::NotOwned`], exit 3), unless `adopt`: then the answer lists
/// what the run will take over.
pub async fn check_ownership<K: KubeClient>(
    cluster: &K,
    rendered: &Rendered,
    adopt: bool,
) -> Result<Ownership, ClusterError> {
    let objects: Vec<&Value> = rendered.objects.iter().collect();
    owners(
        cluster,
        &rendered.release,
        &rendered.namespace,
        &objects,
        adopt,
    )
    .await
}

/// Objects whose ownership is read at once, before a run's first change: as many as an
/// apply round sends, so that a large release pays a few round trips, not one per 8
/// objects.
const OWNERSHIP_READS: usize = 64;

async fn owners<K: KubeClient>(
    cluster: &K,
    release: &str,
    namespace: &str,
    objects: &[&Value],
    adopt: bool,
) -> Result<Ownership, ClusterError> {
    // Identities at once (each group version discovered once: the others wait for
    // it), the reads at once (bounded), the verdicts in the objects' order: the first
    // object owned elsewhere is the one named, as when read one by one.
    let ids = futures::future::try_join_all(
        objects
            .iter()
            .map(|object| cluster.identity(object, namespace)),
    )
    .await?;
    let live: Vec<(ObjectRef, Option<labels::LiveMeta>)> = futures::stream::iter(ids)
        .map(|id| async move {
            let live = cluster.live_meta(&id, namespace).await?;
            Ok::<_, ClusterError>((id, live))
        })
        .buffered(OWNERSHIP_READS)
        .try_collect()
        .await?;
    let mut read = Ownership::default();
    for (id, live) in live {
        let Some(live) = live else {
            continue;
        };
        if live.pod_template_labelled(release) {
            read.labelled_templates.push(id.clone());
        }
        let Some(owner) = labels::foreign_owner(&id.kind, &live, release) else {
            continue;
        };
        if !adopt {
            return Err(ClusterError::NotOwned {
                context: cluster.context().to_owned(),
                release: release.to_owned(),
                object: id.to_string(),
                owner,
            });
        }
        read.adopted.push(Adopted { object: id, owner });
    }
    Ok(read)
}

/// Which release a run works on, and the deployment id it records.
pub(super) struct Scope<'a> {
    pub release: &'a str,
    pub namespace: &'a str,
    pub deployment_id: &'a str,
}

/// The revision a run puts in the cluster.
pub(super) struct Desired {
    /// To apply, in the order of `record_manifest`; `None` is a recorded Secret that a
    /// restore keeps as it is live (its values are never recorded).
    pub objects: Vec<Option<Value>>,
    /// What the record keeps of the objects: secret data redacted.
    pub record_manifest: Vec<Value>,
    pub values: Value,
    pub chart: ChartRef,
    pub app_version: String,
    /// For a restore: the revision it re-applies,
    pub rollback_of: Option<u32>,
    /// and the deployment id whose content that revision runs.
    pub restores: Option<String>,
    pub source: Option<RevisionSource>,
    /// The Helm hooks run around the apply (a restore: the target's rollback hooks),
    /// each with the object to create,
    pub hooks: Vec<(crate::engine::Hook, Value)>,
    /// and what the record keeps of the revision's hooks.
    pub recorded_hooks: Vec<release::RecordedHook>,
}

/// The state machine a deploy and a restore share, under the release's lease.
pub(super) async fn run<K: KubeClient, L: HeldLock, S: RecordStore>(
    cluster: &K,
    lock: &L,
    store: &S,
    scope: &Scope<'_>,
    desired: Desired,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let history = store.history().await?;
    // A record that could not be read and may be what runs, or what a killed run left:
    // repair, prune and the rollback target would be decided without it.
    history
        .check_skipped()
        .map_err(|message| release_error(cluster.context(), message))?;
    // Ownership before any change (a restore puts back this release's own objects).
    let ownership = match (desired.rollback_of, &opts.owners_read) {
        (Some(_), _) => Ownership::default(),
        // Read under this lease a moment before (`prepare`): not read again.
        (None, Some(read)) => read.clone(),
        (None, None) => {
            let objects: Vec<&Value> = desired.objects.iter().flatten().collect();
            owners(
                cluster,
                scope.release,
                scope.namespace,
                &objects,
                opts.adopt,
            )
            .await?
        }
    };
    let repaired = repair_killed_runs(store, &history, &opts.lock.holder).await?;
    let previous = history.deployed().map(|r| r.revision);
    let maybe_live = history.maybe_live();
    let mut apply_opts = ApplyOptions::new(scope.namespace, scope.release);
    apply_opts.force_conflicts = opts.force_conflicts;
    apply_opts.adopted = ownership.adopted.iter().map(|a| a.object.clone()).collect();
    apply_opts.labelled_templates = ownership.labelled_templates;
    let adopted = ownership.adopted;
    apply_opts.deployment_id = scope.deployment_id.to_owned();
    apply_opts.settled = settled_objects(&history, &desired.record_manifest);

    let mut record = pending_record(scope, &desired, &history, opts);
    // Signed once, as written: what later writes change of it (status, timestamps,
    // notes, object identities) is not covered by the MAC.
    if let Some(key) = &opts.record_key {
        record.mac = key.sign(&record, cluster.context());
    }
    // The identities first, so that a run killed during apply leaves a pending record
    // that knows what it may have created.
    let mut kept_live = Vec::new();
    let mut to_apply = Vec::new();
    for (object, recorded) in desired.objects.iter().zip(&desired.record_manifest) {
        match object {
            Some(object) => {
                to_apply.push(object.clone());
                record
                    .objects
                    .push(cluster.identity(object, scope.namespace).await?);
            }
            None => {
                let id = cluster.identity(recorded, scope.namespace).await?;
                if !cluster.is_live(&id, scope.namespace).await? {
                    return Err(release_error(cluster.context(), format!("cannot restore {id}: its values are never recorded, it is not live, and no fresh value was given (is Vault reachable?)")));
                }
                kept_live.push(id.clone());
                record.objects.push(id);
            }
        }
    }
    // The first mutating request of the run. Once it is sent, every way out is an
    // Outcome (the cluster may have changed), never an `Err`.
    if let Some(err) = lease_lost(cluster.context(), lock) {
        return Err(err);
    }
    let mut ending = Ending {
        context: cluster.context(),
        previous,
        repaired,
        kept_live,
        adopted,
        kept: Vec::new(),
        applied_at: None,
    };
    match store.create(&record).await {
        Ok(()) => {}
        // No answer: the record may have been written. Changed, as far as anyone knows.
        Err(err @ ClusterError::Unreachable { .. }) => return Ok(ending.lost(record, err)),
        Err(err) => return Err(err),
    }
    for id in &ending.kept_live {
        (opts.progress)(cluster.context(), Event::KeptLive(id.clone()));
    }

    let hooks: Vec<super::hooks::Runnable<'_>> = desired
        .hooks
        .iter()
        .map(|(hook, object)| super::hooks::Runnable { hook, object })
        .collect();
    let rollback = desired.rollback_of.is_some();
    let installed = previous.is_some();
    if let Some(err) = lease_lost(cluster.context(), lock) {
        return Ok(ending.lost(record, err));
    }
    // Before the apply: a failed pre-hook leaves nothing of the new revision applied.
    let before = super::hooks::event(rollback, installed, true);
    if let Err(err) = while_held(
        cluster.context(),
        lock,
        super::hooks::run_event(cluster, lock, &hooks, before, &apply_opts, opts),
    )
    .await
    {
        return Ok(ending
            .record(store, lock, record, Some(err), Vec::new())
            .await);
    }
    let applied = match while_held(
        cluster.context(),
        lock,
        cluster.apply_all(&to_apply, &apply_opts, &opts.progress),
    )
    .await
    {
        Ok(applied) => applied,
        Err(err) => {
            return Ok(ending
                .record(store, lock, record, Some(err), Vec::new())
                .await)
        }
    };
    ending.applied_at = Some(Utc::now());
    // The identities as the server resolved them: a custom kind whose CRD came with
    // this apply was only guessed (namespaced) before it.
    record.objects = ending
        .kept_live
        .iter()
        .cloned()
        .chain(applied.iter().cloned())
        .collect();
    // Losing the lease stops the wait as a cancellation would: another run owns the
    // release now.
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
        namespace: scope.namespace.to_owned(),
        timeout: opts.timeout,
        transient_grace: opts.transient_grace,
        release: scope.release.to_owned(),
        pods_complete: false,
        declared: WaitOptions::declared(&to_apply),
    };
    let health = cluster
        .wait_healthy(&applied, &wait, &stop, &opts.progress)
        .await;
    watchdog.abort();
    if let Err(err) = health {
        // A revision that is not healthy deletes nothing: a rollback to the previous
        // one finds every object it had.
        return Ok(ending
            .record(store, lock, record, Some(err), Vec::new())
            .await);
    }
    // After the release is healthy, before the prune: a failed post-hook fails the
    // revision as an unhealthy one does, with nothing deleted.
    let after = super::hooks::event(rollback, installed, false);
    if let Err(err) = while_held(
        cluster.context(),
        lock,
        super::hooks::run_event(cluster, lock, &hooks, after, &apply_opts, opts),
    )
    .await
    {
        return Ok(ending
            .record(store, lock, record, Some(err), Vec::new())
            .await);
    }

    // Prune last: only once the cluster is healthy on the new revision, what the
    // previous revision (and killed or failed runs since) had and this one does not.
    // Identity ignores the apiVersion, so an object moved to a newer API is kept. A
    // restore never deletes what an undone run adopted.
    let removal = if desired.rollback_of.is_some() {
        Removal::RollbackPrune
    } else {
        Removal::Prune
    };
    let keep: BTreeSet<&ObjectRef> = record.objects.iter().collect();
    let stale: Vec<ObjectRef> = maybe_live
        .iter()
        .filter(|id| !keep.contains(id))
        .cloned()
        .collect();
    if let Some(err) = lease_lost(cluster.context(), lock) {
        return Ok(ending.lost(record, err));
    }
    let pruned = match while_held(
        cluster.context(),
        lock,
        cluster.delete_owned(&stale, &apply_opts, removal, &opts.progress),
    )
    .await
    {
        Ok(removed) => {
            ending.kept = removed.kept;
            removed.deleted
        }
        Err(err) => {
            return Ok(ending
                .record(store, lock, record, Some(err), Vec::new())
                .await)
        }
    };
    // The `deployed` record and the marks of the revisions it replaces go at once, one
    // round trip: each mark names this revision and counts only once it is recorded
    // healthy ([`History::new`]), so a run lost between the two leaves the revision
    // before it as it was. Bookkeeping writes only while the lease is held: after it,
    // another run owns the records.
    let revision = record.revision;
    let marks = async {
        match lease_lost(cluster.context(), lock) {
            Some(_) => Ok(()),
            None => {
                supersede(
                    store,
                    &history,
                    scope,
                    desired.restores.as_deref(),
                    revision,
                )
                .await
            }
        }
    };
    let (outcome, marked) = tokio::join!(ending.record(store, lock, record, None, pruned), marks);
    if outcome.error.is_none() && lease_lost(cluster.context(), lock).is_none() {
        // The run is recorded `deployed` and healthy: a mark that failed is
        // bookkeeping that the next run redoes (every `deployed` record older than the
        // newest is superseded then), so it does not fail the cluster.
        if let Err(err) = marked {
            tracing::warn!("{err} (the next run marks the older revisions)");
        } else if let Err(err) = store
            .prune_history(opts.history_limit, &opts.history_keep)
            .await
        {
            tracing::warn!("{err} (the next run prunes the history)");
        }
    }
    Ok(outcome)
}

/// The objects of `manifest` (by [`settled_key`]) that run now as the manifest has
/// them, as far as what is applied after them can see: those of the deployed revision,
/// when it is the newest record (a killed or failed run since may have left anything
/// live). Compared with the record, not the live object: a hand edit since is put right
/// in the same round as its dependents, as any drift a deploy corrects.
fn settled_objects(history: &History, manifest: &[Value]) -> BTreeSet<String> {
    use crate::cluster::{seen_by_dependents, settled_key};
    let Some(running) = history
        .deployed()
        .filter(|d| history.latest().is_some_and(|l| l.revision == d.revision))
    else {
        return BTreeSet::new();
    };
    let running: HashMap<String, Value> = running
        .manifest
        .iter()
        .filter_map(|o| Some((settled_key(o)?, seen_by_dependents(o))))
        .collect();
    manifest
        .iter()
        .filter_map(|o| {
            let key = settled_key(o)?;
            (running.get(&key) == Some(&seen_by_dependents(o))).then_some(key)
        })
        .collect()
}

/// The error of a run that no longer holds its lease, if it lost it.
fn lease_lost<L: HeldLock>(context: &str, lock: &L) -> Option<ClusterError> {
    if !lock.lost().is_cancelled() {
        return None;
    }
    let context = context.to_owned();
    let message = lock
        .lost_why()
        .unwrap_or_else(|| "another run took it".into());
    // A cluster that stopped answering is lost, not taken over: reported as such,
    // with the command that finishes the job once it is back.
    Some(if lock.lost_to_silence() {
        ClusterError::Unreachable {
            context,
            message,
            source: None,
        }
    } else {
        ClusterError::LockLost { context, message }
    })
}

/// `write` (an apply, a prune) unless the lease is lost first: then it is dropped, so
/// none of its requests not yet sent is sent, and the answer says the lease was lost.
/// The renewal declares it lost before a peer may take it over, so this run's writes
/// stop before another run's start.
async fn while_held<T, L: HeldLock>(
    context: &str,
    lock: &L,
    write: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    let lost = lock.lost();
    tokio::select! {
        biased;
        _ = lost.cancelled() => Err(lease_lost(context, lock).unwrap_or_else(|| {
            ClusterError::LockLost {
                context: context.to_owned(),
                message: "another run took it".into(),
            }
        })),
        done = write => done,
    }
}

/// A pending record is a run that was killed (we hold the lock, so nobody else is
/// running): it is marked failed. Its objects may be live: they count for prune.
async fn repair_killed_runs<S: RecordStore>(
    store: &S,
    history: &History,
    holder: &str,
) -> Result<Vec<u32>, ClusterError> {
    let mut repaired = Vec::new();
    for killed in history.pending() {
        let mut record = killed.clone();
        record.status = Status::Failed;
        record.updated = Utc::now();
        record.description = format!(
            "interrupted: the run that wrote it stopped before finishing; repaired by {holder}"
        );
        store.update(&record).await?;
        repaired.push(record.revision);
    }
    Ok(repaired)
}

/// The record a run writes before it changes anything, without object identities yet.
fn pending_record(
    scope: &Scope<'_>,
    desired: &Desired,
    history: &History,
    opts: &RunOptions,
) -> ReleaseRecord {
    let now = Utc::now();
    ReleaseRecord {
        name: scope.release.to_owned(),
        namespace: scope.namespace.to_owned(),
        revision: history.next_revision(),
        status: Status::Pending,
        operation: match (desired.rollback_of, history.deployed()) {
            (Some(_), _) => Operation::Rollback,
            (None, None) => Operation::Install,
            (None, Some(_)) => Operation::Upgrade,
        },
        deployment_id: scope.deployment_id.to_owned(),
        restores: desired.restores.clone(),
        targets: opts.targets.clone(),
        until_wave: opts
            .until_wave
            .clone()
            .filter(|_| desired.rollback_of.is_none()),
        digest: release::content_digest(
            &desired.record_manifest,
            &desired.app_version,
            &desired.chart,
        ),
        source: desired.source.clone(),
        chart: desired.chart.clone(),
        app_version: desired.app_version.clone(),
        manifest: desired.record_manifest.clone(),
        objects: Vec::new(),
        values: desired.values.clone(),
        rollback_of: desired.rollback_of,
        created: now,
        updated: now,
        healthy_at: None,
        user: crate::cluster::lock_user(),
        host: crate::cluster::lock_host(),
        description: String::new(),
        audit: opts.audit.clone(),
        mac: String::new(),
        hooks: desired.recorded_hooks.clone(),
        replaced: None,
        phases: Vec::new(),
    }
}

/// What the run's outcome carries besides its record.
struct Ending<'a> {
    context: &'a str,
    previous: Option<u32>,
    repaired: Vec<u32>,
    kept_live: Vec<ObjectRef>,
    adopted: Vec<Adopted>,
    /// What the prune left, with the reason.
    kept: Vec<Kept>,
    /// When the apply ended (the health wait began), once it did.
    applied_at: Option<chrono::DateTime<Utc>>,
}

fn listed<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Ending<'_> {
    /// Records the run as `deployed` (no error) or `failed`, and says so. When the
    /// record cannot be written (the cluster was lost) or must not be (the lease was
    /// lost: another run owns the records now), the outcome says what is recorded:
    /// `pending`, which the next run repairs.
    async fn record<S: RecordStore, L: HeldLock>(
        &self,
        store: &S,
        lock: &L,
        mut record: ReleaseRecord,
        error: Option<ClusterError>,
        pruned: Vec<ObjectRef>,
    ) -> Outcome {
        if let Some(lost) = lease_lost(self.context, lock) {
            let error = match error {
                // The wait, apply or prune was stopped because the lease was lost.
                None | Some(ClusterError::Cancelled { .. } | ClusterError::LockLost { .. }) => lost,
                Some(first) => both(self.context, first, &lost),
            };
            return Outcome {
                pruned,
                ..self.lost(record, error)
            };
        }
        let pending = record.clone();
        record.status = if error.is_some() {
            Status::Failed
        } else {
            Status::Deployed
        };
        record.updated = Utc::now();
        if record.status == Status::Deployed {
            record.healthy_at = Some(record.updated);
        }
        record.phases = self.phases(&record);
        let mut notes = Vec::new();
        if let Some(err) = &error {
            // An API server's message can echo the object it refused, values included.
            notes.push(crate::redact::scrub(&err.to_string()));
        }
        if !self.adopted.is_empty() {
            notes.push(format!("adopted: {}", listed(&self.adopted)));
        }
        if error.is_none() && !self.kept_live.is_empty() {
            notes.push(format!(
                "kept live (values never recorded): {}",
                listed(&self.kept_live)
            ));
        }
        if !self.kept.is_empty() {
            notes.push(format!("not pruned: {}", listed(&self.kept)));
        }
        record.description = notes.join("; ");
        if let Err(write) = store.update(&record).await {
            let error = match error {
                Some(first) => both(self.context, first, &write),
                None => write,
            };
            return Outcome {
                pruned,
                ..self.lost(pending, error)
            };
        }
        Outcome {
            context: self.context.to_owned(),
            revision: record.revision,
            previous: self.previous,
            status: record.status,
            repaired: self.repaired.clone(),
            kept_live: self.kept_live.clone(),
            pruned,
            kept: self.kept.clone(),
            adopted: self.adopted.clone(),
            error,
        }
    }

    /// Where the run's time went, for its record ending now (`record.updated`): the
    /// preparation since the run's start, then the apply and the wait of a deploy, or
    /// the whole of a restore.
    fn phases(&self, record: &ReleaseRecord) -> Vec<PhaseTime> {
        let span = |phase, started, ended| PhaseTime {
            phase,
            started,
            ended,
        };
        let (created, ended) = (record.created, record.updated);
        if record.operation == Operation::Rollback {
            return vec![span(Phase::Restore, created, ended)];
        }
        let mut phases: Vec<PhaseTime> = crate::cluster::run_started_at()
            .filter(|started| *started <= created)
            .map(|started| span(Phase::Prepare, started, created))
            .into_iter()
            .collect();
        match self.applied_at {
            Some(applied) => {
                phases.push(span(Phase::Apply, created, applied));
                phases.push(span(Phase::Wait, applied, ended));
            }
            None => phases.push(span(Phase::Apply, created, ended)),
        }
        phases
    }

    /// A run that changed the cluster (or may have) and could not record how it ended:
    /// its record stays `pending`.
    fn lost(&self, record: ReleaseRecord, error: ClusterError) -> Outcome {
        Outcome {
            context: self.context.to_owned(),
            revision: record.revision,
            previous: self.previous,
            status: Status::Pending,
            repaired: self.repaired.clone(),
            kept_live: self.kept_live.clone(),
            pruned: Vec::new(),
            kept: self.kept.clone(),
            adopted: self.adopted.clone(),
            error: Some(error),
        }
    }
}

/// `then` (a lost cluster or lease, a refused write) after `first` (why the run
/// failed): of the kind of `then`, so that an unreachable cluster is reported as one,
/// with both messages.
fn both(context: &str, first: ClusterError, then: &ClusterError) -> ClusterError {
    let message = format!("{then}; before that: {first}");
    let context = context.to_owned();
    match then {
        ClusterError::Unreachable { .. } => ClusterError::Unreachable {
            context,
            message,
            source: None,
        },
        ClusterError::LockLost { .. } => ClusterError::LockLost { context, message },
        _ => ClusterError::Release { context, message },
    }
}

/// Marks what was deployed before a successful run as replaced by it: `superseded`,
/// unless the run is a restore and the old revision ran other content than the one it
/// brings back: that content is undone (`rolled-back`), and no later rollback may go
/// forward to it.
///
/// Two revisions are never undone by a restore, because neither ran content that the
/// restore undid:
/// - one that runs the very content the restore brings back (the automatic restore of a
///   failed deploy on top of a cluster that already ran the target, or a restore of
///   it written earlier): marking it would poison the rollback target itself, and the
///   next `rollback` would find nothing to go back to;
/// - this same run's own earlier restore (a rollback that failed elsewhere putting a
///   cluster back): a failed rollback attempt cannot poison its own target.
async fn supersede<S: RecordStore>(
    store: &S,
    history: &History,
    scope: &Scope<'_>,
    restores: Option<&str>,
    by: u32,
) -> Result<(), ClusterError> {
    let mut changed = Vec::new();
    for old in history.every_deployed() {
        let undone = undone_by(old, scope.deployment_id, restores);
        let mut record = old.clone();
        record.replaced = Some(release::Replaced {
            by,
            was: old.status,
        });
        record.status = if undone {
            Status::RolledBack
        } else {
            Status::Superseded
        };
        record.updated = Utc::now();
        changed.push(record);
    }
    if let Some(wrongly_undone) = restored_by_own_run(history, scope.deployment_id, restores) {
        let mut record = wrongly_undone.clone();
        record.replaced = Some(release::Replaced {
            by,
            was: wrongly_undone.status,
        });
        record.status = Status::Superseded;
        record.updated = Utc::now();
        changed.push(record);
    }
    // Different records (one deployed, another rolled back): written at once.
    futures::future::try_join_all(changed.iter().map(|record| store.update(record))).await?;
    Ok(())
}

/// The revision this run marked rolled back when it first changed the cluster, when
/// the run now puts that very content back (a rollback that failed in another cluster
/// undoing its own change here): nothing of it was undone in the end, and left marked
/// it would never be a rollback target again although it runs everywhere.
fn restored_by_own_run<'h>(
    history: &'h History,
    deployment_id: &str,
    restores: Option<&str>,
) -> Option<&'h ReleaseRecord> {
    let brought_back = restores?;
    let first_own = history
        .iter()
        .filter(|r| r.deployment_id == deployment_id)
        .map(|r| r.revision)
        .min()?;
    history
        .iter()
        .rev()
        .filter(|r| r.revision < first_own)
        .find(|r| r.status.was_healthy())
        .filter(|r| r.status == Status::RolledBack && r.content_id() == brought_back)
}

/// Whether a run `deployment_id` that brings back the content of deployment `restores`
/// (`None`: a deploy) undoes `old`, a revision that was deployed before it.
fn undone_by(old: &ReleaseRecord, deployment_id: &str, restores: Option<&str>) -> bool {
    let Some(brought_back) = restores else {
        return false;
    };
    let own_restore = !old.is_deploy() && old.deployment_id == deployment_id;
    !own_restore && old.content_id() != brought_back
}

#[cfg(test)]
mod tests {
    //! The upgrade and restore state machine on a cluster in memory
    //! ([`super::super::fake`]) and a [`MemoryStore`](crate::storage::MemoryStore).
    use super::*;
    use crate::ops::fake::{FakeKube, Wait};
    use crate::ops::restore::{restore_with, RestoreTo};
    use crate::release::tests_support::record;
    use crate::storage::MemoryStore;
    use serde_json::json;
    use std::time::Duration;

    /// What decides whether the apply may send a round with the next one: only the
    /// objects that run now as the new revision has them, as their dependents see them,
    /// and only while the deployed revision is the newest record.
    #[test]
    fn objects_settled_are_those_the_deployed_revision_has_as_dependents_see_them() {
        let manifest = |version: &str, password: &str| {
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "config", "labels": {"version": version}},
                       "data": {"greeting": "hello"}}),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                       "data": {"password": password}}),
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "web", "annotations": {"version": version}}}),
            ]
        };
        let mut deployed = record(1, "A", Status::Deployed);
        deployed.manifest = manifest("1", "<redacted sha256:aaaa>");
        let history = History::new(vec![deployed.clone()]);
        // A label is nothing a pod sees of a ConfigMap; a ServiceAccount's annotation
        // may be (its pods' identity); a Secret's changed digest is a changed value.
        assert_eq!(
            settled_objects(&history, &manifest("2", "<redacted sha256:bbbb>")),
            BTreeSet::from(["v1/ConfigMap//config".to_owned()])
        );
        assert_eq!(
            settled_objects(&history, &manifest("1", "<redacted sha256:aaaa>")).len(),
            3
        );
        // A failed run since may have left anything live.
        let history = History::new(vec![deployed, record(2, "B", Status::Failed)]);
        assert!(settled_objects(&history, &manifest("1", "<redacted sha256:aaaa>")).is_empty());
    }

    fn rendered(version: &str, extra: bool) -> Rendered {
        let mut objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"},
                   "data": {"version": version}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "data": {"password": "aHVudGVyMg=="}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"template": {"spec": {"containers": [{"name": "web", "image": format!("app:{version}")}]}}}}),
        ];
        if extra {
            objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "extra"}, "data": {}}));
        }
        Rendered {
            hooks: Vec::new(),
            release: "hello".into(),
            namespace: "ns".into(),
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: version.into(),
            stored: release::redact_manifest(&objects),
            objects,
            values: json!({"secrets": {"db-password": "hunter2"}, "log": "info"}),
            source: None,
        }
    }

    fn opts() -> RunOptions {
        RunOptions::new(Duration::from_secs(5))
    }

    fn statuses(store: &MemoryStore) -> Vec<(u32, Status)> {
        store
            .records()
            .iter()
            .map(|r| (r.revision, r.status))
            .collect()
    }

    #[tokio::test]
    async fn install_then_upgrade_supersedes_and_prunes_what_the_new_revision_dropped() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        let first = deploy_with(&kube, &store, &rendered("1", true), "d1", &opts())
            .await
            .unwrap();
        assert_eq!(
            (first.revision, first.status, first.previous),
            (1, Status::Deployed, None)
        );
        assert_eq!(store.records()[0].operation, Operation::Install);
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));

        let second = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert_eq!((second.revision, second.previous), (2, Some(1)));
        assert_eq!(
            statuses(&store),
            [(1, Status::Superseded), (2, Status::Deployed)]
        );
        assert_eq!(store.records()[1].operation, Operation::Upgrade);
        // When each became healthy is kept; the superseded one's `updated` is when it
        // stopped running: together, how long it ran healthy (promotion soak).
        let (old, new) = (&store.records()[0], &store.records()[1]);
        let old_healthy = old.healthy_at.expect("recorded healthy");
        assert!(old_healthy <= old.updated && new.healthy_at.is_some_and(|t| t >= old_healthy));
        assert_eq!(
            second
                .pruned
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>(),
            ["extra"]
        );
        assert!(!kube.live_names().contains(&"ConfigMap/extra".to_owned()));
        // Prune comes last: after apply and after the cluster is healthy.
        let log = kube.logged();
        let at = |line: &str| log.iter().rposition(|l| l == line).unwrap();
        assert!(at("apply Deployment/web") < at("wait"));
        assert!(at("wait") < at("delete ConfigMap/extra"));
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_read_is_skipped_unless_it_could_be_what_runs() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        // Revision 1 damaged: history only. The others read, and the next run goes on.
        store.put_bytes(1, b"not gzip".to_vec());
        let history = store.history().await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            history.skipped()[0].to_string(),
            "record Secret memory/flotilla.v1 skipped: its `release` data is not gzip: unexpected end of file"
        );
        assert_eq!(history.check_skipped(), Ok(()));
        let third = deploy_with(&kube, &store, &rendered("3", false), "d3", &opts())
            .await
            .unwrap();
        assert_eq!((third.revision, third.status), (3, Status::Deployed));

        // A damaged record above the deployed one may be what runs: nothing changes.
        store.put_bytes(4, crate::storage::tests_support::gzip_bomb());
        let before = (statuses(&store), kube.live_text());
        let err = deploy_with(&kube, &store, &rendered("5", false), "d5", &opts())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record Secret memory/flotilla.v4 skipped: its `release` data decodes to more than 64 MiB")
                && err.contains("newer than the deployed revision 3")
                && err.contains("nothing was changed"),
            "{err}"
        );
        let to = RestoreTo {
            revision: 2,
            deployment_id: "r1",
            fresh: &[],
            unreadable: &[],
        };
        assert!(restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .is_err());
        assert_eq!(
            (statuses(&store), kube.live_text()),
            before,
            "nothing changed"
        );
        // A record of a status this version does not know is skipped alike; the next
        // revision comes after every record's name, read or not.
        let mut unknown = serde_json::to_value(record(5, "d5", Status::Deployed)).unwrap();
        unknown["status"] = json!("pending-upgrade");
        store.put_bytes(
            5,
            crate::storage::tests_support::gzip(unknown.to_string().as_bytes()),
        );
        let history = store.history().await.unwrap();
        let skipped: Vec<Option<u32>> = history.skipped().iter().map(|s| s.revision).collect();
        assert_eq!(skipped, [Some(1), Some(4), Some(5)]);
        assert!(history.skipped()[2]
            .why
            .contains("unknown variant `pending-upgrade`"));
        assert_eq!(history.next_revision(), 6);
        // An uninstall refuses alike; once the newer ones are gone it removes the old
        // unreadable record with the others, so that a new install starts clean.
        let run = opts();
        let uninstall =
            || crate::ops::uninstall::uninstall_with(&kube, &store, "ns", "hello", &run);
        assert!(uninstall().await.is_err());
        store.delete(4).await.unwrap();
        store.delete(5).await.unwrap();
        uninstall().await.unwrap();
        let history = store.history().await.unwrap();
        assert!(
            history.is_empty() && history.skipped().is_empty(),
            "{history:?}"
        );
    }

    #[tokio::test]
    async fn records_hold_no_secret_value() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        let stored = serde_json::to_string(&store.records()).unwrap();
        assert!(!stored.contains("aHVudGVyMg=="), "{stored}");
        assert!(!stored.contains("hunter2"), "{stored}");
        // What was applied did carry it.
        assert!(kube.live_text().contains("aHVudGVyMg=="));
    }

    /// A chart that puts the secret in an env var: two renders, the record from the one
    /// with placeholders.
    fn rendered_with_env_secret(version: &str, password: &str) -> Rendered {
        let web = |value: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"template": {"spec": {"containers": [{"name": "web",
                     "image": format!("app:{version}"),
                     "env": [{"name": "DB_PASSWORD", "value": value}, {"name": "LEVEL", "value": "info"}]}]}}}})
        };
        let objects = vec![web(password)];
        let stored = vec![crate::redact::stored_form(
            &web("<secret:db-password>"),
            &objects[0],
        )];
        Rendered {
            stored,
            objects,
            ..rendered(version, false)
        }
    }

    #[tokio::test]
    async fn a_secret_in_an_env_var_is_never_recorded_and_a_restore_puts_a_value_back() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(
            &kube,
            &store,
            &rendered_with_env_secret("1", "s3cret-env-one"),
            "d1",
            &opts(),
        )
        .await
        .unwrap();
        deploy_with(
            &kube,
            &store,
            &rendered_with_env_secret("2", "s3cret-env-two"),
            "d2",
            &opts(),
        )
        .await
        .unwrap();
        let records = serde_json::to_string(&store.records()).unwrap();
        assert!(!records.contains("s3cret-env"), "{records}");
        assert!(records.contains("LEVEL"), "{records}");
        assert!(kube.live_text().contains("s3cret-env-two"));

        // Vault down: the secret field keeps its live value, the rest is the record's.
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d1",
            fresh: &[],
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert_eq!(back.status, Status::Deployed);
        let live = kube.live_text();
        assert!(
            live.contains("app:1") && live.contains("s3cret-env-two"),
            "{live}"
        );
        assert!(!live.contains("<redacted"), "{live}");

        // The revision rendered again with a fresh read: applied as rendered.
        let fresh = rendered_with_env_secret("1", "s3cret-env-fresh").objects;
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d1",
            fresh: &fresh,
            unreadable: &[],
        };
        restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        let live = kube.live_text();
        assert!(
            live.contains("app:1") && live.contains("s3cret-env-fresh"),
            "{live}"
        );
        let records = serde_json::to_string(&store.records()).unwrap();
        assert!(!records.contains("s3cret-env"), "{records}");
    }

    #[tokio::test]
    async fn an_unhealthy_revision_is_failed_and_the_good_one_stays_deployed() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        kube.set_wait(Wait::Crash);
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Failed);
        assert!(matches!(
            outcome.error,
            Some(ClusterError::Unhealthy { .. })
        ));
        assert_eq!(
            statuses(&store),
            [(1, Status::Deployed), (2, Status::Failed)]
        );
        assert!(store.records()[1].description.contains("CrashLoopBackOff"));
        assert!(
            store.records()[1].healthy_at.is_none(),
            "a failed revision never became healthy"
        );
    }

    #[tokio::test]
    async fn a_rejected_apply_is_recorded_failed_with_every_identity_and_prunes_nothing() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", true), "d1", &opts())
            .await
            .unwrap();
        kube.reject(Some("web"));
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Failed);
        assert!(outcome.pruned.is_empty());
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));
        // The failed record knows every object it may have created.
        assert_eq!(store.records()[1].objects.len(), 3);
        assert_eq!(
            kube.logged().iter().filter(|l| *l == "wait").count(),
            1,
            "only the first run waited"
        );
    }

    #[tokio::test]
    async fn a_pending_record_of_a_killed_run_is_repaired_and_its_objects_pruned() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        // A run killed after applying `extra`: its record stayed pending.
        let mut killed = record(2, "d2", Status::Pending);
        let extra = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "extra".into(),
        };
        killed.objects = vec![extra.clone()];
        store.create(&killed).await.unwrap();
        kube.live.lock().unwrap().insert(
            extra,
            json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "flotilla",
                                           "flotilla.dev/release": "hello"}}}),
        );

        let outcome = deploy_with(&kube, &store, &rendered("3", false), "d3", &opts())
            .await
            .unwrap();
        assert_eq!(outcome.repaired, [2]);
        assert_eq!(
            statuses(&store),
            [
                (1, Status::Superseded),
                (2, Status::Failed),
                (3, Status::Deployed)
            ]
        );
        assert!(store.records()[1].description.starts_with("interrupted"));
        assert!(!kube.live_names().contains(&"ConfigMap/extra".to_owned()));
    }

    fn unreachable(outcome: &Outcome) -> bool {
        matches!(outcome.error, Some(ClusterError::Unreachable { .. }))
    }

    #[tokio::test]
    async fn a_cluster_lost_before_the_final_record_is_a_changed_outcome_left_pending() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        // The pending record is written; the final one is not.
        store.fail_after_writes(1);
        let outcome = deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .expect("once something changed, the answer is an outcome");
        assert!(unreachable(&outcome), "{:?}", outcome.error);
        assert_eq!((outcome.revision, outcome.status), (1, Status::Pending));
        assert_eq!(statuses(&store), [(1, Status::Pending)]);
        assert!(!kube.live_names().is_empty(), "objects were applied");
    }

    #[tokio::test]
    async fn a_cluster_lost_during_apply_is_changed_unreachable_and_names_both_faults() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        kube.lose_at(Some("web"));
        // The pending record of the second run is written, nothing after it.
        store.fail_after_writes(1);
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert!(unreachable(&outcome), "{:?}", outcome.error);
        let text = outcome.error.as_ref().unwrap().to_string();
        assert!(
            text.contains("record store went away") && text.contains("apply of"),
            "{text}"
        );
        assert_eq!((outcome.revision, outcome.previous), (2, Some(1)));
        assert_eq!(
            statuses(&store),
            [(1, Status::Deployed), (2, Status::Pending)]
        );
    }

    #[tokio::test]
    async fn a_lost_cluster_whose_final_record_lands_is_recorded_failed() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        kube.lose_at(Some("web"));
        let outcome = deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        assert!(unreachable(&outcome));
        assert_eq!(outcome.status, Status::Failed);
        assert_eq!(statuses(&store), [(1, Status::Failed)]);
    }

    #[tokio::test]
    async fn a_pending_record_sent_without_answer_is_a_change_nothing_applied_after_it() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        // Not even the pending record gets an answer: it may or may not have landed.
        store.fail_after_writes(0);
        let outcome = deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        assert!(unreachable(&outcome));
        assert_eq!(outcome.status, Status::Pending);
        assert!(
            kube.live_names().is_empty(),
            "no apply after a lost record write"
        );
    }

    #[tokio::test]
    async fn a_lease_lost_before_the_first_change_is_an_error_and_changes_nothing() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        kube.lease.cancel();
        let err = deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::LockLost { .. }), "{err}");
        assert!(err.to_string().contains("bob@laptop"), "{err}");
        assert!(store.records().is_empty());
        assert!(kube.live_names().is_empty());
    }

    #[tokio::test]
    async fn a_lease_lost_during_the_wait_stops_the_run_and_writes_no_more_records() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", true), "d1", &opts())
            .await
            .unwrap();
        kube.set_wait(Wait::LoseLease);
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert!(
            matches!(outcome.error, Some(ClusterError::LockLost { .. })),
            "{:?}",
            outcome.error
        );
        assert_eq!(outcome.status, Status::Pending);
        // The other run owns the records now: ours stays pending (it repairs it), and
        // the deployed one is not superseded.
        assert_eq!(
            statuses(&store),
            [(1, Status::Deployed), (2, Status::Pending)]
        );
    }

    #[tokio::test]
    async fn a_lease_lost_after_apply_prunes_nothing() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", true), "d1", &opts())
            .await
            .unwrap();
        // Lost as soon as the objects are applied: the next step is prune.
        let lease = kube.lease.clone();
        let mut o = opts();
        o.progress = std::sync::Arc::new(move |_, event| {
            if matches!(event, Event::Applied(ref id) if id.name == "web") {
                lease.cancel();
            }
        });
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &o)
            .await
            .unwrap();
        assert!(matches!(outcome.error, Some(ClusterError::LockLost { .. })));
        assert!(outcome.pruned.is_empty());
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));
        assert!(!kube.logged().iter().any(|l| l.starts_with("delete")));
    }

    #[tokio::test]
    async fn bookkeeping_after_a_healthy_record_does_not_fail_the_cluster() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        // The pending and the deployed record land; superseding the old one does not.
        store.fail_after_writes(2);
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(outcome.status, Status::Deployed);
        assert_eq!(
            statuses(&store),
            [(1, Status::Deployed), (2, Status::Deployed)]
        );
        // The next run finds two deployed and supersedes both older ones.
        store.fail_after_writes(usize::MAX);
        let next = deploy_with(&kube, &store, &rendered("3", false), "d3", &opts())
            .await
            .unwrap();
        assert_eq!(next.previous, Some(2), "the newest deployed one");
        assert_eq!(
            statuses(&store),
            [
                (1, Status::Superseded),
                (2, Status::Superseded),
                (3, Status::Deployed)
            ]
        );
    }

    #[tokio::test]
    async fn a_cluster_lost_during_its_restore_is_a_changed_outcome_too() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        store.fail_after_writes(1);
        let to = RestoreTo {
            revision: 1,
            deployment_id: "r3",
            fresh: &[],
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert!(unreachable(&back));
        assert_eq!((back.revision, back.status), (3, Status::Pending));
    }

    #[tokio::test]
    async fn restore_reapplies_the_recorded_manifest_and_keeps_live_secrets() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", true), "d1", &opts())
            .await
            .unwrap();
        deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d1",
            fresh: &[],
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert_eq!((back.revision, back.status), (3, Status::Deployed));
        assert_eq!(
            back.kept_live.len(),
            1,
            "the Secret, whose values are not recorded"
        );
        assert_eq!(
            statuses(&store),
            [
                (1, Status::Superseded),
                (2, Status::RolledBack),
                (3, Status::Deployed)
            ]
        );
        let last = store.records().pop().unwrap();
        assert_eq!(
            (last.operation, last.rollback_of),
            (Operation::Rollback, Some(1))
        );
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));
        let live = kube.live.lock().unwrap();
        let config = live.iter().find(|(id, _)| id.name == "config").unwrap().1;
        assert_eq!(config["data"]["version"], "1");
    }

    #[tokio::test]
    async fn restore_with_a_fresh_secret_applies_it_and_refuses_a_missing_one() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        let fresh = [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                            "data": {"password": "cm90YXRlZA=="}}),
        ];
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d1",
            fresh: &fresh,
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert!(back.kept_live.is_empty());
        let applied = kube.live_text();
        assert!(applied.contains("cm90YXRlZA=="));

        // Not live and no fresh value: nothing to restore it from.
        kube.live
            .lock()
            .unwrap()
            .retain(|id, _| id.kind != "Secret");
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d1",
            fresh: &[],
            unreadable: &[],
        };
        let err = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot restore"), "{err}");
        let missing = RestoreTo {
            revision: 9,
            deployment_id: "d9",
            fresh: &[],
            unreadable: &[],
        };
        let err = restore_with(&kube, &store, "ns", "hello", &missing, &opts())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("has no revision 9"), "{err}");
    }

    #[tokio::test]
    async fn a_restore_undone_by_its_own_run_leaves_its_target_a_target() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "B", &opts())
            .await
            .unwrap();
        deploy_with(&kube, &store, &rendered("2", false), "C", &opts())
            .await
            .unwrap();
        // Rollback run R goes to B, then (failing elsewhere) puts this cluster back on C.
        for revision in [1, 2] {
            let to = RestoreTo {
                revision,
                deployment_id: "R",
                fresh: &[],
                unreadable: &[],
            };
            restore_with(&kube, &store, "ns", "hello", &to, &opts())
                .await
                .unwrap();
        }
        let records = store.records();
        let of = |n: usize| (records[n].content_id().to_owned(), records[n].status);
        assert_eq!(
            of(1),
            ("C".into(), Status::Superseded),
            "C runs again: the run that undid it undid that too, so C is still a rollback target"
        );
        assert_eq!(
            of(2),
            ("B".into(), Status::Superseded),
            "R's own step, not B, was undone"
        );
        assert_eq!(of(3), ("C".into(), Status::Deployed));
        assert_eq!(records[3].deployment_id, "R");
    }

    #[tokio::test]
    async fn history_beyond_the_limit_is_pruned_but_never_the_deployed_one() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        let mut o = opts();
        o.history_limit = 2;
        for n in 1..=4 {
            deploy_with(
                &kube,
                &store,
                &rendered(&n.to_string(), false),
                &format!("d{n}"),
                &o,
            )
            .await
            .unwrap();
        }
        assert_eq!(
            statuses(&store),
            [(3, Status::Superseded), (4, Status::Deployed)]
        );
    }

    /// `rendered("v", false)` with `extra` objects added.
    fn with(version: &str, extra: &[Value]) -> Rendered {
        let mut r = rendered(version, false);
        r.objects.extend(extra.iter().cloned());
        r.store_as_rendered();
        r
    }

    fn names(ids: &[ObjectRef]) -> Vec<String> {
        ids.iter()
            .map(|id| format!("{}/{}", id.kind, id.name))
            .collect()
    }

    /// The incident of a bad deploy undone at once: the automatic restore brings back
    /// the revision that ran before, so that one is superseded, never rolled back
    /// (a rolled-back content is never a rollback target again: marking it made the
    /// next `rollback` of the environment refuse).
    #[tokio::test]
    async fn an_automatic_restore_never_marks_the_content_it_brings_back_rolled_back() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", true), "a", &opts())
            .await
            .unwrap();
        kube.set_wait(Wait::Crash);
        let failed = deploy_with(&kube, &store, &rendered("2", true), "crash", &opts())
            .await
            .unwrap();
        assert_eq!(failed.status, Status::Failed);
        kube.set_wait(Wait::Healthy);
        let to = RestoreTo {
            revision: 1,
            deployment_id: "crash",
            fresh: &[],
            unreadable: &[],
        };
        restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert_eq!(
            statuses(&store),
            [
                (1, Status::Superseded),
                (2, Status::Failed),
                (3, Status::Deployed)
            ]
        );
        // A rollback that restores the same content again (a cluster already back on
        // it) undoes nothing either.
        let again = RestoreTo {
            revision: 3,
            deployment_id: "rollback",
            ..to
        };
        restore_with(&kube, &store, "ns", "hello", &again, &opts())
            .await
            .unwrap();
        assert_eq!(store.records()[2].status, Status::Superseded);
    }

    /// `uninstall --keep-history`: the objects go, the records stay with the deployed
    /// one marked uninstalled, which a rollback brings back.
    #[tokio::test]
    async fn an_uninstall_that_keeps_history_leaves_a_rollback_target() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "a", &opts())
            .await
            .unwrap();
        deploy_with(&kube, &store, &rendered("2", false), "b", &opts())
            .await
            .unwrap();
        let mut keep = opts();
        keep.keep_history = true;
        crate::ops::uninstall::uninstall_with(&kube, &store, "ns", "hello", &keep)
            .await
            .unwrap();
        assert!(kube.live_names().is_empty(), "{:?}", kube.live_names());
        assert_eq!(
            statuses(&store),
            [(1, Status::Superseded), (2, Status::Uninstalled)]
        );
        let history = store.history().await.unwrap();
        let env = release::EnvironmentHistory::new([("c", &history)]);
        assert_eq!(env.rollback_target(), Some("b"));
        // Nothing is live: the Secret comes from Vault again, as a rollback reads it.
        let fresh: Vec<Value> = rendered("2", false)
            .objects
            .into_iter()
            .filter(release::is_secret)
            .collect();
        let to = RestoreTo {
            revision: 2,
            deployment_id: "r",
            fresh: &fresh,
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert_eq!((back.revision, back.status), (3, Status::Deployed));
        assert!(kube.live_names().contains(&"Deployment/web".to_owned()));
    }

    #[tokio::test]
    async fn a_failed_deploy_deletes_nothing_it_dropped() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", true), "d1", &opts())
            .await
            .unwrap();
        kube.set_wait(Wait::Crash);
        let outcome = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Failed);
        assert!(outcome.pruned.is_empty());
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));
        assert!(!kube.logged().iter().any(|l| l.starts_with("delete")));
        // The next healthy run prunes it, after its wait.
        kube.set_wait(Wait::Healthy);
        let third = deploy_with(&kube, &store, &rendered("3", false), "d3", &opts())
            .await
            .unwrap();
        assert_eq!(names(&third.pruned), ["ConfigMap/extra"]);
    }

    #[tokio::test]
    async fn an_api_version_move_updates_the_object_and_prunes_nothing() {
        let hpa = |version: &str| {
            json!({"apiVersion": format!("autoscaling/{version}"), "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "web"},
                   "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                            "minReplicas": 1, "maxReplicas": 3}})
        };
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &with("1", &[hpa("v2beta1")]), "d1", &opts())
            .await
            .unwrap();
        let second = deploy_with(&kube, &store, &with("2", &[hpa("v2beta2")]), "d2", &opts())
            .await
            .unwrap();
        assert_eq!(second.status, Status::Deployed);
        assert!(second.pruned.is_empty(), "{:?}", second.pruned);
        assert!(second.kept.is_empty(), "{:?}", second.kept);
        let live = kube.live.lock().unwrap();
        let (_, object) = live
            .iter()
            .find(|(id, _)| id.kind == "HorizontalPodAutoscaler")
            .expect("the HPA survives");
        assert_eq!(object["apiVersion"], "autoscaling/v2beta2");
        let recorded = &store.records()[1].objects;
        let id = recorded
            .iter()
            .find(|id| id.kind == "HorizontalPodAutoscaler")
            .unwrap();
        assert_eq!(id.api_version, "autoscaling/v2beta2");
    }

    #[tokio::test]
    async fn kinds_that_cannot_come_back_are_kept_unless_they_opt_in() {
        let pvc = |name: &str, annotations: Value| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": name, "annotations": annotations},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        };
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        let objects = [
            pvc("data", json!({})),
            pvc("scratch", json!({"flotilla.dev/resource-policy": "delete"})),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "from-helm", "annotations": {"helm.sh/resource-policy": "keep"}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        ];
        deploy_with(&kube, &store, &with("1", &objects), "d1", &opts())
            .await
            .unwrap();
        let second = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert_eq!(second.status, Status::Deployed);
        assert_eq!(names(&second.pruned), ["PersistentVolumeClaim/scratch"]);
        let mut kept: Vec<(String, String)> = second
            .kept
            .iter()
            .map(|k| (k.object.name.clone(), k.reason.clone()))
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            [
                ("data".to_owned(), "a PersistentVolumeClaim is never pruned (annotate it flotilla.dev/resource-policy: delete to allow it)".to_owned()),
                ("from-helm".to_owned(), "annotated helm.sh/resource-policy: keep".to_owned()),
                ("team".to_owned(), "a Namespace is never pruned (annotate it flotilla.dev/resource-policy: delete to allow it)".to_owned()),
            ]
        );
        for name in [
            "PersistentVolumeClaim/data",
            "ConfigMap/from-helm",
            "Namespace/team",
        ] {
            assert!(kube.live_names().contains(&name.to_owned()), "{name}");
        }
        // The record says what was left and why.
        let description = &store.records()[1].description;
        assert!(description.starts_with("not pruned: "), "{description}");
        assert!(
            description
                .contains("PersistentVolumeClaim ns/data (a PersistentVolumeClaim is never pruned"),
            "{description}"
        );
    }

    #[tokio::test]
    async fn an_object_that_is_not_the_releases_refuses_the_run_before_any_change() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        let made_by_kubectl = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": "ns"}, "data": {"owner": "someone"}});
        let id = ObjectRef::of(&made_by_kubectl).unwrap();
        kube.live
            .lock()
            .unwrap()
            .insert(id.clone(), made_by_kubectl.clone());

        let err = deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::NotOwned { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "cluster `fake`: ConfigMap ns/config exists and is not release `hello`'s: it belongs to no owner flotilla knows (no release labels); nothing was changed (rerun with --adopt to take it over)"
        );
        assert_eq!(
            crate::exit::Classify::exit_kind(&err),
            crate::exit::ExitKind::Environment
        );
        // Nothing changed: no record, no apply, the object as it was.
        assert!(store.records().is_empty());
        assert!(!kube.logged().iter().any(|l| l.starts_with("apply")));
        assert_eq!(kube.live.lock().unwrap()[&id], made_by_kubectl);

        // With --adopt it is taken, labelled, and the revision records the adoption.
        let mut adopt = opts();
        adopt.adopt = true;
        let outcome = deploy_with(&kube, &store, &rendered("1", false), "d1", &adopt)
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Deployed);
        assert_eq!(
            names(
                &outcome
                    .adopted
                    .iter()
                    .map(|a| a.object.clone())
                    .collect::<Vec<_>>()
            ),
            ["ConfigMap/config"]
        );
        assert!(
            store.records()[0]
                .description
                .contains("adopted: ConfigMap ns/config (was no owner flotilla knows"),
            "{}",
            store.records()[0].description
        );
        let live = kube.live.lock().unwrap()[&id].clone();
        assert_eq!(live["metadata"]["labels"]["flotilla.dev/release"], "hello");
        // Adopted once, ours after: the next deploy needs no --adopt.
        drop(live);
        let next = deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        assert!(next.adopted.is_empty());
    }

    #[tokio::test]
    async fn a_second_release_rendering_the_same_object_is_refused_naming_the_first() {
        let (kube, store_a, store_b) = (FakeKube::new(), MemoryStore::new(), MemoryStore::new());
        let mut other = rendered("1", false);
        other.release = "other".into();
        deploy_with(&kube, &store_a, &other, "d1", &opts())
            .await
            .unwrap();
        let err = deploy_with(&kube, &store_b, &rendered("1", false), "d2", &opts())
            .await
            .unwrap_err();
        match &err {
            ClusterError::NotOwned { object, owner, .. } => {
                assert_eq!(object, "ConfigMap ns/config");
                assert_eq!(owner, "flotilla release `other`");
            }
            other => panic!("{other}"),
        }
        assert!(store_b.records().is_empty());
    }

    #[tokio::test]
    async fn the_ownership_check_reads_every_object_before_the_first_apply() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        let log = kube.logged();
        let last_read = log.iter().rposition(|l| l.starts_with("read")).unwrap();
        let first_apply = log.iter().position(|l| l.starts_with("apply")).unwrap();
        assert!(last_read < first_apply, "{log:?}");
        assert_eq!(log.iter().filter(|l| l.starts_with("read")).count(), 3);
    }

    #[tokio::test]
    async fn a_rollback_never_deletes_what_the_run_it_undoes_adopted() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &rendered("1", false), "d1", &opts())
            .await
            .unwrap();
        let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extra", "namespace": "ns"}, "data": {"mine": "yes"}});
        let id = ObjectRef::of(&theirs).unwrap();
        kube.live.lock().unwrap().insert(id.clone(), theirs);
        // d2 adopts it and fails.
        let mut adopt = opts();
        adopt.adopt = true;
        kube.set_wait(Wait::Crash);
        let failed = deploy_with(&kube, &store, &rendered("2", true), "d2", &adopt)
            .await
            .unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(
            kube.live.lock().unwrap()[&id]["metadata"]["annotations"]["flotilla.dev/adopted-by"],
            "d2"
        );
        // The coordinated restore to d1 keeps it: it existed before d2.
        kube.set_wait(Wait::Healthy);
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d1",
            fresh: &[],
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert_eq!(back.status, Status::Deployed);
        assert!(back.pruned.is_empty(), "{:?}", back.pruned);
        assert_eq!(back.kept.len(), 1, "{:?}", back.kept);
        assert!(back.kept[0].reason.starts_with("adopted by deployment d2"));
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));
        // Handed back: no release labels, so an uninstall (whose records still list it)
        // leaves it too.
        let live = kube.live.lock().unwrap()[&id].clone();
        assert_eq!(live["metadata"]["labels"], json!({}));
        assert_eq!(
            live["data"]["mine"],
            json!(null),
            "the failed run's content stays"
        );
        let removed = crate::ops::uninstall::uninstall_with(&kube, &store, "ns", "hello", &opts())
            .await
            .unwrap();
        assert!(!names(&removed).contains(&"ConfigMap/extra".to_owned()));
        assert!(kube.live_names().contains(&"ConfigMap/extra".to_owned()));
    }
    /// `rendered(version)` with a ConfigMap hook and a migration Job hook, both
    /// `pre-install,pre-upgrade` (the Job lighter), a `post-upgrade` Job deleted once it
    /// succeeded, and a `pre-rollback` Job; the migration Job holds a secret.
    fn with_hooks(version: &str) -> Rendered {
        use crate::engine::{DeletePolicy, Hook, HookEvent};
        let mut rendered = rendered(version, false);
        let hook = |events: &[HookEvent], weight: i32, policies: &[DeletePolicy]| Hook {
            events: events.to_vec(),
            weight,
            delete_policies: policies.to_vec(),
        };
        let before = [DeletePolicy::BeforeHookCreation];
        let pre = [HookEvent::PreInstall, HookEvent::PreUpgrade];
        let job = |name: &str, password: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                   "spec": {"template": {"spec": {"containers": [{"name": "m", "image": format!("app:{version}"),
                            "env": [{"name": "PASSWORD", "value": password}]}]}}}})
        };
        let hooks = [
            (
                hook(&pre, 5, &before),
                job("migrate", "hunter2"),
                job("migrate", &crate::engine::placeholder("db-password")),
            ),
            (
                hook(&pre, -1, &before),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrate-config"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrate-config"}}),
            ),
            (
                hook(&[HookEvent::PostUpgrade], 0, &[DeletePolicy::HookSucceeded]),
                job("notify", "x"),
                job("notify", "x"),
            ),
            (
                hook(&[HookEvent::PreRollback], 0, &before),
                job("undo", "x"),
                job("undo", "x"),
            ),
        ];
        rendered.hooks = hooks
            .into_iter()
            .map(|(hook, object, shown)| crate::ops::HookObject {
                hook,
                stored: crate::redact::stored_form(&shown, &object),
                object,
            })
            .collect();
        rendered
    }

    fn hook_steps(kube: &FakeKube) -> Vec<String> {
        kube.logged()
            .into_iter()
            .filter(|l| l.starts_with("apply") || l.starts_with("delete") || l == "wait")
            .collect()
    }

    #[tokio::test]
    async fn fake_hooks_run_around_the_apply_in_weight_order_and_are_never_release_objects() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &with_hooks("1"), "d1", &opts())
            .await
            .unwrap();
        let install = hook_steps(&kube);
        assert_eq!(
            install[..5],
            [
                "apply ConfigMap/migrate-config",
                "wait",
                "apply Job/migrate",
                "wait",
                "apply ConfigMap/config"
            ],
            "{install:?}"
        );
        // No post-install hook: the post-upgrade one runs only on an upgrade.
        assert!(!install.iter().any(|l| l.contains("notify")), "{install:?}");
        let second = deploy_with(&kube, &store, &with_hooks("2"), "d2", &opts())
            .await
            .unwrap();
        assert_eq!(second.status, Status::Deployed, "{:?}", second.error);
        let upgrade: Vec<String> = hook_steps(&kube)[install.len()..].to_vec();
        // before-hook-creation: the earlier objects go first; hook-succeeded: the
        // post-upgrade Job is deleted once it ran.
        assert_eq!(
            upgrade,
            [
                "delete ConfigMap/migrate-config",
                "apply ConfigMap/migrate-config",
                "wait",
                "delete Job/migrate",
                "apply Job/migrate",
                "wait",
                "apply ConfigMap/config",
                "apply Secret/db",
                "apply Deployment/web",
                "wait",
                "apply Job/notify",
                "wait",
                "delete Job/notify",
            ],
        );
        let record = store.records().pop().unwrap();
        let names = names(&record.objects);
        assert!(!names.iter().any(|n| n.contains("migrate")), "{names:?}");
        assert_eq!(record.hooks.len(), 4);
        let recorded = serde_json::to_string(&record.hooks).unwrap();
        assert!(!recorded.contains("hunter2"), "{recorded}");
        assert!(recorded.contains("preUpgrade") || recorded.contains("pre-upgrade"));
    }

    #[tokio::test]
    async fn fake_a_failed_pre_upgrade_hook_fails_the_revision_before_anything_is_applied() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &with_hooks("1"), "d1", &opts())
            .await
            .unwrap();
        let before = kube.logged().len();
        // Only the Jobs: the first wait of the upgrade is the migration's.
        let mut failing = with_hooks("2");
        failing.hooks.retain(|h| h.object["kind"] == "Job");
        kube.next_wait(Wait::Crash);
        let outcome = deploy_with(&kube, &store, &failing, "d2", &opts())
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Failed);
        let error = outcome.error.unwrap().to_string();
        assert!(error.contains("(pre-upgrade hook) failed"), "{error}");
        let steps = &kube.logged()[before..];
        assert!(
            !steps
                .iter()
                .any(|l| l.starts_with("apply") && !l.contains("Job/migrate")),
            "{steps:?}"
        );
        assert!(kube.live_text().contains("app:1"));
        assert_eq!(
            statuses(&store),
            [(1, Status::Deployed), (2, Status::Failed)]
        );
    }

    #[tokio::test]
    async fn fake_a_restore_runs_the_target_revisions_rollback_hooks() {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        deploy_with(&kube, &store, &with_hooks("1"), "d1", &opts())
            .await
            .unwrap();
        deploy_with(&kube, &store, &rendered("2", false), "d2", &opts())
            .await
            .unwrap();
        let before = kube.logged().len();
        let to = RestoreTo {
            revision: 1,
            deployment_id: "r1",
            fresh: &[],
            unreadable: &[],
        };
        let outcome = restore_with(&kube, &store, "ns", "hello", &to, &opts())
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Deployed, "{:?}", outcome.error);
        let steps: Vec<String> = kube.logged()[before..]
            .iter()
            .filter(|l| l.starts_with("apply"))
            .cloned()
            .collect();
        assert_eq!(
            steps.first().map(String::as_str),
            Some("apply Job/undo"),
            "{steps:?}"
        );
        // The rollback's record keeps the hooks of the revision it brings back.
        assert_eq!(store.records().pop().unwrap().hooks.len(), 4);
    }
}
