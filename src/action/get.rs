//! `flotilla get values|manifest RELEASE --env E [--clusters a,b] [--revision N | --to ID]
//! [-o json]`: what a recorded revision ran, in each cluster, read from its record as
//! Helm's `get values` and `get manifest` read theirs: the merged values it was rendered
//! with (`Values.secrets` is never recorded) or its objects (every `Secret`'s data, and
//! every field a secret went into, recorded as a digest and shown so). The deployed
//! revision by default; `--revision N` that cluster's revision N; `--to ID` each
//! cluster's revision of deployment ID.

use super::{every_cluster, ReleaseSelection};
use crate::output::OutputFormat;
use crate::release::{History, ReleaseRecord};
use crate::Result;
use serde_json::{json, Value};
use std::path::Path;

/// What `get` prints of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Values,
    Manifest,
}

#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    pub target: ReleaseSelection,
    /// That revision number, in each cluster asked.
    pub revision: Option<u32>,
    /// Each cluster's revision of this deployment id.
    pub to: Option<String>,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, part: Part, args: &GetOptions) -> Result<()> {
    let opened = every_cluster::open(root, &args.target)?;
    let (namespace, name) = (opened.namespace(), opened.name());
    let (revision, to) = (args.revision, args.to.as_deref());
    let answers = every_cluster::query_each(&opened, |cluster, handle| async move {
        let history = crate::ops::history(&handle, namespace, name).await?;
        pick(&history, revision, to)
            .cloned()
            .map_err(|why| crate::Error::Reported(format!("cluster `{}`: {why}", cluster.context)))
    })
    .await;
    let shown = |record: &ReleaseRecord| match part {
        Part::Values => record.values.clone(),
        Part::Manifest => Value::Array(crate::redact::redact_manifest(&record.manifest)),
    };
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let doc: serde_json::Map<String, Value> = answers
                .iter()
                .map(|(cluster, answer)| {
                    let value = match answer {
                        Ok(record) => json!({
                            "revision": record.revision,
                            "deployment_id": record.deployment_id,
                            "app_version": record.app_version,
                            "status": record.status.to_string(),
                            part_key(part): shown(record),
                        }),
                        Err(err) => json!({ "error": every_cluster::failure_text(err) }),
                    };
                    (cluster.context.clone(), value)
                })
                .collect();
            crate::output::print_json(&doc)?;
        }
        OutputFormat::Table => {
            let mut text = String::new();
            for (cluster, answer) in &answers {
                let record = match answer {
                    Ok(record) => record,
                    // A YAML comment: the output still parses; the error ends the command.
                    Err(err) => {
                        text.push_str(&format!(
                            "# cluster: {}: not shown: {}\n",
                            cluster.context,
                            every_cluster::failure_text(err)
                        ));
                        continue;
                    }
                };
                text.push_str(&format!(
                    "# cluster: {}, revision {} ({}), deployment {}, version {}\n",
                    cluster.context,
                    record.revision,
                    record.status,
                    record.deployment_id,
                    record.app_version
                ));
                text.push_str(&yaml_text(part, &shown(record)));
            }
            crate::output::print(&text)?;
        }
    }
    every_cluster::finish(answers)
}

fn part_key(part: Part) -> &'static str {
    match part {
        Part::Values => "values",
        Part::Manifest => "manifest",
    }
}

/// The values as one YAML document, the manifest as one document per object.
fn yaml_text(part: Part, shown: &Value) -> String {
    let documents: Vec<&Value> = match (part, shown) {
        (Part::Manifest, Value::Array(objects)) => objects.iter().collect(),
        _ => vec![shown],
    };
    documents
        .into_iter()
        .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).unwrap_or_default()))
        .collect()
}

/// The record `get` shows in one cluster: revision `revision`, else its revision of
/// deployment `to`, else the deployed one; otherwise why none, naming what it has.
fn pick<'h>(
    history: &'h History,
    revision: Option<u32>,
    to: Option<&str>,
) -> std::result::Result<&'h ReleaseRecord, String> {
    let found = match (revision, to) {
        (Some(n), _) => history.get(n),
        (None, Some(id)) => history.revision_of(id),
        (None, None) => history.deployed(),
    };
    found.ok_or_else(|| {
        let what = match (revision, to) {
            (Some(n), _) => format!("no revision {n}"),
            (None, Some(id)) => format!("no revision of deployment {id}"),
            (None, None) => "no deployed revision".to_owned(),
        };
        format!("{what} (it has: {})", history.summary())
    })
}
