//! [`ClusterSteps`] on real clusters, through the per-cluster operations of
//! [`crate::ops`]: [`KubeSteps`] puts each cluster on its [`Target`], a new render
//! (`deploy`, `promote`, `adopt-helm`) or a recorded revision (`rollback`), and puts
//! it back on what it ran before when the run fails.
//!
//! One lease per cluster for the whole run ([`Leases`]): taken by the cluster's first
//! step, renewed through its deploy and its restore, released once the run is over. A
//! restore first checks that the newest record in the cluster is the one this run
//! wrote, and that the lease is still this run's; otherwise it refuses, saying why.

use super::executor::{ClusterSteps, LeaseWait, Soak, StepError, StepOutcome};
use super::gates::{run_verify, GateResult, GateVars};
use super::progress::{Phase, Reporter};
use super::recorded::{read_secrets, rerender, Refreshed};
use super::report::RevisionRef;
use crate::cluster::{CancellationToken, ClusterError, ClusterHandle, Event, Lock, LockOptions};
use crate::config::{Cluster, LoadedEnvironment};
use crate::ops::{self, restore::RestoreTo, Outcome, PackedRender, RunOptions};
use crate::release::{History, ReleaseRecord};
use crate::vault::ResolvedSecrets;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// Beyond a restore's own health-wait budget (`rollout.rollback_timeout`): time for its
/// requests, each bounded by the request timeout. A restore still running after both
/// is given up and reported with its finish command.
pub const RESTORE_MARGIN: Duration = Duration::from_secs(45);

/// A restore within its budget, or an error saying it ran out.
async fn within_budget<T>(
    context: &str,
    wait: Duration,
    restore: impl Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    let budget = wait + RESTORE_MARGIN;
    tokio::time::timeout(budget, restore)
        .await
        .unwrap_or_else(|_| {
            Err(StepError {
                message: format!(
                    "cluster `{context}`: the restore did not finish within its budget of {}s",
                    budget.as_secs()
                ),
                unreachable: true,
                ..StepError::new(String::new())
            })
        })
}

