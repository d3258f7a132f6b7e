//! The fleet view: every release of the repository in every cluster of its
//! environments, read at once, as one serialisable value the page, `status -o html`
//! and the JSON endpoint render. Read-only: the clusters are reached through
//! `rollout::connect`, their records through `ops`, and every question asked of the
//! records is `release`'s (a deployment's state, the rollback target).

use crate::cluster::{ClusterError, Diagnosis};
use crate::config::{LoadedEnvironment, LoadedRelease, Repo};
use crate::ops::{self, ClusterHealth, StatusReport};
use crate::release::freeze::judge;
use crate::release::{ClusterFreeze, DeploymentState, EnvironmentHistory, History, Status};
use crate::rollout::EnvSelection;
use crate::storage::freeze::read_freeze;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;

/// Everything the dashboard shows, as read at `generated`.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    pub generated: DateTime<Utc>,
    pub environments: Vec<EnvironmentView>,
}

/// One environment: its clusters (in plan order) and each release on them.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentView {
    pub name: String,
    pub clusters: Vec<String>,
    pub releases: Vec<ReleaseView>,
    /// Why the environment could not be read at all (its file, the kubeconfig); its
    /// clusters are then not shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One release across the clusters of an environment.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub name: String,
    pub namespace: String,
    /// One per cluster, in the environment's order.
    pub cells: Vec<Cell>,
    /// Every deployment id recorded here, newest first.
    pub timeline: Vec<DeploymentView>,
    /// What a plain `rollback` would go back to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_target: Option<String>,
}

/// How a cell of the matrix looks: its colour in the page, its word in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellState {
    Healthy,
    Progressing,
    Failing,
    /// The cluster gave no answer: the others are shown all the same.
    Unreachable,
    /// Reached, and the release has no revision there (or was uninstalled).
    NotInstalled,
    /// Reached, but the records or the objects could not be read.
    Error,
}

impl std::fmt::Display for CellState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CellState::Healthy => "healthy",
            CellState::Progressing => "progressing",
            CellState::Failing => "failing",
            CellState::Unreachable => "unreachable",
            CellState::NotInstalled => "not installed",
            CellState::Error => "unreadable",
        })
    }
}

impl From<ClusterHealth> for CellState {
    fn from(health: ClusterHealth) -> Self {
        match health {
            ClusterHealth::Healthy => CellState::Healthy,
            ClusterHealth::Progressing => CellState::Progressing,
            ClusterHealth::Failing => CellState::Failing,
        }
    }
}

/// One release in one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub cluster: String,
    pub state: CellState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The deployment whose content it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The run that put that content back (a rollback, a run's restore), when it is
    /// another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_back_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// The revision's recorded status (`deployed`, `failed`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it is not healthy, or why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many recorded objects differ live from the record.
    pub drifted: usize,
    /// Every pod with a stuck container (`pod NAME container C: REASON`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing_pods: Vec<String>,
    /// A failing cluster's diagnosis: its failing pods with their last log lines, the
    /// newest events (scrubbed and bounded as in a run's report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnosis: Vec<String>,
    /// The environment's freeze as this cluster keeps it, or a window in force: why a
    /// deploy would be refused here now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<String>,
    /// Who holds the release's lease here now (a run in progress).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<String>,
    /// The cell's own page in the dashboard.
    pub page: String,
}

/// One deployment id in an environment.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentView {
    pub id: String,
    /// `None` for an id only restores recorded (never deployed here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<DeploymentState>,
    pub version: String,
    /// When its first record here was written.
    pub created: DateTime<Utc>,
    /// `user@host` of its first record.
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Each revision written under its id, cluster by cluster: the run's picture.
    pub runs: Vec<ClusterRun>,
    pub rollback_target: bool,
    /// Its page in the dashboard: the run's phases on a time axis.
    pub page: String,
}

/// One revision a run wrote in one cluster, as its record tells: when it started,
/// how long until healthy, when it was last written, and why it failed.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRun {
    pub cluster: String,
    pub revision: u32,
    pub status: String,
    /// The deployment whose content it put back (a restore), when not its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restores: Option<String>,
    pub started: DateTime<Utc>,
    /// Seconds from its start until healthy, when it became healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_after: Option<i64>,
    /// Seconds from its start until its record was last written.
    pub recorded_after: i64,
    /// Why it failed, or other notes of the record.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where its time went (empty in records written before phases were).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<crate::release::PhaseTime>,
}

