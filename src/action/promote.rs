//! `flotilla promote RELEASE --from dev --to prod`: deploy to `--to` the artifact that
//! every cluster of `--from` runs healthy (one deployment id): its recorded chart files,
//! application version, `spec.values` and command-line values, never the checkout's,
//! with `--to`'s own environment overrides, globals, scaling and secrets (read in
//! `--to`'s Vault). `--dry-run` shows per target cluster what would change; `--check`
//! compares the checkout with what `--from` runs (exit 1 when it differs). Refuses,
//! nothing changed, when the `--from` clusters disagree, are not healthy or cannot be
//! read, and when `--to`'s promotion chain asks for a soak the artifact has not had.

use super::deploy::{deploy_releases, DeploySettings};
use super::{diff, every_cluster, multi, EnvSelection};
use crate::cluster::ClusterError;
use crate::cluster::LoadedKubeconfig;
use crate::config::{LoadedEnvironment, LoadedRelease};
use crate::ops;
use crate::output::OutputFormat;
use crate::release::{
    agreed, check_record, describe_record, Promotion, RecordKey, ReleaseRecord, SourceCluster,
};
use crate::rollout::chain::require_soak;
use crate::rollout::connect::{failure_text, on_each};
use crate::rollout::plan::select_environment;
use crate::rollout::prepare::{artifact_of, Overrides, Promoted, ReleaseRender};
use crate::rollout::signing::{record_key, warn_unsigned};
use crate::rollout::Plan;
use crate::Result;
use std::path::Path;
use std::time::Duration;

/// What `promote` does with the artifact it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PromoteMode {
    /// Deploy it to the target environment.
    #[default]
    Deploy,
    /// Show per target cluster what deploying it would change; change nothing.
    DryRun,
    /// Compare the checkout with it: exit 0 when the same, 1 when it differs.
    Check,
}

#[derive(Debug, Clone, Default)]
pub struct PromoteOptions {
    pub release: String,
    /// The environment whose running artifact is promoted (default: the target's
    /// `promotion.from`).
    pub from: Option<String>,
    /// The environment (and clusters) to deploy to.
    pub to: EnvSelection,
    pub mode: PromoteMode,
    /// `--check`: the `--set` and `--version` a deploy of the checkout would be given.
    pub checkout: Overrides,
    /// Create the release namespace where it does not exist.
    pub create_namespace: bool,
    /// Per-cluster wait for health (default: the target environment's rollout.timeout).
    pub timeout: Option<Duration>,
    /// Where the run's summary goes for CI (`--summary`, `--junit`).
    pub report_files: crate::rollout::summary::ReportFiles,
    /// `--override-freeze --reason`.
    pub freeze: super::freeze::FreezeOverride,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &PromoteOptions) -> Result<()> {
    // Before the kubeconfig is read: a promotion onto itself is a mistake in the
    // command line, whatever the machine.
    if let Some(from) = args
        .from
        .as_deref()
        .filter(|f| Some(*f) == args.to.env.as_deref())
    {
        return Err(onto_itself(&args.release, from));
    }
    let configured = crate::rollout::configure(root, &args.to)?;
    let release = configured.repo.release(&args.release)?;
    configured.repo.check_release(&release, &configured.env)?;
    let target = &configured.env.environment;
    let from = match (&args.from, &target.promotion) {
        (Some(from), _) => from.clone(),
        (None, Some(chain)) => chain.from.clone(),
        (None, None) => {
            return Err(crate::Error::Reported(format!(
                "promote {}: name the environment to promote from with --from, or set promotion.from in {}",
                args.release,
                configured.env.file.display()
            )))
        }
    };
    if from == target.name {
        return Err(onto_itself(&args.release, &from));
    }
    let source_env = select_environment(&configured.repo, Some(&from), None)?;
    let selected = configured.with_kubeconfig()?;
    let target = &selected.env.environment;
    // The source's records are checked with its key, before any of them is used.
    let source_key = record_key(&source_env).await?;
    if source_key.is_none() {
        warn_unsigned(&source_env, &release.descriptor.metadata.namespace);
    }
    let record = source_revision(
        &source_env,
        &release,
        &selected.kubeconfig,
        source_key.as_deref(),
    )
    .await?;
    let Some(artifact) = record.artifact() else {
        // `agreed` refuses records without an artifact; kept as an error, not a panic.
        return Err(crate::Error::Refused(format!(
            "promote {}: revision {} of {from} holds no artifact",
            args.release, record.revision
        )));
    };
    let promoted = Promoted {
        artifact,
        from: Promotion {
            environment: from.clone(),
            deployment_id: record.content_id().to_owned(),
        },
    };
    let release_slice = std::slice::from_ref(&release);
    match args.mode {
        PromoteMode::Check => {
            let freeze =
                super::freeze::foresee(&selected, release_slice, "promote", &args.freeze).await;
            check(&release, &args.checkout, &promoted, freeze, args.output)
        }
        PromoteMode::DryRun => {
            super::freeze::foresee(&selected, release_slice, "promote", &args.freeze).await;
            if let Err(refused) = require_soak(&selected, &release, &promoted.artifact).await {
                crate::output::eprint_line(&format!("promote would be refused: {refused}"));
            }
            let overrides = Overrides {
                promoted: Some(promoted),
                ..Overrides::default()
            };
            let render =
                ReleaseRender::prepare(&selected.env, &release, &selected.plan, &overrides).await?;
            let opened = every_cluster::Opened { selected, release };
            diff::show_changes(&opened, &render, args.output).await?;
            Ok(())
        }
        PromoteMode::Deploy => {
            require_soak(&selected, &release, &promoted.artifact).await?;
            crate::output::eprint_line(&format!(
                "promoting {} {} (deployment {} of {from}, artifact {}) to {}",
                args.release,
                promoted.artifact.version,
                promoted.from.deployment_id,
                promoted.artifact.digest(),
                target.name
            ));
            let reports = deploy_releases(
                &selected,
                std::slice::from_ref(&release),
                &Overrides {
                    promoted: Some(promoted),
                    ..Overrides::default()
                },
                &DeploySettings {
                    operation: "promote",
                    run: crate::rollout::run::RunSettings {
                        timeout: args.timeout,
                        create_namespace: args.create_namespace,
                        ..Default::default()
                    },
                    freeze: args.freeze.clone(),
                },
            )
            .await?;
            multi::finish(&reports, args.output, &args.report_files)
        }
    }
}

