//! The plans `deploy --dry-run` and `rollback --dry-run` print: per cluster what runs
//! now and what the run would record, without changing anything anywhere (clusters are
//! only read: their release records; Vault is not contacted by a deploy's plan, which
//! lists the paths it would read, never a value; a Helm chart is rendered with
//! placeholders for the hooks it would run).

use crate::config::{ChartType, LoadedRelease};
use crate::engine::{placeholder_secrets, Chart, Renderer};
use crate::output::OutputFormat;
use crate::release::History;
use crate::rollout::connect::connect_all;
use crate::rollout::prepare::Overrides;
use crate::rollout::Selected;
use crate::vault::SecretPlan;
use crate::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a cluster runs now, as a plan shows it: `3 20261201T…-ab12 v1 (deployed)`, or
/// `-` when the release is not installed.
pub fn runs_now(history: &History) -> String {
    match history.latest() {
        Some(r) => format!(
            "{} {} {} ({})",
            r.revision,
            r.content_id(),
            r.app_version,
            r.status
        ),
        None => "-".into(),
    }
}

/// Prints a plan: the heading and table, or one JSON document of `fields` and `rows`
/// (`clusters`); `notes` go under the table.
pub fn print_plan<R: Serialize + tabled::Tabled>(
    heading: &str,
    rows: &[R],
    fields: serde_json::Map<String, serde_json::Value>,
    notes: &[String],
    output: OutputFormat,
) -> Result<()> {
    print_plan_with(heading, rows, rows, fields, notes, output)
}

/// [`print_plan`] whose JSON rows (`clusters`) are objects of their own, not the
/// table's cells.
pub(super) fn print_plan_with<R: tabled::Tabled, J: Serialize>(
    heading: &str,
    rows: &[R],
    json_rows: &[J],
    mut fields: serde_json::Map<String, serde_json::Value>,
    notes: &[String],
    output: OutputFormat,
) -> Result<()> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => {
            fields.insert("dry_run".into(), true.into());
            fields.insert(
                "clusters".into(),
                serde_json::to_value(json_rows).unwrap_or_default(),
            );
            crate::output::print_json(&fields)?
        }
        OutputFormat::Table => {
            let mut text = format!(
                "{heading} (dry run: nothing changed)\n{}",
                crate::output::table_text(tabled::Table::new(rows))
            );
            for note in notes {
                text.push_str(note);
                text.push('\n');
            }
            crate::output::print(&text)?
        }
    }
    Ok(())
}

/// One cluster of `deploy --dry-run`, as the table shows it.
#[derive(tabled::Tabled)]
struct DeployRow {
    #[tabled(skip)]
    release: Option<String>,
    #[tabled(rename = "WAVE")]
    wave: u32,
    #[tabled(rename = "CLUSTER")]
    cluster: String,
    #[tabled(rename = "RUNS NOW")]
    now: String,
    #[tabled(rename = "WOULD RECORD")]
    next: String,
    /// `secret_id ← path#key` for every secret this cluster reads.
    #[tabled(rename = "VAULT READS", display = "comma_list")]
    vault: Vec<String>,
    /// A Helm chart's hooks the deploy would run here, in order (`pre-upgrade
    /// Job/migrate`); in the notes of the table.
    #[tabled(skip)]
    hooks: Vec<String>,
}

/// One cluster of `deploy --dry-run -o json`: the table's row as fields, for CI to read
/// without splitting strings.
#[derive(Serialize)]
struct PlanCluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<String>,
    wave: u32,
    cluster: String,
    /// What runs there now; `null` when the release is not installed.
    now: Option<RunsNow>,
    next: NextRevision,
    vault: Vec<VaultRead>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hooks: Vec<PlannedHook>,
}

/// What runs in a cluster, as `-o json` gives it (`now` of the dry runs).
#[derive(Serialize)]
pub(super) struct RunsNow {
    revision: u32,
    deployment_id: String,
    app_version: String,
    status: String,
}

