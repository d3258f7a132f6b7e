//! The labels flotilla puts on every object it applies, and reads back before it deletes
//! anything: an object without both is never pruned or uninstalled.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// `app.kubernetes.io/managed-by`, the recommended Kubernetes label.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] (and of the records' `owner` label).
pub const MANAGER: &str = "flotilla";
/// The release an object belongs to.
pub const RELEASE: &str = "flotilla.dev/release";

/// The label selector of every object of a release.
pub fn selector(release: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{RELEASE}={release}")
}

/// The annotation on every object of a revision imported from Helm (`adopt-helm`):
/// `helm/<release>/<revision>`.
pub const IMPORTED_FROM: &str = "flotilla.dev/imported-from";

/// Adds our labels to an object's metadata (JSON form), keeping the chart's own. Pod
/// templates are left as the chart has them: a label there would change the template,
/// and so restart every pod, of a workload taken over from Helm or from an earlier
/// flotilla. The release's pods are found through its workloads' selectors
/// ([`selects`]).
pub fn stamp(object: &mut Value, release: &str) {
    stamp_metadata(object, &[(MANAGED_BY, MANAGER), (RELEASE, release)]);
}

/// The selectors of workloads, read as the API server reads them; one it cannot read
/// (a malformed expression) selects nothing rather than everything.
pub fn selectors<'a>(
    selectors: impl IntoIterator<Item = &'a LabelSelector>,
) -> Vec<kube::core::Selector> {
    selectors
        .into_iter()
        .filter_map(|s| kube::core::Selector::try_from(s.clone()).ok())
        .collect()
}

/// Whether a pod is the release's: selected by one of its workloads' `selectors`, or
/// itself an object of the release (a Helm hook or test Pod carries its labels).
pub fn selects(
    selectors: &[kube::core::Selector],
    pod_labels: &std::collections::BTreeMap<String, String>,
    release: &str,
) -> bool {
    use kube::core::SelectorExt;
    owned_by(Some(pod_labels), release) || selectors.iter().any(|s| s.matches(pod_labels))
}

/// The selector of the pods that carry this release's own labels: Pods that are objects
/// of the release themselves (Helm hook and test Pods).
pub fn own_pods(release: &str) -> kube::core::Selector {
    [
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (RELEASE.to_owned(), release.to_owned()),
    ]
    .into_iter()
    .collect()
}

/// One label selector for the API server that matches every pod any of `selectors`
/// matches, and as few others as one selector can: a requirement on each key that every
/// one of them constrains (`app in (web,worker)` for `app=web` and `app=worker`,
/// `instance=hello` when they all say it). Pod templates carry no label of flotilla's,
/// so this is what keeps the other pods of a shared namespace out of a list or watch of
/// a release's pods; it is a superset, which [`selects`] then narrows. `None`: no pod can
/// match (no selectors, or none that can match anything), so there is nothing to ask.
/// An empty selector: no key is common to them all, every pod of the namespace.
pub fn pods_selector(selectors: &[kube::core::Selector]) -> Option<kube::core::Selector> {
    // What each key may be in the pods of each selector; a selector that no pod can
    // match is left out.
    let each: Vec<BTreeMap<String, Allowed>> = selectors
        .iter()
        .map(|selector| {
            let mut keys: BTreeMap<String, Allowed> = BTreeMap::new();
            for expression in selector.clone() {
                let (key, allowed) = Allowed::of(expression);
                let both = match keys.remove(&key) {
                    Some(before) => before.and(allowed),
                    None => allowed,
                };
                keys.insert(key, both);
            }
            keys
        })
        .filter(|keys| !keys.values().any(Allowed::is_nothing))
        .collect();
    let (first, rest) = each.split_first()?;
    let mut selector = kube::core::Selector::default();
    // A key that one of them leaves free is free in their union.
    for (key, allowed) in first {
        let union = rest.iter().try_fold(allowed.clone(), |union, keys| {
            keys.get(key).map(|other| union.or(other.clone()))
        });
        if let Some(union) = union {
            selector.extend(union.requirement(key));
        }
    }
    Some(selector)
}

