//! `flotilla history RELEASE --env E [--cluster CTX] [-o json]`: the recorded revisions.

use super::cluster_release as ops;
use super::one_cluster::{self, TargetArgs};
use crate::output::OutputFormat;
use crate::Result;
use clap::Args;
use std::path::Path;
use tabled::{Table, Tabled};

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Tabled)]
struct Row {
    revision: u32,
    status: String,
    #[tabled(rename = "deployment id")]
    deployment_id: String,
    version: String,
    chart: String,
    updated: String,
    by: String,
    description: String,
}

pub async fn run(root: &Path, args: &HistoryArgs) -> Result<()> {
    let target = one_cluster::open(root, &args.target).await?;
    let mut records = ops::history(&target.handle, target.namespace(), target.name()).await?;
    match args.output {
        OutputFormat::Json => {
            // The manifest and values are for `status` and rollbacks, not for listing.
            for r in &mut records {
                r.manifest.clear();
                r.values = serde_json::Value::Null;
            }
            crate::output::print(&serde_json::to_string_pretty(&records).unwrap_or_default())?;
        }
        OutputFormat::Table if records.is_empty() => crate::output::print(&format!(
            "release {} has no revisions in namespace {} of {}",
            target.name(),
            target.namespace(),
            target.cluster.context
        ))?,
        OutputFormat::Table => {
            let rows = records.iter().map(|r| Row {
                revision: r.revision,
                status: r.status.to_string(),
                deployment_id: r.deployment_id.clone(),
                version: r.app_version.clone(),
                chart: format!("{}-{}", r.chart.name, r.chart.version),
                updated: r.updated.format("%Y-%m-%d %H:%M:%S").to_string(),
                by: format!("{}@{}", r.user, r.host),
                description: r.description.clone(),
            });
            crate::output::print(&format!("{}", Table::new(rows)))?;
        }
    }
    Ok(())
}
