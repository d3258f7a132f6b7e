//! The stricter checks `lint` runs on rendered objects: known kinds must parse into their
//! k8s-openapi types, and no field may be dropped on the way.
//!
//! k8s-openapi types ignore unknown fields, so a misspelt `replica:` would parse. The
//! check re-serialises the typed object and reports every field of the rendered object
//! that did not survive: exactly the fields Kubernetes does not know.

use super::render::{Manifest, RenderedObject};
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