/// [`pods_selector`] as the `labelSelector` of a list or watch of the pods of
/// `namespace` in cluster `context` (empty: every pod of it; `None`: none to ask for),
/// with a debug line when it cannot leave the namespace's other pods out.
pub fn pods_query(
    context: &str,
    namespace: &str,
    selectors: &[kube::core::Selector],
) -> Option<String> {
    let selector = pods_selector(selectors)?;
    if selector.selects_all() {
        tracing::debug!(
            cluster = context,
            "the release's workloads in namespace {namespace} share no label of their selectors: every pod of it is read"
        );
    }
    Some(selector.to_string())
}

/// What one label may be in the pods a selector matches: absent or not, and which
/// values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowed {
    absent: bool,
    values: Values,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    Only(BTreeSet<String>),
    Except(BTreeSet<String>),
}

impl Allowed {
    fn of(expression: kube::core::Expression) -> (String, Allowed) {
        use kube::core::Expression as E;
        let (key, absent, values) = match expression {
            E::In(key, values) => (key, false, Values::Only(values)),
            E::Equal(key, value) => (key, false, Values::Only([value].into())),
            E::NotIn(key, values) => (key, true, Values::Except(values)),
            E::NotEqual(key, value) => (key, true, Values::Except([value].into())),
            E::Exists(key) => (key, false, Values::Except(BTreeSet::new())),
            E::DoesNotExist(key) => (key, true, Values::Only(BTreeSet::new())),
        };
        (key, Allowed { absent, values })
    }

    /// Both at once (two requirements of one selector on the same key).
    fn and(self, other: Allowed) -> Allowed {
        use Values::{Except, Only};
        let values = match (self.values, other.values) {
            (Only(a), Only(b)) => Only(&a & &b),
            (Only(a), Except(b)) | (Except(b), Only(a)) => Only(&a - &b),
            (Except(a), Except(b)) => Except(&a | &b),
        };
        Allowed {
            absent: self.absent && other.absent,
            values,
        }
    }

    /// Either (the same key in two selectors).
    fn or(self, other: Allowed) -> Allowed {
        use Values::{Except, Only};
        let values = match (self.values, other.values) {
            (Only(a), Only(b)) => Only(&a | &b),
            (Only(a), Except(b)) | (Except(b), Only(a)) => Except(&b - &a),
            (Except(a), Except(b)) => Except(&a & &b),
        };
        Allowed {
            absent: self.absent || other.absent,
            values,
        }
    }

    fn is_nothing(&self) -> bool {
        !self.absent && matches!(&self.values, Values::Only(v) if v.is_empty())
    }

    /// The requirements of the selector syntax that hold whenever this does (all of it
    /// when it can be written, less when not: a label absent or one of some values has
    /// no requirement). A key or value the syntax cannot carry is left out, which only
    /// widens the selector.
    fn requirement(self, key: &str) -> Vec<kube::core::Expression> {
        use kube::core::Expression as E;
        if !writable(key) {
            return Vec::new();
        }
        let key = key.to_owned();
        match (self.absent, self.values) {
            (false, Values::Only(values)) if values.iter().all(|v| writable(v)) => {
                match values.len() {
                    1 => values
                        .into_iter()
                        .map(|v| E::Equal(key.clone(), v))
                        .collect(),
                    _ => vec![E::In(key, values)],
                }
            }
            (false, Values::Only(_)) => vec![E::Exists(key)],
            (true, Values::Only(values)) if values.is_empty() => vec![E::DoesNotExist(key)],
            (true, Values::Only(_)) => Vec::new(),
            (absent, Values::Except(values)) => {
                let values: BTreeSet<String> = values.into_iter().filter(|v| writable(v)).collect();
                let exists = (!absent).then(|| E::Exists(key.clone()));
                let not_in = (!values.is_empty()).then_some(E::NotIn(key, values));
                exists.into_iter().chain(not_in).collect()
            }
        }
    }
}

