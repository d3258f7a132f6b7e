//! `flotilla status RELEASE --env E [--clusters CTX,CTX] [-o json]`: per cluster of the
//! environment (all of them unless named), the recorded revision, live health of its
//! objects, and drift between live and recorded.

use super::{every_cluster, ReleaseSelection};
use crate::dashboard::view::CellState;
use crate::ops::{self, ClusterHealth, StatusReport};
use crate::output::StatusFormat;
use crate::Result;
use std::path::Path;
use tabled::{Table, Tabled};

#[derive(Tabled)]
struct SummaryRow {
    #[tabled(rename = "CLUSTER")]
    cluster: String,
    #[tabled(rename = "REVISION")]
    revision: String,
    #[tabled(rename = "DEPLOYMENT ID")]
    deployment_id: String,
    #[tabled(rename = "VERSION")]
    version: String,
    #[tabled(rename = "HEALTH")]
    health: String,
    #[tabled(rename = "DRIFTED")]
    drifted: String,
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "OBJECT")]
    object: String,
    #[tabled(rename = "HEALTH")]
    health: String,
    #[tabled(rename = "DRIFT")]
    drift: String,
}

pub async fn run(root: &Path, args: &ReleaseSelection, output: StatusFormat) -> Result<()> {
    let opened = every_cluster::open(root, args)?;
    if output == StatusFormat::Html {
        return html(root, args, &opened).await;
    }
    let (text, outcome) = state(&opened, output).await?;
    crate::output::print(&text)?;
    outcome
}

/// Every cluster's state read once: the text `status` prints (table or document), and
/// the outcome that makes its exit code. Read whole before anything is printed, so that
/// `--watch` replaces one state with the next without a blank screen between them.
async fn state(
    opened: &every_cluster::Opened,
    output: StatusFormat,
) -> Result<(String, Result<()>)> {
    let (namespace, name) = (opened.namespace(), opened.name());
    let both = every_cluster::query_each(opened, |_, handle| async move {
        // The records once: the status, and a deployment paused by --until-wave, which
        // status alone cannot tell.
        let history = ops::history(&handle, namespace, name).await?;
        if history.current().is_none() {
            not_installed_here(&handle, namespace, name).await?;
        }
        let report = ops::status_of(&handle, namespace, name, &history).await?;
        Ok((report, history))
    })
    .await;
    let mut histories = Vec::new();
    let answers: Vec<_> = both
        .into_iter()
        .map(|(cluster, answer)| {
            let report = answer.map(|(report, history)| {
                histories.push((cluster.context.clone(), history));
                report
            });
            (cluster, report)
        })
        .collect();
    super::freeze::notice(&opened.selected, namespace).await;
    let paused = paused_note(opened, &answers, &histories);
    if let (Some(note), true) = (&paused, output.is_document()) {
        crate::output::eprint_line(note);
    }
    let text = match output {
        StatusFormat::Json | StatusFormat::Yaml => {
            let doc: serde_json::Map<String, serde_json::Value> = answers
                .iter()
                .map(|(cluster, answer)| {
                    let value = match answer {
                        Ok(report) => serde_json::to_value(report).unwrap_or_default(),
                        Err(err) => {
                            serde_json::json!({ "error": every_cluster::failure_text(err) })
                        }
                    };
                    (cluster.context.clone(), value)
                })
                .collect();
            crate::output::json_text(&doc)?
        }
        StatusFormat::Table | StatusFormat::Html => {
            let rows = answers.iter().map(|(cluster, answer)| match answer {
                Ok(report) => summary(report),
                Err(err) => SummaryRow {
                    cluster: cluster.context.clone(),
                    revision: "-".into(),
                    deployment_id: "-".into(),
                    version: "-".into(),
                    health: every_cluster::failure_text(err),
                    drifted: "-".into(),
                },
            });
            let tones: Vec<_> = answers
                .iter()
                .map(|(_, answer)| match answer {
                    Ok(report) if report.health == ClusterHealth::Healthy => {
                        Some(crate::output::Tone::Good)
                    }
                    Ok(report) if report.health == ClusterHealth::Progressing => None,
                    _ => Some(crate::output::Tone::Bad),
                })
                .collect();
            let mut text =
                crate::output::paint_rows(&crate::output::table_text(Table::new(rows)), &tones);
            for report in answers.iter().filter_map(|(_, a)| a.as_ref().ok()) {
                if report.drifted()
                    || report.unhealthy().next().is_some()
                    || !report.failing_pods.is_empty()
                {
                    text.push('\n');
                    text.push_str(&details(report));
                }
            }
            if let Some(note) = &paused {
                text.push('\n');
                text.push_str(note);
            }
            text
        }
    };
    let failing: Vec<String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .filter(|r| r.health == ClusterHealth::Failing)
        .map(|r| match (&r.reason, output.is_document()) {
            (Some(reason), true) => format!("{}: {reason}", r.context),
            // The table's HEALTH cell and the details under it said why: named once.
            _ => r.context.clone(),
        })
        .collect();
    // An unreachable cluster (exit 3) is reported before a failing one.
    let outcome = every_cluster::finish(answers).and_then(|()| {
        if failing.is_empty() {
            Ok(())
        } else {
            let why = if output.is_document() {
                ""
            } else {
                " (why: in the table above)"
            };
            Err(crate::Error::Unhealthy(format!(
                "{name} is failing in {}{why}",
                failing.join(if output.is_document() { "; " } else { ", " })
            )))
        }
    });
    Ok((text, outcome))
}