/// The leases a run holds, one per cluster, and what it recorded in each.
#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<String, Arc<Lock>>>,
    /// The revision (and its deployment id) this run recorded in each cluster: what a
    /// restore must find as the newest record there.
    recorded: Mutex<HashMap<String, (u32, String)>>,
    /// Each cluster's records as read once its lease was taken: what ran before this
    /// run, which another run may have changed since the run was prepared, and their
    /// resourceVersions (the preconditions of the run's writes).
    seen: Mutex<HashMap<String, ops::LeasedRead>>,
    /// Create the release namespace where missing before taking the lease in it
    /// (`--create-namespace`).
    create_namespace: bool,
    /// The checksum key drawn for each cluster that had none, which its deploy step
    /// writes once every lease is held (a refused run writes none).
    keys: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl Leases {
    /// No lease held yet; `create_namespace` as `--create-namespace` says.
    pub fn new(create_namespace: bool) -> Leases {
        Leases {
            create_namespace,
            ..Default::default()
        }
    }

    /// `key` is the release's new checksum key in `context`, to write once the run
    /// holds its leases ([`Leases::write_key`]).
    pub fn write_key_once_held(&self, context: &str, key: Zeroizing<Vec<u8>>) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(context.to_owned(), key);
    }

    /// Writes the checksum key drawn for `context` in `prepare`, if any (once).
    async fn write_key(
        &self,
        handle: &ClusterHandle,
        namespace: &str,
        release: &str,
    ) -> Result<(), ClusterError> {
        let key = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(handle.context());
        match key {
            Some(key) => {
                crate::storage::create_checksum_key(handle, namespace, release, &key).await
            }
            None => Ok(()),
        }
    }

    /// For [`ClusterSteps::acquire`]: the lease taken now, or none to take yet where
    /// the release namespace does not exist and the run may create it: nobody can hold
    /// a lease there, and creating the namespace is a change, made by the cluster's own
    /// step once every other lease is held (so a run refused elsewhere creates nothing).
    async fn take_or_defer(
        &self,
        handle: &ClusterHandle,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
        prepared: Option<&History>,
    ) -> Result<(), ClusterError> {
        if self
            .get(handle.context())
            .is_some_and(|l| !l.lost().is_cancelled())
        {
            return Ok(());
        }
        // Where the namespace is missing, taking the lease fails on it, before any
        // change (nothing is created here).
        match self
            .lock_and_read(handle, namespace, release, opts, false, reporter, prepared)
            .await
        {
            Ok(_) => Ok(()),
            Err(ClusterError::Release { .. }) if self.create_namespace => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn get(&self, context: &str) -> Option<Arc<Lock>> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .cloned()
    }

    /// This run's lease of `release` in the cluster: held already, or taken now
    /// (waiting up to `opts.wait` for another run, and saying so).
    async fn take(
        &self,
        handle: &ClusterHandle,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
        prepared: Option<&History>,
    ) -> Result<Arc<Lock>, ClusterError> {
        if let Some(lock) = self
            .get(handle.context())
            .filter(|l| !l.lost().is_cancelled())
        {
            return Ok(lock);
        }
        self.lock_and_read(
            handle,
            namespace,
            release,
            opts,
            self.create_namespace,
            reporter,
            prepared,
        )
        .await
    }

    /// Takes the lease (creating its namespace first with `create_namespace`), and
    /// reads the records under it.
    #[allow(clippy::too_many_arguments)]
    async fn lock_and_read(
        &self,
        handle: &ClusterHandle,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        create_namespace: bool,
        reporter: &Reporter,
        prepared: Option<&History>,
    ) -> Result<Arc<Lock>, ClusterError> {
        let context = handle.context();
        let on_wait = |message: &str| reporter.phase(context, Phase::Waiting(message.to_owned()));
        let lock =
            ops::take_lease(handle, namespace, release, opts, create_namespace, &on_wait).await?;
        let lock = Arc::new(lock);
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(context.to_owned(), lock.clone());
        // Read again under the lease: a run that waited for another one must go back
        // to what that one deployed, not to what ran when this run was prepared.
        // (Once: a lease taken again for a restore must not make this run's own
        // revision "what ran before".) Unchanged, it is the prepared one, shared.
        if self.seen_history(context).is_none() {
            let read = ops::read_leased(handle, namespace, release).await?;
            let read = match prepared {
                Some(prepared) if *prepared == read.history => read.with_history(prepared.clone()),
                _ => read,
            };
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(context.to_owned())
                .or_insert(read);
        }
        Ok(lock)
    }

    /// The history of `context` as read under this run's lease, else `prepared`.
    fn history(&self, context: &str, prepared: &History) -> History {
        self.seen_history(context)
            .unwrap_or_else(|| prepared.clone())
    }

    fn seen_history(&self, context: &str) -> Option<History> {
        self.seen_read(context).map(|read| read.history)
    }

    /// The records of `context` as read under this run's lease.
    fn seen_read(&self, context: &str) -> Option<ops::LeasedRead> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .cloned()
    }

    /// [`Leases::seen_read`], or an error when the lease was never taken.
    fn read_under_lease(&self, context: &str) -> Result<ops::LeasedRead, ClusterError> {
        self.seen_read(context)
            .ok_or_else(|| ClusterError::Release {
                context: context.to_owned(),
                message: "the records were not read under this run's lease".into(),
            })
    }

    fn note_recorded(&self, context: &str, revision: u32, deployment_id: &str) {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(context.to_owned(), (revision, deployment_id.to_owned()));
    }

    /// The lease for a restore: still this run's (taken again at once if a renewal
    /// failure dropped it and nobody took it since), and the newest record in the
    /// cluster is the one this run wrote. Otherwise the restore is refused, saying why:
    /// another run changed the release since, and putting back what ran before this
    /// run would overwrite it.
    async fn for_restore(
        &self,
        handle: &ClusterHandle,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
    ) -> Result<(Arc<Lock>, ops::LeasedRead), StepError> {
        let context = handle.context();
        let lost = self
            .get(context)
            .filter(|l| l.lost().is_cancelled())
            .and_then(|l| l.lost_why());
        let retake = LockOptions {
            wait: Duration::ZERO,
            ..opts.clone()
        };
        let lock = self
            .take(handle, namespace, release, &retake, reporter, None)
            .await
            .map_err(|err| match (&err, &lost) {
                (ClusterError::Locked { .. }, Some(why)) => StepError::new(format!(
                    "cluster `{context}`: not restored: this run lost the lock of `{release}` ({why}) and another run holds it now: {err}"
                )),
                _ => step_error(&err),
            })?;
        let recorded = self
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .cloned();
        let read = ops::read_leased(handle, namespace, release)
            .await
            .map_err(|e| step_error(&e))?;
        if let Some((revision, deployment_id)) = recorded {
            newest_is_ours(&read.history, revision, &deployment_id).map_err(|why| {
                StepError::new(format!(
                    "cluster `{context}`: not restored: {why}; another run changed `{release}` since (see `flotilla history`)"
                ))
            })?;
        }
        Ok((lock, read))
    }

    /// Gives every lease back (compare-and-swap: never one another run took), and
    /// forgets what was read under them: taken again, they are read again.
    pub async fn release_all(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let held: Vec<Arc<Lock>> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        futures::future::join_all(
            held.into_iter()
                .filter_map(|l| Arc::try_unwrap(l).ok())
                .map(Lock::release),
        )
        .await;
    }
}

