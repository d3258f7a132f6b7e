//! What the single-cluster command (`uninstall`) needs: picking the environment, the
//! release and the one cluster, and connecting to it.
//!
//! `--cluster CTX` picks one context of the environment (an environment with one cluster
//! needs none). `deploy`, `rollback`, `history` and `promote` are multi-cluster and go
//! through [`crate::rollout`] instead; `status` and `diff` read every cluster through
//! [`super::every_cluster`].

use crate::cluster::{load_kubeconfig, ClusterHandle};
use crate::config::{Cluster, ConfigError, LoadedEnvironment, LoadedRelease, Repo};
use crate::Result;
use std::path::{Path, PathBuf};

/// Which release, environment and cluster a single-cluster command works on.
#[derive(Debug, Clone, Default)]
pub struct OneClusterSelection {
    pub release: String,
    /// The environment by name, or
    pub env: Option<String>,
    /// the environment whose `branch` is this git branch.
    pub branch: Option<String>,
    /// The cluster (kube context of the environment); needed when it has several.
    pub cluster: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
}

/// The one cluster, connected, with the release and environment it is asked about.
pub struct OneCluster {
    pub env: LoadedEnvironment,
    pub release: LoadedRelease,
    pub cluster: Cluster,
    pub handle: ClusterHandle,
}

impl OneCluster {
    pub fn name(&self) -> &str {
        &self.release.descriptor.metadata.name
    }
    pub fn namespace(&self) -> &str {
        &self.release.descriptor.metadata.namespace
    }
}

/// Loads and checks the configuration, then connects (no request is made yet).
pub async fn open(root: &Path, args: &OneClusterSelection) -> Result<OneCluster> {
    let repo = Repo::open(root)?;
    let env = match (&args.env, &args.branch) {
        (Some(env), _) => repo.environment(env)?,
        (None, Some(branch)) => repo.environment_for_branch(branch)?,
        (None, None) => {
            return Err(crate::Error::Reported(
                "give --env ENV or --branch BRANCH".into(),
            ))
        }
    };
    let release = repo.release(&args.release)?;
    repo.check_release(&release, &env)?;
    let cluster = select_cluster(&env, args.cluster.as_deref())?;
    let kubeconfig = load_kubeconfig(args.kubeconfig.as_deref())?;
    let handle = ClusterHandle::connect(&kubeconfig, &cluster.context).await?;
    Ok(OneCluster {
        env,
        release,
        cluster,
        handle,
    })
}

fn select_cluster(env: &LoadedEnvironment, context: Option<&str>) -> Result<Cluster> {
    let clusters = &env.environment.clusters;
    let names = || {
        clusters
            .iter()
            .map(|c| c.context.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match context {
        Some(context) => clusters.iter().find(|c| c.context == context),
        None if clusters.len() == 1 => clusters.first(),
        None => {
            return Err(crate::Error::Reported(format!(
                "environment {:?} has {} clusters ({}): name one with --cluster",
                env.environment.name,
                clusters.len(),
                names()
            )))
        }
    };
    found.cloned().ok_or_else(|| {
        ConfigError::Invalid {
            file: env.file.clone(),
            line: None,
            field: "clusters".into(),
            message: format!(
                "no cluster with context {:?} (--cluster); environment {:?} has {}",
                context.unwrap_or_default(),
                env.environment.name,
                names()
            ),
        }
        .into()
    })
}
