//! `flotilla adopt-helm RELEASE --env E [--helm-release NAME] [--remove-helm-secrets]
//! [--dry-run]`: takes over a Helm release in every cluster of the environment without
//! restarting a pod. Each cluster's deployed Helm revision is imported as the release's
//! first flotilla revision, its objects exactly as Helm applied them (so `rollback` can
//! return to it), under one deployment id; then the objects stop being Helm's (its
//! `meta.helm.sh/*` annotations and field manager go). Helm's revision Secrets stay
//! unless `--remove-helm-secrets`. `--dry-run` prints, per cluster, what the takeover
//! changes (only ownership labels and annotations) and changes nothing.
//!
//! Every cluster is checked before any is changed: each must have a deployed revision
//! of the Helm release and no flotilla revision of the release yet.

use super::multi;
use super::EnvSelection;
use crate::ops;
use crate::output::OutputFormat;
use crate::rollout::connect::{connect_all, Connected};
use crate::rollout::executor::RunInfo;
use crate::rollout::kube_steps::{KubeSteps, Leases, Prepared};
use crate::rollout::Reporter;
use crate::Result;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct AdoptHelmOptions {
    pub release: String,
    pub env: EnvSelection,
    /// The Helm release's name, when it is not the release's.
    pub helm_release: Option<String>,
    /// Delete Helm's revision Secrets once the takeover is recorded.
    pub remove_helm_secrets: bool,
    /// Print what the takeover would change; change nothing.
    pub dry_run: bool,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    pub timeout: Option<Duration>,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &AdoptHelmOptions) -> Result<()> {
    let configured = crate::rollout::configure(root, &args.env)?;
    let release = configured.repo.release(&args.release)?;
    configured.repo.check_release(&release, &configured.env)?;
    let selected = configured.with_kubeconfig()?;
    let name = release.descriptor.metadata.name.clone();
    let namespace = release.descriptor.metadata.namespace.clone();
    let helm_name = args.helm_release.clone().unwrap_or_else(|| name.clone());

    let connected = connect_all(&selected.plan, &selected.kubeconfig, &namespace, &name).await?;
    let mut clusters = HashMap::new();
    let mut problems = Vec::new();
    let mut imported = Vec::new();
    for Connected {
        cluster,
        handle,
        history,
    } in connected
    {
        let context = cluster.context.clone();
        if let Some(latest) = history.latest() {
            problems.push(format!(
                "cluster `{context}`: release `{name}` has flotilla revisions there already (latest {}): adopt-helm imports a Helm release only where flotilla has none",
                latest.revision
            ));
            continue;
        }
        match ops::adopt::read_helm(&handle, &namespace, &helm_name).await? {
            None => problems.push(format!(
                "cluster `{context}`: no deployed revision of Helm release `{helm_name}` in namespace `{namespace}` (`helm list -n {namespace}` shows what is there; --helm-release names another)"
            )),
            Some(helm) => {
                // The keys of what Helm was given, never its values: a `--set
                // password=...` must not reach a record (docs/helm.md).
                let mut values = helm.chart_values.clone();
                crate::engine::deep_merge(&mut values, ops::adopt::values_given(&helm.config));
                let rendered = ops::adopt::imported_revision(&helm, &name, &values);
                if !helm.hooks.is_empty() {
                    crate::output::eprint_line(&format!(
                        "[{context}] Helm release {helm_name} has hooks, which are not taken over: {}; the imported revision has none to run at a rollback to it (a flotilla deploy of the chart runs them, docs/helm.md)",
                        helm.hooks.join(", ")
                    ));
                }
                imported.push(format!(
                    "[{context}] Helm release {helm_name} revision {} (chart {} {}, app {}): {} objects",
                    helm.revision,
                    helm.chart_name,
                    helm.chart_version,
                    rendered.app_version,
                    rendered.objects.len()
                ));
                clusters.insert(
                    context,
                    Prepared::render(handle, history, ops::PackedRender::pack(rendered)),
                );
            }
        }
    }
    if !problems.is_empty() {
        return Err(crate::Error::Reported(format!(
            "adopt-helm {name}: {} (nothing was changed)",
            problems.join("; ")
        )));
    }
    if args.dry_run {
        let mut answers = Vec::new();
        for cluster in selected.plan.clusters() {
            if let Some(p) = clusters.get(&cluster.context) {
                let diffs = match unpack(p, &cluster.context) {
                    Ok(rendered) => ops::diff(&p.handle, &p.history, &rendered).await,
                    Err(err) => Err(err),
                };
                answers.push((cluster.clone(), diffs.map_err(crate::Error::from)));
            }
        }
        return super::diff::print_diffs(answers, args.output).map(|_| ());
    }
    for line in &imported {
        crate::output::eprint_line(line);
    }

    let deployment_id = crate::rollout::new_deployment_id();
    let settings = crate::rollout::run::RunSettings {
        timeout: args.timeout,
        adopt: true,
        ..Default::default()
    };
    let mut options = settings.options(&selected.plan);
    options.record_key = crate::rollout::signing::record_key(&selected.env).await?;
    let steps = KubeSteps::new(clusters, &deployment_id, options, Leases::new(false));
    let notifier = crate::notify::Notifier::new(&selected.env.environment.notify);
    let run = crate::rollout::Run {
        plan: &selected.plan,
        info: RunInfo {
            operation: "adopt-helm".into(),
            release: name.clone(),
            deployment_id,
            target: None,
        },
        interrupt: &crate::rollout::Interrupt::on_signals(),
        reporter: Reporter::for_stderr(),
        notifier: &notifier,
        version: steps.clusters.values().find_map(Prepared::app_version),
    };
    let report = run.execute(&steps, |_| {}).await;
    if report.succeeded() {
        for (context, prepared) in &steps.clusters {
            let released = match unpack(prepared, context) {
                Ok(rendered) => {
                    ops::adopt::release_from_helm(
                        &prepared.handle,
                        &rendered,
                        &helm_name,
                        args.remove_helm_secrets,
                    )
                    .await
                }
                Err(err) => Err(err),
            };
            match released {
                Ok(deleted) if !deleted.is_empty() => crate::output::eprint_line(&format!(
                    "[{context}] Helm's revision Secrets deleted: {}",
                    deleted.join(", ")
                )),
                Ok(_) => {}
                Err(err) => crate::output::eprint_line(&format!(
                    "[{context}] the takeover is recorded, but Helm's ownership metadata could not be removed ({err}); `flotilla deploy` takes the fields it applies all the same"
                )),
            }
        }
    }
    multi::finish(&[report], args.output, &Default::default())
}

/// The imported revision of a cluster of the takeover, unpacked.
fn unpack(
    prepared: &Prepared,
    context: &str,
) -> std::result::Result<ops::Rendered, crate::cluster::ClusterError> {
    match prepared.rendered() {
        Some(packed) => packed.unpack(context),
        None => Err(crate::cluster::ClusterError::Release {
            context: context.to_owned(),
            message: "nothing was imported from Helm here".into(),
        }),
    }
}
