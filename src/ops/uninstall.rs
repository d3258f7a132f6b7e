//! Remove one release from one cluster.

use super::{release_error, HeldLock, KubeClient, RunOptions};
use crate::cluster::{ApplyOptions, ClusterError, ClusterHandle, ObjectRef};
use crate::storage::{RecordStore, SecretStore};

/// Deletes every object any of the release's records lists that still carries our
/// labels, then the records and the lock. The deleted objects.
pub async fn uninstall(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let store = SecretStore::new(cluster, namespace, release);
    uninstall_with(cluster, &store, namespace, release, opts).await
}

/// [`uninstall`] on any cluster client and record store.
pub async fn uninstall_with<K: KubeClient, S: RecordStore>(
    cluster: &K,
    store: &S,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
) -> Result<Vec<ObjectRef>, ClusterError> {
    let lock = cluster.lock(namespace, release, &opts.lock).await?;
    let result = async {
        let history = store.history().await?;
        if history.is_empty() {
            return Err(release_error(
                cluster.context(),
                format!("release `{release}` is not installed in namespace `{namespace}`"),
            ));
        }
        let ids: Vec<ObjectRef> = history.every_object().into_iter().collect();
        let apply_opts = ApplyOptions {
            namespace: namespace.to_owned(),
            release: release.to_owned(),
            force_conflicts: false,
        };
        let deleted = cluster
            .delete_owned(&ids, &apply_opts, &opts.progress)
            .await?;
        for record in history.records() {
            store.delete(record.revision).await?;
        }
        Ok(deleted)
    }
    .await;
    lock.release().await;
    result
}
