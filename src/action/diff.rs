//! `flotilla diff RELEASE --env E [--cluster CTX] [-o json]`: what a deploy would change,
//! by server-side dry-run apply against live; secret values shown only as digests.

use super::cluster_release as ops;
use super::one_cluster::{self, TargetArgs};
use super::status::show;
use crate::output::OutputFormat;
use crate::Result;
use clap::Args;
use std::path::Path;

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &DiffArgs) -> Result<()> {
    let target = one_cluster::open(root, &args.target).await?;
    let records = ops::history(&target.handle, target.namespace(), target.name()).await?;
    let revision = records.last().map_or(1, |r| r.revision + 1);
    let rendered =
        one_cluster::render(&target, &args.set, args.version.as_deref(), revision).await?;
    let diffs = ops::diff(&target.handle, &rendered).await?;
    match args.output {
        OutputFormat::Json => {
            crate::output::print(&serde_json::to_string_pretty(&diffs).unwrap_or_default())?
        }
        OutputFormat::Table => {
            for d in diffs.iter().filter(|d| d.action != "unchanged") {
                crate::output::print(&format!(
                    "{} {} ({})",
                    d.action, d.object, target.cluster.context
                ))?;
                for c in &d.changes {
                    crate::output::print(&format!(
                        "    {}: {} -> {}",
                        c.path,
                        show(&c.from),
                        show(&c.to)
                    ))?;
                }
            }
            if diffs.iter().all(|d| d.action == "unchanged") {
                crate::output::print(&format!("no changes on {}", target.cluster.context))?;
            }
        }
    }
    Ok(())
}
