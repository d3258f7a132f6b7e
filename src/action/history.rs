//! `flotilla history RELEASE --env E [--clusters a,b] [-o json]`: deployment ids as rows,
//! clusters as columns, each cell the revisions that cluster recorded for that id.

use super::{multi, ReleaseSelection};
use crate::cluster::ClusterHandle;
use crate::ops;
use crate::output::OutputFormat;
use crate::release::History;
use crate::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use tabled::builder::Builder;

#[derive(Debug, Serialize)]
struct Cell {
    revision: u32,
    status: String,
    operation: crate::release::Operation,
    /// For a rollback: the deployment whose content it brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    restores: Option<String>,
    app_version: String,
    chart: String,
    updated: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
}

impl Cell {
    /// `3 superseded (upgrade 10:41)`, `5 deployed (rollback to 2026…-ab12, 10:44)`.
    fn text(&self) -> String {
        let time = self.updated.get(11..16).unwrap_or(&self.updated);
        match &self.restores {
            Some(id) => format!(
                "{} {} (rollback to {id}, {time})",
                self.revision, self.status
            ),
            None => {
                let operation = match self.operation {
                    crate::release::Operation::Install => "install",
                    crate::release::Operation::Upgrade => "upgrade",
                    crate::release::Operation::Rollback => "rollback",
                };
                format!("{} {} ({operation} {time})", self.revision, self.status)
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    deployment_id: String,
    /// When the first cluster recorded it: rows go in this order.
    #[serde(skip)]
    first: chrono::DateTime<chrono::Utc>,
    /// context → the revisions it recorded with this id, oldest first.
    clusters: BTreeMap<String, Vec<Cell>>,
}

pub async fn run(root: &Path, args: &ReleaseSelection, output: OutputFormat) -> Result<()> {
    let configured = multi::configure(root, &args.env)?;
    let release = configured.repo.release(&args.release)?;
    let selected = configured.with_kubeconfig()?;
    let name = &release.descriptor.metadata.name;
    let namespace = &release.descriptor.metadata.namespace;
    let contexts = selected.plan.contexts();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut unanswered = Vec::new();
    let mut failures = Vec::new();
    for context in &contexts {
        let records: Result<History> = async {
            let handle = ClusterHandle::connect(&selected.kubeconfig, context).await?;
            Ok(ops::history(&handle, namespace, name).await?)
        }
        .await;
        let records = match records {
            Ok(r) => r,
            Err(err) => {
                crate::output::eprint_line(&format!("{context}: history not read: {err}"));
                unanswered.push(context.clone());
                failures.push(err);
                continue;
            }
        };
        for r in records.into_records() {
            let row = rows.entry(r.deployment_id.clone()).or_insert_with(|| Row {
                deployment_id: r.deployment_id.clone(),
                first: r.created,
                clusters: BTreeMap::new(),
            });
            row.first = row.first.min(r.created);
            row.clusters.entry(context.clone()).or_default().push(Cell {
                revision: r.revision,
                status: r.status.to_string(),
                operation: r.operation,
                restores: r.restores.clone(),
                app_version: r.app_version.clone(),
                chart: format!("{}-{}", r.chart.name, r.chart.version),
                updated: r.updated.format("%Y-%m-%d %H:%M:%S").to_string(),
                description: r.description.clone(),
            });
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| (a.first, &a.deployment_id).cmp(&(b.first, &b.deployment_id)));
    match output {
        OutputFormat::Json => {
            crate::output::print_json(&rows)?;
        }
        OutputFormat::Table if rows.is_empty() => {
            let answered: Vec<&str> = contexts
                .iter()
                .filter(|c| !unanswered.contains(c))
                .map(String::as_str)
                .collect();
            if !answered.is_empty() {
                crate::output::print(&format!(
                    "release {name} has no revisions in namespace {namespace} of {}",
                    answered.join(", ")
                ))?
            }
        }
        OutputFormat::Table => {
            let mut table = Builder::default();
            let mut header = vec!["deployment id".to_owned(), "version".to_owned()];
            header.extend(contexts.iter().cloned());
            table.push_record(header);
            for row in &rows {
                let version = row
                    .clusters
                    .values()
                    .flatten()
                    .map(|c| c.app_version.as_str())
                    .next()
                    .unwrap_or("-")
                    .to_owned();
                let mut line = vec![row.deployment_id.clone(), version];
                for context in &contexts {
                    line.push(match row.clusters.get(context) {
                        None if unanswered.contains(context) => "?".into(),
                        None => "-".into(),
                        Some(cells) => cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "),
                    });
                }
                table.push_record(line);
            }
            crate::output::print(&crate::output::table_text(table.build()))?;
        }
    }
    super::every_cluster::worst(failures)
}