/// The lock options of an attempt at a lease: `LeaseWait::No` waits for nobody.
fn lease_options(configured: &LockOptions, wait: LeaseWait) -> LockOptions {
    match wait {
        LeaseWait::No => LockOptions {
            wait: Duration::ZERO,
            ..configured.clone()
        },
        LeaseWait::AsConfigured => configured.clone(),
    }
}

/// Whether the newest record of a cluster is the one this run wrote (`revision` of
/// `deployment_id`), or older (this run's pending record never landed): a restore may
/// then go ahead. Otherwise another run recorded since, and why not.
fn newest_is_ours(history: &History, revision: u32, deployment_id: &str) -> Result<(), String> {
    let Some(newest) = history.latest() else {
        return Ok(());
    };
    let other = newest.revision > revision
        || (newest.revision == revision && newest.deployment_id != deployment_id);
    if other {
        return Err(format!(
            "the newest record is revision {} (deployment {}, {} by {}@{}), not revision {revision} that this run wrote",
            newest.revision, newest.deployment_id, newest.status, newest.user, newest.host
        ));
    }
    Ok(())
}

/// Beyond the health wait (`rollout.timeout`), the time a deploy step may take for its
/// requests (lease, records, apply, prune), each bounded by the request timeout. A step
/// still running after both is given up: the cluster is reported lost after its change.
pub const APPLY_BUDGET: Duration = Duration::from_secs(90);

/// A deploy step within `wait` + [`APPLY_BUDGET`]; past it, the cluster is a changed
/// cluster that could not be reached in time (its pending record is `revision`).
async fn deploy_within_budget(
    context: &str,
    wait: Duration,
    revision: u32,
    before: Option<RevisionRef>,
    step: impl Future<Output = StepOutcome>,
) -> StepOutcome {
    let budget = wait + APPLY_BUDGET;
    match tokio::time::timeout(budget, step).await {
        Ok(outcome) => outcome,
        Err(_) => StepOutcome::Changed {
            before,
            revision,
            error: Some(StepError {
                message: format!(
                    "cluster `{context}` is unreachable: its deploy did not finish within its budget of {}s",
                    budget.as_secs()
                ),
                unreachable: true,
                ..StepError::new(String::new())
            }),
        },
    }
}