fn onto_itself(release: &str, from: &str) -> crate::Error {
    crate::Error::Reported(format!(
        "promote {release}: --from {from} is also the environment to deploy to; promote from the environment before it (dev for staging, staging for prod)"
    ))
}

/// The revision every cluster of `source` runs healthy, asked of all of them at once;
/// refused (exit 3) with the per-cluster table when they disagree, one is not healthy
/// or cannot be read, or a latest record does not verify (its digests, and its MAC with
/// `key`).
async fn source_revision(
    source: &LoadedEnvironment,
    release: &LoadedRelease,
    kubeconfig: &LoadedKubeconfig,
    key: Option<&RecordKey>,
) -> Result<ReleaseRecord> {
    let plan = Plan::new(source, None)?;
    let name = &release.descriptor.metadata.name;
    let namespace = &release.descriptor.metadata.namespace;
    let answers = on_each(&plan, kubeconfig, |_, handle| async move {
        let history = ops::history(&handle, namespace, name).await?;
        let unhealthy = match history.runs_now() {
            Some(_) => ops::status_of(&handle, namespace, name, &history)
                .await?
                .unhealthy()
                .map(|o| format!("{} {}", o.object, o.health))
                .collect(),
            None => Vec::new(),
        };
        Ok::<_, ClusterError>((history.latest().cloned(), unhealthy))
    })
    .await;
    let clusters: Vec<SourceCluster> = answers
        .into_iter()
        .map(|(cluster, found)| match found {
            Ok((latest, unhealthy)) => SourceCluster {
                untrusted: latest.as_ref().map_or_else(Vec::new, |r| {
                    check_record(r, &cluster.context, key)
                        .problems(&describe_record(r, &cluster.context))
                }),
                context: cluster.context,
                latest: Ok(latest),
                unhealthy,
            },
            Err(err) => SourceCluster {
                context: cluster.context,
                latest: Err(failure_text(&err.into())),
                unhealthy: Vec::new(),
                untrusted: Vec::new(),
            },
        })
        .collect();
    let untrusted = clusters.iter().any(|c| !c.untrusted.is_empty());
    match agreed(&clusters) {
        Ok(record) => Ok(record.clone()),
        Err(problems) => {
            let mut table = tabled::builder::Builder::default();
            table.push_record(["CLUSTER", "REVISION", "DEPLOYMENT ID", "STATUS", "HEALTH"]);
            for cluster in &clusters {
                table.push_record(cluster.row());
            }
            let message = format!(
                "promote {name} from {}: refused, nothing changed:\n{}\n  {}",
                source.environment.name,
                crate::output::table_text(table.build()),
                problems.join("\n  ")
            );
            Err(if untrusted {
                crate::Error::Untrusted(format!(
                    "{message}\n(a record that does not verify was changed after flotilla wrote it, or, unsigned, was written before vault.record_key was set: deploy the release to {} again to write a record that verifies)",
                    source.environment.name
                ))
            } else {
                crate::Error::Refused(message)
            })
        }
    }
}

/// `--check`: the checkout's artifact (its chart, version and `spec.values`, with the
/// `--set` and `--version` given) against the one the source runs. Exit 0 when they
/// are the same, 1 when they differ (as diff(1)), with what differs. `freeze`: what a
/// freeze of the target would do to the real promotion (said on stderr already), in the
/// JSON; it does not change the exit code, which answers the comparison.
fn check(
    release: &LoadedRelease,
    checkout: &Overrides,
    promoted: &Promoted,
    freeze: Option<String>,
    output: OutputFormat,
) -> Result<()> {
    let here = artifact_of(release, checkout)?;
    let source = &promoted.from;
    let there = format!("{} ({})", source.environment, source.deployment_id);
    let differences = promoted.artifact.differences(&here, &there, "the checkout");
    match output {
        OutputFormat::Json | OutputFormat::Yaml => crate::output::print_json(&serde_json::json!({
            "from": source.environment,
            "deployment_id": source.deployment_id,
            "artifact": promoted.artifact.digest(),
            "checkout_artifact": here.digest(),
            "same": differences.is_empty(),
            "differences": differences,
            "freeze": freeze,
        }))?,
        OutputFormat::Table if differences.is_empty() => crate::output::print(&format!(
            "the checkout is what {there} runs: artifact {}",
            here.digest()
        ))?,
        OutputFormat::Table => crate::output::print(&format!(
            "the checkout differs from what {there} runs:\n  {}",
            differences.join("\n  ")
        ))?,
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::Differs(format!(
            "promote --check {}: the checkout is not what {there} runs",
            release.descriptor.metadata.name
        )))
    }
}
