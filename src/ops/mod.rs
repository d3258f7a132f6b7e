//! Per-cluster operations: what one release does in one cluster, as Helm's
//! `pkg/action` composes its kube client and storage. [`upgrade`] (install or upgrade
//! to a rendered revision), [`restore`] (back to a recorded revision), [`uninstall`],
//! and [`inspect`] (history, status, diff of one cluster).
//!
//! Composes [`crate::cluster`] (through the [`KubeClient`] trait) and
//! [`crate::storage`] (through [`RecordStore`](crate::storage::RecordStore)); knows
//! nothing of command-line flags or of other clusters: [`crate::rollout`] runs these on
//! many clusters at once and decides what to do with the outcomes.
//!
//! A run killed at any point leaves at worst a `pending` record and a lease that stops
//! being renewed: the next run takes the lease over (at once when the dead holder was a
//! process of this host) and repairs the record (marks it failed and prunes what it may
//! have applied) instead of refusing forever. Once a run has sent its `pending` record,
//! every way out is an [`Outcome`] (the cluster may have changed), never an `Err`.

pub mod adopt;
pub mod hooks;
pub mod inspect;
mod kube;
pub mod restore;
pub mod soak;
pub mod uninstall;
pub mod upgrade;

/// The in-memory cluster of the unit tests; public for the scale benchmark only.
#[cfg(any(test, feature = "scripted-clusters"))]
pub mod fake;

pub use inspect::{
    diff, history, status, status_of, ClusterHealth, ObjectHealth, ObjectStatus, StatusReport,
};
pub use kube::{HeldLock, KubeClient, ReleaseCluster};
pub use restore::restore;
pub use restore::{register_live_secrets, restore_under};
pub use soak::{soak, SoakOptions};
pub use uninstall::uninstall;
pub use upgrade::deploy_under;
pub use upgrade::{check_ownership, deploy};

use crate::cluster::{CancellationToken, ClusterError, Kept, LockOptions, ObjectRef, Progress};
use crate::release::{ChartRef, RevisionSource, Status};
use serde_json::Value;
use std::time::Duration;

/// What every run against one cluster shares: who it is, how long to wait, how to
/// report and stop.
#[derive(Clone)]
pub struct RunOptions {
    pub force_conflicts: bool,
    /// Take over objects that exist without being this release's (`--adopt`); without
    /// it a deploy refuses them before any change.
    pub adopt: bool,
    /// Create the release namespace when missing (`--create-namespace`).
    pub create_namespace: bool,
    /// How long `ErrImagePull` or `CreateContainerConfigError` may last before the
    /// health wait fails on it (both are often transient).
    pub transient_grace: Duration,
    pub timeout: Duration,
    /// The health wait of a restore of the run (`rollout.rollback_timeout`): its own
    /// budget, never what is left of `timeout`.
    pub restore_timeout: Duration,
    pub history_limit: usize,
    /// Deployments whose records the history limit keeps, whatever the limit: what
    /// the environment may roll back to after this run
    /// (`release::EnvironmentHistory::kept_by_history_limit`).
    pub history_keep: Vec<String>,
    /// `uninstall --keep-history`: the records stay, the deployed one marked
    /// `uninstalled`, so that a rollback can bring the release back.
    pub keep_history: bool,
    pub lock: LockOptions,
    pub progress: Progress,
    pub cancel: CancellationToken,
    /// The kube contexts the whole run targets, recorded with each revision (a
    /// deployment id is complete when every one of them recorded it healthy).
    pub targets: Vec<String>,
    /// From where the run was made, recorded with each revision.
    pub audit: Option<crate::release::Audit>,
    /// Recorded by each deploy of a run asked to stop after a wave (`--until-wave`).
    pub until_wave: Option<crate::release::UntilWave>,
    /// The environment's record key (`vault.record_key`): every record the run writes
    /// is signed with it. `None`: the environment names none (or a rollback could not
    /// read it and was told to go on with `--trust-records`).
    pub record_key: Option<std::sync::Arc<crate::release::RecordKey>>,
    /// `rollback --trust-records`: a restore does not check the MAC of the record it
    /// goes back to (its digests still).
    pub trust_records: bool,
    /// The ownership of the objects a deploy applies, as read under the lease the run
    /// holds a moment before its step (`prepare`, every cluster before any is changed):
    /// not read again. `None`: read at the start of the step.
    pub owners_read: Option<Ownership>,
}

