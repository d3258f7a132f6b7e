//! The plans `deploy --dry-run` and `rollback --dry-run` print: per cluster what runs
//! now and what the run would record, without changing anything anywhere (clusters are
//! only read: their release records; Vault is not contacted by a deploy's plan, which
//! lists the paths it would read, never a value).

use crate::config::LoadedRelease;
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
    mut fields: serde_json::Map<String, serde_json::Value>,
    notes: &[String],
    output: OutputFormat,
) -> Result<()> {
    match output {
        OutputFormat::Json | OutputFormat::Yaml => {
            fields.insert("dry_run".into(), true.into());
            fields.insert(
                "clusters".into(),
                serde_json::to_value(rows).unwrap_or_default(),
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

/// One cluster of `deploy --dry-run`.
#[derive(Serialize, tabled::Tabled)]
struct DeployRow {
    #[serde(skip_serializing_if = "Option::is_none")]
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
pub async fn deploy(
    selected: &Selected,
    releases: &[LoadedRelease],
    overrides: &Overrides,
    output: OutputFormat,
) -> Result<()> {
    let mut rows = Vec::new();
    // path → (key, secret_ids and their clusters), for the notes.
    let mut reads: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let contexts = selected.plan.contexts();
    for release in releases {
        let mut release = release.clone();
        overrides.apply_version(&mut release)?;
        let mut secrets = SecretPlan::build(&release, &selected.env)?;
        secrets.retain_contexts(|c| contexts.iter().any(|k| k == c));
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
            let vault: Vec<String> = secrets
                .for_context(&cluster.context)
                .map(|s| {
                    let at = match s.version {
                        Some(v) => format!("{}#{} (version {v})", s.path, s.key),
                        None => format!("{}#{}", s.path, s.key),
                    };
                    reads
                        .entry(at.clone())
                        .or_default()
                        .entry(s.secret_id.clone())
                        .or_default()
                        .push(cluster.context.clone());
                    format!("{} ← {at}", s.secret_id)
                })
                .collect();
            rows.push(DeployRow {
                release: (releases.len() > 1).then(|| meta.name.clone()),
                wave: cluster.wave,
                cluster: cluster.context.clone(),
                now: runs_now(history),
                next: format!(
                    "{} {}",
                    history.next_revision(),
                    release.descriptor.spec.version
                ),
                vault,
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
            notes.push(format!("  {at} ({})", by.join("; ")));
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
        serde_json::json!(reads.keys().collect::<Vec<_>>()),
    );
    print_plan(&heading, &rows, fields, &notes, output)
}
