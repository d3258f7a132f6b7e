//! `flotilla history RELEASE [ID] --env E [--clusters a,b] [--wide] [-o json]`: one line
//! per deployment id (when, version, its state for the environment, its clusters'
//! states counted), as narrow with ten clusters as with one; `--wide` has a column per
//! cluster with each revision it recorded, `history RELEASE ID` one line per cluster of
//! that deployment.

use super::ReleaseSelection;
use crate::ops;
use crate::output::OutputFormat;
use crate::release::{Audit, EnvironmentHistory, History};
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
    /// The deployment's state for the environment (`complete`, `failed`, `partial`,
    /// `partial-by-request`, `rolled back`); `null` for a rollback's run.
    state: Option<String>,
    /// For a rollback's run: the deployment it went back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_to: Option<String>,
    /// When the first cluster recorded it: rows go in this order.
    #[serde(skip)]
    first: chrono::DateTime<chrono::Utc>,
    /// context → the revisions it recorded with this id, oldest first.
    clusters: BTreeMap<String, Vec<Cell>>,
}

/// What `history` shows: every deployment, or one (`history RELEASE ID`), and how.
#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    pub target: ReleaseSelection,
    /// Only this deployment id, one line per cluster.
    pub deployment_id: Option<String>,
    /// A column per cluster, each revision it recorded.
    pub wide: bool,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &HistoryOptions) -> Result<()> {
    let configured = crate::rollout::configure(root, &args.target.env)?;
    let release = configured.repo.release(&args.target.release)?;
    let selected = configured.with_kubeconfig()?;
    let name = &release.descriptor.metadata.name;
    let namespace = &release.descriptor.metadata.namespace;
    super::freeze::notice(&selected, namespace).await;
    let contexts = selected.plan.contexts();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut unanswered = Vec::new();
    let mut failures = Vec::new();
    let mut histories = Vec::new();
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
                state: None,
                rollback_to: None,
                first: r.created,
                clusters: BTreeMap::new(),
            });
            row.first = row.first.min(r.created);
            if r.operation == crate::release::Operation::Rollback && row.rollback_to.is_none() {
                row.rollback_to = r.restores.clone();
            }
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
        histories.push((context.clone(), records));
    }
    let env = EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
    for row in rows.values_mut() {
        row.state = env.state(&row.deployment_id).map(|s| s.to_string());
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| (a.first, &a.deployment_id).cmp(&(b.first, &b.deployment_id)));
    if let Some(id) = &args.deployment_id {
        rows.retain(|r| &r.deployment_id == id);
        if rows.is_empty() && unanswered.len() < contexts.len() {
            return Err(crate::Error::Reported(format!(
                "no cluster of {} recorded deployment {id} of release {name} (its deployments, newest first: {})",
                selected.plan.environment,
                env.summary()
            )));
        }
    }
    let table = Table {
        rows: &rows,
        contexts: &contexts,
        unanswered: &unanswered,
    };
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
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
        OutputFormat::Table if args.deployment_id.is_some() => {
            crate::output::print(&table.one_deployment())?
        }
        OutputFormat::Table if args.wide => crate::output::print(&table.wide())?,
        OutputFormat::Table => crate::output::print(&table.compact())?,
    }
    super::every_cluster::worst(failures)
}

/// The rows of `history` and the clusters they are read in, as text.
struct Table<'a> {
    rows: &'a [Row],
    contexts: &'a [String],
    unanswered: &'a [String],
}

impl Row {
    /// Every cluster's first revision of the run: its own (a restore the run made after
    /// a failure comes after it).
    fn firsts(&self) -> impl Iterator<Item = &Cell> {
        self.clusters.values().filter_map(|cells| cells.first())
    }

    /// The application version the run deployed (or a rollback went back to).
    fn version(&self) -> &str {
        self.firsts().next().map_or("-", |c| c.app_version.as_str())
    }

    /// `12-07 09:54`: when the first cluster recorded it.
    fn started(&self) -> String {
        self.first.format("%m-%d %H:%M").to_string()
    }

    /// `complete`, `failed`, ..., or `rollback to ID` for a rollback's run.
    fn state_text(&self) -> String {
        match (&self.rollback_to, &self.state) {
            (Some(to), _) => format!("rollback to {to}"),
            (None, Some(state)) => state.clone(),
            (None, None) => "-".into(),
        }
    }