impl RunOptions {
    pub fn new(timeout: Duration) -> RunOptions {
        RunOptions {
            force_conflicts: false,
            adopt: false,
            create_namespace: false,
            transient_grace: crate::cluster::DEFAULT_TRANSIENT_GRACE,
            timeout,
            restore_timeout: timeout,
            history_limit: crate::storage::DEFAULT_HISTORY_LIMIT,
            history_keep: Vec::new(),
            keep_history: false,
            lock: LockOptions::for_this_process(),
            progress: crate::cluster::no_progress(),
            cancel: CancellationToken::new(),
            targets: Vec::new(),
            audit: None,
            until_wave: None,
            record_key: None,
            trust_records: false,
            owners_read: None,
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
    /// The objects rendered with the secret values: the apply payload, never recorded,
    /// diffed or shown.
    pub objects: Vec<Value>,
    /// What is recorded, diffed and shown of each of `objects`, in the same order: the
    /// render with placeholders, every field a secret changes a digest
    /// (`engine::Renderer::render_for_apply`).
    pub stored: Vec<Value>,
    /// Merged values; `secrets` is removed before recording.
    pub values: Value,
    /// The chart and secret sources, recorded so that the revision can be rendered
    /// again without the checkout.
    pub source: Option<RevisionSource>,
    /// A Helm chart's hooks (`engine::hooks`), run around the apply ([`hooks`]).
    pub hooks: Vec<HookObject>,
}

/// One Helm hook of a render: what its annotations say, the object to create (with the
/// secret values) and what is recorded of it (as `Rendered::stored`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HookObject {
    pub hook: crate::engine::Hook,
    pub object: Value,
    pub stored: Value,
}

impl Rendered {
    /// Sets `stored` from `objects` alone, `Secret` data digested: for objects built in
    /// code (tests, tools) whose only secrets are in Secrets. A chart's render takes both
    /// from `engine::Renderer::render_for_apply` instead.
    pub fn store_as_rendered(&mut self) {
        self.stored = crate::redact::redact_manifest(&self.objects);
    }

    /// The hooks its record keeps, redacted as the manifest is.
    pub fn record_hooks(&self) -> Vec<crate::release::RecordedHook> {
        self.hooks
            .iter()
            .map(|h| crate::release::RecordedHook {
                hook: h.hook.clone(),
                manifest: crate::release::redact_manifest(std::slice::from_ref(&h.stored))
                    .pop()
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The manifest its record keeps: the placeholder render, no value of any secret,
    /// wherever the chart put it.
    pub fn record_manifest(&self) -> Vec<Value> {
        crate::release::redact_manifest(&self.stored)
    }

    /// The content digest its record will carry.
    pub fn content_digest(&self) -> String {
        crate::release::content_digest(&self.record_manifest(), &self.app_version, &self.chart)
    }
}

/// A cluster's [`Rendered`] while its run waits for the cluster's turn: the same
/// revision kept as its JSON, unpacked when the cluster's step starts. Parsed, a
/// render's objects take about ten times their text, and a run keeps every cluster's
/// for its whole length (a thousand clusters: a hundred megabytes, against ten).
///
/// It holds the secret values of the apply payload, as `Rendered` does: no `Debug` of
/// its bytes, and they are never written anywhere.
pub struct PackedRender {
    pub release: String,
    pub namespace: String,
    pub chart: ChartRef,
    pub app_version: String,
    /// How many objects the render has.
    pub objects: usize,
    /// [`Rendered::content_digest`]: what the run's record will carry.
    pub digest: String,
    body: Box<[u8]>,
}

/// What a [`PackedRender`] keeps as JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct PackedBody {
    objects: Vec<Value>,
    stored: Vec<Value>,
    values: Value,
    source: Option<RevisionSource>,
    #[serde(default)]
    hooks: Vec<HookObject>,
}

impl PackedRender {
    pub fn pack(rendered: Rendered) -> PackedRender {
        let digest = rendered.content_digest();
        let Rendered {
            release,
            namespace,
            chart,
            app_version,
            objects,
            stored,
            values,
            source,
            hooks,
        } = rendered;
        let count = objects.len();
        let body = PackedBody {
            objects,
            stored,
            values,
            source,
            hooks,
        };
        // JSON values and string-keyed maps: serialising them cannot fail.
        let body = serde_json::to_vec(&body)
            .unwrap_or_default()
            .into_boxed_slice();
        PackedRender {
            release,
            namespace,
            chart,
            app_version,
            objects: count,
            digest,
            body,
        }
    }

    /// The render as it was packed; `context` names the cluster in the error of a
    /// packing that failed (never expected: the JSON is this process's own).
    pub fn unpack(&self, context: &str) -> Result<Rendered, ClusterError> {
        let body: PackedBody = serde_json::from_slice(&self.body).map_err(|e| {
            release_error(
                context,
                format!(
                    "the render of `{}` could not be read back ({e}): nothing was changed",
                    self.release
                ),
            )
        })?;
        Ok(Rendered {
            release: self.release.clone(),
            namespace: self.namespace.clone(),
            chart: self.chart.clone(),
            app_version: self.app_version.clone(),
            objects: body.objects,
            stored: body.stored,
            hooks: body.hooks,
            values: body.values,
            source: body.source,
        })
    }
}

impl std::fmt::Debug for PackedRender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedRender")
            .field("release", &self.release)
            .field("namespace", &self.namespace)
            .field("objects", &self.objects)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What the ownership check read of the objects a run applies, before its first change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Those that exist without being this release's, taken over (`--adopt`).
    pub adopted: Vec<Adopted>,
    /// Workloads whose live pod template has the release's label from an earlier
    /// flotilla: applied with it, so that no pod restarts for it.
    pub labelled_templates: Vec<ObjectRef>,
}

/// An object that existed without being this release's and that a run took over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Adopted {
    pub object: ObjectRef,
    /// Who it belonged to before.
    pub owner: String,
}

impl std::fmt::Display for Adopted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (was {})", self.object, self.owner)
    }
}