/// One cluster of a run, and what the run puts there.
pub struct Prepared {
    pub handle: ClusterHandle,
    /// Its history before this run.
    pub history: History,
    pub target: Target,
}

/// What a run puts in one cluster.
pub enum Target {
    /// A new render (`deploy`, `promote`) or an imported Helm release (`adopt-helm`),
    /// unpacked when the cluster's step starts.
    Render(PackedRender),
    /// A revision recorded there (`rollback`).
    Revision(RecordedTarget),
}

/// A recorded revision a rollback puts back in one cluster.
pub struct RecordedTarget {
    pub namespace: String,
    pub release: String,
    /// The revision to go to, found in this cluster by deployment id.
    pub to: RevisionRef,
    /// Objects of the target rendered again with secrets read now (see
    /// [`RestoreTo::fresh`]); empty when nothing could be rendered again: the live
    /// secrets are then kept, and the record says so.
    pub fresh: Vec<serde_json::Value>,
    /// Objects whose secrets could not be read now: kept as they are live.
    pub unreadable: Vec<crate::cluster::ObjectRef>,
}

impl Prepared {
    /// A cluster the run deploys `rendered` to.
    pub fn render(handle: ClusterHandle, history: History, rendered: PackedRender) -> Prepared {
        Prepared {
            handle,
            history,
            target: Target::Render(rendered),
        }
    }

    /// The render the run deploys here, if it deploys one.
    pub fn rendered(&self) -> Option<&PackedRender> {
        match &self.target {
            Target::Render(rendered) => Some(rendered),
            Target::Revision(_) => None,
        }
    }

    fn namespace(&self) -> &str {
        match &self.target {
            Target::Render(r) => &r.namespace,
            Target::Revision(t) => &t.namespace,
        }
    }

    fn release(&self) -> &str {
        match &self.target {
            Target::Render(r) => &r.release,
            Target::Revision(t) => &t.release,
        }
    }

    /// The application version the run puts here.
    pub fn app_version(&self) -> Option<String> {
        match &self.target {
            Target::Render(r) => Some(r.app_version.clone()),
            Target::Revision(t) => self
                .history
                .get(t.to.revision)
                .map(|r| r.app_version.clone()),
        }
    }

    /// How many objects the run applies here (for progress).
    fn objects(&self) -> usize {
        match &self.target {
            Target::Render(r) => r.objects,
            Target::Revision(t) => self
                .history
                .get(t.to.revision)
                .map_or(0, |r| r.manifest.len()),
        }
    }
}

/// A revision as the report and the finish commands name it: by the deployment whose
/// content it runs.
pub fn revision_ref(record: &ReleaseRecord) -> RevisionRef {
    RevisionRef {
        revision: record.revision,
        deployment_id: record.content_id().to_owned(),
    }
}

/// The deployed revision of a history, as the report names it.
fn deployed(history: &History) -> Option<RevisionRef> {
    history.deployed().map(revision_ref)
}

/// The steps of one release's run on real clusters.
pub struct KubeSteps {
    pub clusters: HashMap<String, Prepared>,
    pub deployment_id: String,
    /// Timeout, lock, history limit; `cancel` and `progress` are set per step.
    pub options: RunOptions,
    pub leases: Leases,
    /// What verify commands see and where they run; `None`: no wave has any.
    pub gates: Option<GateSetup>,
    /// Clusters an earlier part of this deployment changed (`deploy --resume`): what
    /// they ran before it and the revision it recorded.
    pub resumed: HashMap<String, (Option<RevisionRef>, u32)>,
    /// How a restore renders the revision it goes back to; `None`: with this run's
    /// Secrets (a takeover from Helm, whose revision is recorded as Helm applied it).
    pub restore_renders: Option<RestoreRenders>,
}

/// Where verify commands run and what they are told of the run.
#[derive(Debug, Clone)]
pub struct GateSetup {
    pub vars: GateVars,
    /// The repo root: commands name scripts relative to it.
    pub root: std::path::PathBuf,
}