/// A cluster without a record of `name` in `namespace`: when it holds records of the
/// release in other namespaces (a wrong `--namespace`, a descriptor moved), the error
/// names them. A list of every namespace that may be denied: then the plain answer.
async fn not_installed_here(
    handle: &crate::cluster::ClusterHandle,
    namespace: &str,
    name: &str,
) -> Result<()> {
    let elsewhere = crate::storage::namespaces_with_records(handle, name)
        .await
        .unwrap_or_default();
    if elsewhere.is_empty() {
        return Ok(());
    }
    Err(crate::Error::Cluster(
        crate::cluster::ClusterError::Release {
            context: handle.context().to_owned(),
            message: format!(
                "release `{name}` is not installed in namespace `{namespace}`; {}",
                every_cluster::records_elsewhere(elsewhere)
            ),
        },
    ))
}

/// `status --watch`: [`run`] every `interval` until SIGINT or SIGTERM, or until the
/// reader of stdout goes away (`| head`); on a terminal each state replaces the last
/// (the screen cleared), elsewhere each is appended under a line with its time. The
/// outcome is the last state's, so the exit code says how the fleet was when the
/// watch ended.
pub async fn watch(
    root: &Path,
    args: &ReleaseSelection,
    output: StatusFormat,
    interval: std::time::Duration,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if output == StatusFormat::Html {
        return Err(crate::Error::Reported(
            "status --watch prints tables, JSON or YAML: -o html is one page, written once (the dashboard reloads itself: `flotilla dashboard`)".into(),
        ));
    }
    if interval.is_zero() {
        return Err(crate::Error::Reported(
            "--interval 0s would read the clusters without a pause; give at least 1s".into(),
        ));
    }
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return run(root, args, output).await;
    };
    let opened = every_cluster::open(root, args)?;
    let redraw = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let read = state(&opened, output).await;
        let heading = format!(
            "every {}: {}",
            humantime::format_duration(interval),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        let last = match read {
            Ok((text, outcome)) => {
                // The new state in one write, the last one on screen until then.
                let shown = if redraw {
                    // Home and clear, then the new state: `watch(1)`'s screen.
                    format!("\x1b[H\x1b[2J{heading}\n{text}")
                } else if output.is_document() {
                    text
                } else {
                    format!("--- {heading}\n{text}")
                };
                crate::output::print(&shown)?;
                outcome
            }
            Err(err) => Err(err),
        };
        if let Err(err) = &last {
            // The state's error, as the final one would say it, and the watch goes on.
            crate::output::eprint_line(&format!("{heading}: {err}"));
        }
        if crate::output::reader_gone() {
            return last;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = int.recv() => return last,
            _ = term.recv() => return last,
        }
    }
}

