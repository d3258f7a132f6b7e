//! `flotilla template RELEASE --env E [--clusters CTX,CTX] [-f FILE] [--set k=v]... [--version V]`:
//! render locally, no cluster. Secrets render as placeholders; with `--show-secrets` they
//! are read from Vault (for the clusters shown only) and rendered as they are.
//!
//! Everything is rendered before anything is printed, so a failure in one cluster
//! leaves stdout empty rather than half a manifest.

use crate::config::{ConfigError, LoadedEnvironment, Repo};
use crate::engine::{placeholder_secrets, Chart, Renderer};
use crate::rollout::prepare::Overrides;
use crate::vault::{SecretPlan, VaultEnv};
use crate::Result;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct TemplateOptions {
    pub release: String,
    pub env: String,
    /// `-n/--namespace`: in place of the descriptor's namespace.
    pub namespace: Option<String>,
    /// Only these clusters (kube contexts, comma-separated); one cluster's objects are
    /// printed without a `cluster:` header.
    pub cluster: Option<String>,
    pub overrides: Overrides,
    /// Read the secrets from Vault and render them as they are.
    pub show_secrets: bool,
}

pub async fn run(root: &Path, args: &TemplateOptions) -> Result<()> {
    let yaml = render(root, args).await?;
    if args.show_secrets {
        // The one output that is the values, asked for by name.
        crate::output::print_unscrubbed(&yaml)?;
    } else {
        crate::output::print(&yaml)?;
    }
    Ok(())
}

/// The text `template` prints.
pub async fn render(root: &Path, args: &TemplateOptions) -> Result<String> {
    let repo = Repo::open(root)?.with_namespace(args.namespace.clone());
    let env = repo.environment(&args.env)?;
    let mut release = repo.release(&args.release)?;
    repo.check_release(&release, &env)?;
    args.overrides.apply_version(&mut release)?;
    let values = args.overrides.values()?;
    let clusters = selected_clusters(&env, args.cluster.as_deref())?;

    let chart = Chart::for_release(&release)?;
    // Read before rendering anything: a secret that does not resolve fails the command
    // with nothing printed.
    let resolved = if args.show_secrets {
        let mut plan = SecretPlan::build(&release, &env)?;
        plan.retain_contexts(|context| clusters.iter().any(|c| c.context == context));
        let vars = VaultEnv::from_process();
        Some(crate::vault::resolve_plan(&plan, &env, &vars).await?)
    } else {
        None
    };
    // No cluster is asked: the revision a first install would get.
    let renderer = Renderer::for_release(&chart, &release, &env.environment.name, &values, 1)?;
    let mut out = String::new();
    for cluster in &clusters {
        let secrets = match &resolved {
            Some(resolved) => resolved.exposed(&cluster.context),
            None => placeholder_secrets(&release.descriptor.spec, &cluster.context),
        };
        let one = args.cluster.is_some() && clusters.len() == 1;
        let manifest = renderer.render(cluster, &secrets).map_err(|err| {
            // With one cluster asked for, the user knows which one it was.
            if one {
                err
            } else {
                err.in_cluster(&cluster.context)
            }
        })?;
        let header = format!("cluster: {}", cluster.context);
        out.push_str(&manifest.to_yaml((!one).then_some(header.as_str())));
    }
    Ok(out)
}

fn selected_clusters<'e>(
    env: &'e LoadedEnvironment,
    context: Option<&str>,
) -> Result<Vec<&'e crate::config::Cluster>> {
    let clusters = &env.environment.clusters;
    let Some(list) = context else {
        return Ok(clusters.iter().collect());
    };
    let mut chosen = Vec::new();
    for context in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        chosen.push(pick_cluster(env, context)?);
    }
    Ok(chosen)
}

fn pick_cluster<'e>(
    env: &'e LoadedEnvironment,
    context: &str,
) -> Result<&'e crate::config::Cluster> {
    let clusters = &env.environment.clusters;
    match clusters.iter().find(|c| c.context == context) {
        Some(cluster) => Ok(cluster),
        None => Err(ConfigError::Invalid {
            file: env.file.clone(),
            line: None,
            field: "clusters".into(),
            message: format!(
                "no cluster with context {context:?} (--clusters); environment {:?} has {}",
                env.environment.name,
                clusters
                    .iter()
                    .map(|c| c.context.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into()),
    }
}
