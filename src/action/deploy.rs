//! `flotilla deploy RELEASE --env E [--clusters a,b] [--all]`: secrets of every cluster
//! from Vault and the release rendered for each, then every cluster at once, wave after
//! wave, with a coordinated rollback when one fails (see [`crate::rollout`]).

use super::multi;
use super::EnvSelection;
use crate::config::LoadedRelease;
use crate::notify::Notifier;
use crate::output::OutputFormat;
use crate::release::{EnvironmentHistory, NextRun, UntilWave};
use crate::rollout::executor::RunInfo;
use crate::rollout::gates::GateVars;
use crate::rollout::kube_steps::{GateSetup, Prepared};
use crate::rollout::prepare::{prepare_deploy, DeployInputs, Overrides};
use crate::rollout::run::RunSettings;
use crate::rollout::selection::Selected;
use crate::rollout::summary::ReportFiles;
use crate::rollout::{Interrupt, Report, Reporter, Run};
use crate::Result;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// The release; `None` with `all`.
    pub release: Option<String>,
    /// Every release under releases/, releases in parallel.
    pub all: bool,
    pub env: EnvSelection,
    pub overrides: Overrides,
    pub run: RunSettings,
    /// Print the plan (waves, clusters, revision from → to, Vault paths); change
    /// nothing, read no secret.
    pub dry_run: bool,
    /// Stop after this wave (`--until-wave`).
    pub until_wave: Option<u32>,
    /// Go on with this deployment, paused by `--until-wave` (`--resume`).
    pub resume: Option<String>,
    /// Where the run's summary goes for CI (`--summary`, `--junit`).
    pub report_files: ReportFiles,
    /// `--override-freeze --reason`.
    pub freeze: super::freeze::FreezeOverride,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &DeployOptions) -> Result<()> {
    let configured = crate::rollout::configure(root, &args.env)?;
    let releases: Vec<LoadedRelease> = match &args.release {
        Some(name) if !args.all => vec![configured.repo.release(name)?],
        _ => configured.repo.releases()?,
    };
    for release in &releases {
        configured.repo.check_release(release, &configured.env)?;
    }
    // Bad values are bad input found without any cluster, as a typo in the release is.
    args.overrides.values()?;
    let selected = configured.with_kubeconfig()?;
    if args.dry_run {
        let freeze = super::freeze::foresee(&selected, &releases, "deploy", &args.freeze).await;
        return super::dry_run::deploy(&selected, &releases, &args.overrides, freeze, args.output)
            .await;
    }
    let overrides = match (&args.resume, releases.as_slice()) {
        (Some(id), [release]) => resumed_overrides(&selected, release, id, &args.overrides).await,
        _ => args.overrides.clone(),
    };
    let overrides = &overrides;
    crate::rollout::chain::require_soak_of_checkout(&selected, &releases, overrides).await?;
    let waves = WaveRequest {
        until_wave: args.until_wave,
        resume: args.resume.clone(),
    };
    let reports = deploy_releases_in_waves(
        &selected,
        &releases,
        overrides,
        &DeploySettings {
            operation: "deploy",
            run: args.run.clone(),
            freeze: args.freeze.clone(),
        },
        &waves,
    )
    .await?;
    multi::finish(&reports, args.output, &args.report_files)
}

/// What `deploy --resume ID` renders with: the command line's version and values when
/// it gives any, else those deployment `ID` recorded (its version and `--set` values),
/// so that the command its pause printed goes on as written. Clusters that cannot be
/// asked are left to the resume's own checks, which name them.
async fn resumed_overrides(
    selected: &Selected,
    release: &LoadedRelease,
    id: &str,
    given: &Overrides,
) -> Overrides {
    if given.version.is_some() || !given.values.is_empty() {
        return given.clone();
    }
    let meta = &release.descriptor.metadata;
    let connected = crate::rollout::connect::connect_each(
        &selected.plan,
        &selected.kubeconfig,
        &meta.namespace,
        &meta.name,
    )
    .await;
    let Some(record) = connected
        .iter()
        .filter_map(|(_, found)| found.as_ref().ok())
        .flat_map(|c| c.history.records())
        .find(|r| r.deployment_id == id)
    else {
        return given.clone();
    };
    let recorded_values = match record.source.as_ref().and_then(|s| s.command_line.as_ref()) {
        Some(serde_json::Value::Object(map)) => Some(map.clone()),
        _ => None,
    };
    crate::output::eprint_line(&format!(
        "--resume {id}: version {} and the command-line values ({}) it was deployed with, as its records hold them",
        record.app_version,
        match &recorded_values {
            Some(map) if !map.is_empty() => map.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => "none".to_owned(),
        }
    ));
    Overrides {
        version: Some(record.app_version.clone()),
        recorded_values,
        ..given.clone()
    }
}

/// Which waves a deploy runs: all (the default), up to one (`--until-wave`), or the
/// rest of a paused deployment (`--resume`).
#[derive(Debug, Clone, Default)]
pub struct WaveRequest {
    pub until_wave: Option<u32>,
    pub resume: Option<String>,
}

/// What differs between `deploy` and `promote`, which both deploy releases.
pub struct DeploySettings {
    pub operation: &'static str,
    pub run: RunSettings,
    /// `--override-freeze --reason`: whether a freeze stops the run.
    pub freeze: super::freeze::FreezeOverride,
}

/// Prepares every release for every cluster (secrets, connections, rendering: any
/// failure here changes nothing), then runs them all in parallel, one deployment id.
pub async fn deploy_releases(
    selected: &Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
    settings: &DeploySettings,
) -> Result<Vec<Report>> {
    deploy_releases_in_waves(
        selected,
        releases,
        overrides,
        settings,
        &WaveRequest::default(),
    )
    .await
}

