//! `flotilla rollback RELEASE --env E [--to ID] [--clusters a,b]`: every cluster back to
//! the previous deployment (or deployment `ID`), each finding its own revision by
//! deployment id. Secrets are re-read from Vault; when Vault cannot be read the live
//! secrets are kept and the records say so. A cluster that never had the target is
//! reported and nothing is changed.

use super::multi;
use super::EnvSelection;
use crate::cluster::ClusterError;
use crate::config::LoadedRelease;
use crate::engine::{Chart, Renderer};
use crate::ops::RunOptions;
use crate::output::OutputFormat;
use crate::rollout::executor::RunInfo;
use crate::rollout::kube_steps::{rollback_revision, RollbackCluster, RollbackSteps};
use crate::rollout::prepare::{connect_each, Connected};
use crate::rollout::report::{ClusterResult, Overall, RunResult};
use crate::rollout::{execute, Reporter};
use crate::vault::{resolve_for_environment, ResolvedSecrets, VaultEnv};
use crate::Result;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    pub release: String,
    pub env: EnvSelection,
    /// The deployment id to go back to (default: each cluster's previous deployment).
    pub to: Option<String>,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    pub timeout: Option<Duration>,
    /// Take fields that another field manager owns instead of failing.
    pub force_conflicts: bool,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &RollbackOptions) -> Result<()> {
    let selected = multi::select(root, &args.env)?;
    let release = selected.repo.release(&args.release)?;
    let name = release.descriptor.metadata.name.clone();
    let namespace = release.descriptor.metadata.namespace.clone();
    // An incident does not wait for every region: clusters that cannot be reached now
    // are reported with the command that finishes them later; the others go back.
    let mut unreachable = Vec::new();
    let mut connected = Vec::new();
    for (cluster, found) in
        connect_each(&selected.plan, &selected.kubeconfig, &namespace, &name).await
    {
        match found {
            Ok(c) => connected.push(c),
            // Unreachable, or its records cannot be read (the storage layer reports a
            // refused connection that way too).
            Err(
                err @ (ClusterError::Unreachable { .. }
                | ClusterError::Records { .. }
                | ClusterError::Api { .. }),
            ) => unreachable.push((cluster, err)),
            Err(err) => return Err(err.into()),
        }
    }

    let mut missing = Vec::new();
    let mut targets = Vec::new();
    for found in connected {
        match rollback_revision(&found.history, args.to.as_deref()) {
            Some(to) => targets.push((found, to)),
            None => missing.push(format!(
                "{}: {} (it has: {})",
                found.cluster.context,
                match &args.to {
                    Some(id) => format!("never had deployment {id}"),
                    None => "no earlier deployment to go back to".into(),
                },
                found.history.summary()
            )),
        }
    }
    if !missing.is_empty() {
        return Err(crate::Error::Reported(format!(
            "rollback {name} in {}: nothing changed, because\n  {}\n(limit the run with --clusters to roll back the others)",
            selected.plan.environment,
            missing.join("\n  ")
        )));
    }

    let fresh = fresh_secrets(&selected.env, &release).await;
    let mut clusters = HashMap::new();
    for (
        Connected {
            cluster,
            handle,
            history,
        },
        to,
    ) in targets
    {
        let app_version = history
            .get(to.revision)
            .map(|r| r.app_version.clone())
            .unwrap_or_default();
        let fresh_secrets = match &fresh {
            Some((chart, secrets)) => render_secrets(
                chart,
                &release,
                &selected.env,
                &cluster,
                secrets,
                &app_version,
            ),
            None => Vec::new(),
        };
        clusters.insert(
            cluster.context.clone(),
            RollbackCluster {
                handle,
                namespace: namespace.clone(),
                release: name.clone(),
                history,
                to,
                fresh_secrets,
            },
        );
    }
    let mut options = RunOptions::new(args.timeout.unwrap_or(selected.plan.timeout));
    options.force_conflicts = args.force_conflicts;
    let steps = RollbackSteps { clusters, options };
    let mut plan = selected.plan.clone();
    for wave in &mut plan.waves {
        wave.retain(|c| !unreachable.iter().any(|(u, _)| u.context == c.context));
    }
    plan.waves.retain(|w| !w.is_empty());
    let info = RunInfo {
        operation: "rollback".into(),
        release: name,
        deployment_id: args.to.clone().unwrap_or_else(|| "previous".into()),
    };
    let mut report = execute(
        &plan,
        &steps,
        &info,
        &multi::interrupt_token(),
        &Reporter::for_stderr(),
    )
    .await;
    for (cluster, err) in unreachable {
        report.overall = Overall::RollbackIncomplete;
        let mut finish = format!(
            "flotilla rollback {} --env {}",
            report.release, report.environment
        );
        if let Some(id) = &args.to {
            finish.push_str(&format!(" --to {id}"));
        }
        finish.push_str(&format!(" --clusters {}", cluster.context));
        report.clusters.push(ClusterResult {
            context: cluster.context.clone(),
            wave: cluster.wave,
            before: None,
            deployed: None,
            restored: None,
            result: RunResult::FailedUnchanged,
            duration: Duration::ZERO,
            error: Some(err.to_string()),
            finish_with: Some(finish),
        });
    }
    multi::finish(&[report], args.output)
}

/// The chart and every cluster's secrets read now, or `None` when Vault (or the chart)
/// cannot be read: a rollback must still work in an incident, keeping live secrets.
async fn fresh_secrets(
    env: &crate::config::LoadedEnvironment,
    release: &LoadedRelease,
) -> Option<(Chart, ResolvedSecrets)> {
    let chart = Chart::load(&release.chart_dir)
        .map_err(|e| tracing::warn!("chart not loaded, live secrets are kept: {e}"))
        .ok()?;
    match resolve_for_environment(release, env, &VaultEnv::from_process()).await {
        Ok(resolution) => Some((chart, resolution.secrets)),
        Err(err) => {
            eprintln!("Vault could not be read ({err}); the live secrets are kept");
            None
        }
    }
}

/// Only the `Secret` objects of the release for one cluster, with fresh values.
fn render_secrets(
    chart: &Chart,
    release: &LoadedRelease,
    env: &crate::config::LoadedEnvironment,
    cluster: &crate::config::Cluster,
    resolved: &ResolvedSecrets,
    app_version: &str,
) -> Vec<serde_json::Value> {
    let mut release = release.clone();
    release.descriptor.spec.version = app_version.to_owned();
    let secrets = resolved.exposed(&cluster.context);
    let rendered = Renderer::for_release(chart, &release, &env.environment.name, &[], 0)
        .and_then(|r| r.render(cluster, &secrets));
    match rendered {
        Ok(manifest) => manifest
            .objects
            .into_iter()
            .map(|o| o.object)
            .filter(crate::release::is_secret)
            .collect(),
        Err(err) => {
            tracing::warn!(
                "{}: secrets not re-rendered, live ones are kept: {err}",
                cluster.context
            );
            Vec::new()
        }
    }
}
