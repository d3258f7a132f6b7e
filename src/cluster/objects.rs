//! Identity of rendered objects and the order they are applied in.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Which object: enough to find it in a cluster and to compare two manifests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects (and for namespaced ones not yet defaulted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Reads the identity of a rendered object; the error says which field is missing.
    pub fn of(object: &Value) -> Result<ObjectRef, String> {
        let field = |path: &[&str]| -> Option<String> {
            let mut v = object;
            for key in path {
                v = v.get(key)?;
            }
            v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
        };
        let api_version = field(&["apiVersion"]).ok_or("object has no `apiVersion`")?;
        let kind = field(&["kind"]).ok_or("object has no `kind`")?;
        let name =
            field(&["metadata", "name"]).ok_or_else(|| format!("{kind} has no `metadata.name`"))?;
        Ok(ObjectRef {
            api_version,
            kind,
            namespace: field(&["metadata", "namespace"]),
            name,
        })
    }

    /// `(group, version)` of the apiVersion (`""` group for the core API).
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Kinds in dependency order, as Helm's `InstallOrder`: what others refer to first.
/// Unknown kinds (custom resources) go after the known ones, before nothing.
const APPLY_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn rank(kind: &str) -> usize {
    APPLY_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(APPLY_ORDER.len())
}

/// Sorts objects for apply; stable, so the chart's order holds within a kind.
/// Deletion (prune, uninstall) uses the reverse.
pub fn sort_for_apply<T>(objects: &mut [T], kind_of: impl Fn(&T) -> &str) {
    objects.sort_by_key(|o| rank(kind_of(o)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_before_workloads_and_custom_kinds_last() {
        let mut kinds = vec![
            "Deployment",
            "Widget",
            "Service",
            "ConfigMap",
            "CustomResourceDefinition",
            "Secret",
            "Namespace",
            "ServiceAccount",
        ];
        sort_for_apply(&mut kinds, |k| k);
        assert_eq!(
            kinds,
            vec![
                "Namespace",
                "ServiceAccount",
                "Secret",
                "ConfigMap",
                "CustomResourceDefinition",
                "Service",
                "Deployment",
                "Widget"
            ]
        );
    }

    #[test]
    fn identity_errors_name_the_missing_field() {
        let err = ObjectRef::of(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}));
        assert_eq!(err.unwrap_err(), "ConfigMap has no `metadata.name`");
    }
}
