//! [`ClusterSteps`] on real clusters, through [`crate::action::cluster_release`], and
//! the preparation that comes before: every secret of every cluster read from Vault,
//! every cluster connected and its history read, the release rendered for each. Any
//! failure here happens before a single cluster is changed.

use super::executor::{ClusterSteps, StepError, StepOutcome};
use super::plan::Plan;
use super::progress::{Phase, Reporter};
use super::report::Before;
use crate::action::cluster_release::{self as ops, Rendered, RunOptions};
use crate::cluster::{CancellationToken, ClusterError, ClusterHandle, Event};
use crate::config::{Cluster, LoadedEnvironment, LoadedRelease};
use crate::engine::{parse_set, Chart, Renderer, SecretValues};
use crate::release::{ChartRef, ReleaseRecord, Status};
use crate::vault::{resolve_plan, SecretPlan, VaultEnv};
use futures::StreamExt;
use kube::config::Kubeconfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One cluster, ready to be deployed.
pub struct Prepared {
    pub handle: ClusterHandle,
    pub rendered: Rendered,
    /// Its records before this run, oldest first.
    pub records: Vec<ReleaseRecord>,
}

impl Prepared {
    /// The deployed revision before this run.
    pub fn before(&self) -> Option<Before> {
        self.records
            .iter()
            .rev()
            .find(|r| r.status == Status::Deployed)
            .map(|r| Before {
                revision: r.revision,
                deployment_id: r.deployment_id.clone(),
            })
    }
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

/// Turns the cluster layer's events into phases (apply k/n, what it waits for).
fn progress_for(reporter: &Reporter, total: usize) -> crate::cluster::Progress {
    let reporter = reporter.clone();
    let applied = Arc::new(AtomicUsize::new(0));
    Arc::new(move |context, event| match event {
        Event::Applied(_) | Event::KeptLive(_) => {
            let done = applied.fetch_add(1, Ordering::Relaxed) + 1;
            reporter.phase(context, Phase::Apply { done, total });
        }
        Event::Waiting { pending } => {
            reporter.phase(context, Phase::Waiting(pending.join(", ")));
        }
        Event::Pruned(_) | Event::Ready(_) => {}
    })
}

impl KubeSteps {
    fn options(&self, stop: &CancellationToken, reporter: &Reporter, total: usize) -> RunOptions {
        let mut opts = self.options.clone();
        opts.cancel = stop.clone();
        opts.progress = progress_for(reporter, total);
        opts
    }

    fn prepared(&self, context: &str) -> Result<&Prepared, StepError> {
        self.clusters
            .get(context)
            .ok_or_else(|| StepError::new(format!("cluster `{context}` was not prepared")))
    }
}

impl ClusterSteps for KubeSteps {
    async fn deploy(
        &self,
        context: &str,
        stop: &CancellationToken,
        reporter: &Reporter,
    ) -> StepOutcome {
        let p = match self.prepared(context) {
            Ok(p) => p,
            Err(err) => return StepOutcome::Untouched(err),
        };
        let total = p.rendered.objects.len();
        reporter.phase(context, Phase::Apply { done: 0, total });
        let opts = self.options(stop, reporter, total);
        match ops::deploy(&p.handle, &p.rendered, &self.deployment_id, &opts).await {
            Err(err) => StepOutcome::Untouched(step_error(&err)),
            Ok(outcome) => StepOutcome::Changed {
                before: p.before(),
                revision: outcome.revision,
                error: outcome.error.as_ref().map(step_error),
            },
        }
    }