impl ClusterRun {
    fn of(cluster: &str, record: &crate::release::ReleaseRecord) -> ClusterRun {
        ClusterRun {
            cluster: cluster.to_owned(),
            revision: record.revision,
            status: record.status.to_string(),
            restores: record.restores.clone(),
            started: record.created,
            healthy_after: record
                .healthy_at
                .map(|at| (at - record.created).num_seconds()),
            recorded_after: (record.updated - record.created).num_seconds(),
            description: crate::redact::scrub(&record.description),
            phases: record.phases.clone(),
        }
    }
}

/// One release as read in one cluster.
pub struct Found {
    pub history: History,
    /// `None` when the release is not installed there.
    pub report: Option<StatusReport>,
    /// For a failing cluster: its failing pods, their events and last log lines.
    pub diagnosis: Option<Diagnosis>,
    /// Who holds the release's lease there now.
    pub locked: Option<String>,
    /// The environment's freeze as that cluster keeps it (the same for each release).
    pub frozen: Option<String>,
}

/// One cluster's answer for the releases of an environment, as read.
pub type ClusterAnswer = Result<Vec<Found>, crate::Error>;

/// Reads every environment of the repository (or only `only`) at once: each
/// environment's clusters concurrently, each cluster asked for every release once.
pub async fn read(
    root: &Path,
    only: Option<&str>,
    kubeconfig: Option<&Path>,
) -> crate::Result<FleetView> {
    let repo = Repo::open(root)?;
    let names = match only {
        Some(name) => vec![name.to_owned()],
        None => repo.environment_names()?,
    };
    let releases = repo.releases()?;
    let environments = futures::future::join_all(
        names
            .iter()
            .map(|name| read_environment(root, &repo, name, &releases, kubeconfig)),
    )
    .await;
    Ok(FleetView {
        generated: Utc::now(),
        environments,
    })
}

/// The view of one release in one environment (`status -o html`).
pub async fn read_release(
    root: &Path,
    env: &EnvSelection,
    release: &LoadedRelease,
) -> crate::Result<FleetView> {
    let selected = crate::rollout::configure(root, env)?.with_kubeconfig()?;
    let environment = read_selected(&selected, std::slice::from_ref(release)).await;
    Ok(FleetView {
        generated: Utc::now(),
        environments: vec![environment],
    })
}

async fn read_environment(
    root: &Path,
    repo: &Repo,
    name: &str,
    releases: &[LoadedRelease],
    kubeconfig: Option<&Path>,
) -> EnvironmentView {
    let selection = EnvSelection {
        env: Some(name.to_owned()),
        kubeconfig: kubeconfig.map(Path::to_owned),
        ..EnvSelection::default()
    };
    let selected = match crate::rollout::configure(root, &selection)
        .and_then(|configured| configured.with_kubeconfig())
    {
        Ok(selected) => selected,
        Err(err) => {
            return EnvironmentView {
                name: name.to_owned(),
                clusters: Vec::new(),
                releases: Vec::new(),
                error: Some(err.to_string()),
            }
        }
    };
    let mine: Vec<LoadedRelease> = releases
        .iter()
        .filter(|release| applies(repo, release, &selected.env))
        .cloned()
        .collect();
    read_selected(&selected, &mine).await
}

/// Whether `release` may run in `env` (its checks pass): the others are not shown.
fn applies(repo: &Repo, release: &LoadedRelease, env: &LoadedEnvironment) -> bool {
    repo.check_release(release, env).is_ok()
}

