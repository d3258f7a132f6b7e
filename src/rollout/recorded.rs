//! A recorded revision rendered again, for whatever puts a cluster back on it: a
//! `rollback`, and the automatic restore of a failed run. The record's chart and
//! values with the secrets read again from Vault at the record's own sources (pinned
//! KV v2 versions at their version), so that nothing of another revision (a failed
//! run's Secrets, their labels) is applied, and a credential rotated since does not
//! come back. An object whose secret cannot be read keeps its live values, and says so.

use crate::cluster::ObjectRef;
use crate::config::{ChartType, Cluster, LoadedEnvironment};
use crate::engine::{render_recorded, Capabilities, Chart, ClusterFacts, ReleaseInfo};
use crate::release::RevisionSource;
use crate::vault::{resolve_available, PlannedSecret, ResolvedSecrets, SecretPlan, VaultEnv};
use crate::Result;
use std::path::{Path, PathBuf};

/// The secrets the recorded `sources` read (by kube context), read again from Vault,
/// each distinct path once. What cannot be read is said, and missing from the answer:
/// the objects that need it keep their live values.
pub async fn read_secrets<'a>(
    env: &LoadedEnvironment,
    release: &str,
    sources: impl Iterator<Item = (&'a str, &'a RevisionSource)>,
) -> ResolvedSecrets {
    let plan = SecretPlan {
        release: release.to_owned(),
        environment: env.environment.name.clone(),
        kv: env.environment.vault.as_ref().map(|v| v.kv.clone()),
        record_key: None,
        entries: sources
            .flat_map(|(context, source)| {
                source.secrets.iter().map(move |s| PlannedSecret {
                    context: context.to_owned(),
                    secret_id: s.secret_id.clone(),
                    path: s.path.clone(),
                    relative: s.relative.clone(),
                    key: s.key.clone(),
                    version: s.version,
                })
            })
            .collect(),
    };
    if plan.entries.is_empty() {
        return ResolvedSecrets::default();
    }
    match resolve_available(&plan, env, &VaultEnv::from_process()).await {
        Ok((resolved, failures)) => {
            for failure in failures {
                crate::output::eprint_line(&format!(
                    "not read, its objects keep their live values: {failure}"
                ));
            }
            resolved
        }
        Err(err) => {
            crate::output::eprint_line(&format!("Vault could not be read ({err}); objects that need its secrets keep their live values"));
            ResolvedSecrets::default()
        }
    }
}

/// One cluster's target revision rendered again.
#[derive(Default)]
pub struct Refreshed {
    /// Objects rendered with secrets read now.
    pub fresh: Vec<serde_json::Value>,
    /// Objects whose secrets could not be read: they keep their live values.
    pub unreadable: Vec<ObjectRef>,
}

/// The recorded revision rendered again for `cluster`: with the secrets read now, and
/// the objects that depend on one that could not be read set apart (rendered twice with
/// two different stand-ins, an object that differs depends on it, whatever the chart
/// does with the value: base64, a checksum, part of a URL).
pub fn rerender(
    record: &crate::release::ReleaseRecord,
    source: &crate::release::RevisionSource,
    cluster: &Cluster,
    resolved: &ResolvedSecrets,
    name: &str,
    namespace: &str,
    checksum_key: Option<&[u8]>,
) -> Result<Refreshed> {
    let label = PathBuf::from(format!(
        "<record of {name} revision {} in {}>",
        record.revision, cluster.context
    ));
    let chart = recorded_chart(&label, source)?;
    let capabilities = source.helm.as_ref().map(|helm| Capabilities {
        kube_version: helm.kube_version.clone(),
        api_versions: helm.api_versions.clone(),
    });
    let info = ReleaseInfo {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        version: record.app_version.clone(),
        revision: u64::from(record.revision),
    };
    let read = resolved.exposed(&cluster.context);
    let with = |stand_in: &str| -> Result<Vec<serde_json::Value>> {
        let mut secrets = read.clone();
        for s in &source.secrets {
            secrets
                .entry(s.secret_id.clone())
                .or_insert_with(|| format!("{stand_in}-{}", s.secret_id));
        }
        let manifest = render_recorded(
            &chart,
            info.clone(),
            &record.values,
            cluster,
            &secrets,
            &label,
            ClusterFacts {
                checksum_key,
                capabilities: capabilities.clone(),
            },
        )?;
        Ok(manifest.objects.into_iter().map(|o| o.object).collect())
    };
    let first = with("flotilla-unreadable-a")?;
    if source
        .secrets
        .iter()
        .all(|s| read.contains_key(&s.secret_id))
    {
        return Ok(Refreshed {
            fresh: first,
            unreadable: Vec::new(),
        });
    }
    let second = with("flotilla-unreadable-b")?;
    let mut refreshed = Refreshed::default();
    for (a, b) in first.into_iter().zip(second) {
        if a == b {
            refreshed.fresh.push(a);
        } else if let Ok(id) = ObjectRef::of(&a) {
            refreshed.unreadable.push(id);
        }
    }
    Ok(refreshed)
}

/// The chart a record kept: a Helm chart when the record says so (with its packed
/// subcharts), otherwise a flotilla chart.
pub fn recorded_chart(label: &Path, source: &crate::release::RevisionSource) -> Result<Chart> {
    use base64::Engine as _;
    let Some(helm) = &source.helm else {
        return Ok(Chart::from_files(
            label,
            &source.chart,
            &Default::default(),
            Some(ChartType::Flotilla),
        )?);
    };
    let binary = helm
        .binary_files
        .iter()
        .filter_map(|(rel, text)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            Some((rel.clone(), bytes))
        })
        .collect();
    Ok(Chart::from_files(
        label,
        &source.chart,
        &binary,
        Some(ChartType::Helm),
    )?)
}
