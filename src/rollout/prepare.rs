//! What comes before a run touches any cluster: every secret of every cluster read from
//! Vault, every cluster connected and its history read, the release rendered for each.
//! Any failure here happens before a single cluster is changed.

use super::connect::on_each;
use super::kube_steps::{KubeSteps, Leases, Prepared};
use super::leases::lease_options;
use super::plan::Plan;
use super::progress::{Phase, Reporter};
use super::step::LeaseWait;
use crate::cluster::LoadedKubeconfig;
use crate::cluster::{ClusterError, ClusterHandle};
use crate::config::{Cluster, LoadedEnvironment, LoadedRelease};
use crate::engine::{
    Capabilities, Chart, ChartOrigin, CommandLineValues, Renderer, Renders, ValueSource,
};
use crate::ops::{self, Rendered, RunOptions};
use crate::release::{
    Artifact, ChartRef, HelmSource, History, Promotion, RevisionSource, SecretSource,
};
use crate::vault::{resolve_plan, ResolvedSecrets, SecretPlan, VaultEnv};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use zeroize::Zeroizing;

/// What a deploy may override on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `-f`, `--set`, `--set-string`, `--set-json`, in the order given.
    pub values: Vec<ValueSource>,
    pub version: Option<String>,
    /// `promote`: this recorded artifact in place of the checkout's chart, version,
    /// `spec.values` and command-line values (`values` and `version` are then not used); the
    /// descriptor gives only the environment-dependent values, scaling and secret
    /// mappings.
    pub promoted: Option<Promoted>,
    /// `deploy --resume`: the command-line values the paused deployment recorded, in
    /// place of `values` (which are then not given).
    pub recorded_values: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A recorded artifact and where it comes from.
#[derive(Debug, Clone)]
pub struct Promoted {
    pub artifact: Artifact,
    pub from: Promotion,
}

impl Overrides {
    /// The values layer of the command line, read and parsed (bad input: exit 2).
    pub fn values(&self) -> crate::Result<CommandLineValues> {
        match &self.recorded_values {
            Some(recorded) => Ok(CommandLineValues::recorded(recorded.clone())),
            None => Ok(CommandLineValues::parse(&self.values)?),
        }
    }

