//! [`ClusterSteps`] on real clusters, through the per-cluster operations of
//! [`crate::ops`]: [`KubeSteps`] for `deploy` and `promote`, [`RollbackSteps`] for
//! `rollback`.

use super::executor::{ClusterSteps, StepError, StepOutcome};
use super::progress::{Phase, Reporter};
use super::report::RevisionRef;
use crate::cluster::{CancellationToken, ClusterError, ClusterHandle, Event};
use crate::ops::{self, restore::RestoreTo, Outcome, Rendered, RunOptions};
use crate::release::{History, ReleaseRecord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One cluster, ready to be deployed.
pub struct Prepared {
    pub handle: ClusterHandle,
    pub rendered: Rendered,
    /// Its history before this run.
    pub history: History,
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
}

fn step_error(err: &ClusterError) -> StepError {
    match err {
        ClusterError::Cancelled { context } => StepError::cancelled(context),
        other => StepError {
            message: other.to_string(),
            unreachable: matches!(other, ClusterError::Unreachable { .. }),
            cancelled: false,
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
        Event::Pruned(_) | Event::Ready(_) => {}
    });
    opts
}

/// A deploy's outcome on one cluster, for the executor.
fn step_outcome(result: Result<Outcome, ClusterError>, before: Option<RevisionRef>) -> StepOutcome {
    match result {
        Err(err) => StepOutcome::Untouched(step_error(&err)),
        Ok(outcome) => StepOutcome::Changed {
            before,
            revision: outcome.revision,
            error: outcome.error.as_ref().map(step_error),
        },
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
        let total = p.rendered.objects.len();
        reporter.phase(context, Phase::Apply { done: 0, total });
        let opts = step_options(&self.options, stop, reporter, total);
        let result = ops::deploy(&p.handle, &p.rendered, &self.deployment_id, &opts).await;
        step_outcome(result, deployed(&p.history))
    }

    async fn restore(
        &self,
        context: &str,
        before: Option<&RevisionRef>,
        reporter: &Reporter,
    ) -> Result<Option<u32>, StepError> {
        let p = self
            .clusters
            .get(context)
            .ok_or_else(|| not_prepared(context))?;
        // Never cancelled: a restore must run to its end.
        let opts = step_options(
            &self.options,
            &CancellationToken::new(),
            reporter,
            p.rendered.objects.len(),
        );
        let (namespace, release) = (&p.rendered.namespace, &p.rendered.release);
        let Some(before) = before else {
            ops::uninstall(&p.handle, namespace, release, &opts)
                .await
                .map_err(|e| step_error(&e))?;
            return Ok(None);
        };
        // Secrets come from this run's fresh read of Vault, never from a record.
        let fresh: Vec<serde_json::Value> = p
            .rendered
            .objects
            .iter()
            .filter(|o| crate::release::is_secret(o))
            .cloned()
            .collect();
        // Recorded under this run's id, restoring `before`'s content: the run's own
        // deploys are then marked rolled back, so no later rollback goes to them.
        let to = RestoreTo {
            revision: before.revision,
            deployment_id: &self.deployment_id,
            fresh: &fresh,
            unreadable: &[],
        };
        restored(ops::restore(&p.handle, namespace, release, &to, &opts).await)
    }
}

/// The steps of `rollback`: "deploy" puts each cluster on its own target revision;
/// "restore" puts it back on what it ran before, when another cluster's rollback fails.
pub struct RollbackSteps {
    pub clusters: HashMap<String, RollbackCluster>,
    /// This rollback's own id, recorded by every revision it writes.
    pub run_id: String,
    pub options: RunOptions,
}

/// One cluster of a rollback and the revision it goes to.
pub struct RollbackCluster {
    pub handle: ClusterHandle,
    pub namespace: String,
    pub release: String,
    pub history: History,
    /// The revision to go to, found in this cluster by deployment id.
    pub to: RevisionRef,
    /// Objects of the target rendered again with secrets read now (see
    /// [`RestoreTo::fresh`]); empty when nothing could be rendered again: the live
    /// secrets are then kept, and the record says so.
    pub fresh: Vec<serde_json::Value>,
    /// Objects whose secrets could not be read now: kept as they are live.
    pub unreadable: Vec<crate::cluster::ObjectRef>,
}

impl RollbackCluster {
    async fn go_to(
        &self,
        to: &RevisionRef,
        run_id: &str,
        opts: &RunOptions,
    ) -> Result<Outcome, ClusterError> {
        let to = RestoreTo {
            revision: to.revision,
            deployment_id: run_id,
            fresh: &self.fresh,
            unreadable: &self.unreadable,
        };
        ops::restore(&self.handle, &self.namespace, &self.release, &to, opts).await
    }
}

impl ClusterSteps for RollbackSteps {
    async fn deploy(
        &self,
        context: &str,
        stop: &CancellationToken,
        reporter: &Reporter,
    ) -> StepOutcome {
        let Some(t) = self.clusters.get(context) else {
            return StepOutcome::Untouched(not_prepared(context));
        };
        let total = t.history.get(t.to.revision).map_or(0, |r| r.manifest.len());
        let opts = step_options(&self.options, stop, reporter, total);
        step_outcome(
            t.go_to(&t.to, &self.run_id, &opts).await,
            deployed(&t.history),
        )
    }

    async fn restore(
        &self,
        context: &str,
        before: Option<&RevisionRef>,
        reporter: &Reporter,
    ) -> Result<Option<u32>, StepError> {
        let t = self
            .clusters
            .get(context)
            .ok_or_else(|| not_prepared(context))?;
        let Some(before) = before else {
            return Err(StepError::new(format!(
                "cluster `{context}` had no deployed revision before this rollback"
            )));
        };
        let opts = step_options(&self.options, &CancellationToken::new(), reporter, 0);
        restored(t.go_to(before, &self.run_id, &opts).await)
    }
}