    async fn restore(
        &self,
        context: &str,
        before: Option<&Before>,
        reporter: &Reporter,
    ) -> Result<Option<u32>, StepError> {
        let p = self.prepared(context)?;
        // Never cancelled: a restore must run to its end.
        let opts = self.options(
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
        let outcome = ops::rollback(
            &p.handle,
            namespace,
            release,
            Some(before.revision),
            &fresh,
            // A restore re-applies `before`: it carries that run's id, so that the id
            // names one content in every cluster and `rollback --env` skips failed runs.
            &before.deployment_id,
            &opts,
        )
        .await
        .map_err(|e| step_error(&e))?;
        match outcome.error {
            None => Ok(Some(outcome.revision)),
            Some(err) => Err(step_error(&err)),
        }
    }
}

/// One cluster's secret values as the renderer takes them.
pub fn secret_values(resolved: &crate::vault::ResolvedSecrets, context: &str) -> SecretValues {
    resolved.exposed(context)
}

/// What a deploy may override on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sets: Vec<String>,
    pub version: Option<String>,
}

/// Which release goes where.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub env: &'a LoadedEnvironment,
    pub release: &'a LoadedRelease,
    pub plan: &'a Plan,
    pub kubeconfig: &'a Kubeconfig,
}

/// Connects to every cluster of the plan and reads its records, concurrently. An
/// unreachable cluster stops here, before anything changed (exit code 3).
pub async fn connect_all(
    plan: &Plan,
    kubeconfig: &Kubeconfig,
    namespace: &str,
    release: &str,
) -> crate::Result<Vec<Connected>> {
    connect_each(plan, kubeconfig, namespace, release)
        .await
        .into_iter()
        .map(|(_, found)| found.map_err(crate::Error::from))
        .collect()
}

/// A cluster reached, with its records, oldest first.
pub type Connected = (Cluster, ClusterHandle, Vec<ReleaseRecord>);

/// [`connect_all`], keeping each cluster's own answer: a rollback goes on with the
/// clusters it can reach and reports the others.
pub async fn connect_each(
    plan: &Plan,
    kubeconfig: &Kubeconfig,
    namespace: &str,
    release: &str,
) -> Vec<(Cluster, Result<Connected, ClusterError>)> {
    futures::stream::iter(plan.clusters().cloned())
        .map(|cluster| async move {
            let found = async {
                let handle = ClusterHandle::connect(kubeconfig, &cluster.context).await?;
                let records = ops::history(&handle, namespace, release).await?;
                Ok((cluster.clone(), handle, records))
            }
            .await;
            (cluster, found)
        })
        .buffered(plan.concurrency.max(1))
        .collect()
        .await
}

/// The release with its overrides, its chart and the secrets of every cluster of a
/// plan, read from Vault once: renders the release for any of those clusters.
pub struct ReleaseRender {
    release: LoadedRelease,
    environment: String,
    sets: Vec<crate::engine::SetValue>,
    chart: Chart,
    resolved: crate::vault::ResolvedSecrets,
}

impl ReleaseRender {
    /// Applies the overrides, loads the chart and reads the secrets of the plan's
    /// clusters (and only those: `--clusters` must not need another cluster's paths).
    pub async fn prepare(
        env: &LoadedEnvironment,
        release: &LoadedRelease,
        plan: &Plan,
        overrides: &Overrides,
    ) -> crate::Result<ReleaseRender> {
        let mut release = release.clone();
        if let Some(version) = &overrides.version {
            if version.trim().is_empty() {
                return Err(crate::Error::Reported("--version must not be empty".into()));
            }
            release.descriptor.spec.version = version.clone();
        }
        let sets = overrides
            .sets
            .iter()
            .map(|s| parse_set(s))
            .collect::<Result<Vec<_>, _>>()?;
        let chart = Chart::load(&release.chart_dir)?;
        let contexts = plan.contexts();
        let mut secret_plan = SecretPlan::build(&release, env)?;
        secret_plan.retain_contexts(|context| contexts.iter().any(|c| c == context));
        let resolved = resolve_plan(&secret_plan, env, &VaultEnv::from_process()).await?;
        Ok(ReleaseRender {
            release,
            environment: env.environment.name.clone(),
            sets,
            chart,
            resolved,
        })
    }

    pub fn name(&self) -> &str {
        &self.release.descriptor.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.release.descriptor.metadata.namespace
    }