impl KubeSteps {
    /// The steps of run `deployment_id` putting each of `clusters` on its target: no
    /// gates, nothing resumed, a restore with the Secrets of the run's own targets
    /// until [`KubeSteps::restore_renders`] says how to render them again.
    pub fn new(
        clusters: HashMap<String, Prepared>,
        deployment_id: &str,
        options: RunOptions,
        leases: Leases,
    ) -> KubeSteps {
        KubeSteps {
            clusters,
            deployment_id: deployment_id.to_owned(),
            options,
            leases,
            gates: None,
            resumed: HashMap::new(),
            restore_renders: None,
        }
    }

    /// Continues deployment `resumed` of an earlier run: each of `earlier` (context,
    /// what ran before, the revision it recorded) is this run's to restore if it fails.
    pub fn resume(&mut self, earlier: Vec<(String, Option<RevisionRef>, u32)>) {
        for (context, before, revision) in earlier {
            self.leases
                .note_recorded(&context, revision, &self.deployment_id);
            self.resumed.insert(context, (before, revision));
        }
    }
}

fn step_error(err: &ClusterError) -> StepError {
    match err {
        ClusterError::Cancelled { context } => StepError::cancelled(context),
        other => StepError {
            unreachable: matches!(other, ClusterError::Unreachable { .. }),
            environment: matches!(
                other,
                ClusterError::Unreachable { .. }
                    | ClusterError::Locked { .. }
                    | ClusterError::Denied { .. }
            ),
            ..StepError::new(other.to_string())
        },
    }
}

/// A step's options: the run's, with its own stop token and progress (apply k/n, what
/// it waits for).
fn step_options(
    base: &RunOptions,
    stop: &CancellationToken,
    reporter: &Reporter,
    total: usize,
) -> RunOptions {
    let reporter = reporter.clone();
    let applied = Arc::new(AtomicUsize::new(0));
    let mut opts = base.clone();
    opts.cancel = stop.clone();
    opts.progress = Arc::new(move |context, event| match event {
        Event::Applied(_) | Event::KeptLive(_) => {
            let done = applied.fetch_add(1, Ordering::Relaxed) + 1;
            reporter.phase(context, Phase::Apply { done, total });
        }
        Event::Waiting { pending } => {
            reporter.phase(context, Phase::Waiting(pending.join(", ")));
        }
        Event::Kept(kept) => reporter.phase(context, Phase::Kept(kept.to_string())),
        Event::Pruned(_) | Event::Ready(_) => {}
    });
    opts
}

/// A deploy's outcome on one cluster, for the executor: `Err` is "nothing changed";
/// an outcome is a changed cluster, lost or not (its error says `unreachable`). A
/// cluster whose health wait failed is diagnosed now, before any restore, so that the
/// report describes the failing revision.
async fn step_outcome(
    result: Result<Outcome, ClusterError>,
    before: Option<RevisionRef>,
    leases: &Leases,
    deployment_id: &str,
    (handle, namespace, release): (&ClusterHandle, &str, &str),
) -> StepOutcome {
    match result {
        Err(err) => StepOutcome::Untouched(step_error(&err)),
        Ok(outcome) => {
            leases.note_recorded(&outcome.context, outcome.revision, deployment_id);
            let error = match &outcome.error {
                Some(err) => Some(StepError {
                    diagnosis: handle.diagnose(namespace, release, err).await.map(Box::new),
                    ..step_error(err)
                }),
                None => None,
            };
            StepOutcome::Changed {
                before,
                revision: outcome.revision,
                error,
            }
        }
    }
}

/// A restore's outcome on one cluster: the revision it recorded.
fn restored(result: Result<Outcome, ClusterError>) -> Result<Option<u32>, StepError> {
    let outcome = result.map_err(|e| step_error(&e))?;
    match outcome.error {
        None => Ok(Some(outcome.revision)),
        Some(err) => Err(step_error(&err)),
    }
}

