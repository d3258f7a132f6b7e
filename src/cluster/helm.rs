//! A Helm release in one cluster, as Helm's storage keeps it: the Secret
//! `sh.helm.release.v1.<name>.v<revision>` (labels `owner=helm`, `name`, `status`,
//! `version`) whose `release` key is the release as JSON, gzip-compressed and
//! base64-encoded by Helm (inside the API's own base64). And what taking a release over
//! from Helm changes on its objects: Helm's ownership annotations and its field
//! manager's entries go, so that Helm no longer claims the object and a field a later
//! revision drops is removed, not kept alive by Helm's ownership.

use super::{ClusterError, ClusterHandle, ObjectRef};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;
use std::io::Read;

/// The field manager Helm applies with (Helm 4's server-side apply, Helm 3's updates).
pub const HELM_MANAGER: &str = "helm";

/// What flotilla takes from a Helm release.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmRelease {
    pub name: String,
    pub namespace: String,
    /// Helm's revision number.
    pub revision: u64,
    pub chart_name: String,
    pub chart_version: String,
    /// `appVersion` of the chart (empty when it has none).
    pub app_version: String,
    /// The chart's own values (`values.yaml`).
    pub chart_values: Value,
    /// What the release was given over them (`-f`, `--set`: Helm's `config`).
    pub config: Value,
    /// Every object of the release's manifest (hooks are not in it).
    pub objects: Vec<Value>,
    /// The names of its hooks other than test hooks, which an import does not take over.
    pub hooks: Vec<String>,
}

impl ClusterHandle {
    /// The deployed revision of Helm release `name` in `namespace`; `None` when there is
    /// no such release. A release whose newest revision is not the deployed one (a
    /// failed or pending upgrade, a rollback under way) is an error: what runs may be
    /// neither revision.
    pub async fn helm_release(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HelmRelease>, ClusterError> {
        let what = format!("Helm release {namespace}/{name}");
        let secrets = Api::<Secret>::namespaced(self.client(), namespace)
            .list(&ListParams::default().labels(&format!("owner=helm,name={name}")))
            .await
            .map_err(|e| self.error("read", &what, e))?;
        let label = |s: &Secret, key: &str| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key).cloned())
                .unwrap_or_default()
        };
        let newest = secrets
            .items
            .into_iter()
            .max_by_key(|s| label(s, "version").parse::<u64>().unwrap_or(0));
        let Some(secret) = newest else {
            return Ok(None);
        };
        let status = label(&secret, "status");
        if status != "deployed" {
            return Err(ClusterError::Release {
                context: self.context().to_owned(),
                message: format!(
                    "{what}: its newest revision {} is `{status}`, not deployed: settle it with Helm first (`helm rollback` or `helm upgrade`), then take it over",
                    label(&secret, "version")
                ),
            });
        }
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        let invalid = |message: String| ClusterError::Release {
            context: self.context().to_owned(),
            message: format!(
                "{namespace}/{secret_name}: not a Helm release Helm could read: {message}"
            ),
        };
        let data = secret
            .data
            .as_ref()
            .and_then(|d| d.get("release"))
            .ok_or_else(|| invalid("no `release` key".into()))?;
        let json = decode(&data.0).map_err(invalid)?;
        parse(&json, name, namespace).map(Some).map_err(invalid)
    }

    /// Makes an object of a Helm release no longer Helm's: removes the
    /// `meta.helm.sh/release-*` annotations and the managed-fields entries of Helm's
    /// field manager, in one merge patch. The object's spec does not change.
    pub async fn release_from_helm(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<(), ClusterError> {
        let Some(live) = self.get_live(id, namespace).await? else {
            return Ok(());
        };
        let entries = live.metadata.managed_fields.clone().unwrap_or_default();
        let kept: Vec<_> = entries
            .iter()
            .filter(|m| m.manager.as_deref() != Some(HELM_MANAGER))
            .cloned()
            .collect();
        let annotations = live.metadata.annotations.clone().unwrap_or_default();
        let helm_annotations: serde_json::Map<String, Value> = annotations
            .keys()
            .filter(|k| k.starts_with("meta.helm.sh/"))
            .map(|k| (k.clone(), Value::Null))
            .collect();
        if kept.len() == entries.len() && helm_annotations.is_empty() {
            return Ok(());
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "resourceVersion".into(),
            live.metadata.resource_version.clone().into(),
        );
        if !helm_annotations.is_empty() {
            metadata.insert("annotations".into(), Value::Object(helm_annotations));
        }
        if kept.len() != entries.len() && !kept.is_empty() {
            metadata.insert(
                "managedFields".into(),
                serde_json::to_value(&kept).unwrap_or_default(),
            );
        }
        let (api, _) = self.api(id, namespace, None).await?;
        api.patch(
            &id.name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "metadata": metadata })),
        )
        .await
        .map_err(|e| self.error("patch", id, e))?;
        Ok(())
    }

    /// Deletes every revision Secret of Helm release `name`: `helm list` forgets it.
    /// Returns their names.
    pub async fn delete_helm_history(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, ClusterError> {
        let what = format!("Helm release {namespace}/{name}");
        let api = Api::<Secret>::namespaced(self.client(), namespace);
        let secrets = api
            .list(&ListParams::default().labels(&format!("owner=helm,name={name}")))
            .await
            .map_err(|e| self.error("read", &what, e))?;
        let mut deleted = Vec::new();
        for secret in secrets.items {
            let Some(secret_name) = secret.metadata.name else {
                continue;
            };
            match api.delete(&secret_name, &DeleteParams::default()).await {
                Ok(_) => deleted.push(secret_name),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => {
                    return Err(self.error(
                        "delete",
                        &format!("Secret {namespace}/{secret_name}"),
                        e,
                    ))
                }
            }
        }
        Ok(deleted)
    }
}

