//! Server-side apply, prune/delete of owned objects, dry-run diff and drift.

use super::labels::{self, Removal};
use super::{ClusterError, ClusterHandle, Event, Kept, ObjectRef, Progress, FIELD_MANAGER};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// How long a custom kind may take to be served after its CRD was applied.
const CRD_ESTABLISH_WAIT: Duration = Duration::from_secs(30);

/// How long a Job replaced for a changed pod template may take to go away.
const JOB_GONE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The release namespace: where namespaced objects without one go.
    pub namespace: String,
    pub release: String,
    /// Take fields that another field manager owns (`--force-conflicts`).
    pub force_conflicts: bool,
    /// Objects that exist without being this release's and that the run adopts
    /// (`--adopt`): applied taking every field another manager owns, and annotated
    /// [`labels::ADOPTED_BY`] with `deployment_id`.
    pub adopted: Vec<ObjectRef>,
    /// The run's deployment id (for the adoption annotation).
    pub deployment_id: String,
}

impl ApplyOptions {
    pub fn new(namespace: &str, release: &str) -> ApplyOptions {
        ApplyOptions {
            namespace: namespace.to_owned(),
            release: release.to_owned(),
            force_conflicts: false,
            adopted: Vec::new(),
            deployment_id: String::new(),
        }
    }

    /// The field manager of this release's applies: `flotilla/<namespace>/<release>`.
    pub fn field_manager(&self) -> String {
        labels::field_manager(&self.namespace, &self.release)
    }
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
    /// For an adoption: who owns the live object now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What a deploy would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffAction {
    Create,
    Update,
    Delete,
    Unchanged,
    /// The object exists and is not this release's: a deploy takes it only with
    /// `--adopt`.
    Adopt,
    /// A Job whose pod template changed: deleted and created again.
    Replace,
}

impl std::fmt::Display for DiffAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiffAction::Create => "create",
            DiffAction::Update => "update",
            DiffAction::Delete => "delete",
            DiffAction::Unchanged => "unchanged",
            DiffAction::Adopt => "adopt",
            DiffAction::Replace => "replace",
        })
    }
}