fn not_prepared(context: &str) -> StepError {
    StepError::new(format!("cluster `{context}` was not prepared"))
}

/// What the automatic restore renders a cluster's earlier revision with: the
/// environment (its Vault), each cluster's globals, and the secrets of every cluster's
/// revision from before the run, read from Vault once, at the first restore (a run
/// that succeeds never reads them).
pub struct RestoreRenders {
    env: LoadedEnvironment,
    clusters: HashMap<String, Cluster>,
    read: tokio::sync::OnceCell<ResolvedSecrets>,
}

impl RestoreRenders {
    pub fn new(env: &LoadedEnvironment, clusters: impl Iterator<Item = Cluster>) -> Self {
        RestoreRenders {
            env: env.clone(),
            clusters: clusters.map(|c| (c.context.clone(), c)).collect(),
            read: tokio::sync::OnceCell::new(),
        }
    }
}

impl KubeSteps {
    /// The objects a restore of `context` to `before` applies besides the record's:
    /// the revision rendered again from its record, with its secrets read again at its
    /// own sources, so that nothing of the failed run's render (its Secrets, their
    /// labels) is left. Where the record cannot be rendered again (a record without
    /// its chart, an imported Helm revision), the Secrets of this run's own target, read
    /// from Vault at its start, as before.
    async fn restore_objects(
        &self,
        context: &str,
        p: &Prepared,
        before: &RevisionRef,
        history: &History,
    ) -> Result<Refreshed, StepError> {
        let (namespace, release) = (p.namespace(), p.release());
        let record = history.get(before.revision);
        let renderable = record.and_then(|r| {
            let source = r.source.as_ref().filter(|s| s.imported.is_none())?;
            Some((r, source))
        });
        if let (Some(renders), Some((record, source)), Some(cluster)) = (
            &self.restore_renders,
            renderable,
            self.restore_renders
                .as_ref()
                .and_then(|r| r.clusters.get(context)),
        ) {
            let resolved = renders
                .read
                .get_or_init(|| {
                    read_secrets(
                        &renders.env,
                        release,
                        self.clusters.iter().filter_map(|(c, p)| {
                            let source = p.history.deployed()?.source.as_ref()?;
                            Some((c.as_str(), source))
                        }),
                    )
                })
                .await;
            // The key `secretsum` was rendered with: without it the checksums differ.
            let key = crate::storage::checksum_key(&p.handle, namespace, release, false, false)
                .await
                .map_err(|e| tracing::warn!("{e}"))
                .ok()
                .flatten();
            match rerender(
                record,
                source,
                cluster,
                resolved,
                release,
                namespace,
                key.as_deref().map(|k| k.as_slice()),
            ) {
                Ok(refreshed) => return Ok(refreshed),
                Err(err) => crate::output::eprint_line(&format!(
                    "[{context}] revision {} not rendered again ({err}); its Secrets come from this run's render",
                    record.revision
                )),
            }
        }
        Ok(match &p.target {
            Target::Render(rendered) => Refreshed {
                fresh: rendered
                    .unpack(context)
                    .map_err(|e| step_error(&e))?
                    .objects
                    .into_iter()
                    .filter(crate::release::is_secret)
                    .collect(),
                unreadable: Vec::new(),
            },
            Target::Revision(t) => Refreshed {
                fresh: t.fresh.clone(),
                unreadable: t.unreadable.clone(),
            },
        })
    }

    /// Puts `p` on its target under `lock`, `read` its records as read under the lease:
    /// the render deployed, or the recorded revision restored.
    async fn put_target(
        &self,
        context: &str,
        p: &Prepared,
        lock: &Lock,
        read: &ops::LeasedRead,
        opts: &RunOptions,
    ) -> Result<Outcome, ClusterError> {
        match &p.target {
            Target::Render(packed) => {
                let rendered = packed.unpack(context)?;
                ops::deploy_under(
                    &p.handle,
                    lock,
                    &read.store(),
                    &rendered,
                    &self.deployment_id,
                    opts,
                )
                .await
            }
            Target::Revision(t) => {
                let to = RestoreTo {
                    revision: t.to.revision,
                    deployment_id: &self.deployment_id,
                    fresh: &t.fresh,
                    unreadable: &t.unreadable,
                };
                ops::restore_under(
                    &p.handle,
                    lock,
                    &read.store(),
                    &t.namespace,
                    &t.release,
                    &to,
                    opts,
                )
                .await
            }
        }
    }
}

