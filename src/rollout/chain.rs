//! The promotion chain's gate (`promotion.min_soak`): what `deploy` and `promote` into
//! an environment with a chain ask before any cluster is touched.

use super::connect::{connect_each, failure_text};
use super::plan::Plan;
use super::prepare::{artifact_of, Overrides};
use super::selection::Selected;
use crate::config::{LoadedEnvironment, LoadedRelease, Repo};
use crate::release::{soak_problems, Artifact};
use crate::Result;
use std::time::Duration;

/// The promotion chain's gate: when the target environment has `promotion.min_soak`,
/// `artifact` must have run healthy that long in every cluster of `promotion.from`
/// (asked of all of them at once); else the run is refused (exit 3), nothing changed.
/// What `deploy` and `promote` into such an environment both ask.
pub async fn require_soak(
    selected: &Selected,
    release: &LoadedRelease,
    artifact: &Artifact,
) -> Result<()> {
    let Some(chain) = &selected.env.environment.promotion else {
        return Ok(());
    };
    let Some(min_soak) = chain.min_soak else {
        return Ok(());
    };
    let previous = previous_environment(&selected.repo, &selected.env, &chain.from)?;
    let plan = Plan::new(&previous, None)?;
    let name = &release.descriptor.metadata.name;
    let digest = artifact.digest();
    let now = chrono::Utc::now();
    let clusters: Vec<(String, std::result::Result<Option<Duration>, String>)> = connect_each(
        &plan,
        &selected.kubeconfig,
        &release.descriptor.metadata.namespace,
        name,
    )
    .await
    .into_iter()
    .map(|(cluster, found)| {
        let soaked = found
            .map(|c| c.history.soaked(&digest, now))
            .map_err(|err| failure_text(&err.into()));
        (cluster.context, soaked)
    })
    .collect();
    let problems = soak_problems(&chain.from, &clusters, min_soak);
    if problems.is_empty() {
        return Ok(());
    }
    Err(crate::Error::Refused(format!(
        "{name} to {}: refused, nothing changed: promotion.min_soak ({}) of {} asks that artifact {digest} ran healthy that long in every cluster of {}:\n  {}",
        selected.env.environment.name,
        humantime::format_duration(min_soak),
        selected.env.file.display(),
        chain.from,
        problems.join("\n  ")
    )))
}

/// `promotion.from` of `env`, loaded; a name that is no environment is an error of that
/// field.
fn previous_environment(
    repo: &Repo,
    env: &LoadedEnvironment,
    from: &str,
) -> Result<LoadedEnvironment> {
    repo.environment(from).map_err(|err| {
        crate::Error::Reported(format!(
            "{}: promotion.from: {from:?}: {err}",
            env.file.display()
        ))
    })
}

/// [`require_soak`] for a `deploy` of `releases` with `overrides`: the artifact each
/// would make from the checkout, computed only when the target has a gate.
pub async fn require_soak_of_checkout(
    selected: &Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
) -> Result<()> {
    let gated = selected
        .env
        .environment
        .promotion
        .as_ref()
        .is_some_and(|c| c.min_soak.is_some());
    if !gated {
        return Ok(());
    }
    for release in releases {
        require_soak(selected, release, &artifact_of(release, overrides)?).await?;
    }
    Ok(())
}