impl RunsNow {
    pub(super) fn of(history: &History) -> Option<RunsNow> {
        history.latest().map(|r| RunsNow {
            revision: r.revision,
            deployment_id: r.content_id().to_owned(),
            app_version: r.app_version.clone(),
            status: r.status.to_string(),
        })
    }
}

#[derive(Serialize)]
struct NextRevision {
    revision: u32,
    app_version: String,
}

/// One Vault read of a cluster, never its value.
#[derive(Serialize)]
struct VaultRead {
    secret_id: String,
    #[serde(flatten)]
    at: VaultAt,
}

/// Where a secret is read: path, key, KV v2's pinned version.
#[derive(Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VaultAt {
    path: String,
    key: String,
    version: Option<u64>,
}

impl VaultAt {
    /// `path#key (version N)`, as the table and the notes say it.
    fn text(&self) -> String {
        match self.version {
            Some(v) => format!("{}#{} (version {v})", self.path, self.key),
            None => format!("{}#{}", self.path, self.key),
        }
    }
}

#[derive(Serialize)]
struct PlannedHook {
    /// `pre-upgrade`, `post-install`, ...
    event: String,
    kind: String,
    name: String,
}

impl std::fmt::Display for PlannedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.event, self.kind, self.name)
    }
}

/// The hooks a deploy of `release` would run in `cluster`, in order, rendered with
/// placeholders (no Vault, Helm's default `.Capabilities`): a Helm chart's only.
fn hooks_that_would_run(
    renderer: Option<&Renderer<'_>>,
    release: &LoadedRelease,
    cluster: &crate::config::Cluster,
    history: &History,
) -> Result<Vec<PlannedHook>> {
    let Some(renderer) = renderer else {
        return Ok(Vec::new());
    };
    let secrets = placeholder_secrets(&release.descriptor.spec, &cluster.context);
    let manifest = renderer
        .render_revision(cluster, &secrets, history.next_revision().into())
        .map_err(|err| err.in_cluster(&cluster.context))?;
    let hooks: Vec<(crate::engine::Hook, serde_json::Value)> = manifest
        .hooks
        .into_iter()
        .map(|h| (h.hook, h.object.object))
        .collect();
    Ok(
        crate::ops::hooks::would_run(&hooks, history.deployed().is_some())
            .into_iter()
            .map(|(event, object)| PlannedHook {
                event: event.to_string(),
                kind: object["kind"].as_str().unwrap_or_default().to_owned(),
                name: object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect(),
    )
}

fn comma_list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// `deploy --dry-run`: for every release and every cluster of the plan, wave by wave,
/// what runs now, the revision and version the deploy would record, and the Vault
/// paths it would read. Reads the clusters' records; changes nothing, reads no secret.
/// `freeze`: what a freeze of the environment would do to the real run
/// (`action::freeze::foresee`, which said it on stderr), for the JSON.
pub async fn deploy(
    selected: &Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
    freeze: Option<String>,
    output: OutputFormat,
) -> Result<()> {
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    // where → (secret_ids and their clusters), for the notes.
    let mut reads: BTreeMap<VaultAt, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let contexts = selected.plan.contexts();
    for release in releases {
        let mut release = release.clone();
        overrides.apply_version(&mut release)?;
        let mut secrets = SecretPlan::build(&release, &selected.env)?;
        secrets.retain_contexts(|c| contexts.iter().any(|k| k == c));
        let chart = Chart::for_release(&release)?;
        let values = overrides.values()?;
        let renderer = match chart.chart_type() {
            ChartType::Helm => Some(Renderer::for_release(
                &chart,
                &release,
                &selected.env.environment.name,
                &values,
                1,
            )?),
            ChartType::Flotilla => None,
        };
        let meta = &release.descriptor.metadata;
        let connected = connect_all(
            &selected.plan,
            &selected.kubeconfig,
            &meta.namespace,
            &meta.name,
        )
        .await?;
        let history: BTreeMap<&str, &History> = connected
            .iter()
            .map(|c| (c.cluster.context.as_str(), &c.history))
            .collect();
        for cluster in selected.plan.clusters() {
            let Some(history) = history.get(cluster.context.as_str()) else {
                continue;
            };
            let vault: Vec<VaultRead> = secrets
                .for_context(&cluster.context)
                .map(|s| VaultRead {
                    secret_id: s.secret_id.clone(),
                    at: VaultAt {
                        path: s.path.clone(),
                        key: s.key.clone(),
                        version: s.version,
                    },
                })
                .collect();
            for read in &vault {
                reads
                    .entry(read.at.clone())
                    .or_default()
                    .entry(read.secret_id.clone())
                    .or_default()
                    .push(cluster.context.clone());
            }
            let hooks = hooks_that_would_run(renderer.as_ref(), &release, cluster, history)?;
            let release_name = (releases.len() > 1).then(|| meta.name.clone());
            let next = NextRevision {
                revision: history.next_revision(),
                app_version: release.descriptor.spec.version.clone(),
            };
            rows.push(DeployRow {
                release: release_name.clone(),
                wave: cluster.wave,
                cluster: cluster.context.clone(),
                now: runs_now(history),
                next: format!("{} {}", next.revision, next.app_version),
                vault: vault
                    .iter()
                    .map(|r| format!("{} ← {}", r.secret_id, r.at.text()))
                    .collect(),
                hooks: hooks.iter().map(ToString::to_string).collect(),
            });
            json_rows.push(PlanCluster {
                release: release_name,
                wave: cluster.wave,
                cluster: cluster.context.clone(),
                now: RunsNow::of(history),
                next,
                vault,
                hooks,
            });
        }
    }
    let names: Vec<&str> = releases
        .iter()
        .map(|r| r.descriptor.metadata.name.as_str())
        .collect();
    let heading = format!(
        "deploy {} to {}: {} cluster(s) in {} wave(s)",
        names.join(", "),
        selected.plan.environment,
        rows.len(),
        selected.plan.waves.len()
    );
    let mut notes = Vec::new();
    if rows.iter().any(|r| !r.hooks.is_empty()) {
        notes.push("Helm hooks the deploy would run, in order:".into());
        for row in rows.iter().filter(|r| !r.hooks.is_empty()) {
            let release = row
                .release
                .as_ref()
                .map(|r| format!("{r} "))
                .unwrap_or_default();
            notes.push(format!(
                "  {release}{}: {}",
                row.cluster,
                row.hooks.join(", ")
            ));
        }
    }
    if !reads.is_empty() {
        notes.push(format!(
            "vault reads ({} distinct; paths and keys, never values):",
            reads.len()
        ));
        for (at, users) in &reads {
            let by: Vec<String> = users
                .iter()
                .map(|(id, clusters)| format!("{id} for {}", clusters.join(", ")))
                .collect();
            notes.push(format!("  {} ({})", at.text(), by.join("; ")));
        }
    }
    let mut fields = serde_json::Map::new();
    fields.insert("operation".into(), "deploy".into());
    fields.insert("releases".into(), serde_json::json!(names));
    fields.insert(
        "environment".into(),
        selected.plan.environment.clone().into(),
    );
    fields.insert(
        "waves".into(),
        serde_json::json!(selected
            .plan
            .waves
            .iter()
            .map(|w| w.iter().map(|c| c.context.clone()).collect::<Vec<_>>())
            .collect::<Vec<_>>()),
    );
    fields.insert(
        "vault_reads".into(),
        serde_json::to_value(reads.keys().collect::<Vec<_>>()).unwrap_or_default(),
    );
    fields.insert("freeze".into(), freeze.into());
    print_plan_with(&heading, &rows, &json_rows, fields, &notes, output)
}