impl ClusterSteps for KubeSteps {
    async fn deploy(
        &self,
        context: &str,
        stop: &CancellationToken,
        reporter: &Reporter,
    ) -> StepOutcome {
        let Some(p) = self.clusters.get(context) else {
            return StepOutcome::Untouched(not_prepared(context));
        };
        let total = p.objects();
        let (namespace, release) = (p.namespace(), p.release());
        let lock = match self
            .leases
            .take(
                &p.handle,
                namespace,
                release,
                &self.options.lock,
                reporter,
                Some(&p.history),
            )
            .await
        {
            Ok(lock) => lock,
            Err(err) => return StepOutcome::Untouched(step_error(&err)),
        };
        // The first write of the cluster's step, every lease held: the key `prepare`
        // drew where there was none, which this render is keyed by.
        if let Err(err) = self.leases.write_key(&p.handle, namespace, release).await {
            return StepOutcome::Untouched(step_error(&err));
        }
        reporter.phase(context, Phase::Apply { done: 0, total });
        let opts = step_options(&self.options, stop, reporter, total);
        let read = match self.leases.read_under_lease(context) {
            Ok(read) => read,
            Err(err) => return StepOutcome::Untouched(step_error(&err)),
        };
        let history = read.history.clone();
        let next = history.next_revision();
        self.leases
            .note_recorded(context, next, &self.deployment_id);
        let step = async {
            let result = self.put_target(context, p, &lock, &read, &opts).await;
            step_outcome(
                result,
                deployed(&history),
                &self.leases,
                &self.deployment_id,
                (&p.handle, namespace, release),
            )
            .await
        };
        deploy_within_budget(context, opts.timeout, next, deployed(&history), step).await
    }

    async fn restore(
        &self,
        context: &str,
        before: Option<&RevisionRef>,
        reporter: &Reporter,
    ) -> Result<Option<u32>, StepError> {
        within_budget(context, self.options.restore_timeout, async move {
            let p = self
                .clusters
                .get(context)
                .ok_or_else(|| not_prepared(context))?;
            // Not cancelled by the first signal: a restore runs to its end, within its own
            // budget.
            let mut opts = step_options(
                &self.options,
                &CancellationToken::new(),
                reporter,
                p.objects(),
            );
            opts.timeout = self.options.restore_timeout;
            let (namespace, release) = (p.namespace(), p.release());
            let (lock, read) = self
                .leases
                .for_restore(&p.handle, namespace, release, &self.options.lock, reporter)
                .await?;
            let before = match (before, &p.target) {
                (Some(before), _) => before,
                // A failed first install: undone, leaving what it adopted.
                (None, Target::Render(_)) => {
                    ops::uninstall::remove(
                        &p.handle,
                        &read.store(),
                        namespace,
                        release,
                        crate::cluster::Removal::RollbackUninstall,
                        &opts,
                    )
                    .await
                    .map_err(|e| step_error(&e))?;
                    return Ok(None);
                }
                (None, Target::Revision(_)) => {
                    return Err(StepError::new(format!(
                        "cluster `{context}` had no deployed revision before this rollback"
                    )))
                }
            };
            let refreshed = self
                .restore_objects(context, p, before, &read.history)
                .await?;
            // Recorded under this run's id, restoring `before`'s content: the run's own
            // deploys are then marked rolled back, so no later rollback goes to them.
            let to = RestoreTo {
                revision: before.revision,
                deployment_id: &self.deployment_id,
                fresh: &refreshed.fresh,
                unreadable: &refreshed.unreadable,
            };
            restored(
                ops::restore_under(
                    &p.handle,
                    &*lock,
                    &read.store(),
                    namespace,
                    release,
                    &to,
                    &opts,
                )
                .await,
            )
        })
        .await
    }

