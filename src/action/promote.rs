//! `flotilla promote RELEASE --from dev --to prod`: deploy to `--to` exactly the release
//! version and chart version that every cluster of `--from` records as deployed, with
//! `--to`'s own values and secrets. Refuses (nothing changed) when the `--from` clusters
//! disagree, are not healthy, or the chart here is not the version they run.

use super::deploy::{deploy_releases, DeploySettings};
use super::{multi, EnvSelection};
use crate::config::Repo;
use crate::engine::Chart;
use crate::ops;
use crate::output::OutputFormat;
use crate::rollout::plan::select_environment;
use crate::rollout::prepare::{connect_all, Connected, Overrides};
use crate::rollout::Plan;
use crate::Result;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    pub release: String,
    /// The environment whose deployed version is promoted.
    pub from: String,
    /// The environment (and clusters) to deploy to.
    pub to: EnvSelection,
    /// Create the release namespace where it does not exist.
    pub create_namespace: bool,
    /// Per-cluster wait for health (default: the target environment's rollout.timeout).
    pub timeout: Option<Duration>,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &PromoteOptions) -> Result<()> {
    let selected = multi::select(root, &args.to)?;
    let release = selected.repo.release(&args.release)?;
    selected.repo.check_release(&release, &selected.env)?;
    let version =
        deployed_version(&selected.repo, &args.from, &release, &selected.kubeconfig).await?;
    let chart = Chart::for_release(&release)?;
    if chart.metadata.version != version.1 {
        return Err(crate::Error::Reported(format!(
            "promote {}: {} runs chart version {}, but {} here is version {}: check out the revision of the deployment repo that {} was deployed from",
            args.release, args.from, version.1, release.chart_dir.display(), chart.metadata.version, args.from
        )));
    }
    crate::output::eprint_line(&format!(
        "promoting {} version {} (chart {}) from {} to {}",
        args.release, version.0, version.1, args.from, selected.plan.environment
    ));
    let reports = deploy_releases(
        &selected,
        std::slice::from_ref(&release),
        &Overrides {
            sets: Vec::new(),
            version: Some(version.0),
        },
        &DeploySettings {
            operation: "promote",
            timeout: args.timeout,
            force_conflicts: false,
            adopt: false,
            create_namespace: args.create_namespace,
            transient_grace: crate::cluster::DEFAULT_TRANSIENT_GRACE,
            history_max: crate::storage::DEFAULT_HISTORY_LIMIT,
            lock_timeout: None,
        },
    )
    .await?;
    multi::finish(&reports, args.output)
}

/// `(app version, chart version)` deployed and healthy in every cluster of `from`.
async fn deployed_version(
    repo: &Repo,
    from: &str,
    release: &crate::config::LoadedRelease,
    kubeconfig: &kube::config::Kubeconfig,
) -> Result<(String, String)> {
    let env = select_environment(repo, Some(from), None)?;
    let plan = Plan::new(&env, None)?;
    let name = &release.descriptor.metadata.name;
    let namespace = &release.descriptor.metadata.namespace;
    let connected = connect_all(&plan, kubeconfig, namespace, name).await?;
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let mut problems = Vec::new();
    for Connected {
        cluster,
        handle,
        history,
    } in &connected
    {
        let latest = history.latest();
        match latest {
            None => problems.push(format!("{}: not installed", cluster.context)),
            Some(r) if r.status != crate::release::Status::Deployed => problems.push(format!(
                "{}: latest revision {} is {}, not deployed",
                cluster.context, r.revision, r.status
            )),
            Some(r) => {
                let status = ops::status(handle, namespace, name).await?;
                let unhealthy: Vec<String> = status
                    .unhealthy()
                    .map(|o| format!("{} {}", o.object, o.health))
                    .collect();
                if !unhealthy.is_empty() {
                    problems.push(format!(
                        "{}: not healthy: {}",
                        cluster.context,
                        unhealthy.join(", ")
                    ));
                }
                seen.push((
                    cluster.context.clone(),
                    r.app_version.clone(),
                    r.chart.version.clone(),
                ));
            }
        }
    }
    let first = seen.first().map(|(_, v, c)| (v.clone(), c.clone()));
    if let Some((v, c)) = &first {
        if seen.iter().any(|(_, v2, c2)| v2 != v || c2 != c) {
            problems.push(format!(
                "the clusters of {from} disagree: {}",
                seen.iter()
                    .map(|(ctx, v, c)| format!("{ctx} runs {v} (chart {c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    match (first, problems.is_empty()) {
        (Some(found), true) => Ok(found),
        _ => Err(crate::Error::Reported(format!(
            "promote {name} from {from}: refused, nothing changed:\n  {}",
            problems.join("\n  ")
        ))),
    }
}