/// What a delete left: the deleted objects, and those kept with the reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Removed {
    pub deleted: Vec<ObjectRef>,
    pub kept: Vec<Kept>,
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
        if opts.adopted.contains(&id) && !opts.deployment_id.is_empty() {
            labels::annotate(&mut object, labels::ADOPTED_BY, &opts.deployment_id);
        }
        Ok((id, object, api))
    }

    /// Server-side applies one object; `dry_run` asks the server what it would become.
    /// Fields that only the field manager of flotilla before per-release managers
    /// (`flotilla`) owns are taken: they are this release's own, and that manager's
    /// entry is handed over to the release's ([`Self::hand_over_legacy_fields`]) so that
    /// fields a later revision drops are removed. A Job whose pod template changed
    /// (immutable) is replaced when not a dry run.
    pub async fn apply_one(
        &self,
        object: &Value,
        opts: &ApplyOptions,
        dry_run: bool,
    ) -> Result<(ObjectRef, DynamicObject), ClusterError> {
        let (id, object, api) = self.prepare(object, opts).await?;
        let manager = opts.field_manager();
        let mut params = PatchParams::apply(&manager);
        params.force = opts.force_conflicts || opts.adopted.contains(&id);
        params.dry_run = dry_run;
        let (mut replaced, mut handed_over) = (false, false);
        loop {
            let status = match api.patch(&id.name, &params, &Patch::Apply(&object)).await {
                Ok(applied) if !dry_run && !handed_over => {
                    handed_over = true;
                    if self
                        .hand_over_legacy_fields(&api, &id, &applied, &manager)
                        .await
                    {
                        // Applied again as the only owner of what flotilla set before.
                        continue;
                    }
                    return Ok((id, applied));
                }
                Ok(applied) => return Ok((id, applied)),
                Err(kube::Error::Api(status)) => status,
                Err(err) => return Err(self.error("apply", &id, err)),
            };
            if status.code == 409 {
                let conflicts = status
                    .details
                    .as_ref()
                    .map(|d| parse_conflicts(&d.causes))
                    .unwrap_or_default();
                if conflicts.is_empty() {
                    return Err(self.error("apply", &id, kube::Error::Api(status)));
                }
                if !params.force && conflicts.iter().all(|c| c.manager == FIELD_MANAGER) {
                    params.force = true;
                    continue;
                }
                return Err(ClusterError::Conflict {
                    context: self.context().to_owned(),
                    object: id.to_string(),
                    conflicts,
                });
            }
            if status.code == 422 && immutable_job(&id, &status.message) && !dry_run && !replaced {
                self.replace_job(&api, &id).await?;
                replaced = true;
                continue;
            }
            return Err(self.error("apply", &id, kube::Error::Api(status)));
        }
    }

    /// An object applied before field managers were per release still has an Apply
    /// entry of manager `flotilla` next to the release's: it owns the fields flotilla
    /// set then, so a field a later revision drops would stay. That entry becomes the
    /// release's (merged over its own entry of this apply, which holds a subset), with
    /// the resourceVersion as a precondition. Whether it did: the caller applies again.
    /// A failure only leaves the object as the apply made it (logged).
    async fn hand_over_legacy_fields(
        &self,
        api: &kube::Api<DynamicObject>,
        id: &ObjectRef,
        applied: &DynamicObject,
        manager: &str,
    ) -> bool {
        let entries = applied.metadata.managed_fields.clone().unwrap_or_default();
        let is_apply = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry,
                        name: &str| {
            m.manager.as_deref() == Some(name)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref().unwrap_or("").is_empty()
        };
        if !entries.iter().any(|m| is_apply(m, FIELD_MANAGER)) {
            return false;
        }
        let handed: Vec<_> = entries
            .into_iter()
            .filter(|m| !is_apply(m, manager))
            .map(|mut m| {
                if is_apply(&m, FIELD_MANAGER) {
                    m.manager = Some(manager.to_owned());
                }
                m
            })
            .collect();
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": applied.metadata.resource_version,
            "managedFields": handed,
        }});
        match api
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(cluster = self.context(), object = %id, "fields of manager `{FIELD_MANAGER}` handed over to `{manager}`");
                true
            }
            Err(err) => {
                tracing::warn!(cluster = self.context(), object = %id, "cannot hand over the fields of manager `{FIELD_MANAGER}`: {}", super::describe_kube_error(&err));
                false
            }
        }
    }

    /// Deletes a Job (its pods in the background) and waits until it is gone, so that
    /// the Job of the new pod template can be created under the same name.
    async fn replace_job(
        &self,
        api: &kube::Api<DynamicObject>,
        id: &ObjectRef,
    ) -> Result<(), ClusterError> {
        let old_uid = match api.get_opt(&id.name).await {
            Ok(Some(live)) => live.metadata.uid,
            Ok(None) => return Ok(()),
            Err(err) => return Err(self.error("read", id, err)),
        };
        tracing::info!(cluster = self.context(), object = %id, "pod template changed: replacing the Job");
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(err) => return Err(self.error("delete", id, err)),
        }
        // Polls the observable condition (the old Job gone) with a deadline.
        let deadline = tokio::time::Instant::now() + JOB_GONE_WAIT;
        loop {
            match api.get_opt(&id.name).await {
                Ok(None) => return Ok(()),
                Ok(Some(live)) if live.metadata.uid != old_uid => return Ok(()),
                Ok(Some(_)) => {}
                Err(err) => return Err(self.error("read", id, err)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::Api {
                    context: self.context().to_owned(),
                    action: "replace".into(),
                    object: id.to_string(),
                    message: format!(
                        "the old Job is still there {} after its deletion",
                        humantime::format_duration(JOB_GONE_WAIT)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Who owns the live object (labels, annotations, field managers), if it exists.
    pub async fn live_meta(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<labels::LiveMeta>, ClusterError> {
        let (api, _) = match self.api(id, namespace, None).await {
            Ok(found) => found,
            // A custom kind whose CRD comes with this release: no object of it yet.
            Err(ClusterError::UnknownKind { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        let live = api
            .get_opt(&id.name)
            .await
            .map_err(|err| self.error("read", id, err))?;
        Ok(live.map(|live| {
            let mut managers: Vec<String> = live
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter_map(|m| m.manager.clone())
                .collect();
            managers.dedup();
            labels::LiveMeta {
                labels: live.metadata.labels.unwrap_or_default(),
                annotations: live.metadata.annotations.unwrap_or_default(),
                managers,
            }
        }))
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
    /// this release's label and that nothing keeps ([`labels::keep_reason`]: a keep
    /// annotation, or for a prune a kind that is never pruned without opting in). What
    /// stays is reported with the reason.
    pub async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        opts: &ApplyOptions,
        removal: Removal,
        progress: &Progress,
    ) -> Result<Removed, ClusterError> {
        let mut ordered: Vec<&ObjectRef> = ids.iter().collect();
        super::sort_for_apply(&mut ordered, |o| o.kind.as_str());
        ordered.reverse();
        let mut removed = Removed::default();
        for id in ordered {
            let api = match self.api(id, &opts.namespace, None).await {
                Ok((api, _)) => api,
                Err(ClusterError::UnknownKind { .. }) => {
                    match self.served(id, &opts.namespace).await? {
                        Some(api) => api,
                        // No version of the kind is served (its CRD was pruned first):
                        // neither are its objects.
                        None => continue,
                    }
                }
                Err(err) => return Err(err),
            };
            let live = match api.get_opt(&id.name).await {
                Ok(Some(live)) => live,
                Ok(None) => continue,
                Err(err) => return Err(self.error("read", id, err)),
            };
            if let Some(reason) = labels::keep_reason(
                &id.kind,
                live.metadata.labels.as_ref(),
                live.metadata.annotations.as_ref(),
                &opts.release,
                removal,
            ) {
                tracing::info!(cluster = self.context(), object = %id, "not deleted: {reason}");
                if labels::handed_back(live.metadata.annotations.as_ref(), removal) {
                    let patch = labels::hand_back_patch();
                    api.patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map_err(|err| self.error("hand back", id, err))?;
                }
                let kept = Kept {
                    object: id.clone(),
                    reason,
                };
                progress(self.context(), Event::Kept(kept.clone()));
                removed.kept.push(kept);
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
            removed.deleted.push(id.clone());
        }
        Ok(removed)
    }

    /// The API of an object whose recorded apiVersion the server no longer serves,
    /// through the version it prefers for the same group and kind (identity is
    /// group, kind, namespace and name); `None` when no version of the kind is served.
    async fn served(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<kube::Api<DynamicObject>>, ClusterError> {
        let group = match kube::discovery::group(&self.client(), id.group()).await {
            Ok(group) => group,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(kube::Error::Discovery(_)) => return Ok(None),
            Err(err) => return Err(self.error("discover", id, err)),
        };
        let Some((resource, _)) = group.recommended_kind(&id.kind) else {
            return Ok(None);
        };
        let served = ObjectRef {
            api_version: resource.api_version.clone(),
            ..id.clone()
        };
        let (api, _) = self.api(&served, namespace, None).await?;
        Ok(Some(api))
    }

    /// What applying `objects` would change: a server-side dry-run apply of each,
    /// compared with the live object; `previous` objects not in `objects` show as
    /// deletions (those a prune would delete: ours and not kept). A live object that is
    /// not this release's shows as an adoption naming its owner; a Job whose pod
    /// template changed as a replacement. Secret values appear only as digests: a
    /// `Secret`'s data, and in any object every field that `stored` (the same objects as
    /// recorded) holds as a digest, live and dry-run alike.
    pub async fn diff(
        &self,
        objects: &[Value],
        stored: &[Value],
        previous: &[ObjectRef],
        opts: &ApplyOptions,
    ) -> Result<Vec<ObjectDiff>, ClusterError> {
        let mut diffs = Vec::new();
        let mut seen = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let mask = |mut value: Value| {
                if let Some(stored) = stored.get(i) {
                    crate::redact::mask_like(stored, &mut value);
                }
                value
            };
            let (id, _, _) = self.prepare(object, opts).await?;
            let live = self.get_live(&id, &opts.namespace).await?;
            let owner = live.as_ref().and_then(|live| {
                let meta = labels::LiveMeta {
                    labels: live.metadata.labels.clone().unwrap_or_default(),
                    annotations: live.metadata.annotations.clone().unwrap_or_default(),
                    managers: live
                        .metadata
                        .managed_fields
                        .iter()
                        .flatten()
                        .filter_map(|m| m.manager.clone())
                        .collect(),
                };
                labels::foreign_owner(&id.kind, &meta, &opts.release)
            });
            let mut dry = opts.clone();
            if owner.is_some() {
                dry.adopted.push(id.clone());
            }
            let after = match self.apply_one(object, &dry, true).await {
                Ok((_, after)) => after,
                // The release namespace does not exist yet (a first deploy creates it with
                // --create-namespace): no dry run can answer, and every object is new.
                Err(ClusterError::Api { message, .. })
                    if live.is_none() && namespace_missing(&message, &opts.namespace) =>
                {
                    let shown = stored.get(i).cloned().unwrap_or(Value::Null);
                    diffs.push(ObjectDiff {
                        object: id.clone(),
                        action: DiffAction::Create,
                        changes: field_changes(&Value::Null, &comparable(&id, shown)),
                        owner: None,
                    });
                    seen.push(id);
                    continue;
                }
                Err(ClusterError::Api { message, .. })
                    if live.is_some() && immutable_job(&id, &message) =>
                {
                    diffs.push(ObjectDiff {
                        object: id.clone(),
                        action: DiffAction::Replace,
                        changes: Vec::new(),
                        owner,
                    });
                    seen.push(id);
                    continue;
                }
                Err(err) => return Err(err),
            };
            let after = mask(comparable(
                &id,
                serde_json::to_value(&after).unwrap_or(Value::Null),
            ));
            let diff = match live {
                None => ObjectDiff {
                    object: id.clone(),
                    action: DiffAction::Create,
                    changes: field_changes(&Value::Null, &after),
                    owner: None,
                },
                Some(live) => {
                    let before = mask(comparable(
                        &id,
                        serde_json::to_value(&live).unwrap_or(Value::Null),
                    ));
                    let changes = field_changes(&before, &after);
                    let action = if owner.is_some() {
                        DiffAction::Adopt
                    } else if changes.is_empty() {
                        DiffAction::Unchanged
                    } else {
                        DiffAction::Update
                    };
                    ObjectDiff {
                        object: id.clone(),
                        action,
                        changes,
                        owner,
                    }
                }
            };
            seen.push(id);
            diffs.push(diff);
        }
        for id in previous.iter().filter(|id| !seen.contains(id)) {
            if let Some(live) = self.get_live(id, &opts.namespace).await? {
                let kept = labels::keep_reason(
                    &id.kind,
                    live.metadata.labels.as_ref(),
                    live.metadata.annotations.as_ref(),
                    &opts.release,
                    Removal::Prune,
                );
                if kept.is_none() {
                    diffs.push(ObjectDiff {
                        object: id.clone(),
                        action: DiffAction::Delete,
                        changes: Vec::new(),
                        owner: None,
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
        let mut live = comparable(&id, serde_json::to_value(&live).unwrap_or(Value::Null));
        let desired = comparable(&id, desired);
        // A field recorded as a digest (it held a secret) is compared as a digest.
        crate::redact::mask_like(&desired, &mut live);
        let mut changes = Vec::new();
        subset_drift("", &desired, &live, &mut changes);
        Ok((id, Some(changes)))
    }
}

/// A 422 answer to the apply of a Job whose pod template changed.
/// The API server's 404 for an object in a namespace that does not exist.
fn namespace_missing(message: &str, namespace: &str) -> bool {
    message.contains(&format!("namespaces \"{namespace}\" not found"))
}

fn immutable_job(id: &ObjectRef, message: &str) -> bool {
    id.kind == "Job" && id.group() == "batch" && message.contains("field is immutable")
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