    /// Its clusters' states, counted: `3 deployed`, `2 superseded, 1 failed`. The
    /// state of a cluster is that of the run's own revision there.
    fn clusters_text(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for cell in self.firsts() {
            match counts.iter_mut().find(|(s, _)| *s == cell.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((&cell.status, 1)),
            }
        }
        counts
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Who ran it, and from which commit: every cluster of a run recorded the same.
    fn origin(&self) -> (String, String) {
        let first = self.firsts().next();
        (
            first.map_or("-".into(), Cell::by),
            first.map_or("-".into(), Cell::commit),
        )
    }
}

impl Table<'_> {
    /// One line per deployment id, its clusters counted by state: as wide with ten
    /// clusters as with one.
    fn compact(&self) -> String {
        let mut table = Builder::default();
        table.push_record(["DEPLOYMENT ID", "STARTED", "VERSION", "STATE", "CLUSTERS"]);
        for row in self.rows {
            table.push_record([
                row.deployment_id.clone(),
                row.started(),
                row.version().to_owned(),
                row.state_text(),
                row.clusters_text(),
            ]);
        }
        let tones: Vec<_> = self
            .rows
            .iter()
            .map(|row| match row.state.as_deref() {
                Some("failed" | "partial") => Some(crate::output::Tone::Bad),
                _ => None,
            })
            .collect();
        let mut text = crate::output::paint_rows(&crate::output::table_text(table.build()), &tones);
        self.notes(&mut text);
        text
    }

    /// A column per cluster, each cell the revisions it recorded for the run (`3
    /// superseded (upgrade 10:41)`), with who ran it and from which commit.
    fn wide(&self) -> String {
        let mut table = Builder::default();
        // The clusters' columns are named by their contexts as written.
        let mut header = vec![
            "DEPLOYMENT ID".to_owned(),
            "VERSION".to_owned(),
            "ARTIFACT".to_owned(),
        ];
        header.extend(self.contexts.iter().cloned());
        header.extend(["BY".to_owned(), "COMMIT".to_owned()]);
        table.push_record(header);
        for row in self.rows {
            let mut line = vec![
                row.deployment_id.clone(),
                row.version().to_owned(),
                short_artifact(row.firsts().next()),
            ];
            for context in self.contexts {
                line.push(match row.clusters.get(context) {
                    None if self.unanswered.contains(context) => "?".into(),
                    None => "-".into(),
                    Some(cells) => cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "),
                });
            }
            let (by, commit) = row.origin();
            line.extend([by, commit]);
            table.push_record(line);
        }
        let mut text = crate::output::table_text(table.build());
        self.notes(&mut text);
        text
    }

    /// `history RELEASE ID`: the deployment, then one line per cluster with every
    /// revision it recorded under that id.
    fn one_deployment(&self) -> String {
        let mut text = String::new();
        for row in self.rows {
            let (by, commit) = row.origin();
            text.push_str(&format!(
                "deployment {}: {}, version {}, started {} by {by}, commit {commit}\n",
                row.deployment_id,
                row.state_text(),
                row.version(),
                row.first.format("%Y-%m-%d %H:%M:%S UTC"),
            ));
            let mut table = Builder::default();
            table.push_record(["CLUSTER", "REVISIONS", "ARTIFACT"]);
            for context in self.contexts {
                let (revisions, artifact) = match row.clusters.get(context) {
                    None if self.unanswered.contains(context) => {
                        ("? (not read)".into(), "-".into())
                    }
                    None => ("- (not in this run)".into(), "-".into()),
                    Some(cells) => (
                        cells.iter().map(Cell::text).collect::<Vec<_>>().join(", "),
                        short_artifact(cells.first()),
                    ),
                };
                table.push_record([context.clone(), revisions, artifact]);
            }
            text.push_str(&crate::output::table_text(table.build()));
        }
        self.notes(&mut text);
        text
    }

    /// Lines under a table: where a run was promoted from.
    fn notes(&self, text: &mut String) {
        for row in self.rows {
            if let Some(from) = row.firsts().find_map(|c| c.promoted_from.as_ref()) {
                text.push_str(&format!(
                    "{} was promoted from {} (deployment {})\n",
                    row.deployment_id, from.environment, from.deployment_id
                ));
            }
        }
    }
}

