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
    /// The artifact digest (chart files and environment-independent values).
    #[serde(skip_serializing_if = "String::is_empty")]
    artifact: String,
    /// Set when `promote` deployed it: the environment and deployment id it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    promoted_from: Option<crate::release::Promotion>,
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
    let selected = multi::select(root, &args.env)?;
    let release = selected.repo.release(&args.release)?;
    let name = &release.descriptor.metadata.name;
    let namespace = &release.descriptor.metadata.namespace;
    let contexts = selected.plan.contexts();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut unreachable = Vec::new();
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
                unreachable.push(context.clone());
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
                artifact: r.artifact_digest().to_owned(),
                promoted_from: r.promoted_from().cloned(),
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
        OutputFormat::Table if rows.is_empty() => crate::output::print(&format!(
            "release {name} has no revisions in namespace {namespace} of {}",
            contexts.join(", ")
        ))?,
        OutputFormat::Table => {
            let mut table = Builder::default();
            let mut header = vec![
                "deployment id".to_owned(),
                "version".to_owned(),
                "artifact".to_owned(),
            ];
            header.extend(contexts.iter().cloned());
            table.push_record(header);
            let mut provenance = Vec::new();
            for row in &rows {
                let first = row.clusters.values().flatten().next();
                let version = first.map_or("-", |c| c.app_version.as_str()).to_owned();
                // `sha256:` and 12 hex digits name an artifact in a table, as git's
                // short hashes do; -o json has the whole digest.
                let artifact = first
                    .map(|c| c.artifact.chars().take(19).collect::<String>())
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| "-".into());
                if let Some(from) = row
                    .clusters
                    .values()
                    .flatten()
                    .find_map(|c| c.promoted_from.as_ref())
                {
                    provenance.push(format!(
                        "{} was promoted from {} (deployment {})",
                        row.deployment_id, from.environment, from.deployment_id
                    ));
                }
                let mut line = vec![row.deployment_id.clone(), version, artifact];
                for context in &contexts {
                    line.push(match row.clusters.get(context) {
                        None if unreachable.contains(context) => "?".into(),
                        None => "-".into(),
                        Some(cells) => cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "),
                    });
                }
                table.push_record(line);
            }
            let mut text = crate::output::table_text(table.build());
            for line in provenance {
                text.push_str(&format!("{line}\n"));
            }
            crate::output::print(&text)?;
        }
    }
    if unreachable.is_empty() {
        Ok(())
    } else {
        Err(crate::cluster::ClusterError::Unreachable {
            context: unreachable.join(", "),
            message: "history incomplete (see above)".into(),
        }
        .into())
    }
}
