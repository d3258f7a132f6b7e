//! Remove one release from one cluster.

use super::{release_error, KubeClient, RunOptions};
use crate::cluster::{ApplyOptions, ClusterError, ClusterHandle, ObjectRef, Removal};
use crate::engine::HookEvent;
use crate::release::Status;
use crate::storage::{RecordStore, SecretStore};

/// Deletes every object any of the release's records lists that still carries our
/// labels and is not annotated to be kept (`flotilla.dev/resource-policy: keep` or
/// Helm's `helm.sh/resource-policy: keep`: reported as [`Event::Kept`](crate::cluster::Event::Kept)),
/// then the records and the lock. The deleted objects.
pub async fn uninstall(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let store = SecretStore::new(cluster, namespace, release);
    uninstall_with(cluster, &store, namespace, release, opts).await
}

/// The uninstall that undoes a failed first install (a rollback to nothing): as
/// [`uninstall`], but an object the failed run adopted (`--adopt`) existed before it and
/// is left in place.
pub async fn undo_install(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let store = SecretStore::new(cluster, namespace, release);
    undo_install_with(cluster, &store, namespace, release, opts).await
}

/// [`undo_install`] on any cluster client and record store.
pub async fn undo_install_with<K: KubeClient, S: RecordStore>(
    cluster: &K,
    store: &S,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    super::with_lease(cluster, namespace, release, opts, async |_| {
        remove(
            cluster,
            store,
            namespace,
            release,
            Removal::RollbackUninstall,
            opts,
        )
        .await
    })
    .await
}

/// [`uninstall`] on any cluster client and record store.
pub async fn uninstall_with<K: KubeClient, S: RecordStore>(
    cluster: &K,
    store: &S,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    super::with_lease(cluster, namespace, release, opts, async |_| {
        remove(cluster, store, namespace, release, Removal::Uninstall, opts).await
    })
    .await
}

/// Removes the release (as `removal` says) under its lease, which the caller holds;
/// an uninstall runs the deployed revision's `pre-delete` and `post-delete` hooks.
pub async fn remove<K: KubeClient, S: RecordStore>(
    cluster: &K,
    store: &S,
    namespace: &str,
    release: &str,
    removal: Removal,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let history = store.history().await?;
    // A record that could not be read and may be what runs names objects this
    // removal would leave behind unseen.
    history
        .check_skipped()
        .map_err(|message| release_error(cluster.context(), message))?;
    if history.is_empty() {
        return Err(release_error(
            cluster.context(),
            format!("release `{release}` is not installed in namespace `{namespace}`"),
        ));
    }
    // Newest record first: an object recorded under several apiVersions (a chart
    // moved it) is deleted through the newest one, which the server still serves.
    let mut ids: Vec<ObjectRef> = Vec::new();
    for id in history.records().iter().rev().flat_map(|r| &r.objects) {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    let apply_opts = ApplyOptions::new(namespace, release);
    // Helm's `pre-delete` and `post-delete` hooks of the deployed revision, from its
    // record, around the deletion; a failed `pre-delete` hook deletes nothing. Not on
    // the undo of a failed first install: that is a rollback, not an uninstall.
    let hooks = match (removal, history.deployed()) {
        (Removal::Uninstall, Some(deployed)) => super::hooks::recorded_hooks(
            cluster.context(),
            deployed,
            &[HookEvent::PreDelete, HookEvent::PostDelete],
        ),
        _ => Vec::new(),
    };
    let hooks: Vec<super::hooks::Runnable<'_>> = hooks
        .iter()
        .map(|(hook, object)| super::hooks::Runnable { hook, object })
        .collect();
    // The caller holds the lease and stops on its loss; the hooks stop with the run.
    let held = super::hooks::HeldByCaller(opts.cancel.child_token());
    super::hooks::run_event(
        cluster,
        &held,
        &hooks,
        HookEvent::PreDelete,
        &apply_opts,
        opts,
    )
    .await?;
    let removed = cluster
        .delete_owned(&ids, &apply_opts, removal, &opts.progress)
        .await?;
    super::hooks::run_event(
        cluster,
        &held,
        &hooks,
        HookEvent::PostDelete,
        &apply_opts,
        opts,
    )
    .await?;
    if opts.keep_history && removal == Removal::Uninstall {
        // Kept as history: what ran is `uninstalled` (a rollback target), a run
        // killed half-way is failed, as the next deploy would have repaired it.
        for record in history.records() {
            let status = match record.status {
                Status::Deployed => Status::Uninstalled,
                Status::Pending => Status::Failed,
                _ => continue,
            };
            let mut record = record.clone();
            record.status = status;
            record.updated = chrono::Utc::now();
            store.update(&record).await?;
        }
    } else {
        // The records that could not be read go too: older than the deployed
        // revision (else the check above refused), they are history of what is now
        // removed, and left behind they would stop the next install.
        let skipped = history.skipped().iter().filter_map(|s| s.revision);
        for revision in history.records().iter().map(|r| r.revision).chain(skipped) {
            store.delete(revision).await?;
        }
    }
    Ok(removed.deleted)
}
