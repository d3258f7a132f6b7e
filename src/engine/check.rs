//! The stricter checks `lint` runs on rendered objects: known kinds must parse into their
//! k8s-openapi types, and no field may be dropped on the way.
//!
//! k8s-openapi types ignore unknown fields, so a misspelt `replica:` would parse. The
//! check re-serialises the typed object and reports every field of the rendered object
//! that did not survive: exactly the fields Kubernetes does not know.

use super::manifest::{Manifest, RenderedObject};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// One problem found in a rendered object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The template file it came from.
    pub source: String,
    /// `Deployment/hello-web`.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.object, self.message)
    }
}

/// The kinds checked against their types (others only get the shape check of rendering).
pub const KNOWN_KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "ConfigMap",
    "Secret",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ServiceAccount",
    "Ingress",
];

/// Every problem in a rendered manifest: typed checks of known kinds and objects
/// rendered twice (same apiVersion group, kind, namespace and name).
pub fn check_manifest(manifest: &Manifest) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for object in &manifest.objects {
        let problem = |message: String| Problem {
            source: object.source.display().to_string(),
            object: format!("{}/{}", object.kind(), object.name()),
            message,
        };
        let namespace = object.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let key = (
            object.kind().to_string(),
            namespace.to_string(),
            object.name().to_string(),
        );
        if !seen.insert(key) {
            problems.push(problem(
                "rendered more than once (same kind, namespace and name)".into(),
            ));
        }
        problems.extend(check_object(object).into_iter().map(problem));
    }
    problems
}

/// Where a secret lands outside a `Secret`, in a manifest rendered with placeholders
/// ([`super::placeholder`]): each field of another object that holds a placeholder, or
/// its base64. Such a value is readable by anyone who can `get` that object (a ConfigMap,
/// a pod's env or annotations), not only by who can read Secrets; `lint` warns (an error
/// under `--strict`) and names the fix.
pub fn secret_placements(manifest: &Manifest) -> Vec<Problem> {
    let mut found = Vec::new();
    for object in &manifest.objects {
        if crate::redact::is_secret(&object.object) {
            continue;
        }
        let mut fields = Vec::new();
        leaf_strings("", &object.object, &mut fields);
        for (path, text) in fields {
            for (id, how) in placeholders_in(&text)
                .into_iter()
                .map(|id| (id, "the value"))
                .chain(
                    base64_placeholders(&text)
                        .into_iter()
                        .map(|id| (id, "the base64 of the value")),
                )
            {
                let fix = if path.contains(".env[") {
                    "use `valueFrom: {secretKeyRef: {name: <Secret>, key: <key>}}` instead"
                } else {
                    "put it in a Secret and reference it (`secretKeyRef`, `envFrom.secretRef`, a Secret volume)"
                };
                found.push(Problem {
                    source: object.source.display().to_string(),
                    object: format!("{}/{}", object.kind(), object.name()),
                    message: format!(
                        "{path}: holds {how} of secret `{id}` outside a Secret (anyone who can read this {} can read it); {fix}",
                        object.kind()
                    ),
                });
            }
        }
    }
    found
}

/// Every string leaf with its path (`spec.template.spec.containers[0].env[1].value`).
fn leaf_strings(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.push((path.to_string(), text.clone())),
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                leaf_strings(&path, inner, out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                leaf_strings(&format!("{path}[{i}]"), inner, out);
            }
        }
        _ => {}
    }
}

/// The secret ids of the `<secret:ID>` placeholders in a text.
fn placeholders_in(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<secret:") {
        let after = &rest[start + "<secret:".len()..];
        match after.find('>') {
            Some(end) => {
                let id = after[..end].to_string();
                if !ids.contains(&id) {
                    ids.push(id);
                }
                rest = &after[end..];
            }
            None => break,
        }
    }
    ids
}

/// The secret ids whose placeholder a base64 text decodes to (`b64enc` of a secret).
fn base64_placeholders(text: &str) -> Vec<String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|decoded| placeholders_in(&decoded))
        .unwrap_or_default()
}

/// Problems of one object, as messages naming the field path.
pub fn check_object(object: &RenderedObject) -> Vec<String> {
    match object.kind() {
        "Deployment" => typed::<Deployment>(&object.object),
        "Service" => typed::<Service>(&object.object),
        "ConfigMap" => typed::<ConfigMap>(&object.object),
        "Secret" => typed::<Secret>(&object.object),
        "StatefulSet" => typed::<StatefulSet>(&object.object),
        "DaemonSet" => typed::<DaemonSet>(&object.object),
        "Job" => typed::<Job>(&object.object),
        "ServiceAccount" => typed::<ServiceAccount>(&object.object),
        "Ingress" => typed::<Ingress>(&object.object),
        _ => Vec::new(),
    }
}

fn typed<K: Resource + DeserializeOwned + Serialize>(rendered: &Value) -> Vec<String> {
    let api_version = rendered["apiVersion"].as_str().unwrap_or_default();
    if api_version != K::API_VERSION {
        return vec![format!(
            "apiVersion {api_version:?}: a {} is {:?}",
            K::KIND,
            K::API_VERSION
        )];
    }
    let parsed: K = match serde_path_to_error::deserialize(rendered) {
        Ok(parsed) => parsed,
        Err(err) => {
            let path = err.path().to_string();
            return vec![format!("{path}: {}", err.into_inner())];
        }
    };
    let reserialised = match serde_json::to_value(&parsed) {
        Ok(value) => value,
        Err(err) => return vec![format!("cannot serialise as {}: {err}", K::KIND)],
    };
    let mut dropped = Vec::new();
    unknown_fields(rendered, &reserialised, String::new(), &mut dropped);
    dropped
        .into_iter()
        .map(|path| {
            format!(
                "{path}: unknown field (not in the {} {} schema)",
                K::API_VERSION,
                K::KIND
            )
        })
        .collect()
}

/// Paths of `rendered` that are absent from `known`. Nulls are skipped: serialising a
/// typed object leaves out empty optionals, and `key: null` means "not set" anyway.
fn unknown_fields(rendered: &Value, known: &Value, path: String, out: &mut Vec<String>) {
    match (rendered, known) {
        (Value::Object(rendered), Value::Object(known)) => {
            for (key, value) in rendered {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    Some(known) => unknown_fields(value, known, child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(rendered), Value::Array(known)) => {
            for (index, (value, known)) in rendered.iter().zip(known).enumerate() {
                unknown_fields(value, known, format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> RenderedObject {
        RenderedObject {
            source: "templates/x.yaml".into(),
            object: value,
        }
    }

    #[test]
    fn a_misspelt_field_is_reported_with_its_path() {
        let deployment = object(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replica": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always", "port": 80}]}}}
        }));
        assert_eq!(
            check_object(&deployment),
            vec![
                "spec.replica: unknown field (not in the apps/v1 Deployment schema)",
                "spec.template.spec.containers[0].port: unknown field (not in the apps/v1 Deployment schema)",
            ]
        );
    }

    #[test]
    fn a_wrong_type_is_reported_with_its_path() {
        let service = object(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": "eighty"}]}
        }));
        let problems = check_object(&service);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("spec.ports[0].port: invalid type"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_correct_object_and_an_unknown_kind_pass() {
        let config = object(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {}},
            "data": {"a": "b"}
        }));
        assert!(check_object(&config).is_empty());
        let custom = object(
            json!({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t"}, "anything": 1}),
        );
        assert!(check_object(&custom).is_empty());
    }
}