/// Whether a key or value can stand in a selector string as it is (a server-validated
/// selector's always can; the empty value is left out of `in (...)` lists).
fn writable(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Whether a rollback hands the object back (an undone run adopted it): its release
/// labels and the adoption annotation are removed, so that nothing of the release deletes
/// it later.
pub fn handed_back(annotations: Option<&Map>, removal: Removal) -> bool {
    removal.is_rollback() && annotations.is_some_and(|a| a.contains_key(ADOPTED_BY))
}

/// The merge patch that hands an adopted object back.
pub fn hand_back_patch() -> Value {
    serde_json::json!({"metadata": {
        "labels": {MANAGED_BY: null, RELEASE: null},
        "annotations": {ADOPTED_BY: null},
    }})
}

/// Sets one annotation of an object (JSON form).
pub fn annotate(object: &mut Value, key: &str, value: &str) {
    let Some(metadata) = object
        .as_object_mut()
        .map(|o| {
            o.entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if !annotations.is_object() {
        *annotations = Value::Object(Default::default());
    }
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(key.into(), value.into());
    }
}

/// Where a workload of `kind` keeps its pod template (a JSON pointer).
fn pod_template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The value of [`RELEASE`] in a workload's pod template (JSON form), if it has one:
/// flotilla put it there until it found pods through the workloads' selectors.
pub fn pod_template_release(object: &Value) -> Option<&str> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    object
        .pointer(pod_template_pointer(kind)?)?
        .pointer("/metadata/labels")?
        .get(RELEASE)?
        .as_str()
}

/// Puts [`RELEASE`] back in a workload's pod template (JSON form), for a workload
/// whose live template has it from an earlier flotilla ([`pod_template_release`]):
/// applying the template without it would change it, and restart every pod, for
/// nothing.
pub fn keep_pod_template_label(object: &mut Value, release: &str) {
    let Some(pointer) = object
        .get("kind")
        .and_then(Value::as_str)
        .and_then(pod_template_pointer)
    else {
        return;
    };
    if let Some(template) = object.pointer_mut(pointer).filter(|t| t.is_object()) {
        stamp_metadata(template, &[(RELEASE, release)]);
    }
}

fn stamp_metadata(object: &mut Value, pairs: &[(&str, &str)]) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    if let Some(labels) = labels.as_object_mut() {
        for (key, value) in pairs {
            labels.insert((*key).into(), (*value).into());
        }
    }
}

/// Whether labels (of a live object) say that flotilla owns it for this release.
pub fn owned_by(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    release: &str,
) -> bool {
    labels.is_some_and(|l| {
        l.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
            && l.get(RELEASE).map(String::as_str) == Some(release)
    })
}

/// The annotation that keeps an object on prune and uninstall (`keep`), or lets a
/// deploy prune a kind that is otherwise never pruned (`delete`).
pub const RESOURCE_POLICY: &str = "flotilla.dev/resource-policy";
/// Helm's annotation of the same name; `keep` is honoured for charts coming from Helm.
pub const HELM_RESOURCE_POLICY: &str = "helm.sh/resource-policy";

/// Kinds that hold what cannot come back (data, a namespace's every object, a custom
/// API): a deploy never prunes them unless the object says `flotilla.dev/resource-policy:
/// delete`.
pub const NEVER_PRUNED: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "StorageClass",
];

/// Why a delete was asked: a deploy dropping an object, an uninstall, or the same
/// done by a rollback (a restore's prune, the uninstall that undoes a failed install).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Prune,
    Uninstall,
    RollbackPrune,
    RollbackUninstall,
}

impl Removal {
    fn is_prune(self) -> bool {
        matches!(self, Removal::Prune | Removal::RollbackPrune)
    }

    fn is_rollback(self) -> bool {
        matches!(self, Removal::RollbackPrune | Removal::RollbackUninstall)
    }
}

/// The annotation a run puts on an object it adopted (`--adopt`), with its deployment
/// id. The object's next apply drops it; until then a rollback never deletes the object,
/// which existed before the run it undoes.
pub const ADOPTED_BY: &str = "flotilla.dev/adopted-by";

type Map = std::collections::BTreeMap<String, String>;