/// `-o html`: the dashboard's matrix and timeline of the release as one page; the exit
/// code as the table's (an unreachable cluster 3, a failing one 1).
async fn html(root: &Path, args: &ReleaseSelection, opened: &every_cluster::Opened) -> Result<()> {
    let view = crate::dashboard::view::read_release(root, &args.env, &opened.release).await?;
    crate::output::print(&crate::dashboard::html::page(&view)?)?;
    super::freeze::notice(&opened.selected, opened.namespace()).await;
    let cells = view
        .environments
        .iter()
        .flat_map(|e| &e.releases)
        .flat_map(|r| &r.cells);
    let mut failures = Vec::new();
    for cell in cells {
        let why = || cell.reason.clone().unwrap_or_default();
        match cell.state {
            CellState::Unreachable => failures.push(crate::Error::Cluster(
                crate::cluster::ClusterError::Unreachable {
                    context: cell.cluster.clone(),
                    message: why(),
                    source: None,
                },
            )),
            CellState::NotInstalled => failures.push(crate::Error::Cluster(
                crate::cluster::ClusterError::Release {
                    context: cell.cluster.clone(),
                    message: format!("release `{}` is not installed", opened.name()),
                },
            )),
            CellState::Failing | CellState::Error => {
                failures.push(crate::Error::Unhealthy(format!(
                    "{} is {} in {}: {}",
                    opened.name(),
                    cell.state,
                    cell.cluster,
                    why()
                )))
            }
            CellState::Healthy | CellState::Progressing => {}
        }
    }
    every_cluster::worst(failures)
}

fn summary(report: &StatusReport) -> SummaryRow {
    let drifted = report.objects.iter().filter(|o| o.drifted()).count();
    SummaryRow {
        cluster: report.context.clone(),
        revision: format!("{} {}", report.revision, report.status),
        deployment_id: report.deployment_id.clone(),
        version: report.app_version.clone(),
        health: match &report.reason {
            Some(reason) => format!("{}: {reason}", report.health),
            None => report.health.to_string(),
        },
        drifted: drifted.to_string(),
    }
}

/// One cluster's objects, under a header naming the cluster.
fn details(report: &StatusReport) -> String {
    let rows = report.objects.iter().map(|o| Row {
        object: o.object.to_string(),
        health: o.health.to_string(),
        drift: o
            .drift
            .iter()
            .map(|c| format!("{}: {} -> {}", c.path, show(&c.from), show(&c.to)))
            .collect::<Vec<_>>()
            .join("\n"),
    });
    let pods: String = report
        .failing_pods
        .iter()
        .map(|p| format!("{p}\n"))
        .collect();
    format!(
        "== {} ({}, revision {}{})\n{}{pods}",
        report.context,
        report.release,
        report.revision,
        if report.drifted() { ", DRIFTED" } else { "" },
        crate::output::table_text(Table::new(rows))
    )
}

pub(crate) fn show(value: &Option<serde_json::Value>) -> String {
    value.as_ref().map_or("(none)".into(), |v| v.to_string())
}

/// The line that says a deployment the clusters run is paused by `--until-wave`, and
/// the command that goes on with it.
fn paused_note(
    opened: &every_cluster::Opened,
    answers: &[(crate::config::Cluster, Result<StatusReport>)],
    histories: &[(String, crate::release::History)],
) -> Option<String> {
    let env =
        crate::release::EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
    let mut ids: Vec<&str> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .map(|r| r.deployment_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().find_map(|id| {
        let point = env.resume_point(id).ok()?;
        Some(format!(
            "deployment {id} is paused after wave {} (deploy --until-wave); to go on with the next wave: flotilla deploy {} --env {} --resume {id}",
            point.after_wave,
            opened.name(),
            opened.selected.plan.environment
        ))
    })
}
