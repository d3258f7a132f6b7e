//! What comes before a run touches any cluster: every secret of every cluster read from
//! Vault, every cluster connected and its history read, the release rendered for each.
//! Any failure here happens before a single cluster is changed.

use super::kube_steps::{KubeSteps, Prepared};
use super::plan::Plan;
use super::progress::{Phase, Reporter};
use crate::cluster::{ClusterError, ClusterHandle};
use crate::config::{Cluster, LoadedEnvironment, LoadedRelease};
use crate::engine::{parse_set, Chart, Renderer, Renders, SetValue};
use crate::ops::{self, Rendered, RunOptions};
use crate::release::{ChartRef, History, RevisionSource, SecretSource};
use crate::vault::{resolve_plan, ResolvedSecrets, SecretPlan, VaultEnv};
use futures::StreamExt;
use kube::config::Kubeconfig;
use std::collections::HashMap;

/// What a deploy may override on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sets: Vec<String>,
    pub version: Option<String>,
}

impl Overrides {
    /// Puts `--version` (when given) in place of the descriptor's version.
    pub fn apply_version(&self, release: &mut LoadedRelease) -> crate::Result<()> {
        if let Some(version) = &self.version {
            if version.trim().is_empty() {
                return Err(crate::Error::Reported("--version must not be empty".into()));
            }
            release.descriptor.spec.version = version.clone();
        }
        Ok(())
    }
}

/// Which release goes to which clusters of which environment.
#[derive(Clone, Copy)]
pub struct DeployInputs<'a> {
    pub env: &'a LoadedEnvironment,
    pub release: &'a LoadedRelease,
    pub plan: &'a Plan,
    pub kubeconfig: &'a Kubeconfig,
}

/// A cluster reached, with the release's history there.
pub struct Connected {
    pub cluster: Cluster,
    pub handle: ClusterHandle,
    pub history: History,
}

/// Connects to every cluster of the plan and reads the release's history there,
/// concurrently. An unreachable cluster stops here, before anything changed (exit code
/// 3).
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
                let history = ops::history(&handle, namespace, release).await?;
                Ok(Connected {
                    cluster: cluster.clone(),
                    handle,
                    history,
                })
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
    sets: Vec<SetValue>,
    chart: Chart,
    secret_plan: SecretPlan,
    resolved: ResolvedSecrets,
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
        overrides.apply_version(&mut release)?;
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
            secret_plan,
            resolved,
        })
    }

    pub fn name(&self) -> &str {
        &self.release.descriptor.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.release.descriptor.metadata.namespace
    }

    /// The release rendered for `cluster` as the revision after the last of `history`,
    /// `secretsum` keyed by the release's key in that cluster (`None`: none yet).
    pub fn render(
        &self,
        cluster: &Cluster,
        history: &History,
        checksum_key: Option<&[u8]>,
    ) -> crate::Result<Rendered> {
        let renderer = Renderer::for_release(
            &self.chart,
            &self.release,
            &self.environment,
            &self.sets,
            history.next_revision().into(),
        )?
        .with_checksum_key(checksum_key);
        let secrets = self.resolved.exposed(&cluster.context);
        let renders =
            renderer.render_for_apply(cluster, &secrets, history.next_revision().into())?;
        Ok(rendered(
            &self.release,
            &self.chart,
            renders,
            renderer.values(cluster, &secrets),
            Some(self.source(&cluster.context)),
        ))
    }

    /// What a record keeps to render this cluster's revision again: the chart's files
    /// and where each secret was read.
    fn source(&self, context: &str) -> RevisionSource {
        let kv_version = self.secret_plan.kv.as_ref().map_or(1, |kv| kv.version);
        RevisionSource {
            chart: self.chart.files().clone(),
            secrets: self
                .secret_plan
                .for_context(context)
                .map(|s| SecretSource {
                    secret_id: s.secret_id.clone(),
                    path: s.path.clone(),
                    relative: s.relative.clone(),
                    key: s.key.clone(),
                    kv_version,
                    version: s.version,
                })
                .collect(),
        }
    }
}

/// Everything a deploy needs before touching a cluster: secrets of every cluster read,
/// every cluster reached, the release rendered for each.
pub async fn prepare_deploy(
    inputs: &DeployInputs<'_>,
    overrides: &Overrides,
    deployment_id: &str,
    options: RunOptions,
    reporter: &Reporter,
) -> crate::Result<KubeSteps> {
    let DeployInputs {
        env,
        release,
        plan,
        kubeconfig,
    } = *inputs;
    for cluster in plan.clusters() {
        reporter.phase(&cluster.context, Phase::Secrets);
    }
    let render = ReleaseRender::prepare(env, release, plan, overrides).await?;
    let connected = connect_all(plan, kubeconfig, render.namespace(), render.name()).await?;
    let mut clusters = HashMap::new();
    for Connected {
        cluster,
        handle,
        history,
    } in connected
    {
        let key = crate::storage::checksum_key(
            &handle,
            render.namespace(),
            render.name(),
            true,
            options.create_namespace,
        )
        .await?;
        let rendered = render.render(&cluster, &history, key.as_deref().map(|k| k.as_slice()))?;
        clusters.insert(
            cluster.context.clone(),
            Prepared {
                handle,
                rendered,
                history,
            },
        );
    }
    // Ownership in every cluster before any is changed: an object that exists and is
    // not this release's stops the run for the whole environment (each cluster's run
    // checks again under its lock).
    futures::stream::iter(clusters.values())
        .map(|p| ops::check_ownership(&p.handle, &p.rendered, options.adopt))
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, ClusterError>>()?;
    let leases = super::kube_steps::Leases::new(options.create_namespace);
    Ok(KubeSteps {
        clusters,
        deployment_id: deployment_id.to_owned(),
        options,
        leases,
    })
}

/// One cluster's render of `release` as the per-cluster operations take it: the objects
/// with values to apply, the placeholder render to record, the merged values.
pub fn rendered(
    release: &LoadedRelease,
    chart: &Chart,
    renders: Renders,
    values: serde_json::Value,
    source: Option<RevisionSource>,
) -> Rendered {
    Rendered {
        release: release.descriptor.metadata.name.clone(),
        namespace: release.descriptor.metadata.namespace.clone(),
        chart: ChartRef {
            name: chart.metadata.name.clone(),
            version: chart.metadata.version.clone(),
        },
        app_version: release.descriptor.spec.version.clone(),
        objects: renders
            .applied
            .objects
            .into_iter()
            .map(|o| o.object)
            .collect(),
        stored: renders.stored,
        values,
        source,
    }
}