/// The `release` value of a Helm release Secret as JSON text: base64 (Helm's), then
/// gzip (when it starts with gzip's magic bytes, as Helm writes it).
fn decode(data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut json = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut json)
            .map_err(|e| format!("not gzip: {e}"))?;
        Ok(json)
    } else {
        String::from_utf8(bytes).map_err(|e| format!("not text: {e}"))
    }
}

fn parse(json: &str, name: &str, namespace: &str) -> Result<HelmRelease, String> {
    let release: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let metadata = &release["chart"]["metadata"];
    let map_at = |value: &Value| match value {
        Value::Object(map) => Value::Object(map.clone()),
        _ => Value::Object(Default::default()),
    };
    let manifest = release["manifest"].as_str().unwrap_or_default();
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(manifest) {
        let object: Value = serde::Deserialize::deserialize(document)
            .map_err(|e| format!("its manifest is not YAML: {e}"))?;
        if object.is_object() {
            objects.push(object);
        }
    }
    let hooks = release["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|hook| {
            !hook["events"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|e| e.as_str().is_some_and(|e| e.starts_with("test")))
        })
        .map(|hook| format!("{} ({})", text(&hook["name"]), text(&hook["path"])))
        .collect();
    Ok(HelmRelease {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        revision: release["version"].as_u64().unwrap_or(0),
        chart_name: text(&metadata["name"]),
        chart_version: text(&metadata["version"]),
        app_version: text(&metadata["appVersion"]),
        chart_values: map_at(&release["chart"]["values"]),
        config: map_at(&release["config"]),
        objects,
        hooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn encoded(release: &Value) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(release.to_string().as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD
            .encode(gz.finish().unwrap())
            .into_bytes()
    }

    #[test]
    fn a_helm_release_reads_with_its_objects_values_and_hooks() {
        let release = serde_json::json!({
            "name": "web", "version": 3, "namespace": "ns",
            "chart": {
                "metadata": {"name": "web", "version": "0.1.0", "appVersion": "1.16.0"},
                "values": {"replicaCount": 1, "image": {"repository": "nginx", "tag": ""}}
            },
            "config": {"replicaCount": 2},
            "manifest": "---\n# Source: web/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n---\n# Source: web/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
            "hooks": [
                {"name": "web-test", "path": "web/templates/tests/t.yaml", "events": ["test"]},
                {"name": "web-migrate", "path": "web/templates/job.yaml", "events": ["pre-upgrade"]}
            ]
        });
        let json = decode(&encoded(&release)).unwrap();
        let read = parse(&json, "web", "ns").unwrap();
        assert_eq!(read.revision, 3);
        assert_eq!(
            (read.chart_name.as_str(), read.app_version.as_str()),
            ("web", "1.16.0")
        );
        assert_eq!(read.config, serde_json::json!({"replicaCount": 2}));
        assert_eq!(read.chart_values["image"]["repository"], "nginx");
        let names: Vec<&str> = read
            .objects
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["web", "web"]);
        assert_eq!(read.hooks, ["web-migrate (web/templates/job.yaml)"]);
        assert!(decode(b"%%%").unwrap_err().starts_with("not base64"));
    }
}
