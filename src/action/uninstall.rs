//! `flotilla uninstall RELEASE --env E [--cluster CTX]`: delete the objects flotilla owns
//! for the release, then its records and its lock.

use super::cluster_release as ops;
use super::deploy::run_options;
use super::one_cluster::{self, TargetArgs};
use crate::Result;
use clap::Args;
use std::path::Path;

#[derive(Debug, Clone, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

pub async fn run(root: &Path, args: &UninstallArgs) -> Result<()> {
    let target = one_cluster::open(root, &args.target).await?;
    let opts = run_options(
        target.env.environment.rollout.timeout,
        false,
        crate::storage::DEFAULT_HISTORY_LIMIT,
    );
    let deleted = ops::uninstall(&target.handle, target.namespace(), target.name(), &opts).await?;
    crate::output::print(&format!(
        "uninstalled {} from {}: {} objects deleted",
        target.name(),
        target.cluster.context,
        deleted.len()
    ))?;
    Ok(())
}