/// [`deploy_releases`], for the waves `waves` asks for.
pub async fn deploy_releases_in_waves(
    selected: &Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
    settings: &DeploySettings,
    waves: &WaveRequest,
) -> Result<Vec<Report>> {
    let mut plan = selected.plan.clone();
    if let Some(wave) = waves.until_wave {
        plan.until(wave)?;
    }
    let deployment_id = waves
        .resume
        .clone()
        .unwrap_or_else(crate::rollout::new_deployment_id);
    let base = Reporter::for_stderr();
    let mut options = settings.run.options(&plan);
    options.until_wave = plan.until_wave.map(|wave| UntilWave {
        wave,
        clusters: plan
            .clusters()
            .filter(|c| c.wave <= wave)
            .map(|c| c.context.clone())
            .collect(),
    });
    let several = releases.len() > 1;
    let reporter_for = |r: &LoadedRelease| {
        if several {
            base.scoped(&r.descriptor.metadata.name)
        } else {
            base.clone()
        }
    };
    let prepare_all =
        futures::future::join_all(
            releases.iter().map(|release| {
                let inputs = DeployInputs {
                    env: &selected.env,
                    release,
                    plan: &plan,
                    kubeconfig: &selected.kubeconfig,
                };
                let reporter = reporter_for(release);
                let options = options.clone();
                let deployment_id = &deployment_id;
                async move {
                    prepare_deploy(&inputs, overrides, deployment_id, options, &reporter).await
                }
            }),
        );
    // The freeze is read in every cluster while the run reads Vault and takes its
    // leases (no round trip waits for another): a run the freeze refuses gives them
    // back, having changed nothing. The record key is read before any cluster is
    // changed: an environment that signs its records never gets one unsigned.
    let (freeze_override, record_key, prepared) = tokio::join!(
        super::freeze::guard(selected, releases, settings.operation, &settings.freeze),
        crate::rollout::signing::record_key(&selected.env),
        prepare_all
    );
    let mut prepared = match (freeze_override, record_key) {
        (Err(err), _) | (Ok(_), Err(err)) => {
            give_back(prepared.into_iter().flatten()).await;
            return Err(err);
        }
        (Ok(freeze_override), Ok(record_key)) => {
            if prepared.iter().any(Result::is_err) {
                let (ok, failed): (Vec<_>, Vec<_>) = prepared.into_iter().partition(Result::is_ok);
                give_back(ok.into_iter().flatten()).await;
                return Err(failed.into_iter().find_map(Result::err).unwrap_or_else(|| {
                    crate::Error::Reported("a release could not be prepared".into())
                }));
            }
            let audit = crate::release::Audit {
                freeze_override,
                ..crate::rollout::audit::collect(selected.repo.root())
            };
            let mut prepared: Vec<_> = prepared.into_iter().flatten().collect();
            for steps in &mut prepared {
                steps.options.audit = Some(audit.clone());
                steps.options.record_key = record_key.clone();
            }
            prepared
        }
    };
    if let Some(id) = &waves.resume {
        let resumed = prepared
            .iter_mut()
            .try_for_each(|steps| steps.resume_deployment(&mut plan, id, waves.until_wave));
        if let Err(why) = resumed {
            give_back(prepared).await;
            return Err(crate::Error::Reported(format!("--resume {id}: {why}")));
        }
    }
    for (release, steps) in releases.iter().zip(&mut prepared) {
        steps.options.history_keep = EnvironmentHistory::new(
            steps
                .clusters
                .iter()
                .map(|(context, p)| (context.as_str(), &p.history)),
        )
        .kept_by_history_limit(&NextRun::Deploy {
            digests: steps
                .clusters
                .iter()
                .filter_map(|(context, p)| Some((context.clone(), p.rendered()?.digest.clone())))
                .collect(),
            resuming: waves.resume.clone(),
        });
        steps.gates = Some(GateSetup {
            vars: GateVars {
                release: release.descriptor.metadata.name.clone(),
                environment: plan.environment.clone(),
                deployment_id: deployment_id.clone(),
                version: String::new(),
                kubeconfig: selected.kubeconfig.for_child_process(),
                hidden: crate::rollout::gates::hidden_variables(&selected.env.environment),
            },
            root: selected.repo.root().to_path_buf(),
        });
    }
    let plan = &plan;
    let interrupt = Interrupt::on_signals();
    let notifier = Notifier::new(&selected.env.environment.notify);
    let reports =
        futures::future::join_all(releases.iter().zip(&prepared).map(|(release, steps)| {
            let run = Run {
                plan,
                info: RunInfo {
                    operation: settings.operation.into(),
                    release: release.descriptor.metadata.name.clone(),
                    deployment_id: deployment_id.clone(),
                    target: None,
                },
                interrupt: &interrupt,
                reporter: reporter_for(release),
                notifier: &notifier,
                version: steps.clusters.values().find_map(Prepared::app_version),
            };
            async move { run.execute(steps, |_| {}).await }
        }))
        .await;
    Ok(reports)
}

/// Gives back the leases that runs prepared and then not started hold: refused before
/// any change, they hold nothing either.
async fn give_back(prepared: impl IntoIterator<Item = crate::rollout::kube_steps::KubeSteps>) {
    futures::future::join_all(
        prepared
            .into_iter()
            .map(|steps| async move { steps.leases.release_all().await }),
    )
    .await;
}
