//! `flotilla deploy RELEASE --env E [--clusters a,b] [--all]`: secrets of every cluster
//! from Vault and the release rendered for each, then every cluster at once, wave after
//! wave, with a coordinated rollback when one fails (see [`crate::rollout`]).

use super::cluster_release::RunOptions;
use super::multi::{self, EnvArgs};
use crate::cluster::Event;
use crate::config::LoadedRelease;
use crate::output::OutputFormat;
use crate::rollout::executor::RunInfo;
use crate::rollout::kube_steps::{prepare_deploy, Overrides, Target};
use crate::rollout::{execute, Report, Reporter};
use crate::Result;
use clap::Args;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(required_unless_present = "all")]
    pub release: Option<String>,
    /// Every release under releases/, releases in parallel.
    #[arg(long, conflicts_with = "release")]
    pub all: bool,
    #[command(flatten)]
    pub env: EnvArgs,
    /// Override a value: `--set image.pullPolicy=Always`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Deploy this application version instead of the descriptor's.
    #[arg(long)]
    pub version: Option<String>,
    /// Take fields that another field manager owns instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Revisions kept per release and cluster.
    #[arg(long, default_value_t = crate::storage::DEFAULT_HISTORY_LIMIT)]
    pub history_max: usize,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Run options from the command line and the environment, with progress on stderr.
pub fn run_options(
    timeout: std::time::Duration,
    force_conflicts: bool,
    history_max: usize,
) -> RunOptions {
    let mut opts = RunOptions::new(timeout);
    opts.force_conflicts = force_conflicts;
    opts.history_limit = history_max.max(1);
    opts.progress = Arc::new(|context, event| match event {
        Event::Applied(id) => eprintln!("[{context}] applied {id}"),
        Event::KeptLive(id) => {
            eprintln!("[{context}] kept live {id} (secret values are never recorded)")
        }
        Event::Pruned(id) => eprintln!("[{context}] deleted {id}"),
        Event::Ready(id) => eprintln!("[{context}] ready {id}"),
        Event::Waiting { pending } => eprintln!("[{context}] waiting for {}", pending.join(", ")),
    });
    opts
}

/// A deployment id: sortable by time (one function for every command).
pub fn new_deployment_id() -> String {
    crate::rollout::new_deployment_id()
}

pub async fn run(root: &Path, args: &DeployArgs) -> Result<()> {
    let selected = multi::select(root, &args.env)?;
    let releases: Vec<LoadedRelease> = match &args.release {
        Some(name) if !args.all => vec![selected.repo.release(name)?],
        _ => selected.repo.releases()?,
    };
    for release in &releases {
        selected.repo.check_release(release, &selected.env)?;
    }
    let overrides = Overrides {
        sets: args.set.clone(),
        version: args.version.clone(),
    };
    let reports = deploy_releases(
        &selected,
        &releases,
        &overrides,
        &DeploySettings {
            operation: "deploy",
            timeout: args.timeout,
            force_conflicts: args.force_conflicts,
            history_max: args.history_max,
        },
    )
    .await?;
    multi::finish(&reports, args.output)
}

pub struct DeploySettings {
    pub operation: &'static str,
    pub timeout: Option<std::time::Duration>,
    pub force_conflicts: bool,
    pub history_max: usize,
}

/// Prepares every release for every cluster (secrets, connections, rendering: any
/// failure here changes nothing), then runs them all in parallel, one deployment id.
pub async fn deploy_releases(
    selected: &multi::Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
    settings: &DeploySettings,
) -> Result<Vec<Report>> {
    let deployment_id = new_deployment_id();
    let base = Reporter::for_stderr();
    let mut options = RunOptions::new(settings.timeout.unwrap_or(selected.plan.timeout));
    options.force_conflicts = settings.force_conflicts;
    options.history_limit = settings.history_max.max(1);
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
                let target = Target {
                    env: &selected.env,
                    release,
                    plan: &selected.plan,
                    kubeconfig: &selected.kubeconfig,
                };
                let reporter = reporter_for(release);
                let options = options.clone();
                let deployment_id = &deployment_id;
                async move {
                    prepare_deploy(&target, overrides, deployment_id, options, &reporter).await
                }
            }),
        )
        .await?;
    let interrupt = multi::interrupt_token();
    let reports =
        futures::future::join_all(releases.iter().zip(&prepared).map(|(release, steps)| {
            let info = RunInfo {
                operation: settings.operation.into(),
                release: release.descriptor.metadata.name.clone(),
                deployment_id: deployment_id.clone(),
            };
            let reporter = reporter_for(release);
            let interrupt = &interrupt;
            async move { execute(&selected.plan, steps, &info, interrupt, &reporter).await }
        }))
        .await;
    Ok(reports)
}
