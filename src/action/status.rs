//! `flotilla status RELEASE --env E [--cluster CTX] [-o json]`: the recorded revision,
//! live health of its objects, and drift between live and recorded.

use super::cluster_release as ops;
use super::one_cluster::{self, TargetArgs};
use crate::output::OutputFormat;
use crate::Result;
use clap::Args;
use std::path::Path;
use tabled::{Table, Tabled};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Tabled)]
struct Row {
    object: String,
    health: String,
    drift: String,
}

pub async fn run(root: &Path, args: &StatusArgs) -> Result<()> {
    let target = one_cluster::open(root, &args.target).await?;
    let report = ops::status(&target.handle, target.namespace(), target.name()).await?;
    match args.output {
        OutputFormat::Json => {
            crate::output::print(&serde_json::to_string_pretty(&report).unwrap_or_default())?
        }
        OutputFormat::Table => {
            crate::output::print(&format!(
                "{} on {}: revision {} {} (deployment {}, version {}){}",
                report.release,
                report.context,
                report.revision,
                report.status,
                report.deployment_id,
                report.app_version,
                if report.drifted() { ", DRIFTED" } else { "" }
            ))?;
            let rows = report.objects.iter().map(|o| Row {
                object: o.object.to_string(),
                health: o.health.clone(),
                drift: o
                    .drift
                    .iter()
                    .map(|c| format!("{}: {} -> {}", c.path, show(&c.from), show(&c.to)))
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
            crate::output::print(&crate::output::table_text(Table::new(rows)))?;
        }
    }
    Ok(())
}

pub(crate) fn show(value: &Option<serde_json::Value>) -> String {
    value.as_ref().map_or("(none)".into(), |v| v.to_string())
}