async fn read_selected(
    selected: &crate::rollout::Selected,
    releases: &[LoadedRelease],
) -> EnvironmentView {
    let places = places_named(releases);
    let places = &places;
    let environment = &selected.env.environment;
    let release_namespaces: Vec<&str> = places.iter().map(|(_, ns)| ns.as_str()).collect();
    let freeze_places = crate::release::freeze::namespaces(environment, &release_namespaces);
    let freeze_places = &freeze_places;
    let answers = crate::rollout::connect::on_each(
        &selected.plan,
        &selected.kubeconfig,
        |_, handle| async move {
            let frozen = frozen_in(&handle, environment, freeze_places).await;
            let mut found = Vec::new();
            for (name, namespace) in places {
                let history = ops::history(&handle, namespace, name).await?;
                let report = if history
                    .current()
                    .is_some_and(|r| r.status != Status::Uninstalled)
                {
                    Some(ops::status_of(&handle, namespace, name, &history).await?)
                } else {
                    None
                };
                let diagnosis = match (&report, history.current()) {
                    (Some(report), Some(current)) if report.health == ClusterHealth::Failing => {
                        // No Vault here: the scrubber learns the values a log line may
                        // echo from the release's live Secrets before the logs are read.
                        // Secrets that cannot be read: no log line is shown unscrubbed.
                        match ops::register_live_secrets(&handle, namespace, &current.manifest)
                            .await
                        {
                            Ok(()) => handle.diagnose(namespace, name, &as_failure(report)).await,
                            Err(err) => {
                                tracing::warn!("{err}: no diagnosis shown");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                // A lease that cannot be read shows no holder: the cell still shows.
                let locked = handle.lock_holder(namespace, name).await.ok().flatten();
                found.push(Found {
                    history,
                    report,
                    diagnosis,
                    locked,
                    frozen: frozen.clone(),
                });
            }
            Ok::<_, crate::Error>(found)
        },
    )
    .await;
    let answers: Vec<(String, ClusterAnswer)> = answers
        .into_iter()
        .map(|(cluster, answer)| (cluster.context, answer))
        .collect();
    assemble(&selected.env.environment.name, places, &answers)
}

/// The environment's freeze as one cluster keeps it in any of `places`, or a freeze
/// window of its file in force now, judged as `deploy` judges it
/// (`release::freeze::judge`): the line a refusal would print, `None` when open.
async fn frozen_in(
    handle: &crate::cluster::ClusterHandle,
    environment: &crate::config::Environment,
    places: &[String],
) -> Option<String> {
    let reads = futures::future::join_all(
        places
            .iter()
            .map(|namespace| read_freeze(handle, namespace, &environment.name)),
    )
    .await;
    let read = reads
        .iter()
        .find(|r| matches!(r, ClusterFreeze::Frozen(_)))
        .or_else(|| {
            reads
                .iter()
                .find(|r| matches!(r, ClusterFreeze::Unreadable(_)))
        })
        .cloned()
        .unwrap_or(ClusterFreeze::Clear);
    let windows = environment
        .freeze
        .as_ref()
        .map(|f| f.windows.as_slice())
        .unwrap_or_default();
    let verdict = judge(&[(handle.context().to_owned(), read)], windows, Utc::now());
    (!verdict.is_open()).then(|| crate::redact::scrub(&verdict.text(&environment.name)))
}

/// A failing report as the error a health wait ends with, which is what a diagnosis
/// explains: its first failed workload, when one is.
fn as_failure(report: &StatusReport) -> ClusterError {
    let object = report
        .objects
        .iter()
        .find(|o| matches!(o.health, ops::ObjectHealth::Failed(_)))
        .map(|o| o.object.to_string())
        .unwrap_or_default();
    ClusterError::Unhealthy {
        context: report.context.clone(),
        object,
        reason: report.reason.clone().unwrap_or_default(),
    }
}

fn places_named(releases: &[LoadedRelease]) -> Vec<(String, String)> {
    releases
        .iter()
        .map(|r| {
            (
                r.descriptor.metadata.name.clone(),
                r.descriptor.metadata.namespace.clone(),
            )
        })
        .collect()
}

/// The view of one environment from each cluster's answer (by kube context, in the
/// plan's order) for `releases` (name, namespace), in that order.
pub fn assemble(
    environment: &str,
    releases: &[(String, String)],
    answers: &[(String, ClusterAnswer)],
) -> EnvironmentView {
    let releases = releases
        .iter()
        .enumerate()
        .map(|(i, (name, namespace))| {
            let cells = answers
                .iter()
                .map(|(context, answer)| match answer {
                    Ok(found) => match found.get(i) {
                        Some(
                            found @ Found {
                                report: Some(report),
                                ..
                            },
                        ) => cell_of(found, report),
                        Some(found) => Cell {
                            locked: found.locked.clone(),
                            frozen: found.frozen.clone(),
                            ..Cell::empty(context, CellState::NotInstalled, None)
                        },
                        None => Cell::empty(context, CellState::NotInstalled, None),
                    },
                    Err(err) => Cell::empty(context, failure_state(err), Some(failure(err))),
                })
                .map(|cell| Cell {
                    page: cell_page(environment, name, &cell.cluster),
                    ..cell
                })
                .collect();
            let histories: Vec<(&str, &History)> = answers
                .iter()
                .filter_map(|(context, answer)| {
                    let found = answer.as_ref().ok()?.get(i)?;
                    Some((context.as_str(), &found.history))
                })
                .collect();
            let (timeline, rollback_target) = timeline(&histories);
            ReleaseView {
                name: name.clone(),
                namespace: namespace.clone(),
                cells,
                timeline,
                rollback_target,
            }
        })
        .collect();
    EnvironmentView {
        name: environment.to_owned(),
        clusters: answers.iter().map(|(c, _)| c.clone()).collect(),
        releases,
        error: None,
    }
}

fn failure_state(err: &crate::Error) -> CellState {
    match err {
        crate::Error::Cluster(ClusterError::Unreachable { .. }) => CellState::Unreachable,
        _ => CellState::Error,
    }
}

/// A cluster's failure in its cell: scrubbed as every output is.
fn failure(err: &crate::Error) -> String {
    crate::redact::scrub(&crate::rollout::connect::failure_text(err))
}

/// A cluster's cell: the deployment whose content it runs (a rollback's revision runs
/// an earlier deployment's: the one its timeline row shows), and the run that put it
/// there when that is another.
fn cell_of(found: &Found, report: &StatusReport) -> Cell {
    let history = &found.history;
    let content = history
        .get(report.revision)
        .map_or(report.deployment_id.as_str(), |r| r.content_id());
    Cell {
        cluster: report.context.clone(),
        state: report.health.into(),
        version: Some(report.app_version.clone()),
        deployment_id: Some(content.to_owned()),
        put_back_by: (content != report.deployment_id).then(|| report.deployment_id.clone()),
        revision: Some(report.revision),
        status: Some(report.status.to_string()),
        reason: report.reason.clone(),
        drifted: report.objects.iter().filter(|o| o.drifted()).count(),
        failing_pods: report.failing_pods.clone(),
        diagnosis: found
            .diagnosis
            .as_ref()
            .map(crate::cluster::diagnosis_lines)
            .unwrap_or_default(),
        frozen: found.frozen.clone(),
        locked: found.locked.clone(),
        page: String::new(),
    }
}

/// A path segment of the dashboard's addresses: a kube context may hold `/` or `:`.
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The page of one release in one cluster of an environment.
pub fn cell_page(environment: &str, release: &str, cluster: &str) -> String {
    format!(
        "/cluster/{}/{}/{}",
        segment(environment),
        segment(release),
        segment(cluster)
    )
}

/// The page of one deployment id: its run's picture.
pub fn run_page(id: &str) -> String {
    format!("/run/{}", segment(id))
}

impl Cell {
    fn empty(cluster: &str, state: CellState, reason: Option<String>) -> Cell {
        Cell {
            cluster: cluster.to_owned(),
            state,
            version: None,
            deployment_id: None,
            put_back_by: None,
            revision: None,
            status: None,
            reason,
            drifted: 0,
            failing_pods: Vec::new(),
            diagnosis: Vec::new(),
            frozen: None,
            locked: None,
            page: String::new(),
        }
    }
}

/// Every deployment id of the clusters read, newest first, and the rollback target.
fn timeline(histories: &[(&str, &History)]) -> (Vec<DeploymentView>, Option<String>) {
    let environment = EnvironmentHistory::new(histories.iter().copied());
    let target = environment.rollback_target();
    let deployments = environment
        .deployments()
        .into_iter()
        .map(|id| {
            let records: Vec<(&str, &crate::release::ReleaseRecord)> = histories
                .iter()
                .flat_map(|(context, history)| {
                    history
                        .iter()
                        .filter(move |r| r.deployment_id == id)
                        .map(move |r| (*context, r))
                })
                .collect();
            let first = records.iter().map(|(_, r)| *r).min_by_key(|r| r.created);
            DeploymentView {
                id: id.to_owned(),
                state: environment.state(id),
                version: first.map(|r| r.app_version.clone()).unwrap_or_default(),
                created: first.map_or_else(Utc::now, |r| r.created),
                by: first
                    .map(|r| format!("{}@{}", r.user, r.host))
                    .unwrap_or_default(),
                commit: first
                    .and_then(|r| r.audit.as_ref())
                    .and_then(|a| a.git_commit.clone()),
                runs: records
                    .iter()
                    .map(|(context, r)| ClusterRun::of(context, r))
                    .collect(),
                rollback_target: target == Some(id),
                page: run_page(id),
            }
        })
        .collect();
    (deployments, target.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;

    fn unreachable(context: &str) -> crate::Error {
        crate::Error::Cluster(ClusterError::Unreachable {
            context: context.into(),
            message: "connection refused".into(),
            source: None,
        })
    }

    fn report(context: &str, id: &str, health: ClusterHealth) -> StatusReport {
        StatusReport {
            context: context.into(),
            release: "hello".into(),
            revision: 2,
            status: Status::Deployed,
            deployment_id: id.into(),
            app_version: "1.2.3".into(),
            health,
            reason: (health != ClusterHealth::Healthy)
                .then(|| "pod web-1 container web: CrashLoopBackOff".into()),
            failing_pods: Vec::new(),
            objects: Vec::new(),
        }
    }

    fn found(history: History, report: Option<StatusReport>) -> Found {
        Found {
            history,
            report,
            diagnosis: None,
            locked: None,
            frozen: None,
        }
    }

    fn history() -> History {
        History::new(vec![
            record(1, "d-old", Status::Superseded),
            record(2, "d-new", Status::Deployed),
        ])
    }

    fn two_releases() -> Vec<(String, String)> {
        vec![("hello".into(), "ns".into()), ("other".into(), "ns".into())]
    }

    #[test]
    fn an_unreachable_cluster_is_marked_and_the_others_still_show() {
        let answers = vec![
            (
                "east".to_owned(),
                Ok(vec![
                    found(
                        history(),
                        Some(report("east", "d-new", ClusterHealth::Healthy)),
                    ),
                    found(History::new(Vec::new()), None),
                ]),
            ),
            ("west".to_owned(), Err(unreachable("west"))),
        ];
        let view = assemble("prod", &two_releases(), &answers);
        assert_eq!(view.clusters, ["east", "west"]);
        let hello = &view.releases[0];
        assert_eq!(hello.cells[0].state, CellState::Healthy);
        assert_eq!(hello.cells[0].deployment_id.as_deref(), Some("d-new"));
        assert_eq!(hello.cells[0].version.as_deref(), Some("1.2.3"));
        assert_eq!(hello.cells[1].state, CellState::Unreachable);
        assert!(hello.cells[1]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("connection refused")));
        assert_eq!(view.releases[1].cells[0].state, CellState::NotInstalled);
        assert_eq!(view.releases[1].cells[1].state, CellState::Unreachable);
    }

    #[test]
    fn the_timeline_is_newest_first_with_states_and_the_rollback_target() {
        let answers = vec![
            (
                "east".to_owned(),
                Ok(vec![found(
                    history(),
                    Some(report("east", "d-new", ClusterHealth::Healthy)),
                )]),
            ),
            (
                "west".to_owned(),
                Ok(vec![found(
                    history(),
                    Some(report("west", "d-new", ClusterHealth::Failing)),
                )]),
            ),
        ];
        let view = assemble("prod", &two_releases()[..1], &answers);
        let hello = &view.releases[0];
        let ids: Vec<&str> = hello.timeline.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["d-new", "d-old"]);
        assert_eq!(hello.timeline[0].state, Some(DeploymentState::Complete));
        assert_eq!(hello.rollback_target.as_deref(), Some("d-old"));
        assert!(hello.timeline[1].rollback_target && !hello.timeline[0].rollback_target);
        let runs: Vec<(&str, u32, &str)> = hello.timeline[0]
            .runs
            .iter()
            .map(|r| (r.cluster.as_str(), r.revision, r.status.as_str()))
            .collect();
        assert_eq!(runs, [("east", 2, "deployed"), ("west", 2, "deployed")]);
        assert_eq!(hello.cells[1].state, CellState::Failing);
        assert!(hello.cells[1]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("CrashLoopBackOff")));
    }

    #[test]
    fn a_failed_then_rolled_back_deployment_says_so() {
        let mut undone = record(3, "d-bad", Status::RolledBack);
        undone.app_version = "2.0.0".into();
        let history = History::new(vec![
            record(1, "d-old", Status::Superseded),
            record(2, "d-new", Status::Superseded),
            undone,
            {
                let mut back = record(4, "d-bad", Status::Deployed);
                back.restores = Some("d-new".into());
                back
            },
        ]);
        let mut now = report("east", "d-bad", ClusterHealth::Healthy);
        now.revision = 4;
        let answers = vec![("east".to_owned(), Ok(vec![found(history, Some(now))]))];
        let view = assemble("prod", &two_releases()[..1], &answers);
        let east = &view.releases[0].cells[0];
        assert_eq!(
            east.deployment_id.as_deref(),
            Some("d-new"),
            "runs d-new's content"
        );
        assert_eq!(east.put_back_by.as_deref(), Some("d-bad"));
        let bad = view.releases[0]
            .timeline
            .iter()
            .find(|d| d.id == "d-bad")
            .expect("d-bad in the timeline");
        assert_eq!(bad.state, Some(DeploymentState::RolledBack));
        assert_eq!(bad.version, "2.0.0");
    }
}