    /// The release rendered for `cluster` as the revision after the last of `records`.
    pub fn render(&self, cluster: &Cluster, records: &[ReleaseRecord]) -> crate::Result<Rendered> {
        let revision = records.last().map_or(1, |r| r.revision + 1);
        let renderer = Renderer::for_release(
            &self.chart,
            &self.release,
            &self.environment,
            &self.sets,
            revision.into(),
        )?;
        let secrets = secret_values(&self.resolved, &cluster.context);
        let manifest = renderer.render(cluster, &secrets)?;
        Ok(Rendered {
            release: self.name().to_owned(),
            namespace: self.namespace().to_owned(),
            chart: ChartRef {
                name: self.chart.metadata.name.clone(),
                version: self.chart.metadata.version.clone(),
            },
            app_version: self.release.descriptor.spec.version.clone(),
            objects: manifest.objects.into_iter().map(|o| o.object).collect(),
            values: renderer.values(cluster, &secrets),
        })
    }
}

/// Everything a deploy needs before touching a cluster: secrets of every cluster read,
/// every cluster reached, the release rendered for each.
pub async fn prepare_deploy(
    target: &Target<'_>,
    overrides: &Overrides,
    deployment_id: &str,
    options: RunOptions,
    reporter: &Reporter,
) -> crate::Result<KubeSteps> {
    let Target {
        env,
        release,
        plan,
        kubeconfig,
    } = *target;
    for cluster in plan.clusters() {
        reporter.phase(&cluster.context, Phase::Secrets);
    }
    let render = ReleaseRender::prepare(env, release, plan, overrides).await?;
    let connected = connect_all(plan, kubeconfig, render.namespace(), render.name()).await?;
    let mut clusters = HashMap::new();
    for (cluster, handle, records) in connected {
        let rendered = render.render(&cluster, &records)?;
        clusters.insert(
            cluster.context.clone(),
            Prepared {
                handle,
                rendered,
                records,
            },
        );
    }
    Ok(KubeSteps {
        clusters,
        deployment_id: deployment_id.to_owned(),
        options,
    })
}

/// The steps of `rollback`: "deploy" puts each cluster on its own target revision;
/// "restore" puts it back on what it ran before, when another cluster's rollback fails.
pub struct RollbackSteps {
    pub clusters: HashMap<String, RollbackTarget>,
    pub options: RunOptions,
}

pub struct RollbackTarget {
    pub handle: ClusterHandle,
    pub namespace: String,
    pub release: String,
    pub records: Vec<ReleaseRecord>,
    /// The revision to go to, found in this cluster by deployment id.
    pub to: Before,
    /// Secret objects rendered with values read from Vault now (empty when Vault could
    /// not be read: the live secrets are then kept, and the record says so).
    pub fresh_secrets: Vec<serde_json::Value>,
}

impl RollbackTarget {
    fn before(&self) -> Option<Before> {
        self.records
            .iter()
            .rev()
            .find(|r| r.status == Status::Deployed)
            .map(|r| Before {
                revision: r.revision,
                deployment_id: r.deployment_id.clone(),
            })
    }

