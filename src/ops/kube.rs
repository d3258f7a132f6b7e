//! What the per-cluster operations need of a cluster, as one trait (Helm's
//! `kube.Interface`): the real implementation is [`ClusterHandle`]; the unit tests of
//! the operations use a fake that keeps objects in memory and can be told to fail.

use crate::cluster::labels::LiveMeta;
use crate::cluster::{
    ApplyOptions, CancellationToken, ClusterError, ClusterHandle, Diagnosis, Lock, LockOptions,
    ObjectRef, Progress, Removal, Removed, SoakSample, WaitOptions,
};
use crate::storage::{RecordStore, SecretStore};
use serde_json::Value;
use zeroize::Zeroizing;

/// A lease held for one release in one cluster.
pub trait HeldLock {
    /// Cancelled when another holder took the lease: the holder stops at its next safe
    /// point.
    fn lost(&self) -> CancellationToken;
    /// Why it was lost, once [`HeldLock::lost`] is cancelled.
    fn lost_why(&self) -> Option<String> {
        None
    }
    /// Lost because the cluster stopped answering, not to a peer.
    fn lost_to_silence(&self) -> bool {
        false
    }
    /// Stops renewing and gives the lease up if it is still ours.
    fn release(self) -> impl std::future::Future<Output = ()>;
}

/// The cluster operations that upgrade, restore and uninstall compose.
// Awaited on the task that made them (no spawn), so the futures' auto traits need not
// be named.
#[allow(async_fn_in_trait)]
pub trait KubeClient {
    type Lock: HeldLock;