/// Why an object of the release must stay, or `None` when it may be deleted: it is not
/// this release's (labels), it is annotated `keep` (ours or Helm's), or it is of a kind
/// a prune never deletes without the opt-in annotation.
pub fn keep_reason(
    kind: &str,
    labels: Option<&Map>,
    annotations: Option<&Map>,
    release: &str,
    removal: Removal,
) -> Option<String> {
    if !owned_by(labels, release) {
        return Some(format!(
            "it lacks the labels {MANAGED_BY}={MANAGER} and {RELEASE}={release}"
        ));
    }
    let policy = |key: &str| annotations.and_then(|a| a.get(key)).map(|v| v.trim());
    for key in [RESOURCE_POLICY, HELM_RESOURCE_POLICY] {
        if policy(key) == Some("keep") {
            return Some(format!("annotated {key}: keep"));
        }
    }
    if let Some(run) = policy(ADOPTED_BY).filter(|_| removal.is_rollback()) {
        return Some(format!(
            "adopted by deployment {run}: it existed before that run, which this rollback undoes; handed back without the release's labels"
        ));
    }
    if removal.is_prune()
        && NEVER_PRUNED.contains(&kind)
        && policy(RESOURCE_POLICY) != Some("delete")
    {
        return Some(format!(
            "a {kind} is never pruned (annotate it {RESOURCE_POLICY}: delete to allow it)"
        ));
    }
    None
}

/// Labels or annotations of an object in JSON form.
pub fn string_map(object: &Value, field: &str) -> Option<Map> {
    let map = object.get("metadata")?.get(field)?.as_object()?;
    Some(
        map.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
    )
}

/// What a live object says about who owns it, as the ownership check reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveMeta {
    pub labels: Map,
    pub annotations: Map,
    /// The field managers of `metadata.managedFields` (`kubectl-create`, `helm`).
    pub managers: Vec<String>,
    /// The [`RELEASE`] label of its pod template (a workload an earlier flotilla
    /// applied): [`keep_pod_template_label`].
    pub pod_template_release: Option<String>,
}

impl LiveMeta {
    /// What the ownership check reads of a live object (JSON form).
    pub fn of(live: &Value) -> LiveMeta {
        let mut managers: Vec<String> = live
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("manager")?.as_str().map(str::to_owned))
            .collect();
        managers.dedup();
        LiveMeta {
            labels: string_map(live, "labels").unwrap_or_default(),
            annotations: string_map(live, "annotations").unwrap_or_default(),
            managers,
            pod_template_release: pod_template_release(live).map(str::to_owned),
        }
    }

    /// Whether its pod template carries `release`'s label from an earlier flotilla.
    pub fn pod_template_labelled(&self, release: &str) -> bool {
        self.pod_template_release.as_deref() == Some(release)
    }
}

/// Helm's release annotations, on every object a Helm release made.
const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// Who owns a live object, if not this release: `None` when it is ours (this release's
/// labels; for a Namespace also the `managed-by` label alone, which flotilla puts on the
/// namespaces it creates), else the owner as a person would name it.
pub fn foreign_owner(kind: &str, live: &LiveMeta, release: &str) -> Option<String> {
    let label = |key: &str| live.labels.get(key).map(String::as_str);
    let annotation = |key: &str| live.annotations.get(key).map(String::as_str);
    if owned_by(Some(&live.labels), release) {
        return None;
    }
    match (label(MANAGED_BY), label(RELEASE)) {
        (Some(MANAGER), Some(other)) => return Some(format!("flotilla release `{other}`")),
        (Some(MANAGER), None) if kind == "Namespace" => return None,
        _ => {}
    }
    if let Some(name) = annotation(HELM_RELEASE_NAME) {
        let ns = annotation(HELM_RELEASE_NAMESPACE).unwrap_or("?");
        return Some(format!("Helm release `{name}` in namespace `{ns}`"));
    }
    if let Some(manager) = label(MANAGED_BY) {
        return Some(format!("`{manager}` (label {MANAGED_BY})"));
    }
    let mut text = "no owner flotilla knows (no release labels)".to_owned();
    if !live.managers.is_empty() {
        text.push_str(&format!(", fields managed by {}", live.managers.join(", ")));
    }
    Some(text)
}

