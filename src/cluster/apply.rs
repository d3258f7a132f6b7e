//! Server-side apply, prune/delete of owned objects, dry-run diff and drift.

use super::{labels, ClusterError, ClusterHandle, Event, ObjectRef, Progress, FIELD_MANAGER};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// How long a custom kind may take to be served after its CRD was applied.
const CRD_ESTABLISH_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The release namespace: where namespaced objects without one go.
    pub namespace: String,
    pub release: String,
    /// Take fields that another field manager owns (`--force-conflicts`).
    pub force_conflicts: bool,
}

/// A field that another field manager owns, from a 409 answer to an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// What a server-side dry-run apply would change in one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectDiff {
    pub object: ObjectRef,
    pub action: DiffAction,
    /// Changed fields (`spec.replicas: 2 -> 3`), secret values redacted.
    pub changes: Vec<FieldChange>,
}

/// What a deploy would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffAction {
    Create,
    Update,
    Delete,
    Unchanged,
}

impl std::fmt::Display for DiffAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiffAction::Create => "create",
            DiffAction::Update => "update",
            DiffAction::Delete => "delete",
            DiffAction::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

/// Fields the server owns or sets on every object: never a change or a drift.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
    "annotations.deployment.kubernetes.io/revision",
];

impl ClusterHandle {
    /// An object's identity as written, or an error naming the object.
    fn object_ref(&self, object: &Value) -> Result<ObjectRef, ClusterError> {
        ObjectRef::of(object).map_err(|message| ClusterError::InvalidObject {
            context: self.context().to_owned(),
            object: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("an object")
                .to_owned(),
            message,
        })
    }

    /// The identity an object will have once applied, from discovery: the namespace
    /// filled in for namespaced kinds, removed for cluster-scoped ones. A kind not
    /// served yet (its CRD comes with the same apply) is taken as namespaced.
    pub async fn identity(
        &self,
        object: &Value,
        namespace: &str,
    ) -> Result<ObjectRef, ClusterError> {
        let mut id = self.object_ref(object)?;
        let namespaced = match self.resource(&id, Some(Duration::ZERO)).await {
            Ok((_, namespaced)) => namespaced,
            Err(ClusterError::UnknownKind { .. }) => true,
            Err(other) => return Err(other),
        };
        if namespaced {
            id.namespace.get_or_insert_with(|| namespace.to_owned());
        } else {
            id.namespace = None;
        }
        Ok(id)
    }