/// `sha256:` and 12 hex digits name an artifact in a table, as git's short hashes do;
/// -o json has the whole digest.
fn short_artifact(cell: Option<&Cell>) -> String {
    cell.map(|c| c.artifact.chars().take(19).collect::<String>())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(revision: u32, status: &str, restores: Option<&str>) -> Cell {
        Cell {
            revision,
            status: status.into(),
            operation: match restores {
                Some(_) => crate::release::Operation::Rollback,
                None => crate::release::Operation::Upgrade,
            },
            restores: restores.map(String::from),
            app_version: "1.0.12".into(),
            chart: "hello-0.1.0".into(),
            artifact: format!("sha256:{}", "ab".repeat(32)),
            promoted_from: None,
            updated: "2026-12-07 09:54:13".into(),
            description: String::new(),
            user: "on-call-engineer".into(),
            host: "laptop-of-the-on-call-engineer".into(),
            audit: None,
        }
    }

    /// Ten clusters with long names, a failed deploy restored in every cluster and the
    /// rollback after it: the rows the runbook's first step reads.
    fn incident(contexts: &[String]) -> Vec<Row> {
        let first = chrono::DateTime::parse_from_rfc3339("2026-12-07T09:54:13Z")
            .unwrap()
            .to_utc();
        let failed = "20261207T095413Z-bf79";
        let good = "20261207T091000Z-0a1b";
        let row =
            |id: &str, state: Option<&str>, to: Option<&str>, cells: &dyn Fn() -> Vec<Cell>| Row {
                deployment_id: id.into(),
                state: state.map(String::from),
                rollback_to: to.map(String::from),
                first,
                clusters: contexts.iter().map(|c| (c.clone(), cells())).collect(),
            };
        vec![
            row(good, Some("complete"), None, &|| {
                vec![cell(2, "superseded", None)]
            }),
            row(failed, Some("rolled back"), None, &|| {
                vec![
                    cell(3, "rolled-back", None),
                    cell(4, "superseded", Some(good)),
                ]
            }),
            row("20261207T100102Z-77c3", None, Some(good), &|| {
                vec![cell(5, "deployed", Some(good))]
            }),
        ]
    }

    #[test]
    fn ten_clusters_fit_120_columns_one_line_per_deployment() {
        let contexts: Vec<String> = (0..10)
            .map(|i| format!("prod-europe-west{i}-cluster"))
            .collect();
        let rows = incident(&contexts);
        let table = Table {
            rows: &rows,
            contexts: &contexts,
            unanswered: &[],
        };
        let text = table.compact();
        eprintln!("{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + rows.len(), "{text}");
        for line in &lines {
            assert!(
                line.chars().count() <= 120,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert!(
            lines[1].contains("complete") && lines[1].contains("10 superseded"),
            "{text}"
        );
        assert!(
            lines[2].contains("rolled back") && lines[2].contains("10 rolled-back"),
            "{text}"
        );
        assert!(
            lines[3].contains("rollback to 20261207T091000Z-0a1b")
                && lines[3].contains("10 deployed"),
            "{text}"
        );
        // --wide has every revision of every cluster.
        let wide = table.wide();
        assert!(wide.contains("3 rolled-back (upgrade 09:54), 4 superseded (rollback to 20261207T091000Z-0a1b, 09:54)"), "{wide}");
    }

    #[test]
    fn one_deployment_is_one_line_per_cluster() {
        let contexts: Vec<String> = vec!["dev-a".into(), "dev-b".into(), "dev-c".into()];
        let mut rows = incident(&contexts[..2]);
        rows.retain(|r| r.deployment_id == "20261207T095413Z-bf79");
        let unanswered = vec!["dev-c".to_owned()];
        let text = Table {
            rows: &rows,
            contexts: &contexts,
            unanswered: &unanswered,
        }
        .one_deployment();
        let lines: Vec<&str> = text.lines().map(str::trim_start).collect();
        assert!(
            lines[0].starts_with("deployment 20261207T095413Z-bf79: rolled back, version 1.0.12"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("dev-a") && lines[2].contains("3 rolled-back"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("dev-c") && lines[4].contains("not read"),
            "{text}"
        );
    }
}