/// The field manager of a release's server-side applies: one per release, so that the
/// API server reports a field two releases both set as a conflict.
pub fn field_manager(namespace: &str, release: &str) -> String {
    format!("{MANAGER}/{namespace}/{release}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> LiveMeta {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        LiveMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..LiveMeta::default()
        }
    }

    #[test]
    fn this_releases_labels_are_ours_anything_else_is_named() {
        let ours = live(&[(MANAGED_BY, MANAGER), (RELEASE, "app")], &[]);
        assert_eq!(foreign_owner("ConfigMap", &ours, "app"), None);
        assert_eq!(
            foreign_owner("ConfigMap", &ours, "other").as_deref(),
            Some("flotilla release `app`")
        );
        let helm = live(
            &[(MANAGED_BY, "Helm")],
            &[(HELM_RELEASE_NAME, "web"), (HELM_RELEASE_NAMESPACE, "prod")],
        );
        assert_eq!(
            foreign_owner("ConfigMap", &helm, "app").as_deref(),
            Some("Helm release `web` in namespace `prod`")
        );
        let argo = live(&[(MANAGED_BY, "argocd")], &[]);
        assert_eq!(
            foreign_owner("ConfigMap", &argo, "app").as_deref(),
            Some("`argocd` (label app.kubernetes.io/managed-by)")
        );
        let mut kubectl = live(&[("app", "x")], &[]);
        kubectl.managers = vec!["kubectl-create".into()];
        assert_eq!(
            foreign_owner("ConfigMap", &kubectl, "app").as_deref(),
            Some("no owner flotilla knows (no release labels), fields managed by kubectl-create")
        );
    }

    #[test]
    fn a_namespace_flotilla_created_is_ours_but_not_any_object_with_only_managed_by() {
        let created = live(&[(MANAGED_BY, MANAGER)], &[]);
        assert_eq!(foreign_owner("Namespace", &created, "app"), None);
        assert!(foreign_owner("ConfigMap", &created, "app").is_some());
    }

    #[test]
    fn stamp_labels_the_object_and_never_a_pod_template() {
        let mut d = serde_json::json!({"kind": "Deployment", "metadata": {"name": "w", "labels": {"app": "w"}},
            "spec": {"template": {"metadata": {"labels": {"app": "w"}}, "spec": {}}}});
        stamp(&mut d, "app");
        assert_eq!(d["metadata"]["labels"][MANAGED_BY], MANAGER);
        assert_eq!(d["metadata"]["labels"][RELEASE], "app");
        assert_eq!(d["metadata"]["labels"]["app"], "w");
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"],
            serde_json::json!({"app": "w"}),
            "a label in the pod template would restart the pods of a workload taken over"
        );
        let mut cron = serde_json::json!({"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}});
        stamp(&mut cron, "app");
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"],
            serde_json::json!({"spec": {}})
        );
    }

    #[test]
    fn a_pod_template_labelled_by_an_earlier_flotilla_keeps_its_label() {
        let live = serde_json::json!({"kind": "Deployment", "metadata": {"name": "w",
            "managedFields": [{"manager": "flotilla-ns-app"}, {"manager": "kube-controller-manager"}]},
            "spec": {"template": {"metadata": {"labels": {"app": "w", RELEASE: "app"}}}}});
        let meta = LiveMeta::of(&live);
        assert!(meta.pod_template_labelled("app"));
        assert!(!meta.pod_template_labelled("other"));
        assert_eq!(
            meta.managers,
            ["flotilla-ns-app", "kube-controller-manager"]
        );
        let mut d = serde_json::json!({"kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"template": {"metadata": {"labels": {"app": "w"}}, "spec": {}}}});
        keep_pod_template_label(&mut d, "app");
        assert_eq!(pod_template_release(&d), Some("app"));
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "w");
        let mut cron = serde_json::json!({"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}});
        keep_pod_template_label(&mut cron, "app");
        assert_eq!(pod_template_release(&cron), Some("app"));
        // Not a workload: nothing is added anywhere.
        let mut cm = serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {"template": {}}});
        keep_pod_template_label(&mut cm, "app");
        assert_eq!(cm["spec"]["template"], serde_json::json!({}));
        assert!(!LiveMeta::of(&cm).pod_template_labelled("app"));
    }

    #[test]
    fn a_releases_pods_are_those_its_workloads_select_or_labelled_its_own() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]
        }))
        .unwrap();
        let broken: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchExpressions": [{"key": "x", "operator": "Sideways"}]
        }))
        .unwrap();
        let selectors = selectors([&selector, &broken]);
        assert_eq!(selectors.len(), 1, "a malformed selector selects nothing");
        let labels = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(selects(
            &selectors,
            &labels(&[
                ("app", "web"),
                ("tier", "front"),
                ("pod-template-hash", "x")
            ]),
            "app"
        ));
        assert!(!selects(&selectors, &labels(&[("app", "web")]), "app"));
        assert!(!selects(
            &selectors,
            &labels(&[("app", "api"), ("tier", "front")]),
            "app"
        ));
        // A hook Pod: no workload selects it, its own labels say whose it is.
        assert!(selects(
            &[],
            &labels(&[(MANAGED_BY, MANAGER), (RELEASE, "app")]),
            "app"
        ));
        assert!(!selects(
            &[],
            &labels(&[(MANAGED_BY, MANAGER), (RELEASE, "other")]),
            "app"
        ));
    }

    #[test]
    fn each_release_has_its_own_field_manager() {
        assert_eq!(field_manager("shop", "web"), "flotilla/shop/web");
        assert_ne!(field_manager("shop", "web"), field_manager("shop", "api"));
    }

    fn ours() -> Map {
        [
            (MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (RELEASE.to_owned(), "app".to_owned()),
        ]
        .into()
    }

    fn annotated(key: &str, value: &str) -> Map {
        [(key.to_owned(), value.to_owned())].into()
    }

    #[test]
    fn a_plain_object_of_ours_may_be_pruned_and_uninstalled() {
        for removal in [Removal::Prune, Removal::Uninstall] {
            assert_eq!(
                keep_reason("ConfigMap", Some(&ours()), None, "app", removal),
                None
            );
        }
    }

    #[test]
    fn another_release_or_no_labels_is_kept() {
        let why = keep_reason(
            "ConfigMap",
            Some(&ours()),
            None,
            "other",
            Removal::Uninstall,
        );
        assert!(why.unwrap().contains("flotilla.dev/release=other"));
        assert!(keep_reason("ConfigMap", None, None, "app", Removal::Prune).is_some());
    }

    #[test]
    fn keep_annotations_ours_and_helms_keep_anything_on_prune_and_uninstall() {
        for key in [RESOURCE_POLICY, HELM_RESOURCE_POLICY] {
            for removal in [Removal::Prune, Removal::Uninstall] {
                let keep = annotated(key, "keep");
                assert_eq!(
                    keep_reason("ConfigMap", Some(&ours()), Some(&keep), "app", removal),
                    Some(format!("annotated {key}: keep"))
                );
            }
        }
        // Any other value is no opt-out.
        let other = annotated(HELM_RESOURCE_POLICY, "delete");
        assert_eq!(
            keep_reason(
                "ConfigMap",
                Some(&ours()),
                Some(&other),
                "app",
                Removal::Prune
            ),
            None
        );
    }

    #[test]
    fn an_object_a_run_adopted_is_never_deleted_by_a_rollback_but_by_a_deploy_or_uninstall() {
        let adopted = annotated(ADOPTED_BY, "d-42");
        for removal in [Removal::RollbackPrune, Removal::RollbackUninstall] {
            let why = keep_reason("ConfigMap", Some(&ours()), Some(&adopted), "app", removal);
            assert_eq!(
                why.as_deref(),
                Some("adopted by deployment d-42: it existed before that run, which this rollback undoes; handed back without the release's labels")
            );
        }
        for removal in [Removal::Prune, Removal::Uninstall] {
            assert_eq!(
                keep_reason("ConfigMap", Some(&ours()), Some(&adopted), "app", removal),
                None
            );
            assert!(!handed_back(Some(&adopted), removal));
        }
        assert!(handed_back(Some(&adopted), Removal::RollbackPrune));
        assert!(!handed_back(None, Removal::RollbackPrune));
    }

    #[test]
    fn kinds_that_cannot_come_back_are_pruned_only_when_they_opt_in() {
        for kind in NEVER_PRUNED {
            let why = keep_reason(kind, Some(&ours()), None, "app", Removal::Prune).unwrap();
            assert!(why.contains("never pruned"), "{kind}: {why}");
            let opt_in = annotated(RESOURCE_POLICY, "delete");
            assert_eq!(
                keep_reason(kind, Some(&ours()), Some(&opt_in), "app", Removal::Prune),
                None,
                "{kind}"
            );
            // Helm's annotation has no `delete`: it does not opt in.
            let helm = annotated(HELM_RESOURCE_POLICY, "delete");
            assert!(keep_reason(kind, Some(&ours()), Some(&helm), "app", Removal::Prune).is_some());
            // An uninstall is asked for: only `keep` stops it.
            for removal in [Removal::Uninstall, Removal::RollbackUninstall] {
                assert_eq!(keep_reason(kind, Some(&ours()), None, "app", removal), None);
            }
            assert!(
                keep_reason(kind, Some(&ours()), None, "app", Removal::RollbackPrune).is_some()
            );
        }
    }
}