/// How a deploy or restore on one cluster ended, once something may have changed.
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
    /// Secrets a restore left as they are live (their values are never recorded).
    pub kept_live: Vec<ObjectRef>,
    /// Deleted after the cluster was healthy: what the previous revision had and this
    /// one does not.
    pub pruned: Vec<ObjectRef>,
    /// What this revision dropped and the prune left in place, with the reason.
    pub kept: Vec<Kept>,
    /// Objects that existed without being this release's and that the run took over.
    pub adopted: Vec<Adopted>,
    /// Why it failed (`status` is then `failed`).
    pub error: Option<ClusterError>,
}

/// A release's records in one cluster as read once the caller's lease was taken, and
/// the store that read them: it keeps each record's resourceVersion, the precondition
/// of every write of the run to it (another writer's change since is a conflict, never
/// overwritten).
#[derive(Clone)]
pub struct LeasedRead<S = crate::storage::SecretStore> {
    pub history: crate::release::History,
    store: S,
}

impl<S: crate::storage::RecordStore + Clone> LeasedRead<S> {
    /// The same read, its history replaced by an equal one (shared with the caller).
    pub fn with_history(self, shared: crate::release::History) -> LeasedRead<S> {
        LeasedRead {
            history: shared,
            ..self
        }
    }

    /// The records as read under the lease, for the run's writes: each write is
    /// conditional on the resourceVersion read.
    pub fn store(&self) -> crate::storage::UnderLease<S> {
        crate::storage::UnderLease::new(self.store.clone(), &self.history)
    }
}

/// Reads the records of `release` (under a lease the caller holds), keeping their
/// resourceVersions for the run's writes.
pub async fn read_leased<K: ReleaseCluster>(
    cluster: &K,
    namespace: &str,
    release: &str,
) -> Result<LeasedRead<K::Records>, ClusterError> {
    use crate::storage::RecordStore;
    let store = cluster.records(namespace, release);
    let read = store.history().await?;
    Ok(LeasedRead {
        history: read,
        store,
    })
}