    async fn go_to(&self, to: &Before, opts: &RunOptions) -> Result<ops::Outcome, ClusterError> {
        ops::rollback(
            &self.handle,
            &self.namespace,
            &self.release,
            Some(to.revision),
            &self.fresh_secrets,
            &to.deployment_id,
            opts,
        )
        .await
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
            return StepOutcome::Untouched(StepError::new(format!(
                "cluster `{context}` was not prepared"
            )));
        };
        let total = t
            .records
            .iter()
            .find(|r| r.revision == t.to.revision)
            .map_or(0, |r| r.manifest.len());
        let mut opts = self.options.clone();
        opts.cancel = stop.clone();
        opts.progress = progress_for(reporter, total);
        match t.go_to(&t.to, &opts).await {
            Err(err) => StepOutcome::Untouched(step_error(&err)),
            Ok(outcome) => StepOutcome::Changed {
                before: t.before(),
                revision: outcome.revision,
                error: outcome.error.as_ref().map(step_error),
            },
        }
    }

    async fn restore(
        &self,
        context: &str,
        before: Option<&Before>,
        reporter: &Reporter,
    ) -> Result<Option<u32>, StepError> {
        let t = self
            .clusters
            .get(context)
            .ok_or_else(|| StepError::new(format!("cluster `{context}` was not prepared")))?;
        let Some(before) = before else {
            return Err(StepError::new(format!(
                "cluster `{context}` had no deployed revision before this rollback"
            )));
        };
        let mut opts = self.options.clone();
        opts.progress = progress_for(reporter, 0);
        let outcome = t.go_to(before, &opts).await.map_err(|e| step_error(&e))?;
        match outcome.error {
            None => Ok(Some(outcome.revision)),
            Some(err) => Err(step_error(&err)),
        }
    }
}

/// Statuses of a revision that was healthy once (what `rollback` may go back to).
pub fn was_deployed(status: Status) -> bool {
    matches!(
        status,
        Status::Deployed | Status::Superseded | Status::RolledBack
    )
}

/// The revision of deployment `id` in one cluster's records (the newest that was
/// healthy), or `None`: that cluster never had it.
pub fn revision_for_id<'a>(records: &'a [ReleaseRecord], id: &str) -> Option<&'a ReleaseRecord> {
    records
        .iter()
        .rev()
        .find(|r| r.deployment_id == id && was_deployed(r.status))
}

/// The deployment before the one deployed now in one cluster: the newest healthy
/// revision of another deployment id, older than the deployed one.
pub fn previous_deployment(records: &[ReleaseRecord]) -> Option<&ReleaseRecord> {
    let current = records
        .iter()
        .rev()
        .find(|r| r.status == Status::Deployed)?;
    records
        .iter()
        .rev()
        .filter(|r| r.revision < current.revision)
        .find(|r| r.deployment_id != current.deployment_id && was_deployed(r.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{ChartRef, Operation};

    fn record(revision: u32, id: &str, status: Status) -> ReleaseRecord {
        let now = chrono::Utc::now();
        ReleaseRecord {
            name: "hello".into(),
            namespace: "ns".into(),
            revision,
            status,
            operation: Operation::Upgrade,
            deployment_id: id.into(),
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: "v".into(),
            manifest: Vec::new(),
            objects: Vec::new(),
            values: serde_json::Value::Null,
            rollback_of: None,
            created: now,
            updated: now,
            user: "u".into(),
            host: "h".into(),
            description: String::new(),
        }
    }

    #[test]
    fn previous_deployment_skips_failed_runs_and_restores_of_the_current_one() {
        // A deployed, B failed and restored to A (recorded with A's id), C deployed.
        let records = [
            record(1, "A", Status::Superseded),
            record(2, "B", Status::Failed),
            record(3, "A", Status::Superseded),
            record(4, "C", Status::Deployed),
        ];
        assert_eq!(previous_deployment(&records).map(|r| r.revision), Some(3));
        // After going back to A, the one before is C, not A again.
        let records = [
            record(1, "A", Status::Superseded),
            record(2, "C", Status::RolledBack),
            record(3, "A", Status::Deployed),
        ];
        assert_eq!(previous_deployment(&records).map(|r| r.revision), Some(2));
        assert!(previous_deployment(&records[..1]).is_none());
    }

    #[test]
    fn a_deployment_id_names_only_revisions_that_were_healthy() {
        let records = [
            record(1, "A", Status::Superseded),
            record(2, "B", Status::Failed),
            record(3, "A", Status::Deployed),
        ];
        assert_eq!(revision_for_id(&records, "A").map(|r| r.revision), Some(3));
        assert!(
            revision_for_id(&records, "B").is_none(),
            "a failed run is no target"
        );
        assert!(revision_for_id(&records, "Z").is_none());
    }
}