#[cfg(test)]
mod pods_selector_tests {
    use super::*;
    use kube::core::{Expression, Selector, SelectorExt};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn workload(selector: serde_json::Value) -> Selector {
        let selector: LabelSelector = serde_json::from_value(selector).unwrap();
        selectors([&selector]).pop().unwrap()
    }

    /// The selector derived from workloads of these `selectors` is `expected`.
    fn derives(selectors: &[serde_json::Value], expected: Option<&str>) {
        let of: Vec<Selector> = selectors.iter().cloned().map(workload).collect();
        let derived = pods_selector(&of).map(|s| s.to_string());
        assert_eq!(derived.as_deref(), expected, "{selectors:?}");
    }

    #[test]
    fn a_key_every_workload_selects_by_becomes_one_requirement() {
        use serde_json::json;
        // The example chart: two Deployments of one instance.
        derives(
            &[
                json!({"matchLabels": {"app.kubernetes.io/component": "web", "app.kubernetes.io/instance": "hello"}}),
                json!({"matchLabels": {"app.kubernetes.io/component": "worker", "app.kubernetes.io/instance": "hello"}}),
            ],
            Some("app.kubernetes.io/component in (web,worker),app.kubernetes.io/instance=hello"),
        );
        derives(
            &[
                json!({"matchLabels": {"app": "hello-web", "tier": "front"}}),
                json!({"matchLabels": {"app": "hello-worker"}}),
            ],
            Some("app in (hello-web,hello-worker)"),
        );
        // Expressions combine with labels: In sets join, Exists takes in any value.
        let tier_edge = json!({"matchLabels": {"tier": "edge"}});
        let expression = |operator: &str, values: &[&str]| json!({"matchExpressions": [{"key": "tier", "operator": operator, "values": values}]});
        derives(
            &[expression("In", &["front", "back"]), tier_edge.clone()],
            Some("tier in (back,edge,front)"),
        );
        derives(
            &[expression("Exists", &[]), tier_edge.clone()],
            Some("tier"),
        );
        // A pod without the key, or with any value but some: `notin` says it.
        derives(
            &[expression("NotIn", &["x", "edge"]), tier_edge.clone()],
            Some("tier notin (x)"),
        );
        // A pod without the key, or with one of some values: no one requirement says it.
        derives(&[expression("DoesNotExist", &[]), tier_edge], Some(""));
    }

