//! `flotilla history RELEASE --env E [--clusters a,b] [-o json]`: deployment ids as rows,
//! clusters as columns, each cell the revisions that cluster recorded for that id.

use super::ReleaseSelection;
use crate::ops;
use crate::output::OutputFormat;
use crate::release::{Audit, History};
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
    /// Who ran it, on which host.
    user: String,
    host: String,
    /// From where: git commit, branch and dirty tree, CI job, flotilla version; `null`
    /// for a revision recorded before flotilla kept them.
    audit: Option<AuditView>,
}

/// A record's [`Audit`] as `-o json` names it: snake_case like all of flotilla's JSON
/// (the record itself is camelCase, as Kubernetes objects are), every key present.
#[derive(Debug, Serialize)]
struct AuditView {
    flotilla_version: String,
    git_commit: Option<String>,
    git_branch: Option<String>,
    git_dirty: Option<bool>,
    ci_job_url: Option<String>,
    ci_actor: Option<String>,
    /// The freeze the run overrode (`--override-freeze`) and why.
    freeze_override: Option<String>,
}

impl From<Audit> for AuditView {
    fn from(audit: Audit) -> AuditView {
        AuditView {
            flotilla_version: audit.flotilla_version,
            git_commit: audit.git_commit,
            git_branch: audit.git_branch,
            git_dirty: audit.git_dirty,
            ci_job_url: audit.ci_job_url,
            ci_actor: audit.ci_actor,
            freeze_override: audit.freeze_override,
        }
    }
}

impl Cell {
    /// `alice@ci-runner-3`, or the CI's user when CI ran it for someone.
    fn by(&self) -> String {
        match self.audit.as_ref().and_then(|a| a.ci_actor.as_deref()) {
            Some(actor) => format!("{actor} ({}@{})", self.user, self.host),
            None => format!("{}@{}", self.user, self.host),
        }
    }

    /// `3f9a2c1 main`, `3f9a2c1+dirty main`, `-` when the run knew no commit.
    fn commit(&self) -> String {
        let Some(audit) = &self.audit else {
            return "-".into();
        };
        let mut text = match &audit.git_commit {
            Some(commit) => commit.chars().take(7).collect(),
            None => "-".to_string(),
        };
        if audit.git_dirty == Some(true) {
            text.push_str("+dirty");
        }
        if let Some(branch) = &audit.git_branch {
            text.push(' ');
            text.push_str(branch);
        }
        text
    }

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
    let configured = crate::rollout::configure(root, &args.env)?;
    let release = configured.repo.release(&args.release)?;
    let selected = configured.with_kubeconfig()?;
    let name = &release.descriptor.metadata.name;
    let namespace = &release.descriptor.metadata.namespace;
    super::freeze::notice(&selected, namespace).await;
    let contexts = selected.plan.contexts();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut unanswered = Vec::new();
    let mut failures = Vec::new();
    // Every cluster asked at once; the answers in the plan's order.
    let answers = crate::rollout::connect::on_each(
        &selected.plan,
        &selected.kubeconfig,
        |_, handle| async move {
            Ok::<History, crate::Error>(ops::history(&handle, namespace, name).await?)
        },
    )
    .await;
    for (cluster, records) in answers {
        let context = &cluster.context;
        let records = match records {
            Ok(r) => r,
            Err(err) => {
                crate::output::eprint_line(&format!("{context}: history not read: {err}"));
                unanswered.push(context.clone());
                failures.push(err);
                continue;
            }
        };
        for r in records.iter() {
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
                user: r.user.clone(),
                host: r.host.clone(),
                audit: r.audit.clone().map(AuditView::from),
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
            // The clusters' columns are named by their contexts as written.
            let mut header = vec![
                "DEPLOYMENT ID".to_owned(),
                "VERSION".to_owned(),
                "ARTIFACT".to_owned(),
            ];
            header.extend(contexts.iter().cloned());
            header.extend(["BY".to_owned(), "COMMIT".to_owned()]);
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
                        None if unanswered.contains(context) => "?".into(),
                        None => "-".into(),
                        Some(cells) => cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "),
                    });
                }
                // One run, one origin: every cluster of a deployment id recorded the same.
                line.push(first.map_or("-".into(), Cell::by));
                line.push(first.map_or("-".into(), Cell::commit));
                table.push_record(line);
            }
            let mut text = crate::output::table_text(table.build());
            for line in provenance {
                text.push_str(&format!("{line}\n"));
            }
            crate::output::print(&text)?;
        }
    }
    super::every_cluster::worst(failures)
}
