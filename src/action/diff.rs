//! `flotilla diff RELEASE --env E [--clusters CTX,CTX] [-o json]`: per cluster of the
//! environment (all of them unless named), what a deploy would change, by server-side
//! dry-run apply against live; secret values shown only as digests. The secrets of
//! every cluster are read from Vault once, before any cluster is contacted.

use super::cluster_release as ops;
use super::every_cluster::{self, ReleaseEnvArgs};
use super::status::show;
use crate::cluster::ObjectDiff;
use crate::output::OutputFormat;
use crate::rollout::kube_steps::{Overrides, ReleaseRender};
use crate::Result;
use clap::Args;
use std::path::Path;

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &DiffArgs) -> Result<()> {
    let opened = every_cluster::open(root, &args.target)?;
    let overrides = Overrides {
        sets: args.set.clone(),
        version: args.version.clone(),
    };
    let selected = &opened.selected;
    let render =
        ReleaseRender::prepare(&selected.env, &opened.release, &selected.plan, &overrides).await?;
    let render = &render;
    let answers = every_cluster::query_each(&opened, |cluster, handle| async move {
        let records = ops::history(&handle, render.namespace(), render.name()).await?;
        let rendered = render.render(&cluster, &records)?;
        Ok(ops::diff(&handle, &rendered).await?)
    })
    .await;
    match args.output {
        OutputFormat::Json => {
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
            crate::output::print(&serde_json::to_string_pretty(&doc).unwrap_or_default())?
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
    every_cluster::finish(answers)
}

/// One cluster's changes, one line per changed object and one per field.
fn section(diffs: &[ObjectDiff]) -> String {
    let mut text = String::new();
    for d in diffs.iter().filter(|d| d.action != "unchanged") {
        text.push_str(&format!("{} {}\n", d.action, d.object));
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