    #[test]
    fn no_common_key_is_every_pod_and_no_workload_is_none() {
        use serde_json::json;
        derives(
            &[
                json!({"matchLabels": {"app": "web"}}),
                json!({"matchLabels": {"name": "worker"}}),
            ],
            Some(""),
        );
        // A hook Pod is found by the release's labels, which no pod template carries.
        let mut with_hook = vec![workload(json!({"matchLabels": {"app": "web"}}))];
        with_hook.push(own_pods("hello"));
        assert!(pods_selector(&with_hook).unwrap().selects_all());
        assert_eq!(
            pods_selector(&[own_pods("hello")])
                .map(|s| s.to_string())
                .as_deref(),
            Some("app.kubernetes.io/managed-by=flotilla,flotilla.dev/release=hello")
        );
        derives(&[], None);
        // A selector no pod can match asks for nothing, and takes nothing in.
        let impossible = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]});
        derives(std::slice::from_ref(&impossible), None);
        derives(
            &[impossible, json!({"matchLabels": {"app": "api"}})],
            Some("app=api"),
        );
    }

    const KEYS: [&str; 3] = ["a", "b", "c"];
    const VALUES: [&str; 4] = ["x", "y", "z", ""];

    fn expression() -> impl Strategy<Value = Expression> {
        let key = proptest::sample::select(&KEYS[..]).prop_map(str::to_owned);
        let value = proptest::sample::select(&VALUES[..]).prop_map(str::to_owned);
        let values = proptest::collection::btree_set(value.clone(), 0..3);
        prop_oneof![
            (key.clone(), values.clone()).prop_map(|(k, v)| Expression::In(k, v)),
            (key.clone(), values).prop_map(|(k, v)| Expression::NotIn(k, v)),
            (key.clone(), value.clone()).prop_map(|(k, v)| Expression::Equal(k, v)),
            (key.clone(), value).prop_map(|(k, v)| Expression::NotEqual(k, v)),
            key.clone().prop_map(Expression::Exists),
            key.prop_map(Expression::DoesNotExist),
        ]
    }

    /// Every label map on the keys the selectors use (each key absent or one of the
    /// values), and a label none of them uses.
    fn every_pod() -> Vec<Map> {
        let mut pods = vec![Map::from([("other".to_owned(), "x".to_owned())])];
        for key in KEYS {
            pods = pods
                .iter()
                .flat_map(|pod| {
                    let absent = pod.clone();
                    VALUES
                        .iter()
                        .map(move |v| {
                            let mut with = pod.clone();
                            with.insert(key.to_owned(), (*v).to_owned());
                            with
                        })
                        .chain([absent])
                })
                .collect();
        }
        pods
    }

    proptest! {
        // Seeded: the same cases on every run (`PROPTEST_CASES` for more).
        #![proptest_config(Config {
            rng_seed: RngSeed::Fixed(0x5e1ec7),
            failure_persistence: None,
            ..Config::default()
        })]

        /// The derived selector never leaves out a pod that one of the workloads selects,
        /// and is written only with what the selector syntax carries.
        #[test]
        fn the_derived_selector_keeps_every_pod_a_workload_selects(
            workloads in proptest::collection::vec(
                proptest::collection::vec(expression(), 0..4).prop_map(Selector::from_iter),
                0..4,
            ),
        ) {
            let derived = pods_selector(&workloads);
            for pod in every_pod() {
                if workloads.iter().any(|w| w.matches(&pod)) {
                    prop_assert!(
                        derived.as_ref().is_some_and(|d| d.matches(&pod)),
                        "{:?} leaves out {:?}", derived.map(|d| d.to_string()), pod
                    );
                }
            }
            for expression in derived.into_iter().flatten() {
                let (key, values): (String, Vec<String>) = match expression {
                    Expression::In(k, v) | Expression::NotIn(k, v) => (k, v.into_iter().collect()),
                    Expression::Equal(k, v) | Expression::NotEqual(k, v) => (k, vec![v]),
                    Expression::Exists(k) | Expression::DoesNotExist(k) => (k, Vec::new()),
                };
                prop_assert!(writable(&key) && values.iter().all(|v| writable(v)));
            }
        }
    }
}
