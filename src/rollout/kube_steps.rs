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
pub use super::leases::Leases;
use super::leases::{lease_options, step_error};
use super::plan::Plan;
use super::progress::{Phase, Reporter};
use super::recorded::{read_secrets, rerender, Refreshed};
use super::report::RevisionRef;
use crate::cluster::{CancellationToken, ClusterError, ClusterHandle, Event};
use crate::config::{Cluster, LoadedEnvironment};
use crate::ops::{self, restore::RestoreTo, Outcome, PackedRender, ReleaseCluster, RunOptions};
use crate::release::{self, EnvironmentHistory, History, ReleaseRecord};
use crate::vault::ResolvedSecrets;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
pub struct Prepared<K = ClusterHandle> {
    pub handle: K,
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

impl<K> Prepared<K> {
    /// A cluster the run deploys `rendered` to.
    pub fn render(handle: K, history: History, rendered: PackedRender) -> Prepared<K> {
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

/// The steps of one release's run on its clusters: real ones, or in memory for the
/// run's unit tests.
pub struct KubeSteps<K: ReleaseCluster = ClusterHandle> {
    pub clusters: HashMap<String, Prepared<K>>,
    pub deployment_id: String,
    /// Timeout, lock, history limit; `cancel` and `progress` are set per step.
    pub options: RunOptions,
    pub leases: Leases<K>,
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

impl<K: ReleaseCluster> KubeSteps<K> {
    /// The steps of run `deployment_id` putting each of `clusters` on its target: no
    /// gates, nothing resumed, a restore with the Secrets of the run's own targets
    /// until [`KubeSteps::restore_renders`] says how to render them again.
    pub fn new(
        clusters: HashMap<String, Prepared<K>>,
        deployment_id: &str,
        options: RunOptions,
        leases: Leases<K>,
    ) -> KubeSteps<K> {
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

    /// Sets these steps and `plan` up to go on with deployment `id` from the wave after the
    /// one it stopped at, after checking that it is a deployment of this release here that
    /// `--until-wave` paused, that nothing was deployed since, that it targeted the clusters
    /// of this plan and that this checkout renders the version it deployed.
    pub fn resume_deployment(
        &mut self,
        plan: &mut Plan,
        id: &str,
        until: Option<u32>,
    ) -> Result<(), String> {
        let histories: Vec<(&str, &History)> = self
            .clusters
            .iter()
            .map(|(context, p)| (context.as_str(), &p.history))
            .collect();
        let env = EnvironmentHistory::new(histories);
        let point = env.resume_point(id)?;
        let mut targets = point.targets.clone();
        targets.sort();
        let mut ours = plan.contexts();
        ours.sort();
        if targets != ours {
            return Err(format!(
                "it targeted the clusters {}, this environment has {}; deploy anew instead",
                targets.join(", "),
                ours.join(", ")
            ));
        }
        if let Some(p) = self.clusters.values().find_map(Prepared::rendered) {
            let (version, chart) = (&p.app_version, &p.chart);
            if *version != point.app_version || *chart != point.chart {
                return Err(format!(
                "it deployed version {} (chart {} {}), this checkout renders version {version} (chart {} {}): check out what it was deployed from, or deploy anew",
                point.app_version, point.chart.name, point.chart.version, chart.name, chart.version
            ));
            }
        }
        // The same content as the first part, cluster by cluster (values and `--set`
        // included), as the record's digest says.
        for (context, _, record) in &point.earlier {
            let Some(p) = self.clusters.get(*context) else {
                continue;
            };
            let digest = p.rendered().map(|r| r.digest.as_str());
            if !record.digest.is_empty() && Some(record.digest.as_str()) != digest {
                return Err(format!(
                "cluster `{context}`: this checkout renders other content than the deployment recorded there (values, --set or chart changed since): run it with what the first part had, or deploy anew"
            ));
            }
        }
        if let Some(wave) = until.filter(|w| *w <= point.after_wave) {
            return Err(format!(
                "it already went up to wave {}; --until-wave {wave} would deploy nothing",
                point.after_wave
            ));
        }
        plan.resume_after = Some(point.after_wave);
        let earlier = point
            .earlier
            .iter()
            .map(|(context, before, revision)| {
                (
                    (*context).to_owned(),
                    before.map(revision_ref),
                    revision.revision,
                )
            })
            .collect();
        self.resume(earlier);
        Ok(())
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
async fn step_outcome<K: ReleaseCluster>(
    result: Result<Outcome, ClusterError>,
    before: Option<RevisionRef>,
    leases: &Leases<K>,
    deployment_id: &str,
    (handle, namespace, release): (&K, &str, &str),
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

impl<K: ReleaseCluster> KubeSteps<K> {
    /// The objects a restore of `context` to `before` applies besides the record's:
    /// the revision rendered again from its record, with its secrets read again at its
    /// own sources, so that nothing of the failed run's render (its Secrets, their
    /// labels) is left. Where the record cannot be rendered again (a record without
    /// its chart, an imported Helm revision), the Secrets of this run's own target, read
    /// from Vault at its start, as before.
    async fn restore_objects(
        &self,
        context: &str,
        p: &Prepared<K>,
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
            let key = p
                .handle
                .checksum_key(namespace, release)
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
        p: &Prepared<K>,
        lock: &K::Lock,
        read: &ops::LeasedRead<K::Records>,
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

impl<K: ReleaseCluster> KubeSteps<K> {
    /// The `helm_tests` verify gate in one cluster: the chart's test hooks of the
    /// revision deployed there, under the gate's timeout; a failed test's gate result
    /// carries its diagnosis (how its pod ended, its last log lines).
    async fn helm_tests(
        &self,
        context: &str,
        command: &crate::config::VerifyCommand,
        stop: &CancellationToken,
    ) -> GateResult {
        let Some(p) = self.clusters.get(context) else {
            return GateResult::helm_tests(Err(not_prepared(context).message), Vec::new());
        };
        let mut opts = step_options(&self.options, stop, &Reporter::silent(), 0);
        opts.timeout = command.timeout;
        let (namespace, release) = (p.namespace(), p.release());
        match ops::hooks::helm_tests(&p.handle, namespace, release, &opts).await {
            Ok(ran) => GateResult::helm_tests(Ok(ran), Vec::new()),
            Err(err) => {
                let diagnosis = p.handle.diagnose(namespace, release, &err).await;
                let output = diagnosis
                    .as_ref()
                    .map(crate::cluster::diagnosis_lines)
                    .unwrap_or_default();
                GateResult::helm_tests(Err(step_error(&err).message), output)
            }
        }
    }
}

impl<K: ReleaseCluster> KubeSteps<K> {
    /// Adds a gate's time to the record this run wrote in `context`, for the run's
    /// picture (the dashboard): the gates run after the revision is recorded
    /// `deployed`. Read again under the lease the run holds (a list, then the write:
    /// a gate lasts minutes, two round trips are nothing beside it); a write that fails
    /// is a line in the log, never the gate's result.
    async fn record_gate_time(
        &self,
        context: &str,
        phase: release::Phase,
        started: chrono::DateTime<chrono::Utc>,
    ) {
        use crate::storage::RecordStore;
        let (Some(revision), Some(p)) =
            (self.leases.recorded_in(context), self.clusters.get(context))
        else {
            return;
        };
        let ended = chrono::Utc::now();
        let write = async {
            let store = p.handle.records(p.namespace(), p.release());
            let history = store.history().await?;
            let Some(mut record) = history.iter().find(|r| r.revision == revision).cloned() else {
                return Ok(());
            };
            record.phases.push(release::PhaseTime {
                phase,
                started,
                ended,
            });
            store.update(&record).await
        };
        if let Err(err) = write.await {
            tracing::warn!(
                cluster = context,
                "the {} time is not recorded: {err}",
                phase.as_str()
            );
        }
    }
}

impl<K: ReleaseCluster> ClusterSteps for KubeSteps<K> {
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
        let mut opts = step_options(&self.options, stop, reporter, total);
        opts.owners_read = self.leases.fresh_owners(context);
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
        let started = chrono::Utc::now();
        let soaked = ops::soak(&p.handle, &opts, stop, &left)
            .await
            .map_err(|e| step_error(&e));
        self.record_gate_time(context, release::Phase::Soak, started)
            .await;
        soaked
    }

    async fn verify(
        &self,
        context: &str,
        command: &crate::config::VerifyCommand,
        stop: &CancellationToken,
    ) -> GateResult {
        if command.helm_tests {
            return self.helm_tests(context, command, stop).await;
        }
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
        let started = chrono::Utc::now();
        let result = run_verify(command, &vars, context, &setup.root, stop).await;
        self.record_gate_time(context, release::Phase::Verify, started)
            .await;
        result
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
