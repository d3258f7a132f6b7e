//! Rendering a recorded revision again, without the checkout: the record's chart files,
//! its merged values (secrets removed) and globals, with secret values read now. What
//! a rollback applies, so that an invalid `release.yaml` or a renamed Secret key in the
//! checkout cannot stand in the way of going back.

use super::error::RenderError;
use super::helm::Capabilities;
use super::manifest::Manifest;
use super::render::{ReleaseInfo, Renderer};
use super::values::SecretValues;
use super::Chart;
use crate::config::{Cluster, Globals, ReleaseSpec, Replicas, Scaling};
use serde_json::Value;
use std::path::Path;

/// What a render takes from the cluster it renders for, besides its globals.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts<'a> {
    /// The release's key in the cluster, for `secretsum` (`None`: no key there).
    pub checksum_key: Option<&'a [u8]>,
    /// A Helm chart's `.Capabilities` (`None`: Helm's defaults).
    pub capabilities: Option<Capabilities>,
}

/// Renders `chart` for `cluster` with the `values` a record kept (`global` and
/// `scaling` included, `secrets` removed) and `secrets` read now. `label` names the
/// record in messages (there is no descriptor file).
pub fn render_recorded(
    chart: &Chart,
    release: ReleaseInfo,
    values: &Value,
    cluster: &Cluster,
    secrets: &SecretValues,
    label: &Path,
    cluster_facts: ClusterFacts<'_>,
) -> Result<Manifest, RenderError> {
    let ClusterFacts {
        checksum_key,
        capabilities,
    } = cluster_facts;
    let invalid = |message: String| RenderError::Values {
        file: label.to_path_buf(),
        field: "values".into(),
        message,
    };
    let mut base = values.clone();
    let (global, scaling) = match base.as_object_mut() {
        Some(map) => (map.remove("global"), map.remove("scaling")),
        None => return Err(invalid("the recorded values are not a map".into())),
    };
    // The cluster as it was when the revision was recorded: its globals then.
    let global: Option<Globals> = global
        .map(serde_json::from_value)
        .transpose()
        .map_err(|err| invalid(format!("recorded `global`: {err}")))?;
    let cluster = Cluster {
        global: global.unwrap_or_else(|| cluster.global.clone()),
        ..cluster.clone()
    };
    let replicas: Vec<Replicas> = match scaling {
        Some(Value::Object(counts)) => counts
            .into_iter()
            .filter_map(|(name, count)| {
                let count = u32::try_from(count.as_u64()?).ok()?;
                Some(Replicas { name, count })
            })
            .collect(),
        _ => Vec::new(),
    };
    let spec = ReleaseSpec {
        chart: String::new(),
        version: release.version.clone(),
        values: serde_yaml_ng::to_value(&base)
            .map_err(|err| invalid(format!("recorded values: {err}")))?,
        environments: Default::default(),
        scaling: vec![Scaling {
            context: cluster.context.clone(),
            replicas,
        }],
        secrets: Vec::new(),
        chart_type: None,
        chart_version: None,
        repository: None,
        chart_pull: None,
    };
    let revision = release.revision;
    // The recorded values are the chart's merged with every layer already: no
    // environment override and no `--set` on top.
    let renderer = Renderer::new(chart, release, &spec, label, "", &Default::default())?
        .with_checksum_key(checksum_key)
        .with_capabilities(capabilities);
    renderer.render_revision(&cluster, secrets, revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn chart() -> Chart {
        let files = BTreeMap::from([
            ("Chart.yaml".to_owned(), "name: app\nversion: 0.2.0\n".to_owned()),
            ("values.yaml".to_owned(), "log: info\n".to_owned()),
            (
                "templates/all.yaml".to_owned(),
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{Release.Name}}-db\nstringData:\n  pw: {{Values.secrets.db}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: { region: {{Values.global.region}}, log: {{Values.log}} }\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers: [{ name: web, image: \"app:{{Release.Version}}\" }]\n".to_owned(),
            ),
        ]);
        Chart::from_files(Path::new("<record>"), &files, &BTreeMap::new(), None).unwrap()
    }

    fn cluster() -> Cluster {
        serde_json::from_value(serde_json::json!({
            "context": "eu",
            "global": {"cloud": true, "env": "prod", "region": "now-region", "clusterName": "eu"}
        }))
        .unwrap()
    }

    #[test]
    fn a_record_renders_again_with_its_own_values_globals_scaling_and_fresh_secrets() {
        let recorded = serde_json::json!({
            "log": "warn",
            "global": {"cloud": true, "env": "prod", "region": "then-region", "clusterName": "eu"},
            "scaling": {"web": 7}
        });
        let info = ReleaseInfo {
            name: "app".into(),
            namespace: "ns".into(),
            version: "1.2.3".into(),
            revision: 9,
        };
        let secrets = SecretValues::from([("db".to_owned(), "fresh-value".to_owned())]);
        let manifest = render_recorded(
            &chart(),
            info,
            &recorded,
            &cluster(),
            &secrets,
            Path::new("<r>"),
            ClusterFacts::default(),
        )
        .unwrap();
        let [secret, web] = &manifest.objects[..] else {
            panic!("{manifest:?}")
        };
        assert_eq!(secret.object["stringData"]["pw"], "fresh-value");
        assert_eq!(web.object["metadata"]["labels"]["region"], "then-region");
        assert_eq!(web.object["metadata"]["labels"]["log"], "warn");
        assert_eq!(web.object["spec"]["replicas"], 7);
        assert_eq!(
            web.object["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:1.2.3"
        );
    }

    #[test]
    fn chart_files_round_trip_through_a_record() {
        let chart = chart();
        let again = Chart::from_files(Path::new("<record>"), chart.files(), &BTreeMap::new(), None)
            .unwrap();
        assert_eq!(again.files(), chart.files());
        assert_eq!(again.metadata.version, "0.2.0");
        assert_eq!(again.templates(), ["templates/all.yaml"]);
    }
}