/// The release's lease in `cluster`, its namespace created first where missing when
/// `create_namespace` says so (the lease lives in that namespace). `on_wait` hears
/// that another run holds it and for how long this one waits.
pub async fn take_lease<K: KubeClient>(
    cluster: &K,
    namespace: &str,
    release: &str,
    opts: &LockOptions,
    create_namespace: bool,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<K::Lock, ClusterError> {
    // The namespace is not read first: a missing one answers the Lease's create, and
    // is created then only when the run may.
    match cluster.lock(namespace, release, opts, on_wait).await {
        Err(ClusterError::NoNamespace { .. }) if create_namespace => {
            cluster.ensure_namespace(namespace, true).await?;
            cluster.lock(namespace, release, opts, on_wait).await
        }
        taken => taken,
    }
}

/// Runs `op` on one cluster under the release's lease, taken for it ([`take_lease`])
/// and given back after: what a one-cluster operation does that no multi-cluster run
/// holds the lease for.
pub async fn with_lease<K: KubeClient, T>(
    cluster: &K,
    namespace: &str,
    release: &str,
    opts: &RunOptions,
    op: impl AsyncFnOnce(&K::Lock) -> Result<T, ClusterError>,
) -> Result<T, ClusterError> {
    let on_wait = |message: &str| tracing::warn!("{message}");
    let lease = take_lease(
        cluster,
        namespace,
        release,
        &opts.lock,
        opts.create_namespace,
        &on_wait,
    )
    .await?;
    let result = op(&lease).await;
    lease.release().await;
    result
}

fn release_error(context: &str, message: String) -> ClusterError {
    ClusterError::Release {
        context: context.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_packed_render_unpacks_to_the_same_render_and_never_shows_its_secrets() {
        let secret = "hunter2-packed";
        let mut rendered = Rendered {
            hooks: Vec::new(),
            release: "hello".into(),
            namespace: "ns".into(),
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: "1.2.3".into(),
            objects: vec![
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                    "stringData": {"password": secret}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            ],
            stored: Vec::new(),
            values: json!({"replicas": 2}),
            source: Some(RevisionSource::default()),
        };
        rendered.store_as_rendered();
        let packed = PackedRender::pack(rendered.clone());
        assert_eq!(packed.objects, 2);
        assert_eq!(packed.app_version, "1.2.3");
        let back = packed.unpack("c1").unwrap();
        assert_eq!(back.objects, rendered.objects);
        assert_eq!(back.stored, rendered.stored);
        assert_eq!(back.values, rendered.values);
        assert_eq!(back.source, rendered.source);
        assert_eq!(
            (back.release, back.chart),
            (rendered.release, rendered.chart)
        );
        assert!(!format!("{packed:?}").contains(secret));
    }

    /// The namespace is not read before the lease: a missing one answers the lock,
    /// and is created then only when the run may.
    #[tokio::test]
    async fn a_missing_namespace_is_found_by_the_lock_and_created_only_when_asked() {
        let opts = RunOptions::new(std::time::Duration::from_secs(5));
        let quiet = |_: &str| {};
        let kube = fake::FakeKube::new();
        kube.without_namespace();
        let refused = take_lease(&kube, "ns", "hello", &opts.lock, false, &quiet)
            .await
            .err();
        assert!(
            matches!(&refused, Some(ClusterError::NoNamespace { namespace, .. }) if namespace == "ns"),
            "{refused:?}"
        );
        assert!(kube.logged().is_empty(), "nothing created");
        take_lease(&kube, "ns", "hello", &opts.lock, true, &quiet)
            .await
            .unwrap();
        assert_eq!(kube.logged(), ["create namespace ns", "lock"]);
        // Where it exists, the lock is the only request.
        let kube = fake::FakeKube::new();
        take_lease(&kube, "ns", "hello", &opts.lock, true, &quiet)
            .await
            .unwrap();
        assert_eq!(kube.logged(), ["lock"]);
    }

    /// A run whose read under the lease went stale (another writer changed a record
    /// since: a run that took the lease over) refuses at its first record write:
    /// nothing overwritten, nothing applied.
    #[tokio::test]
    async fn a_record_changed_by_another_writer_since_the_read_is_never_overwritten() {
        use crate::release::tests_support::record;
        use crate::storage::{MemoryStore, RecordStore, UnderLease};
        let kube = fake::FakeKube::new();
        let store = MemoryStore::with([
            record(1, "d1", Status::Deployed),
            record(2, "d2", Status::Pending),
        ]);
        let read = store.history().await.unwrap();
        // Another run repairs the killed run's record after our read.
        let theirs = store.another_writer();
        theirs.list().await.unwrap();
        let mut repaired = record(2, "d2", Status::Failed);
        repaired.description = "repaired by the other run".into();
        theirs.update(&repaired).await.unwrap();

        let mut rendered = Rendered {
            hooks: Vec::new(),
            release: "hello".into(),
            namespace: "ns".into(),
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: "3".into(),
            objects: vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            ],
            stored: Vec::new(),
            values: json!({}),
            source: None,
        };
        rendered.store_as_rendered();
        let err = upgrade::deploy_with(
            &kube,
            &UnderLease::new(store.clone(), &read),
            &rendered,
            "d3",
            &RunOptions::new(std::time::Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
        let crate::cluster::ClusterError::LockLost { message, .. } = &err else {
            panic!("not a concurrent writer: {err}");
        };
        assert!(message.contains("revision 2"), "{message}");
        let now: Vec<_> = store
            .records()
            .into_iter()
            .map(|r| (r.revision, r.status, r.description))
            .collect();
        assert_eq!(
            now,
            [
                (1, Status::Deployed, String::new()),
                (2, Status::Failed, "repaired by the other run".into()),
            ]
        );
        assert!(kube.live_names().is_empty(), "nothing applied");
    }
}
