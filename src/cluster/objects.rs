//! Identity of rendered objects and the order they are applied in.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Which object: enough to find it in a cluster and to compare two manifests.
///
/// Two refs are the same object when group, kind, namespace and name agree, as Helm
/// compares them: the version only builds the URL, so a chart that moves an object to
/// a newer apiVersion (`autoscaling/v2beta2` → `autoscaling/v2`) updates it, and prune,
/// diff, status and uninstall do not see a stale object under the old version.
/// Equality, ordering and hashing all follow that rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

    /// The API group (`""` for the core API): with kind, namespace and name, what
    /// identifies the object.
    pub fn group(&self) -> &str {
        self.group_version().0
    }

    /// What identity compares: group, kind, namespace, name (never the version).
    fn key(&self) -> (&str, &str, Option<&str>, &str) {
        (
            self.group(),
            self.kind.as_str(),
            self.namespace.as_deref(),
            self.name.as_str(),
        )
    }
}

impl PartialEq for ObjectRef {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ObjectRef {}

impl std::hash::Hash for ObjectRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for ObjectRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
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

/// The round of an apply in which objects of `kind` are sent, all of a round at once,
/// each round once the one before it is answered: the Namespace; what workloads and
/// custom resources refer to (config, storage, RBAC, CRDs, Services); the workloads and
/// the other known kinds; custom resources (their CRDs served by then). Four rounds at
/// most, where one object after the other takes as many round trips as there are
/// objects; the dependencies that need an order (a namespace before its objects, a CRD
/// before its resources, a ConfigMap before the pods that mount it) keep theirs.
pub fn apply_round(kind: &str) -> u8 {
    let rank = rank(kind);
    if rank == 0 {
        0
    } else if rank
        <= APPLY_ORDER
            .iter()
            .position(|k| *k == "Service")
            .unwrap_or(0)
    {
        1
    } else if rank < APPLY_ORDER.len() {
        2
    } else {
        3
    }
}

/// What the objects applied after `object` can see of it, to tell whether a change of
/// it must land before theirs: a pod reads a ConfigMap's or a Secret's data (mounted or
/// as variables, at its start) and a Service's address (variables at its start), never
/// their labels or annotations; of every other kind, the whole object (a Namespace's
/// labels decide which pods it admits, a ServiceAccount's annotations what identity
/// its pods get).
pub fn seen_by_dependents(object: &Value) -> Value {
    let pick = |fields: &[&str]| {
        Value::Object(
            fields
                .iter()
                .filter_map(|f| Some(((*f).to_owned(), object.get(*f)?.clone())))
                .collect(),
        )
    };
    match (
        object.get("apiVersion").and_then(Value::as_str),
        object.get("kind").and_then(Value::as_str),
    ) {
        (Some("v1"), Some("ConfigMap" | "Secret")) => {
            pick(&["data", "binaryData", "stringData", "type", "immutable"])
        }
        (Some("v1"), Some("Service")) => pick(&["spec"]),
        _ => object.clone(),
    }
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
    fn an_apply_goes_in_rounds_that_keep_the_order_of_dependencies() {
        let rounds: Vec<u8> = [
            "Namespace",
            "ServiceAccount",
            "Secret",
            "ConfigMap",
            "PersistentVolumeClaim",
            "CustomResourceDefinition",
            "RoleBinding",
            "Service",
            "Deployment",
            "StatefulSet",
            "Job",
            "Ingress",
            "Widget",
        ]
        .iter()
        .map(|k| apply_round(k))
        .collect();
        assert_eq!(rounds, vec![0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3]);
        // Sorted for apply, the rounds never go back.
        let mut kinds = vec!["Widget", "Deployment", "Secret", "Namespace", "Service"];
        sort_for_apply(&mut kinds, |k| k);
        let rounds: Vec<u8> = kinds.iter().map(|k| apply_round(k)).collect();
        assert!(rounds.windows(2).all(|w| w[0] <= w[1]), "{rounds:?}");
    }

    fn hpa(api_version: &str) -> ObjectRef {
        ObjectRef::of(&serde_json::json!({"apiVersion": api_version,
            "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "ns"}}))
        .unwrap()
    }

    #[test]
    fn identity_is_group_kind_namespace_name_never_the_version() {
        use std::collections::{BTreeSet, HashSet};
        let (old, new) = (hpa("autoscaling/v2beta1"), hpa("autoscaling/v2beta2"));
        assert_eq!(old, new);
        assert_eq!(BTreeSet::from([old.clone()]).len(), 1);
        assert!(BTreeSet::from([old.clone()]).contains(&new));
        assert!(HashSet::from([old.clone()]).contains(&new));
        // The version still builds the URL.
        assert_eq!(new.group_version(), ("autoscaling", "v2beta2"));
        // Another group is another object, even with the same kind and name.
        let mut other_group = hpa("example.com/v1");
        assert_ne!(old, other_group);
        other_group.api_version = "autoscaling/v1".into();
        assert_eq!(old, other_group);
        let mut other_ns = new.clone();
        other_ns.namespace = Some("other".into());
        assert_ne!(new, other_ns);
        // The core group is "".
        let cm = ObjectRef::of(
            &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        )
        .unwrap();
        assert_eq!(cm.group(), "");
    }

    #[test]
    fn identity_errors_name_the_missing_field() {
        let err = ObjectRef::of(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}));
        assert_eq!(err.unwrap_err(), "ConfigMap has no `metadata.name`");
    }
}