    /// The object as applied: our labels stamped, the namespace filled in for
    /// namespaced kinds. Returns it with its identity and its dynamic API.
    async fn prepare(
        &self,
        object: &Value,
        opts: &ApplyOptions,
    ) -> Result<(ObjectRef, Value, kube::Api<DynamicObject>), ClusterError> {
        let mut id = self.object_ref(object)?;
        let (api, namespaced) = self
            .api(&id, &opts.namespace, Some(CRD_ESTABLISH_WAIT))
            .await?;
        let mut object = object.clone();
        labels::stamp(&mut object, &opts.release);
        default_port_protocols(&mut object);
        if namespaced {
            let ns = id
                .namespace
                .get_or_insert_with(|| opts.namespace.clone())
                .clone();
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(ns));
            }
        } else {
            id.namespace = None;
        }
        Ok((id, object, api))
    }

    /// Server-side applies one object; `dry_run` asks the server what it would become.
    pub async fn apply_one(
        &self,
        object: &Value,
        opts: &ApplyOptions,
        dry_run: bool,
    ) -> Result<(ObjectRef, DynamicObject), ClusterError> {
        let (id, object, api) = self.prepare(object, opts).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = opts.force_conflicts;
        params.dry_run = dry_run;
        match api.patch(&id.name, &params, &Patch::Apply(&object)).await {
            Ok(applied) => Ok((id, applied)),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let conflicts = status
                    .details
                    .as_ref()
                    .map(|d| parse_conflicts(&d.causes))
                    .unwrap_or_default();
                if conflicts.is_empty() {
                    Err(self.error("apply", &id, kube::Error::Api(status)))
                } else {
                    Err(ClusterError::Conflict {
                        context: self.context().to_owned(),
                        object: id.to_string(),
                        conflicts,
                    })
                }
            }
            Err(err) => Err(self.error("apply", &id, err)),
        }
    }

    /// Applies objects in dependency order. Returns their identities (namespace filled).
    pub async fn apply_all(
        &self,
        objects: &[Value],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        let mut ordered: Vec<&Value> = objects.iter().collect();
        super::sort_for_apply(&mut ordered, |o| {
            o.get("kind").and_then(Value::as_str).unwrap_or("")
        });
        let mut applied = Vec::with_capacity(ordered.len());
        for object in ordered {
            let (id, _) = self.apply_one(object, opts, false).await?;
            progress(self.context(), Event::Applied(id.clone()));
            applied.push(id);
        }
        Ok(applied)
    }

    /// The live object, if any.
    pub async fn get_live(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        let (api, _) = self.api(id, namespace, None).await?;
        api.get_opt(&id.name)
            .await
            .map_err(|err| self.error("read", id, err))
    }

    /// Deletes objects (in reverse apply order) that carry our managed-by label and
    /// this release's label; any other object is left alone and reported as kept.
    /// Returns the deleted ones.
    pub async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        let mut ordered: Vec<&ObjectRef> = ids.iter().collect();
        super::sort_for_apply(&mut ordered, |o| o.kind.as_str());
        ordered.reverse();
        let mut deleted = Vec::new();
        for id in ordered {
            let (api, _) = match self.api(id, &opts.namespace, None).await {
                Ok(found) => found,
                // The kind is gone (its CRD was pruned first): so are its objects.
                Err(ClusterError::UnknownKind { .. }) => continue,
                Err(err) => return Err(err),
            };
            let live = match api.get_opt(&id.name).await {
                Ok(Some(live)) => live,
                Ok(None) => continue,
                Err(err) => return Err(self.error("read", id, err)),
            };
            if !labels::owned_by(live.metadata.labels.as_ref(), &opts.release) {
                tracing::warn!(cluster = self.context(), object = %id, "not deleted: it lacks flotilla's labels for this release");
                continue;
            }
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match api.delete(&id.name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(err) => return Err(self.error("delete", id, err)),
            }
            progress(self.context(), Event::Pruned(id.clone()));
            deleted.push(id.clone());
        }
        Ok(deleted)
    }

    /// What applying `objects` would change: a server-side dry-run apply of each,
    /// compared with the live object; `previous` objects not in `objects` show as
    /// deletions. Secret values appear only as digests.
    pub async fn diff(
        &self,
        objects: &[Value],
        previous: &[ObjectRef],
        opts: &ApplyOptions,
    ) -> Result<Vec<ObjectDiff>, ClusterError> {
        let mut diffs = Vec::new();
        let mut seen = Vec::new();
        for object in objects {
            let (id, _, _) = self.prepare(object, opts).await?;
            let live = self.get_live(&id, &opts.namespace).await?;
            let (_, after) = self.apply_one(object, opts, true).await?;
            let after = comparable(&id, serde_json::to_value(&after).unwrap_or(Value::Null));
            let diff = match live {
                None => ObjectDiff {
                    object: id.clone(),
                    action: DiffAction::Create,
                    changes: field_changes(&Value::Null, &after),
                },
                Some(live) => {
                    let before =
                        comparable(&id, serde_json::to_value(&live).unwrap_or(Value::Null));
                    let changes = field_changes(&before, &after);
                    ObjectDiff {
                        object: id.clone(),
                        action: if changes.is_empty() {
                            DiffAction::Unchanged
                        } else {
                            DiffAction::Update
                        },
                        changes,
                    }
                }
            };
            seen.push(id);
            diffs.push(diff);
        }
        for id in previous.iter().filter(|id| !seen.contains(id)) {
            if let Some(live) = self.get_live(id, &opts.namespace).await? {
                if labels::owned_by(live.metadata.labels.as_ref(), &opts.release) {
                    diffs.push(ObjectDiff {
                        object: id.clone(),
                        action: DiffAction::Delete,
                        changes: Vec::new(),
                    });
                }
            }
        }
        Ok(diffs)
    }

    /// Drift: every field that the recorded object sets and the live object has with
    /// another value (or lacks). `None` when the object is gone.
    pub async fn drift(
        &self,
        recorded: &Value,
        opts: &ApplyOptions,
    ) -> Result<(ObjectRef, Option<Vec<FieldChange>>), ClusterError> {
        let (id, desired, _) = self.prepare(recorded, opts).await?;
        let Some(live) = self.get_live(&id, &opts.namespace).await? else {
            return Ok((id, None));
        };
        let live = comparable(&id, serde_json::to_value(&live).unwrap_or(Value::Null));
        let desired = comparable(&id, desired);
        let mut changes = Vec::new();
        subset_drift("", &desired, &live, &mut changes);
        Ok((id, Some(changes)))
    }
}

/// Fills `protocol: TCP` (the server's default) in every `ports` list entry without one.
/// API servers before 1.20.x/1.21 reject a server-side apply whose port lists (keyed by
/// port and protocol) omit the protocol: "associative list with keys has an element
/// that omits key field \"protocol\"".
fn default_port_protocols(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "ports" {
                    if let Value::Array(ports) = inner {
                        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                            let is_port =
                                port.contains_key("port") || port.contains_key("containerPort");
                            if is_port && !port.contains_key("protocol") {
                                port.insert("protocol".into(), Value::String("TCP".into()));
                            }
                        }
                    }
                } else {
                    default_port_protocols(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(default_port_protocols),
        _ => {}
    }
}

