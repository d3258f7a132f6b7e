//! `flotilla deploy RELEASE --env E [--clusters a,b] [--all]`: secrets of every cluster
//! from Vault and the release rendered for each, then every cluster at once, wave after
//! wave, with a coordinated rollback when one fails (see [`crate::rollout`]).

use super::multi;
use super::EnvSelection;
use crate::config::LoadedRelease;
use crate::notify::Notifier;
use crate::ops::RunOptions;
use crate::output::OutputFormat;
use crate::rollout::executor::RunInfo;
use crate::rollout::prepare::{prepare_deploy, DeployInputs, Overrides};
use crate::rollout::{execute, Report, Reporter};
use crate::Result;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// The release; `None` with `all`.
    pub release: Option<String>,
    /// Every release under releases/, releases in parallel.
    pub all: bool,
    pub env: EnvSelection,
    pub overrides: Overrides,
    /// Take fields that another field manager owns instead of failing.
    pub force_conflicts: bool,
    /// Take over objects that exist without being the release's (`--adopt`).
    pub adopt: bool,
    /// Create the release namespace where missing (`--create-namespace`).
    pub create_namespace: bool,
    /// How long ErrImagePull or CreateContainerConfigError may last.
    pub transient_grace: Duration,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    pub timeout: Option<Duration>,
    /// Revisions kept per release and cluster.
    pub history_max: usize,
    /// How long to wait for another run's lease (default: the lease duration plus a
    /// margin).
    pub lock_timeout: Option<Duration>,
    /// Print the plan (waves, clusters, revision from → to, Vault paths); change
    /// nothing, read no secret.
    pub dry_run: bool,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &DeployOptions) -> Result<()> {
    let configured = multi::configure(root, &args.env)?;
    let releases: Vec<LoadedRelease> = match &args.release {
        Some(name) if !args.all => vec![configured.repo.release(name)?],
        _ => configured.repo.releases()?,
    };
    for release in &releases {
        configured.repo.check_release(release, &configured.env)?;
    }
    // Bad values are bad input found without any cluster, as a typo in the release is.
    args.overrides.values()?;
    let selected = configured.with_kubeconfig()?;
    if args.dry_run {
        return super::dry_run::deploy(&selected, &releases, &args.overrides, args.output).await;
    }
    super::promote::require_soak_for_deploy(&selected, &releases, &args.overrides).await?;
    let reports = deploy_releases(
        &selected,
        &releases,
        &args.overrides,
        &DeploySettings {
            operation: "deploy",
            timeout: args.timeout,
            force_conflicts: args.force_conflicts,
            adopt: args.adopt,
            create_namespace: args.create_namespace,
            transient_grace: args.transient_grace,
            history_max: args.history_max,
            lock_timeout: args.lock_timeout,
        },
    )
    .await?;
    multi::finish(&reports, args.output)
}

/// What differs between `deploy` and `promote`, which both deploy releases.
pub struct DeploySettings {
    pub operation: &'static str,
    pub timeout: Option<Duration>,
    pub force_conflicts: bool,
    pub adopt: bool,
    pub create_namespace: bool,
    pub transient_grace: Duration,
    pub history_max: usize,
    /// How long to wait for another run's lease (`--lock-timeout`).
    pub lock_timeout: Option<Duration>,
}

/// Prepares every release for every cluster (secrets, connections, rendering: any
/// failure here changes nothing), then runs them all in parallel, one deployment id.
pub async fn deploy_releases(
    selected: &multi::Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
    settings: &DeploySettings,
) -> Result<Vec<Report>> {
    let deployment_id = crate::rollout::new_deployment_id();
    let base = Reporter::for_stderr();
    let mut options = RunOptions::new(settings.timeout.unwrap_or(selected.plan.timeout));
    options.force_conflicts = settings.force_conflicts;
    options.adopt = settings.adopt;
    options.create_namespace = settings.create_namespace;
    options.transient_grace = settings.transient_grace;
    options.history_limit = settings.history_max.max(1);
    options.restore_timeout = selected.plan.rollback_timeout.unwrap_or(options.timeout);
    if let Some(wait) = settings.lock_timeout {
        options.lock.wait = wait;
    }
    options.targets = selected.plan.contexts();
    options.audit = Some(crate::rollout::audit::collect(selected.repo.root()));
    let several = releases.len() > 1;
    let reporter_for = |r: &LoadedRelease| {
        if several {
            base.scoped(&r.descriptor.metadata.name)
        } else {
            base.clone()
        }
    };
    let prepared =
        futures::future::try_join_all(
            releases.iter().map(|release| {
                let inputs = DeployInputs {
                    env: &selected.env,
                    release,
                    plan: &selected.plan,
                    kubeconfig: &selected.kubeconfig,
                };
                let reporter = reporter_for(release);
                let options = options.clone();
                let deployment_id = &deployment_id;
                async move {
                    prepare_deploy(&inputs, overrides, deployment_id, options, &reporter).await
                }
            }),
        )
        .await?;
    let interrupt = multi::interrupt_token();
    let notifier = Notifier::new(&selected.env.environment.notify);
    let reports =
        futures::future::join_all(releases.iter().zip(&prepared).map(|(release, steps)| {
            let info = RunInfo {
                operation: settings.operation.into(),
                release: release.descriptor.metadata.name.clone(),
                deployment_id: deployment_id.clone(),
                target: None,
            };
            let reporter = reporter_for(release);
            let interrupt = &interrupt;
            let notifier = &notifier;
            let version = steps
                .clusters
                .values()
                .next()
                .map(|p| p.rendered.app_version.clone());
            async move {
                notifier
                    .send(&multi::started_notice(
                        &selected.plan,
                        &info.operation,
                        &info.release,
                        &info.deployment_id,
                        version.clone(),
                    ))
                    .await;
                let report = execute(&selected.plan, steps, &info, interrupt, &reporter).await;
                notifier
                    .send(&multi::finished_notice(&report, version))
                    .await;
                report
            }
        }))
        .await;
    Ok(reports)
}
