//! Which environment and clusters a multi-cluster command works on: the selection on
//! the command line, turned into the environment and its [`Plan`] from the repo alone,
//! then the kubeconfig read. Nothing here contacts a cluster.

use super::plan::{parse_limit, select_environment, Plan};
use crate::cluster::{load_kubeconfig, LoadedKubeconfig};
use crate::config::{LoadedEnvironment, Repo};
use crate::Result;
use std::path::{Path, PathBuf};

/// Which environment and clusters a multi-cluster command works on.
#[derive(Debug, Clone, Default)]
pub struct EnvSelection {
    /// The environment by name (environments/<ENV>.yaml).
    pub env: Option<String>,
    /// Or the environment whose `branch` is this git branch.
    pub branch: Option<String>,
    /// Only these clusters (kube contexts), comma-separated.
    pub clusters: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
    /// `-n/--namespace`: the release's namespace instead of its descriptor's.
    pub namespace: Option<String>,
}

/// The environment and the plan, chosen from the repo alone.
pub struct Configured {
    pub repo: Repo,
    pub env: LoadedEnvironment,
    pub plan: Plan,
    kubeconfig_file: Option<PathBuf>,
}

/// [`Configured`] with the kubeconfig read: ready to connect.
pub struct Selected {
    pub repo: Repo,
    pub env: LoadedEnvironment,
    pub plan: Plan,
    pub kubeconfig: LoadedKubeconfig,
}

/// Loads the environment and the plan; nothing is contacted and the kubeconfig is not
/// read yet: a command checks what it needs of the repo (the release) first, since a
/// typo there is the likelier mistake and needs no cluster.
pub fn configure(root: &Path, args: &EnvSelection) -> Result<Configured> {
    let repo = Repo::open(root)?.with_namespace(args.namespace.clone());
    let env = select_environment(&repo, args.env.as_deref(), args.branch.as_deref())?;
    let limit = args.clusters.as_deref().map(parse_limit);
    let plan = Plan::new(&env, limit.as_deref())?;
    Ok(Configured {
        repo,
        env,
        plan,
        kubeconfig_file: args.kubeconfig.clone(),
    })
}

impl Configured {
    /// Reads the kubeconfig; still nothing is contacted.
    pub fn with_kubeconfig(self) -> Result<Selected> {
        let kubeconfig = load_kubeconfig(self.kubeconfig_file.as_deref())?;
        Ok(Selected {
            repo: self.repo,
            env: self.env,
            plan: self.plan,
            kubeconfig,
        })
    }
}
