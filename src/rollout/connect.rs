//! Reaching every cluster of a plan at once: the one place that connects to them
//! (bounded by `rollout.concurrency`, answers in the plan's order), for the runs that
//! change clusters and for the commands that only read them.

use super::plan::Plan;
use crate::cluster::{ClusterError, ClusterHandle, LoadedKubeconfig};
use crate::config::Cluster;
use crate::ops;
use crate::release::History;
use futures::StreamExt;
use std::future::Future;

/// Connects to every cluster of `plan` and asks it `query`, at most
/// `rollout.concurrency` at once; each cluster's answer (a failed connection is its
/// answer too), in the plan's order.
pub async fn on_each<T, E, F, Fut>(
    plan: &Plan,
    kubeconfig: &LoadedKubeconfig,
    query: F,
) -> Vec<(Cluster, Result<T, E>)>
where
    E: From<ClusterError>,
    F: Fn(Cluster, ClusterHandle) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let query = &query;
    futures::stream::iter(plan.clusters().cloned())
        .map(|cluster| async move {
            let answer = match ClusterHandle::connect(kubeconfig, &cluster.context).await {
                Ok(handle) => query(cluster.clone(), handle).await,
                Err(err) => Err(err.into()),
            };
            (cluster, answer)
        })
        .buffered(plan.concurrency.max(1))
        .collect()
        .await
}

/// A cluster reached, with the release's history there.
pub struct Connected {
    pub cluster: Cluster,
    pub handle: ClusterHandle,
    pub history: History,
}

/// Connects to every cluster of the plan and reads the release's history there,
/// keeping each cluster's own answer: a rollback goes on with the clusters it can
/// reach and reports the others.
pub async fn connect_each(
    plan: &Plan,
    kubeconfig: &LoadedKubeconfig,
    namespace: &str,
    release: &str,
) -> Vec<(Cluster, Result<Connected, ClusterError>)> {
    on_each(plan, kubeconfig, |cluster, handle| async move {
        let history = ops::history(&handle, namespace, release).await?;
        Ok(Connected {
            cluster,
            handle,
            history,
        })
    })
    .await
}

/// [`connect_each`] for a run that needs every cluster: an unreachable one stops it
/// here, before anything changed (exit code 3).
pub async fn connect_all(
    plan: &Plan,
    kubeconfig: &LoadedKubeconfig,
    namespace: &str,
    release: &str,
) -> crate::Result<Vec<Connected>> {
    connect_each(plan, kubeconfig, namespace, release)
        .await
        .into_iter()
        .map(|(_, found)| found.map_err(crate::Error::from))
        .collect()
}

/// A cluster's failure as printed in its row or section (never contains secret values:
/// errors do not carry them).
pub fn failure_text(err: &crate::Error) -> String {
    match err {
        crate::Error::Cluster(ClusterError::Unreachable { message, .. }) => {
            format!("unreachable: {message}")
        }
        other => other.to_string(),
    }
}
