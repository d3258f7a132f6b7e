//! `flotilla rollback RELEASE --env E [--cluster CTX] [--revision N]`: re-apply a
//! recorded revision (the previous good one by default), secrets re-read from Vault or,
//! when Vault cannot be read, kept as they are live.

use super::cluster_release as ops;
use super::deploy::{new_deployment_id, report, run_options};
use super::one_cluster::{self, TargetArgs};
use crate::Result;
use clap::Args;
use std::path::Path;

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The revision to go back to (default: the previous good one).
    #[arg(long)]
    pub revision: Option<u32>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    #[arg(long)]
    pub force_conflicts: bool,
}

pub async fn run(root: &Path, args: &RollbackArgs) -> Result<()> {
    let target = one_cluster::open(root, &args.target).await?;
    let records = ops::history(&target.handle, target.namespace(), target.name()).await?;
    let goal = match args.revision {
        Some(n) => records.iter().find(|r| r.revision == n),
        None => ops::rollback_target(&records),
    };
    // An unknown revision is reported by the rollback itself, with the revisions there are.
    let fresh = match goal {
        Some(goal) => one_cluster::fresh_secret_objects(&target, &goal.app_version)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let timeout = args
        .timeout
        .unwrap_or(target.env.environment.rollout.timeout);
    let opts = run_options(
        timeout,
        args.force_conflicts,
        crate::storage::DEFAULT_HISTORY_LIMIT,
    );
    let outcome = ops::rollback(
        &target.handle,
        target.namespace(),
        target.name(),
        args.revision,
        &fresh,
        &new_deployment_id(),
        &opts,
    )
    .await?;
    for id in &outcome.kept_live {
        eprintln!(
            "[{}] {id}: Vault could not be read, the live secret was kept",
            outcome.context
        );
    }
    report("rollback", target.name(), outcome)
}