    /// Puts `--version` (when given) in place of the descriptor's version.
    pub fn apply_version(&self, release: &mut LoadedRelease) -> crate::Result<()> {
        if let Some(version) = &self.version {
            if version.trim().is_empty() {
                return Err(crate::Error::Reported("--version must not be empty".into()));
            }
            if let Some(problem) = crate::config::image_tag_problem(version) {
                return Err(crate::Error::Reported(format!("--version: {problem}")));
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
    pub kubeconfig: &'a LoadedKubeconfig,
}

/// The release with its overrides, its chart and the secrets of every cluster of a
/// plan, read from Vault once: renders the release for any of those clusters.
pub struct ReleaseRender {
    release: LoadedRelease,
    environment: String,
    values: CommandLineValues,
    chart: Chart,
    artifact: Artifact,
    promoted_from: Option<Promotion>,
    secret_plan: SecretPlan,
    resolved: ResolvedSecrets,
}

/// The release as it will render, before any secret is read: the descriptor with the
/// overrides applied, the chart, the command-line values and the artifact they make.
struct Loaded {
    release: LoadedRelease,
    chart: Chart,
    values: CommandLineValues,
    artifact: Artifact,
}

impl Loaded {
    fn new(release: &LoadedRelease, overrides: &Overrides) -> crate::Result<Loaded> {
        let mut release = release.clone();
        if let Some(promoted) = &overrides.promoted {
            return Loaded::recorded(release, promoted);
        }
        overrides.apply_version(&mut release)?;
        let values = overrides.values()?;
        let chart = Chart::for_release(&release)?;
        let artifact = Artifact {
            chart: chart.files().clone(),
            version: release.descriptor.spec.version.clone(),
            values: crate::engine::yaml_layer(
                &release.descriptor.spec.values,
                &release.file,
                "spec.values",
            )?,
            command_line: values.to_value(),
            origin: chart.origin().cloned(),
        };
        Ok(Loaded {
            release,
            chart,
            values,
            artifact,
        })
    }

    /// The recorded artifact in place of the checkout's: its chart files, version,
    /// `spec.values` and command-line values. The chart folder of the checkout is never
    /// read.
    fn recorded(mut release: LoadedRelease, promoted: &Promoted) -> crate::Result<Loaded> {
        let Promoted { artifact, from } = promoted;
        let label = std::path::PathBuf::from(format!(
            "<chart of {} deployment {}>",
            from.environment, from.deployment_id
        ));
        let chart = match &artifact.origin {
            // A chart by reference is promoted as its package, by digest (packed
            // subcharts included): from the cache, else pulled and checked.
            Some(origin) => {
                let pull = release
                    .descriptor
                    .spec
                    .chart_pull
                    .clone()
                    .unwrap_or_default();
                let chart = Chart::for_origin(
                    origin,
                    &pull,
                    &release.file,
                    release.descriptor.spec.chart_type,
                )?;
                if chart.files() != &artifact.chart {
                    return Err(crate::Error::Reported(format!(
                        "{}: the package of {} ({}) does not hold the chart files the records of {} hold; nothing was changed",
                        label.display(),
                        origin.shown(),
                        origin.digest,
                        from.environment
                    )));
                }
                chart
            }
            // A Helm chart's packed subcharts are not part of the artifact: such a chart
            // is promoted from its text files only (docs/helm.md).
            None => Chart::from_files(
                &label,
                &artifact.chart,
                &Default::default(),
                release.descriptor.spec.chart_type,
            )?,
        };
        let spec = &mut release.descriptor.spec;
        spec.version = artifact.version.clone();
        spec.values = serde_yaml_ng::to_value(&artifact.values).map_err(|err| {
            crate::Error::Reported(format!(
                "{}: the recorded spec.values cannot be used: {err}",
                label.display()
            ))
        })?;
        let values = match &artifact.command_line {
            serde_json::Value::Object(map) => CommandLineValues::recorded(map.clone()),
            _ => CommandLineValues::default(),
        };
        Ok(Loaded {
            release,
            chart,
            values,
            artifact: artifact.clone(),
        })
    }
}

/// The artifact a deploy with these overrides would make from the checkout (chart
/// files, version, `spec.values`, `--set`), or the promoted one; no secret is read.
pub fn artifact_of(release: &LoadedRelease, overrides: &Overrides) -> crate::Result<Artifact> {
    Ok(Loaded::new(release, overrides)?.artifact)
}

impl ReleaseRender {
    /// Applies the overrides, loads the chart (or takes the promoted artifact's) and
    /// reads the secrets of the plan's clusters (and only those: `--clusters` must not
    /// need another cluster's paths).
    pub async fn prepare(
        env: &LoadedEnvironment,
        release: &LoadedRelease,
        plan: &Plan,
        overrides: &Overrides,
    ) -> crate::Result<ReleaseRender> {
        let Loaded {
            release,
            chart,
            values,
            artifact,
        } = Loaded::new(release, overrides)?;
        let contexts = plan.contexts();
        let mut secret_plan = SecretPlan::build(&release, env)?;
        secret_plan.retain_contexts(|context| contexts.iter().any(|c| c == context));
        let resolved = resolve_plan(&secret_plan, env, &VaultEnv::from_process()).await?;
        Ok(ReleaseRender {
            release,
            environment: env.environment.name.clone(),
            values,
            chart,
            artifact,
            promoted_from: overrides.promoted.as_ref().map(|p| p.from.clone()),
            secret_plan,
            resolved,
        })
    }

    /// What this render deploys of environment-independent content.
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    pub fn name(&self) -> &str {
        &self.release.descriptor.metadata.name
    }

    pub fn namespace(&self) -> &str {
        &self.release.descriptor.metadata.namespace
    }

    /// What the chart needs to know of a cluster before it renders there: a Helm
    /// chart's `.Capabilities` (its version and served APIs, from discovery); nothing for
    /// a flotilla chart.
    async fn capabilities(
        &self,
        handle: &ClusterHandle,
    ) -> Result<Option<Capabilities>, ClusterError> {
        if self.chart.chart_type() != crate::config::ChartType::Helm {
            return Ok(None);
        }
        let (kube_version, api_versions) = handle.served_apis().await?;
        Ok(Some(Capabilities {
            kube_version,
            api_versions,
        }))
    }

    /// The release rendered for `cluster` (reached through `handle`) as the revision
    /// after the last of `history`, `secretsum` keyed by the release's key in that
    /// cluster (`None`: none yet), a Helm chart with the cluster's `.Capabilities`.
    /// [`render`](Self::render) with the release's checksum key in this cluster: read,
    /// or made when missing with `create` (a deploy; a diff only reads, as
    /// [`storage::checksum_key`](crate::storage::checksum_key) says).
    pub async fn render_keyed(
        &self,
        cluster: &Cluster,
        history: &History,
        handle: &ClusterHandle,
        create: bool,
        create_namespace: bool,
    ) -> crate::Result<Rendered> {
        let key = crate::storage::checksum_key(
            handle,
            self.namespace(),
            self.name(),
            create,
            create_namespace,
        )
        .await?;
        self.render(
            cluster,
            history,
            handle,
            key.as_deref().map(|k| k.as_slice()),
        )
        .await
    }

    /// The release rendered for a deploy to `cluster`, keyed by `key`, the release's
    /// key there as read (with the records, in the same round trip); where there is
    /// none yet, by a key drawn now and returned, for the cluster's step to write once
    /// it holds the lease. Changes nothing in the cluster: a run refused by a lease
    /// leaves it as it was.
    pub async fn render_for_deploy(
        &self,
        cluster: &Cluster,
        history: &History,
        handle: &ClusterHandle,
        key: Option<Zeroizing<Vec<u8>>>,
    ) -> crate::Result<(Rendered, Option<Zeroizing<Vec<u8>>>)> {
        let (key, new) = match key {
            Some(key) => (key, false),
            None => (
                crate::storage::new_checksum_key(handle, self.namespace(), self.name())?,
                true,
            ),
        };
        let rendered = self
            .render(cluster, history, handle, Some(key.as_slice()))
            .await?;
        Ok((rendered, new.then_some(key)))
    }

    async fn render(
        &self,
        cluster: &Cluster,
        history: &History,
        handle: &ClusterHandle,
        checksum_key: Option<&[u8]>,
    ) -> crate::Result<Rendered> {
        let capabilities = self.capabilities(handle).await?;
        let renderer = Renderer::for_release(
            &self.chart,
            &self.release,
            &self.environment,
            &self.values,
            history.next_revision().into(),
        )?
        .with_checksum_key(checksum_key)
        .with_capabilities(capabilities.clone());
        let secrets = self.resolved.exposed(&cluster.context);
        let renders =
            renderer.render_for_apply(cluster, &secrets, history.next_revision().into())?;
        Ok(rendered(
            &self.release,
            &self.chart,
            renders,
            renderer.values(cluster, &secrets),
            Some(self.source(&cluster.context, capabilities)),
        ))
    }

    /// What a record keeps to render this cluster's revision again: the chart's files
    /// and where each secret was read.
    fn source(&self, context: &str, capabilities: Option<Capabilities>) -> RevisionSource {
        use base64::Engine as _;
        let kv_version = self.secret_plan.kv.as_ref().map_or(1, |kv| kv.version);
        let helm = (self.chart.chart_type() == crate::config::ChartType::Helm).then(|| {
            let capabilities = capabilities.unwrap_or_default();
            HelmSource {
                kube_version: capabilities.kube_version,
                api_versions: capabilities.api_versions,
                binary_files: self
                    .chart
                    .binary_files()
                    .iter()
                    .map(|(rel, bytes)| {
                        (
                            rel.clone(),
                            base64::engine::general_purpose::STANDARD.encode(bytes),
                        )
                    })
                    .collect(),
            }
        });
        RevisionSource {
            helm,
            imported: None,
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
            values: Some(self.artifact.values.clone()),
            command_line: Some(self.artifact.command_line.clone()),
            artifact: self.artifact.digest(),
            promoted_from: self.promoted_from.clone(),
            origin: self.artifact.origin.clone(),
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
        env, release, plan, ..
    } = *inputs;
    for cluster in plan.clusters() {
        reporter.phase(&cluster.context, Phase::Secrets);
    }
    let leases = Leases::new(options.create_namespace);
    let meta = &release.descriptor.metadata;
    // Vault and the clusters' first round trips do not depend on each other.
    let (render, connected) = tokio::join!(
        ReleaseRender::prepare(env, release, plan, overrides),
        connect_leased(
            inputs,
            (&meta.namespace, &meta.name),
            &leases,
            &options,
            reporter
        ),
    );
    let prepared = match (render, connected) {
        (Ok(render), Ok(connected)) => {
            prepare_clusters(&render, connected, plan, &leases, &options).await
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    match prepared {
        Ok(clusters) => {
            let mut steps = KubeSteps::new(clusters, deployment_id, options, leases);
            steps.restore_renders = Some(super::kube_steps::RestoreRenders::new(
                env,
                plan.clusters().cloned(),
            ));
            Ok(steps)
        }
        Err(err) => {
            // A run refused here changed nothing, and holds nothing either.
            leases.release_all().await;
            Err(err)
        }
    }
}

/// A cluster reached: its handle, the release's records there and its checksum key.
type Reached = (Cluster, ClusterHandle, History, Option<Zeroizing<Vec<u8>>>);

/// Each cluster of the plan reached, its lease taken where nobody holds it, and its
/// records read (under that lease).
///
/// The lease goes first, with the checksum key (which does not depend on it) in the
/// same round trip, so that the records are read once, under the lease, and the render
/// and the ownership check are made on what the run will change. The attempt waits for
/// nobody: where another run holds the lease (or the namespace is still to be
/// created), the records are read without it, and the run's own acquisition
/// ([`super::leases::take_every_lease`]) waits and reads them again under it.
async fn connect_leased(
    inputs: &DeployInputs<'_>,
    (namespace, name): (&str, &str),
    leases: &Leases,
    options: &RunOptions,
    reporter: &Reporter,
) -> crate::Result<Vec<Reached>> {
    let first_attempt = lease_options(&options.lock, LeaseWait::No);
    let first_attempt = &first_attempt;
    let connected: Vec<Reached> = on_each(
        inputs.plan,
        inputs.kubeconfig,
        |cluster, handle| async move {
            let (leased, key) = tokio::join!(
                leases.take_or_defer(&handle, namespace, name, first_attempt, reporter, None),
                crate::storage::read_checksum_key(&handle, namespace, name),
            );
            let history = match leases.seen_history(&cluster.context) {
                Some(history) => history,
                None => match leased {
                    Err(err @ ClusterError::Unreachable { .. }) => return Err(err),
                    _ => ops::history(&handle, namespace, name).await?,
                },
            };
            Ok::<_, ClusterError>((cluster, handle, history, key?))
        },
    )
    .await
    .into_iter()
    .map(|(_, found)| found)
    .collect::<Result<_, _>>()?;
    // A record that could not be read and may be what runs stops the run for the
    // environment before any cluster is changed (each cluster checks again under its
    // lease).
    for (cluster, _, history, _) in &connected {
        history
            .check_skipped()
            .map_err(|message| ClusterError::Release {
                context: cluster.context.clone(),
                message,
            })?;
    }
    Ok(connected)
}

/// The release rendered for each cluster reached, and ownership checked there.
async fn prepare_clusters(
    render: &ReleaseRender,
    connected: Vec<Reached>,
    plan: &Plan,
    leases: &Leases,
    options: &RunOptions,
) -> crate::Result<HashMap<String, Prepared>> {
    // A tag moved under a version that ran in one of the clusters: refused before
    // anything is changed.
    if let Some(origin) = &render.artifact.origin {
        for (cluster, _, history, _) in &connected {
            if let Some(recorded) = moved_tag(origin, history) {
                let changed =
                    crate::engine::changed_tag(&render.release.file, recorded, &origin.digest);
                return Err(changed.in_cluster(&cluster.context).into());
            }
        }
    }
    // For a Helm chart, each cluster's API versions (from the discovery cache on disk,
    // else a request): every cluster at once, as the connections were.
    let rendered_for: Vec<_> = futures::stream::iter(connected)
        .map(|(cluster, handle, history, key)| async move {
            let (rendered, new_key) = render
                .render_for_deploy(&cluster, &history, &handle, key)
                .await?;
            if let Some(key) = new_key {
                leases.write_key_once_held(&cluster.context, key);
            }
            Ok::<_, crate::Error>((cluster.context, handle, rendered, history))
        })
        .buffered(plan.concurrency.max(1))
        .try_collect()
        .await?;
    // Ownership in every cluster before any is changed: an object that exists and is
    // not this release's stops the run for the whole environment. Read under the
    // cluster's lease, it stands for the deploy step that follows at once
    // ([`Leases::note_owners`]); a step that starts later (a later wave) reads again.
    futures::stream::iter(&rendered_for)
        .map(|(context, handle, rendered, _)| async move {
            let read = ops::check_ownership(handle, rendered, options.adopt).await?;
            leases.note_owners(context, read);
            Ok::<_, ClusterError>(())
        })
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, ClusterError>>()?;
    Ok(rendered_for
        .into_iter()
        .map(|(context, handle, rendered, history)| {
            let rendered = ops::PackedRender::pack(rendered);
            (context, Prepared::render(handle, history, rendered))
        })
        .collect())
}

/// The recorded origin of the same chart and version with another digest, if a record
/// of `history` has one: the tag was moved since that revision ran.
fn moved_tag<'a>(
    origin: &ChartOrigin,
    history: &'a crate::release::History,
) -> Option<&'a ChartOrigin> {
    history
        .records()
        .iter()
        .filter_map(|record| record.source.as_ref()?.origin.as_ref())
        .find(|recorded| recorded.same_version(origin) && recorded.digest != origin.digest)
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
        hooks: renders
            .applied
            .hooks
            .into_iter()
            .zip(renders.stored_hooks)
            .map(|(h, stored)| crate::ops::HookObject {
                hook: h.hook,
                object: h.object.object,
                stored,
            })
            .collect(),
        values,
        source,
    }
}
