//! Running a revision's Helm hooks in one cluster, as Helm's `pkg/action` runs them
//! around an install, upgrade or rollback: the hooks of one event in weight order
//! (then kind, then name), each created (its earlier object deleted first under
//! `before-hook-creation`), a Job or Pod waited for until it completes under the run's
//! timeout, then deleted when its policy says so (`hook-succeeded`, `hook-failed`).
//! The first hook that fails stops the others and fails the run.
//!
//! A hook object carries the release's labels (its pods are found and diagnosed as the
//! release's are) but is never one of the release's objects: it is not in the record's
//! `objects`, so no prune, drift or uninstall of the release's objects touches it.

use super::{HeldLock, KubeClient, RunOptions};
use crate::cluster::{
    ApplyOptions, CancellationToken, ClusterError, ObjectRef, Removal, WaitOptions,
};
use crate::engine::{hooks::run_order, DeletePolicy, Hook, HookEvent};
use crate::storage::RecordStore;
use serde_json::Value;

/// One hook to run: what its annotations say and the object to create.
pub(super) struct Runnable<'a> {
    pub hook: &'a Hook,
    pub object: &'a Value,
}

/// The `(kind, name)` of an object, for ordering and messages.
fn kind_name(object: &Value) -> (&str, &str) {
    (
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

/// The hooks of `event` among `hooks`, in the order they run.
pub(super) fn ordered<'a>(hooks: &'a [Runnable<'a>], event: HookEvent) -> Vec<&'a Runnable<'a>> {
    let keys: Vec<(&Hook, &str, &str)> = hooks
        .iter()
        .map(|h| {
            let (kind, name) = kind_name(h.object);
            (h.hook, kind, name)
        })
        .collect();
    run_order(keys, event)
        .into_iter()
        .map(|index| &hooks[index])
        .collect()
}

/// The hooks a deploy would run, in order, each with its event: the `pre-install`
/// and `post-install` ones, or with a revision `installed`, the `pre-upgrade` and
/// `post-upgrade` ones (`--dry-run`, `diff`).
pub fn would_run(hooks: &[(Hook, Value)], installed: bool) -> Vec<(HookEvent, Value)> {
    let runnable: Vec<Runnable<'_>> = hooks
        .iter()
        .map(|(hook, object)| Runnable { hook, object })
        .collect();
    [true, false]
        .into_iter()
        .map(|before| event(false, installed, before))
        .flat_map(|event| {
            ordered(&runnable, event)
                .into_iter()
                .map(move |h| (event, h.object.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs the hooks of `event` in order; the first failure stops the rest and is the
/// error, naming the hook. `Ok` with the hooks that ran.
pub(super) async fn run_event<K: KubeClient, L: HeldLock>(
    cluster: &K,
    lock: &L,
    hooks: &[Runnable<'_>],
    event: HookEvent,
    apply: &ApplyOptions,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let mut ran = Vec::new();
    for hook in ordered(hooks, event) {
        let id = cluster.identity(hook.object, &apply.namespace).await?;
        tracing::info!(cluster = cluster.context(), hook = %id, "running the {event} hook");
        let quiet = crate::cluster::no_progress();
        if hook.hook.deletes(DeletePolicy::BeforeHookCreation) {
            cluster
                .delete_owned(std::slice::from_ref(&id), apply, Removal::Uninstall, &quiet)
                .await?;
            // Created again under the same name: the old one must be gone first.
            cluster
                .wait_gone(&id, &apply.namespace, opts.timeout)
                .await?;
        }
        let outcome = run_one(cluster, lock, hook.object, &id, event, apply, opts).await;
        let policy = if outcome.is_ok() {
            DeletePolicy::HookSucceeded
        } else {
            DeletePolicy::HookFailed
        };
        if hook.hook.deletes(policy) {
            let deleted = cluster
                .delete_owned(std::slice::from_ref(&id), apply, Removal::Uninstall, &quiet)
                .await;
            // The hook's own failure says more than a failed clean-up after it.
            if let (Ok(()), Err(err)) = (&outcome, deleted) {
                return Err(err);
            }
        }
        outcome?;
        ran.push(id);
    }
    Ok(ran)
}

/// Creates one hook object and waits until it completed (a Job, a Pod; other kinds are
/// done once created), the error naming the hook and its event.
async fn run_one<K: KubeClient, L: HeldLock>(
    cluster: &K,
    lock: &L,
    object: &Value,
    id: &ObjectRef,
    event: HookEvent,
    apply: &ApplyOptions,
    opts: &RunOptions,
) -> Result<(), ClusterError> {
    let lost = lock.lost();
    // What the hook waits for is the run's progress; its apply is not one of the
    // release's objects, which the progress counts.
    let progress = {
        let inner = opts.progress.clone();
        let filtered: crate::cluster::Progress = std::sync::Arc::new(move |context, event| {
            if !matches!(event, crate::cluster::Event::Applied(_)) {
                inner(context, event);
            }
        });
        filtered
    };
    let created = cluster
        .apply_all(std::slice::from_ref(object), apply, &progress)
        .await?;
    let wait = WaitOptions {
        namespace: apply.namespace.clone(),
        timeout: opts.timeout,
        transient_grace: opts.transient_grace,
        release: apply.release.clone(),
        pods_complete: true,
        declared: WaitOptions::declared(std::slice::from_ref(object)),
    };
    // Losing the lease stops the wait as it stops the release's.
    let stop = opts.cancel.child_token();
    let watchdog = {
        let stop = stop.clone();
        tokio::spawn(async move {
            lost.cancelled().await;
            stop.cancel();
        })
    };
    let waited = cluster
        .wait_healthy(&created, &wait, &stop, &progress)
        .await;
    watchdog.abort();
    waited.map_err(|err| named(err, id, event))
}

/// A hook's failed wait, saying which hook of which event it was; still the error a
/// diagnosis explains (its pods carry the release's labels).
fn named(err: ClusterError, id: &ObjectRef, event: HookEvent) -> ClusterError {
    let what = format!("{event} hook");
    match err {
        ClusterError::Unhealthy {
            context,
            object,
            reason,
        } => ClusterError::Unhealthy {
            context,
            object: format!("{object} ({what})"),
            reason,
        },
        ClusterError::Timeout {
            context,
            timeout,
            pending,
        } => ClusterError::Timeout {
            context,
            timeout,
            pending: pending
                .into_iter()
                .map(|p| format!("{p} ({what} {}/{})", id.kind, id.name))
                .collect(),
        },
        other => other,
    }
}

/// A lease the caller holds and watches itself (an uninstall's, a gate's): the hooks
/// run under it stop when the token is cancelled.
pub(super) struct HeldByCaller(pub CancellationToken);

impl HeldLock for HeldByCaller {
    fn lost(&self) -> CancellationToken {
        self.0.clone()
    }

    async fn release(self) {}
}

/// The hooks of `events` among those `record` keeps, runnable from the record alone:
/// one whose recorded object holds a secret is left out with a warning (records never
/// keep secret values; created from the record it would hold a digest in their place).
pub(super) fn recorded_hooks(
    context: &str,
    record: &crate::release::ReleaseRecord,
    events: &[crate::engine::HookEvent],
) -> Vec<(crate::engine::Hook, Value)> {
    record
        .hooks
        .iter()
        .filter(|h| {
            let runs = events.iter().any(|event| h.hook.runs_at(*event));
            let secret =
                crate::release::is_secret(&h.manifest) || crate::redact::contains_redacted(&h.manifest);
            if runs && secret {
                tracing::warn!(
                    cluster = context,
                    "the hook {}/{} of revision {} holds a secret value, which records never keep: it is not run",
                    h.manifest["kind"].as_str().unwrap_or_default(),
                    h.manifest["metadata"]["name"].as_str().unwrap_or_default(),
                    record.revision
                );
            }
            runs && !secret
        })
        .map(|h| (h.hook.clone(), h.manifest.clone()))
        .collect()
}

/// Runs the `test` hooks of the revision deployed in `cluster` (from its record), as
/// `helm test` runs them: one after the other in weight order, each until it completes
/// under `opts.timeout`, the first failure stopping the rest and being the error. A test
/// whose recorded object holds a secret value is not run (records never keep one),
/// with a warning. The number of tests that ran.
pub async fn helm_tests<K: super::ReleaseCluster>(
    cluster: &K,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<usize, ClusterError> {
    let history = cluster.records(namespace, release).history().await?;
    let Some(deployed) = history.deployed() else {
        return Err(super::release_error(
            cluster.context(),
            format!(
                "release `{release}` has no deployed revision in namespace `{namespace}` to test"
            ),
        ));
    };
    let tests = recorded_hooks(cluster.context(), deployed, &[HookEvent::Test]);
    let runnable: Vec<Runnable<'_>> = tests
        .iter()
        .map(|(hook, object)| Runnable { hook, object })
        .collect();
    let held = HeldByCaller(opts.cancel.child_token());
    let ran = run_event(
        cluster,
        &held,
        &runnable,
        HookEvent::Test,
        &ApplyOptions::new(namespace, release),
        opts,
    )
    .await?;
    Ok(ran.len())
}

/// The event before (`true`) or after the apply of a run: a restore's rollback hooks,
/// else install when nothing is deployed, else upgrade.
pub(super) fn event(rollback: bool, installed: bool, before: bool) -> HookEvent {
    match (rollback, installed, before) {
        (true, _, true) => HookEvent::PreRollback,
        (true, _, false) => HookEvent::PostRollback,
        (false, false, true) => HookEvent::PreInstall,
        (false, false, false) => HookEvent::PostInstall,
        (false, true, true) => HookEvent::PreUpgrade,
        (false, true, false) => HookEvent::PostUpgrade,
    }
}
