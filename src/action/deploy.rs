//! `flotilla deploy RELEASE --env E [--cluster CTX]`: secrets from Vault, render, then
//! lock, apply, prune, wait and record on one cluster.

use super::cluster_release::{self as ops, Outcome, RunOptions};
use super::one_cluster::{self, TargetArgs};
use crate::cluster::Event;
use crate::Result;
use clap::Args;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArgs,
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
    });
    opts
}

pub async fn run(root: &Path, args: &DeployArgs) -> Result<()> {
    let target = one_cluster::open(root, &args.target).await?;
    let records = ops::history(&target.handle, target.namespace(), target.name()).await?;
    let revision = records.last().map_or(1, |r| r.revision + 1);
    let rendered =
        one_cluster::render(&target, &args.set, args.version.as_deref(), revision).await?;
    let timeout = args
        .timeout
        .unwrap_or(target.env.environment.rollout.timeout);
    let opts = run_options(timeout, args.force_conflicts, args.history_max);
    let outcome = ops::deploy(&target.handle, &rendered, &new_deployment_id(), &opts).await?;
    report("deploy", target.name(), outcome)
}

/// A deployment id: sortable by time, unique enough across concurrent runs.
pub fn new_deployment_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        (now.timestamp_subsec_nanos() ^ std::process::id()) & 0xffff
    )
}

/// Prints the outcome of a deploy or rollback; a failure is exit code 1.
pub fn report(what: &str, release: &str, outcome: Outcome) -> Result<()> {
    for revision in &outcome.repaired {
        eprintln!(
            "[{}] repaired revision {revision} left pending by an interrupted run",
            outcome.context
        );
    }
    let from = outcome.previous.map_or("-".to_owned(), |p| p.to_string());
    match outcome.error {
        None => {
            crate::output::print(&format!(
                "{what} {release} on {}: revision {} deployed (was {from})",
                outcome.context, outcome.revision
            ))?;
            Ok(())
        }
        Some(err) => Err(crate::Error::Failed(format!(
            "{what} {release} on {}: revision {} failed (was {from}): {err}",
            outcome.context, outcome.revision
        ))),
    }
}