    /// The kube context, for messages.
    fn context(&self) -> &str;
    /// Creates the namespace when it does not exist (`create`), else checks that it
    /// exists as far as the deployer may read namespaces.
    async fn ensure_namespace(&self, namespace: &str, create: bool) -> Result<(), ClusterError>;
    /// Takes the release's lease (waiting for another live run that holds it as long as
    /// `opts.wait` allows, telling `on_wait`, then refusing).
    async fn lock(
        &self,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        on_wait: &(dyn Fn(&str) + Sync),
    ) -> Result<Self::Lock, ClusterError>;
    /// The identity an object will have once applied: namespace filled in for
    /// namespaced kinds, removed for cluster-scoped ones.
    async fn identity(&self, object: &Value, namespace: &str) -> Result<ObjectRef, ClusterError>;
    /// Whether the object exists.
    async fn is_live(&self, id: &ObjectRef, namespace: &str) -> Result<bool, ClusterError>;
    /// Labels, annotations and field managers of the live object, if it exists.
    async fn live_meta(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<LiveMeta>, ClusterError>;
    /// The live object, when it exists.
    async fn live_object(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<Value>, ClusterError>;
    /// Waits until the object `id` is gone (a deleted Pod stays until its kubelet
    /// confirms), at most `timeout`.
    async fn wait_gone(
        &self,
        id: &ObjectRef,
        namespace: &str,
        timeout: std::time::Duration,
    ) -> Result<(), ClusterError>;
    /// Server-side apply in dependency order; the identities as the server resolved them.
    async fn apply_all(
        &self,
        objects: &[Value],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError>;
    /// Deletes those of `ids` that carry this release's labels and that nothing keeps;
    /// the deleted ones and the kept ones with the reason.
    async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        opts: &ApplyOptions,
        removal: Removal,
        progress: &Progress,
    ) -> Result<Removed, ClusterError>;
    /// Waits until every workload among `objects` is healthy, or fails fast.
    async fn wait_healthy(
        &self,
        objects: &[ObjectRef],
        opts: &WaitOptions,
        cancel: &CancellationToken,
        progress: &Progress,
    ) -> Result<(), ClusterError>;
    /// The release's pods and Deployments as they are now (what a soak judges).
    async fn soak_sample(&self, namespace: &str, release: &str)
        -> Result<SoakSample, ClusterError>;
}

impl HeldLock for Lock {
    fn lost(&self) -> CancellationToken {
        Lock::lost(self)
    }

    fn lost_why(&self) -> Option<String> {
        Lock::lost_why(self)
    }

    fn lost_to_silence(&self) -> bool {
        Lock::lost_to_silence(self)
    }

    async fn release(self) {
        Lock::release(self).await
    }
}

impl KubeClient for ClusterHandle {
    type Lock = Lock;

    fn context(&self) -> &str {
        ClusterHandle::context(self)
    }

    async fn ensure_namespace(&self, namespace: &str, create: bool) -> Result<(), ClusterError> {
        ClusterHandle::ensure_namespace(self, namespace, create).await
    }

    async fn lock(
        &self,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        on_wait: &(dyn Fn(&str) + Sync),
    ) -> Result<Lock, ClusterError> {
        ClusterHandle::lock_waiting(self, namespace, release, opts, on_wait).await
    }

    async fn identity(&self, object: &Value, namespace: &str) -> Result<ObjectRef, ClusterError> {
        ClusterHandle::identity(self, object, namespace).await
    }

    async fn is_live(&self, id: &ObjectRef, namespace: &str) -> Result<bool, ClusterError> {
        Ok(self.get_live(id, namespace).await?.is_some())
    }

    async fn live_meta(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<LiveMeta>, ClusterError> {
        ClusterHandle::live_meta(self, id, namespace).await
    }

    async fn live_object(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<Value>, ClusterError> {
        Ok(self
            .get_live(id, namespace)
            .await?
            .and_then(|live| serde_json::to_value(live).ok()))
    }

    async fn apply_all(
        &self,
        objects: &[Value],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        ClusterHandle::apply_all(self, objects, opts, progress).await
    }

    async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        opts: &ApplyOptions,
        removal: Removal,
        progress: &Progress,
    ) -> Result<Removed, ClusterError> {
        ClusterHandle::delete_owned(self, ids, opts, removal, progress).await
    }

    async fn wait_gone(
        &self,
        id: &ObjectRef,
        namespace: &str,
        timeout: std::time::Duration,
    ) -> Result<(), ClusterError> {
        ClusterHandle::wait_gone(self, id, namespace, timeout).await
    }

    async fn wait_healthy(
        &self,
        objects: &[ObjectRef],
        opts: &WaitOptions,
        cancel: &CancellationToken,
        progress: &Progress,
    ) -> Result<(), ClusterError> {
        ClusterHandle::wait_healthy(self, objects, opts, cancel, progress).await
    }

    async fn soak_sample(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<SoakSample, ClusterError> {
        ClusterHandle::soak_sample(self, namespace, release).await
    }
}

/// A cluster as a multi-cluster run uses it: its objects ([`KubeClient`]), and in it
/// the release's records, its checksum key and what a failure there looked like. The
/// real implementation is [`ClusterHandle`] (records in Secrets); the run's unit tests
/// use the in-memory cluster, so that waves, restores and leases are tested without
/// Kubernetes.
#[allow(async_fn_in_trait)]
pub trait ReleaseCluster: KubeClient {
    type Records: RecordStore + Clone;

    /// The records of `release` in `namespace`.
    fn records(&self, namespace: &str, release: &str) -> Self::Records;
    /// The release's checksum key, if it has one (read only: nothing is created).
    async fn checksum_key(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ClusterError>;
    /// Writes the release's checksum key, drawn before the run took its leases.
    async fn create_checksum_key(
        &self,
        namespace: &str,
        release: &str,
        key: &[u8],
    ) -> Result<(), ClusterError>;
    /// What the failing pods, their events and logs show of `err`, when it is a
    /// failure worth diagnosing.
    async fn diagnose(
        &self,
        namespace: &str,
        release: &str,
        err: &ClusterError,
    ) -> Option<Diagnosis>;
}

impl ReleaseCluster for ClusterHandle {
    type Records = SecretStore;

    fn records(&self, namespace: &str, release: &str) -> SecretStore {
        SecretStore::new(self, namespace, release)
    }

    async fn checksum_key(
        &self,
        namespace: &str,
        release: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ClusterError> {
        crate::storage::checksum_key(self, namespace, release, false, false).await
    }

    async fn create_checksum_key(
        &self,
        namespace: &str,
        release: &str,
        key: &[u8],
    ) -> Result<(), ClusterError> {
        crate::storage::create_checksum_key(self, namespace, release, key).await
    }

    async fn diagnose(
        &self,
        namespace: &str,
        release: &str,
        err: &ClusterError,
    ) -> Option<Diagnosis> {
        ClusterHandle::diagnose(self, namespace, release, err).await
    }
}
