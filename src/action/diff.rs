//! `flotilla diff RELEASE --env E [--clusters CTX,CTX] [-o json]`: per cluster of the
//! environment (all of them unless named), what a deploy would change, by server-side
//! dry-run apply against live; secret values shown only as digests. The secrets of
//! every cluster are read from Vault once, before any cluster is contacted. It tells
//! whether anything would change, for `--exit-code` (decided in `exit`).

use super::status::show;
use super::{every_cluster, ReleaseSelection};
use crate::cluster::{DiffAction, ObjectDiff};
use crate::ops;
use crate::output::OutputFormat;
use crate::rollout::prepare::{Overrides, ReleaseRender};
use crate::Result;
use std::path::Path;

pub async fn run(
    root: &Path,
    args: &ReleaseSelection,
    overrides: &Overrides,
    output: OutputFormat,
) -> Result<Changes> {
    // Bad values need no cluster: reported before the kubeconfig is read.
    overrides.values()?;
    let opened = every_cluster::open(root, args)?;
    let selected = &opened.selected;
    let render =
        ReleaseRender::prepare(&selected.env, &opened.release, &selected.plan, overrides).await?;
    show_changes(&opened, &render, output).await
}

/// What deploying `render` would change in every selected cluster, printed per cluster
/// (also `promote --dry-run`'s output).
pub async fn show_changes(
    opened: &every_cluster::Opened,
    render: &ReleaseRender,
    output: OutputFormat,
) -> Result<Changes> {
    let answers = every_cluster::query_each(opened, |cluster, handle| async move {
        let history = ops::history(&handle, render.namespace(), render.name()).await?;
        // The key read, never made: a diff changes nothing.
        let rendered = render
            .render_keyed(&cluster, &history, &handle, false, false)
            .await?;
        Ok(ops::diff(&handle, &history, &rendered).await?)
    })
    .await;
    print_diffs(answers, output)
}

/// Prints every cluster's changes (a section per cluster, or one JSON document keyed by
/// context), then fails as the worst cluster that could not answer.
pub fn print_diffs(
    answers: Vec<(crate::config::Cluster, Result<Vec<ObjectDiff>>)>,
    output: OutputFormat,
) -> Result<Changes> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let doc: serde_json::Map<String, serde_json::Value> = answers
                .iter()
                .map(|(cluster, answer)| {
                    let value = match answer {
                        Ok(diffs) => serde_json::to_value(diffs).unwrap_or_default(),
                        Err(err) => {
                            serde_json::json!({ "error": every_cluster::failure_text(err) })
                        }
                    };
                    (cluster.context.clone(), value)
                })
                .collect();
            crate::output::print_json(&doc)?
        }
        OutputFormat::Table => {
            let sections: Vec<String> = answers
                .iter()
                .map(|(cluster, answer)| {
                    let body = match answer {
                        Ok(diffs) => section(diffs),
                        Err(err) => format!("{}\n", every_cluster::failure_text(err)),
                    };
                    format!("== {}\n{body}", cluster.context)
                })
                .collect();
            crate::output::print(&sections.join("\n"))?;
        }
    }
    let changes = if answers.iter().any(|(_, answer)| {
        answer
            .as_ref()
            .is_ok_and(|diffs| diffs.iter().any(|d| d.changes_the_release()))
    }) {
        Changes::Some
    } else {
        Changes::None
    };
    every_cluster::finish(answers)?;
    Ok(changes)
}

/// Whether a deploy would change anything in any cluster of the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changes {
    None,
    Some,
}

/// One cluster's changes, one line per changed object and one per field.
fn section(diffs: &[ObjectDiff]) -> String {
    let mut text = String::new();
    for d in diffs.iter().filter(|d| d.action != DiffAction::Unchanged) {
        if let Some(event) = &d.hook {
            text.push_str(&format!("run {} ({event} hook)\n", d.object));
            continue;
        }
        match &d.owner {
            Some(owner) => text.push_str(&format!(
                "{} {} (owned by {owner}; deploy takes it only with --adopt)\n",
                d.action, d.object
            )),
            None => text.push_str(&format!("{} {}\n", d.action, d.object)),
        }
        for c in &d.changes {
            text.push_str(&format!(
                "    {}: {} -> {}\n",
                c.path,
                show(&c.from),
                show(&c.to)
            ));
        }
    }
    if text.is_empty() {
        text.push_str("no changes\n");
    }
    text
}