    fn before(&self, context: &str) -> Option<RevisionRef> {
        self.clusters
            .get(context)
            .and_then(|p| deployed(&self.leases.history(context, &p.history)))
    }

    async fn soak(
        &self,
        context: &str,
        soak: &Soak,
        stop: &CancellationToken,
        reporter: &Reporter,
    ) -> Result<(), StepError> {
        let p = self
            .clusters
            .get(context)
            .ok_or_else(|| not_prepared(context))?;
        let opts = ops::SoakOptions {
            namespace: p.namespace().to_owned(),
            release: p.release().to_owned(),
            duration: soak.duration,
            max_restarts: soak.max_restarts,
        };
        reporter.phase(context, Phase::Soaking(soak.duration));
        let left = |left: Duration| reporter.phase(context, Phase::Soaking(left));
        ops::soak(&p.handle, &opts, stop, &left)
            .await
            .map_err(|e| step_error(&e))
    }

    async fn verify(
        &self,
        context: &str,
        command: &crate::config::VerifyCommand,
        stop: &CancellationToken,
    ) -> GateResult {
        let (Some(setup), Some(p)) = (&self.gates, self.clusters.get(context)) else {
            return GateResult {
                gate: "verify".into(),
                command: Some(command.run.clone()),
                passed: false,
                detail: not_prepared(context).message,
                output: Vec::new(),
                stopped: false,
            };
        };
        let vars = GateVars {
            version: p.app_version().unwrap_or_default(),
            ..setup.vars.clone()
        };
        run_verify(command, &vars, context, &setup.root, stop).await
    }

    fn resumed(&self, context: &str) -> Option<(Option<RevisionRef>, u32)> {
        self.resumed.get(context).cloned()
    }

    async fn acquire(
        &self,
        context: &str,
        wait: LeaseWait,
        reporter: &Reporter,
    ) -> Result<(), StepError> {
        let p = self
            .clusters
            .get(context)
            .ok_or_else(|| not_prepared(context))?;
        self.leases
            .take_or_defer(
                &p.handle,
                p.namespace(),
                p.release(),
                &lease_options(&self.options.lock, wait),
                reporter,
                Some(&p.history),
            )
            .await
            .map_err(|e| step_error(&e))
    }

    async fn release(&self) {
        self.leases.release_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::Status;

    #[test]
    fn a_restore_goes_ahead_only_over_this_runs_own_newest_record() {
        let history = |records: &[(u32, &str, Status)]| {
            History::new(
                records
                    .iter()
                    .map(|(n, id, s)| record(*n, id, *s))
                    .collect(),
            )
        };
        let ours = history(&[(1, "d1", Status::Deployed), (2, "d2", Status::Failed)]);
        assert_eq!(newest_is_ours(&ours, 2, "d2"), Ok(()));
        // This run's pending record never landed: what is there is older.
        let never_landed = history(&[(1, "d1", Status::Deployed)]);
        assert_eq!(newest_is_ours(&never_landed, 2, "d2"), Ok(()));
        assert_eq!(newest_is_ours(&History::new(Vec::new()), 1, "d1"), Ok(()));
        // Another run recorded after ours, or took our revision number.
        let newer = history(&[(2, "d2", Status::Failed), (3, "d3", Status::Deployed)]);
        let why = newest_is_ours(&newer, 2, "d2").unwrap_err();
        assert!(why.contains("revision 3 (deployment d3"), "{why}");
        let same_number = history(&[(1, "d1", Status::Deployed), (2, "dx", Status::Deployed)]);
        assert!(newest_is_ours(&same_number, 2, "d2").is_err());
    }
}
