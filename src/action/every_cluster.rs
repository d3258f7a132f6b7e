//! What the read commands that look at every cluster of an environment (`status`,
//! `diff`) share: the release and cluster selection, running one query per cluster
//! concurrently (bounded by `rollout.concurrency`), and turning the clusters that could
//! not answer into the command's exit code after everything else was printed.
//!
//! This module never changes a cluster; a query that fails on one cluster is that
//! cluster's answer, not the end of the command.

use super::ReleaseSelection;
use crate::cluster::ClusterHandle;
use crate::config::{Cluster, LoadedRelease};
use crate::exit::{Classify, ExitKind};
use crate::rollout::Selected;
use crate::Result;
use std::future::Future;
use std::path::Path;

pub struct Opened {
    pub selected: Selected,
    pub release: LoadedRelease,
}

impl Opened {
    pub fn name(&self) -> &str {
        &self.release.descriptor.metadata.name
    }
    pub fn namespace(&self) -> &str {
        &self.release.descriptor.metadata.namespace
    }
}

/// Loads and checks the configuration; nothing is contacted.
pub fn open(root: &Path, args: &ReleaseSelection) -> Result<Opened> {
    let configured = crate::rollout::configure(root, &args.env)?;
    let release = configured.repo.release(&args.release)?;
    configured.repo.check_release(&release, &configured.env)?;
    let selected = configured.with_kubeconfig()?;
    Ok(Opened { selected, release })
}

/// Connects to every selected cluster and runs `query` on it, at most
/// `rollout.concurrency` at once; the answers come back in the plan's order.
pub async fn query_each<T, F, Fut>(opened: &Opened, query: F) -> Vec<(Cluster, Result<T>)>
where
    F: Fn(Cluster, ClusterHandle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let Selected {
        plan, kubeconfig, ..
    } = &opened.selected;
    crate::rollout::connect::on_each(plan, kubeconfig, query).await
}

pub use crate::rollout::connect::failure_text;

/// Where else a release's records are (`namespaces_with_records`), as an error says
/// it: a few named, the rest counted.
pub fn records_elsewhere(elsewhere: std::collections::BTreeSet<String>) -> String {
    const NAMED: usize = 5;
    let count = elsewhere.len();
    let mut named: Vec<String> = elsewhere.into_iter().take(NAMED).collect();
    if count > NAMED {
        named.push(format!("and {} more", count - NAMED));
    }
    format!(
        "its records are in namespace {} (give --namespace NS, or fix metadata.namespace)",
        named.join(", ")
    )
}

/// After the output is printed: the command's error, if any cluster failed. An
/// unreachable cluster (exit code 3) outweighs any other failure.
pub fn finish<T>(answers: Vec<(Cluster, Result<T>)>) -> Result<()> {
    worst(
        answers
            .into_iter()
            .filter_map(|(_, answer)| answer.err())
            .collect(),
    )
}

/// The error a command that went on past failing clusters ends with: one that is the
/// environment's (exit code 3) before any other.
pub fn worst(mut failures: Vec<crate::Error>) -> Result<()> {
    let worst = failures
        .iter()
        .position(|e| e.exit_kind() == ExitKind::Environment)
        .unwrap_or(0);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.swap_remove(worst))
    }
}