/// Reads `conflict with "kubectl-edit" using apps/v1` causes into (manager, field).
fn parse_conflicts(causes: &[kube::core::response::StatusCause]) -> Vec<Conflict> {
    causes
        .iter()
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| Conflict {
            manager: c
                .message
                .split('"')
                .nth(1)
                .unwrap_or(c.message.as_str())
                .to_owned(),
            field: c.field.clone(),
        })
        .collect()
}

/// An object with server bookkeeping and status removed and secret values redacted,
/// ready to compare.
fn comparable(id: &ObjectRef, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_METADATA {
                match field.split_once('.') {
                    Some((parent, key)) => {
                        if let Some(inner) = meta.get_mut(parent).and_then(Value::as_object_mut) {
                            inner.remove(key);
                            if inner.is_empty() {
                                meta.remove(parent);
                            }
                        }
                    }
                    None => {
                        meta.remove(*field);
                    }
                }
            }
        }
    }
    if id.kind == "Secret" && id.api_version == "v1" {
        crate::redact::redact_secret_object(&mut object);
    }
    object
}

/// Every leaf path whose value differs between two objects.
fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    walk_changes("", before, after, &mut changes);
    changes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk_changes(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, av) in a {
                walk_changes(
                    &join(path, key),
                    b.get(key).unwrap_or(&Value::Null),
                    av,
                    out,
                );
            }
            for (key, bv) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk_changes(&join(path, key), bv, &Value::Null, out);
            }
        }
        // Same length: element by element (containers, ports), so a changed image
        // shows as one field, not as the whole list.
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                walk_changes(&format!("{path}[{i}]"), bv, av, out);
            }
        }
        (Value::Null, Value::Object(a)) => {
            for (key, av) in a {
                walk_changes(&join(path, key), &Value::Null, av, out);
            }
        }
        (b, a) if b != a => out.push(FieldChange {
            path: path.to_owned(),
            from: (!b.is_null()).then(|| b.clone()),
            to: (!a.is_null()).then(|| a.clone()),
        }),
        _ => {}
    }
}

/// Drift of the fields `desired` sets; lists compare element by element when both
/// have the same length (containers, ports), else as a whole.
fn subset_drift(path: &str, desired: &Value, live: &Value, out: &mut Vec<FieldChange>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (key, dv) in d {
                subset_drift(
                    &join(path, key),
                    dv,
                    l.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                subset_drift(&format!("{path}[{i}]"), dv, lv, out);
            }
        }
        (d, l) if !same_scalar(d, l) => out.push(FieldChange {
            path: path.to_owned(),
            from: Some(d.clone()),
            to: (!l.is_null()).then(|| l.clone()),
        }),
        _ => {}
    }
}

/// Equal, or equal once the API server's defaulting of numbers-as-strings is undone
/// (`"80"` in a chart, `80` live).
fn same_scalar(desired: &Value, live: &Value) -> bool {
    desired == live
        || match (desired, live) {
            (Value::String(s), other) | (other, Value::String(s)) if !other.is_string() => {
                s == &other.to_string()
            }
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conflict_causes_name_manager_and_field() {
        let causes = vec![kube::core::response::StatusCause {
            reason: "FieldManagerConflict".into(),
            message: "conflict with \"kubectl-edit\" using apps/v1".into(),
            field: ".spec.replicas".into(),
        }];
        assert_eq!(
            parse_conflicts(&causes),
            vec![Conflict {
                manager: "kubectl-edit".into(),
                field: ".spec.replicas".into()
            }]
        );
    }

    #[test]
    fn drift_sees_only_fields_we_set() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "app:1"}]}}}});
        let live = json!({"spec": {"replicas": 5, "paused": false, "template": {"spec": {"containers": [{"name": "web", "image": "app:1", "imagePullPolicy": "Always"}]}}}});
        let mut out = Vec::new();
        subset_drift("", &desired, &live, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].path, "spec.replicas");
        assert_eq!(out[0].to, Some(json!(5)));
    }

    #[test]
    fn secret_values_never_reach_a_diff() {
        let id = ObjectRef::of(
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        )
        .unwrap();
        let before = comparable(
            &id,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "b2xk"}}),
        );
        let after = comparable(
            &id,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "bmV3"}}),
        );
        let changes = field_changes(&before, &after);
        let text = serde_json::to_string(&changes).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(!text.contains("b2xk") && !text.contains("bmV3"), "{text}");
    }
}
