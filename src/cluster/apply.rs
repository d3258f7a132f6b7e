//! Server-side apply, prune/delete of owned objects, dry-run diff and drift.

use super::labels::{self, Removal};
use super::{
    ClusterError, ClusterHandle, Conflict, Event, Kept, ObjectRef, Progress, FIELD_MANAGER,
};
use crate::redact::join_path as join;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a custom kind may take to be served after its CRD was applied.
const CRD_ESTABLISH_WAIT: Duration = Duration::from_secs(30);

/// How long a Job replaced for a changed pod template may take to go away.
const JOB_GONE_WAIT: Duration = Duration::from_secs(30);

/// Objects of one apply round in flight at once: a 300-object release does not open
/// 300 streams at a time (API servers allow 100 to 250 per connection).
const APPLY_AT_ONCE: usize = 64;

/// What [`ClusterHandle::delete_owned`] did with one object.
enum Deleted {
    Deleted(ObjectRef),
    Kept(Kept),
}

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
    /// Objects (by [`settled_key`]) that the revision running now has as this apply
    /// brings them, as far as the objects applied after them can see
    /// ([`super::objects::seen_by_dependents`]): a round of apply of only such objects
    /// goes with the next one, no dependent can see them change.
    pub settled: BTreeSet<String>,
    /// Workloads whose live pod template has the release's label from an earlier
    /// flotilla: applied with it ([`labels::keep_pod_template_label`]), so that the
    /// upgrade of flotilla restarts no pod.
    pub labelled_templates: Vec<ObjectRef>,
}

/// `objects` in dependency order, in rounds ([`super::objects::apply_round`]) each sent
/// once the one before it is answered; a round of only `settled` objects goes with the
/// next one: nothing applied after them can see them change, so the order between them
/// buys nothing, and costs a round trip.
fn apply_rounds<'a>(objects: &'a [Value], settled: &BTreeSet<String>) -> Vec<Vec<&'a Value>> {
    fn kind<'a>(object: &&'a Value) -> &'a str {
        object.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    let mut ordered: Vec<&Value> = objects.iter().collect();
    super::sort_for_apply(&mut ordered, |o| kind(o));
    let mut rounds: Vec<Vec<&Value>> = Vec::new();
    let mut joins_next = false;
    for round in ordered.chunk_by(|a, b| {
        super::objects::apply_round(kind(a)) == super::objects::apply_round(kind(b))
    }) {
        match rounds.last_mut() {
            Some(last) if joins_next => last.extend_from_slice(round),
            _ => rounds.push(round.to_vec()),
        }
        joins_next = round
            .iter()
            .all(|object| settled_key(object).is_some_and(|key| settled.contains(&key)));
    }
    rounds
}

/// The key of a rendered or recorded object in [`ApplyOptions::settled`]: its apiVersion,
/// kind, namespace as written, and name.
pub fn settled_key(object: &Value) -> Option<String> {
    let id = ObjectRef::of(object).ok()?;
    Some(format!(
        "{}/{}/{}/{}",
        id.api_version,
        id.kind,
        id.namespace.unwrap_or_default(),
        id.name
    ))
}

impl ApplyOptions {
    pub fn new(namespace: &str, release: &str) -> ApplyOptions {
        ApplyOptions {
            namespace: namespace.to_owned(),
            release: release.to_owned(),
            force_conflicts: false,
            adopted: Vec::new(),
            deployment_id: String::new(),
            settled: BTreeSet::new(),
            labelled_templates: Vec::new(),
        }
    }

    /// The field manager of this release's applies: `flotilla/<namespace>/<release>`.
    pub fn field_manager(&self) -> String {
        labels::field_manager(&self.namespace, &self.release)
    }
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
    /// For a Helm hook that a deploy would run: its event (`pre-upgrade`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
}

impl ObjectDiff {
    /// Whether a deploy would change the release's objects here (a hook that would run
    /// does not).
    pub fn changes_the_release(&self) -> bool {
        !matches!(self.action, DiffAction::Unchanged | DiffAction::RunHook)
    }
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
    /// A Helm hook a deploy would run ([`ObjectDiff::hook`] its event): not a change
    /// of the release's objects.
    RunHook,
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
            DiffAction::RunHook => "run-hook",
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
        if opts.labelled_templates.contains(&id) {
            labels::keep_pod_template_label(&mut object, &opts.release);
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
                    source: None,
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
        Ok(live.map(|live| labels::LiveMeta::of(&serde_json::to_value(&live).unwrap_or_default())))
    }

    /// Applies objects in dependency order: in rounds ([`super::objects::apply_round`]),
    /// the objects of a round at once (at most [`APPLY_AT_ONCE`] in flight), each round
    /// once the one before it is answered. Returns their identities (namespace filled),
    /// in apply order; the first refusal ends the apply once its round is answered.
    pub async fn apply_all(
        &self,
        objects: &[Value],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        use futures::StreamExt;
        let mut applied = Vec::with_capacity(objects.len());
        for round in &apply_rounds(objects, &opts.settled) {
            let answers: Vec<Result<ObjectRef, ClusterError>> = futures::stream::iter(round)
                .map(|object| async move {
                    let (id, _) = self.apply_one(object, opts, false).await?;
                    progress(self.context(), Event::Applied(id.clone()));
                    Ok::<_, ClusterError>(id)
                })
                .buffered(APPLY_AT_ONCE)
                .collect()
                .await;
            for answer in answers {
                applied.push(answer?);
            }
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
        use futures::StreamExt;
        let mut ordered: Vec<&ObjectRef> = ids.iter().collect();
        super::sort_for_apply(&mut ordered, |o| o.kind.as_str());
        ordered.reverse();
        let mut removed = Removed::default();
        // In rounds, as the apply (in its reverse order): the objects of a round at
        // once, not one round trip (a read, then a delete) per object.
        for round in ordered.chunk_by(|a, b| {
            super::objects::apply_round(&a.kind) == super::objects::apply_round(&b.kind)
        }) {
            let answers: Vec<Result<Option<Deleted>, ClusterError>> = futures::stream::iter(round)
                .map(|id| self.delete_one(id, opts, removal, progress))
                .buffered(APPLY_AT_ONCE)
                .collect()
                .await;
            for answer in answers {
                match answer? {
                    Some(Deleted::Deleted(id)) => removed.deleted.push(id),
                    Some(Deleted::Kept(kept)) => removed.kept.push(kept),
                    None => {}
                }
            }
        }
        Ok(removed)
    }

    /// Deletes `id` unless something keeps it ([`Self::delete_owned`]); `None` when it
    /// is not there (or its kind is no longer served).
    async fn delete_one(
        &self,
        id: &ObjectRef,
        opts: &ApplyOptions,
        removal: Removal,
        progress: &Progress,
    ) -> Result<Option<Deleted>, ClusterError> {
        let api = match self.api(id, &opts.namespace, None).await {
            Ok((api, _)) => api,
            Err(ClusterError::UnknownKind { .. }) => {
                match self.served(id, &opts.namespace).await? {
                    Some(api) => api,
                    // No version of the kind is served (its CRD was pruned first):
                    // neither are its objects.
                    None => return Ok(None),
                }
            }
            Err(err) => return Err(err),
        };
        let live = match api.get_opt(&id.name).await {
            Ok(Some(live)) => live,
            Ok(None) => return Ok(None),
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
            return Ok(Some(Deleted::Kept(kept)));
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(err) => return Err(self.error("delete", id, err)),
        }
        progress(self.context(), Event::Pruned(id.clone()));
        Ok(Some(Deleted::Deleted(id.clone())))
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
    ///
    /// `recorded` holds the manifests, as recorded, of the revisions that may be live
    /// (the deployed one, a later failed one): what is live holds their secret values,
    /// which a rotation since may have made other than the render's, so live and
    /// dry-run objects are masked like each recorded object of the same kind and name
    /// as well.
    pub async fn diff(
        &self,
        objects: &[Value],
        stored: &[Value],
        recorded: &[Value],
        previous: &[ObjectRef],
        opts: &ApplyOptions,
    ) -> Result<Vec<ObjectDiff>, ClusterError> {
        let mut diffs = Vec::new();
        let mut seen = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let same = ObjectRef::of(object).ok();
            let was = recorded.iter().filter(|r| {
                let r = ObjectRef::of(r).ok();
                matches!((&r, &same), (Some(r), Some(s)) if r.kind == s.kind && r.name == s.name)
            });
            let masks: Vec<&Value> = stored.get(i).into_iter().chain(was).collect();
            let mask = |mut value: Value| {
                mask_all(&masks, &mut value);
                value
            };
            let (id, _, _) = self.prepare(object, opts).await?;
            let live = self.get_live(&id, &opts.namespace).await?;
            let meta = live
                .as_ref()
                .map(|live| labels::LiveMeta::of(&serde_json::to_value(live).unwrap_or_default()));
            let owner = meta
                .as_ref()
                .and_then(|meta| labels::foreign_owner(&id.kind, meta, &opts.release));
            let mut dry = opts.clone();
            if owner.is_some() {
                dry.adopted.push(id.clone());
            }
            if meta.is_some_and(|m| m.pod_template_labelled(&opts.release)) {
                dry.labelled_templates.push(id.clone());
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
                        hook: None,
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
                        hook: None,
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
                    hook: None,
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
                        hook: None,
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
                        hook: None,
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
        Ok((id, Some(drift_changes(&desired, live))))
    }
}

/// Drift of `live` from `desired` (the recorded object as applied): a field recorded
/// as a digest (it held a secret) is compared as a digest, and no value the record
/// holds only as a digest is shown, wherever it moved live.
fn drift_changes(desired: &Value, mut live: Value) -> Vec<FieldChange> {
    crate::redact::mask_like(desired, &mut live);
    let mut changes = Vec::new();
    subset_drift("", "", desired, &live, &mut changes);
    changes
}

/// `value` masked like each of `masks` (the same object as stored: rendered now, and
/// as the deployed revision recorded it).
fn mask_all(masks: &[&Value], value: &mut Value) {
    for stored in masks {
        crate::redact::mask_like(stored, value);
    }
}

/// What changes from `before` to `after` once both are masked like each of `masks`:
/// the changes `diff` shows.
#[cfg(test)]
fn diff_changes(masks: &[&Value], mut before: Value, mut after: Value) -> Vec<FieldChange> {
    mask_all(masks, &mut before);
    mask_all(masks, &mut after);
    field_changes(&before, &after)
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
    walk_changes("", "", before, after, &mut changes);
    changes
}

/// `path[label]`: a list entry as a field path names it (`env[name="DEBUG"]`,
/// `ports[containerPort=80,protocol="TCP"]`, `args[2]`).
fn entry_path(path: &str, label: &str) -> String {
    format!("{path}[{label}]")
}

/// `field` is the name of the field that holds `before`/`after` (it says how the
/// entries of a list are keyed).
fn walk_changes(
    path: &str,
    field: &str,
    before: &Value,
    after: &Value,
    out: &mut Vec<FieldChange>,
) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, av) in a {
                walk_changes(
                    &join(path, key),
                    key,
                    b.get(key).unwrap_or(&Value::Null),
                    av,
                    out,
                );
            }
            for (key, bv) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk_changes(&join(path, key), key, bv, &Value::Null, out);
            }
        }
        // Entry by entry, matched by key (containers, env, ports, volumes): a changed
        // image shows as one field, an added env var as one entry, not as the whole
        // list. Without keys, by position when the length is the same.
        (Value::Array(b), Value::Array(a)) => {
            let pairing = crate::redact::pair_entries(field, b, a);
            if !pairing.keyed && b.len() != a.len() {
                out.push(whole(path, before, after));
                return;
            }
            for pair in pairing.pairs {
                let path = entry_path(path, &pair.label);
                match (pair.left, pair.right) {
                    (Some(l), Some(r)) => walk_changes(&path, field, &b[l], &a[r], out),
                    (l, r) => out.push(FieldChange {
                        path,
                        from: l.map(|l| b[l].clone()),
                        to: r.map(|r| a[r].clone()),
                    }),
                }
            }
        }
        (Value::Null, Value::Object(a)) => {
            for (key, av) in a {
                walk_changes(&join(path, key), key, &Value::Null, av, out);
            }
        }
        (b, a) if b != a => out.push(whole(path, b, a)),
        _ => {}
    }
}

/// A change of the field at `path` as a whole.
fn whole(path: &str, before: &Value, after: &Value) -> FieldChange {
    FieldChange {
        path: path.to_owned(),
        from: (!before.is_null()).then(|| before.clone()),
        to: (!after.is_null()).then(|| after.clone()),
    }
}

/// Drift of the fields `desired` sets. List entries are matched by key (containers,
/// env, ports, volumes): an entry changed, removed or added live is one drift, and
/// the others are compared with their own counterparts; a list without keys compares
/// element by element when both have the same length, else as a whole.
fn subset_drift(
    path: &str,
    field: &str,
    desired: &Value,
    live: &Value,
    out: &mut Vec<FieldChange>,
) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (key, dv) in d {
                subset_drift(
                    &join(path, key),
                    key,
                    dv,
                    l.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            let pairing = crate::redact::pair_entries(field, d, l);
            if !pairing.keyed && d.len() != l.len() {
                out.push(FieldChange {
                    path: path.to_owned(),
                    from: Some(desired.clone()),
                    to: Some(live.clone()),
                });
                return;
            }
            for pair in pairing.pairs {
                let path = entry_path(path, &pair.label);
                match (pair.left, pair.right) {
                    (Some(i), Some(j)) => subset_drift(&path, field, &d[i], &l[j], out),
                    (i, j) => out.push(FieldChange {
                        path,
                        from: i.map(|i| d[i].clone()),
                        to: j.map(|j| l[j].clone()),
                    }),
                }
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

    /// The dependency order costs a round trip per round only where an object of an
    /// earlier round changes for its dependents.
    #[test]
    fn a_round_of_settled_objects_goes_with_the_next_one() {
        let objects = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}),
        ];
        let names = |rounds: Vec<Vec<&Value>>| -> Vec<Vec<String>> {
            rounds
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|o| o["kind"].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .collect()
        };
        let settled = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(
            names(apply_rounds(&objects, &settled(&[]))),
            [vec!["ConfigMap", "Service"], vec!["Deployment"]]
        );
        assert_eq!(
            names(apply_rounds(&objects, &settled(&["v1/ConfigMap//config"]))),
            [vec!["ConfigMap", "Service"], vec!["Deployment"]],
            "a Service that changes still goes first"
        );
        assert_eq!(
            names(apply_rounds(
                &objects,
                &settled(&["v1/ConfigMap//config", "v1/Service//web"])
            )),
            [vec!["ConfigMap", "Service", "Deployment"]]
        );
    }

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
        subset_drift("", "", &desired, &live, &mut out);
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

    const PW: &str = "db-password-canary-41";

    /// A worker as applied (`DB_PASSWORD` in its env) and as recorded.
    fn worker() -> (Value, Value) {
        let at = |password: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "worker", "image": "w:1",
                     "env": [{"name": "QUEUE", "value": "jobs"}, {"name": "DB_PASSWORD", "value": password}]},
                    {"name": "sidecar", "image": "s:1", "env": [{"name": "TOKEN", "value": password}]}]}}}})
        };
        let applied = at(PW);
        (
            crate::redact::stored_form(&at("<secret:db>"), &applied),
            applied,
        )
    }

    fn env(object: &mut Value, container: usize) -> &mut Vec<Value> {
        object["spec"]["template"]["spec"]["containers"][container]["env"]
            .as_array_mut()
            .unwrap()
    }

    use super::tests_support::printed_changes as printed;

    fn assert_no_secret(changes: &[FieldChange], values: &[&str]) {
        let text = printed(changes);
        let mut forms = crate::redact::Scrubber::new();
        values.iter().for_each(|v| forms.add(v));
        assert!(!forms.finds(&text), "a secret value is printed:\n{text}");
    }

    fn paths(changes: &[FieldChange]) -> Vec<&str> {
        changes.iter().map(|c| c.path.as_str()).collect()
    }

    const WORKER_ENV: &str = "spec.template.spec.containers[name=\"worker\"].env";

    #[test]
    fn drift_of_an_env_var_added_live_is_that_entry_alone() {
        let (stored, applied) = worker();
        assert!(drift_changes(&stored, applied.clone()).is_empty());
        let mut live = applied.clone();
        env(&mut live, 0).push(json!({"name": "DEBUG", "value": "1"}));
        let drift = drift_changes(&stored, live);
        assert_no_secret(&drift, &[PW]);
        assert_eq!(paths(&drift), [format!("{WORKER_ENV}[name=\"DEBUG\"]")]);
        assert_eq!(drift[0].from, None);
        assert_eq!(drift[0].to, Some(json!({"name": "DEBUG", "value": "1"})));
    }

    #[test]
    fn drift_of_an_env_var_removed_or_inserted_before_or_reordered() {
        let (stored, applied) = worker();
        let mut removed = applied.clone();
        env(&mut removed, 0).remove(0);
        let drift = drift_changes(&stored, removed);
        assert_no_secret(&drift, &[PW]);
        assert_eq!(paths(&drift), [format!("{WORKER_ENV}[name=\"QUEUE\"]")]);
        assert_eq!(drift[0].to, None);

        let mut inserted = applied.clone();
        env(&mut inserted, 0).insert(0, json!({"name": "FIRST", "value": "x"}));
        let drift = drift_changes(&stored, inserted);
        assert_no_secret(&drift, &[PW]);
        assert_eq!(paths(&drift), [format!("{WORKER_ENV}[name=\"FIRST\"]")]);

        // Order alone is no drift: the API server keys env by name.
        let mut reordered = applied.clone();
        env(&mut reordered, 0).reverse();
        assert!(drift_changes(&stored, reordered).is_empty());

        // The password changed by hand: a change, as digests.
        let mut changed = applied.clone();
        env(&mut changed, 0)[1]["value"] = json!("typed-by-hand-pw");
        env(&mut changed, 0).push(json!({"name": "DEBUG", "value": "1"}));
        let drift = drift_changes(&stored, changed);
        assert_no_secret(&drift, &[PW, "typed-by-hand-pw"]);
        assert_eq!(drift.len(), 2, "{drift:?}");
        assert!(
            printed(&drift).contains("\"<redacted>\" -> \"<redacted>\""),
            "{drift:?}"
        );
    }

    #[test]
    fn drift_of_reordered_containers_and_a_renamed_entry() {
        let (stored, applied) = worker();
        let mut live = applied.clone();
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap();
        containers.reverse();
        containers[1]["image"] = json!("w:hotfix");
        let drift = drift_changes(&stored, live.clone());
        assert_no_secret(&drift, &[PW]);
        assert_eq!(
            paths(&drift),
            ["spec.template.spec.containers[name=\"worker\"].image"]
        );
        // Renamed: the old entry is gone, the new one holds a value the record keeps
        // only as a digest.
        env(&mut live, 1)[1]["name"] = json!("DB_PASS");
        let drift = drift_changes(&stored, live);
        assert_no_secret(&drift, &[PW]);
        assert_eq!(drift.len(), 3, "{drift:?}");
    }

    #[test]
    fn drift_of_a_list_without_keys_of_another_length_shows_no_secret() {
        let at = |password: &str| json!({"spec": {"containers": [{"name": "w", "args": ["work", "--password", password]}]}});
        let stored = crate::redact::stored_form(&at("<secret:db>"), &at(PW));
        let mut live = at(PW);
        live["spec"]["containers"][0]["args"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!("--debug"));
        let drift = drift_changes(&stored, live);
        assert_no_secret(&drift, &[PW]);
        assert_eq!(paths(&drift), ["spec.containers[name=\"w\"].args"]);
        assert!(printed(&drift).contains("--debug"));
    }

    #[test]
    fn drift_of_a_map_keeps_secret_values_and_keys_masked() {
        let at = |password: &str| json!({"metadata": {"annotations": {"pw": password, password: "key-of-a-secret"}}});
        let stored = crate::redact::stored_form(&at("<secret:db>"), &at(PW));
        let mut live = at(PW);
        let annotations = live["metadata"]["annotations"].as_object_mut().unwrap();
        let moved = annotations.shift_remove("pw").unwrap();
        annotations.insert("renamed".into(), moved);
        annotations.insert("added".into(), json!("1"));
        let drift = drift_changes(&stored, live);
        assert_no_secret(&drift, &[PW]);
        assert_eq!(paths(&drift), ["metadata.annotations.pw"]);
    }

    #[test]
    fn a_diff_shows_entries_by_key_and_no_live_secret_after_a_rotation() {
        let (old, live_applied) = worker();
        let rotated = "rotated-password-99";
        let at = |password: &str| {
            let mut v = live_applied.clone();
            env(&mut v, 0)[1]["value"] = json!(password);
            env(&mut v, 1)[0]["value"] = json!(password);
            v
        };
        let new = crate::redact::stored_form(&at("<secret:db>"), &at(rotated));
        // Live: DEBUG added and the password copied under another name by hand; the
        // dry run keeps what another manager owns.
        let mut before = live_applied.clone();
        env(&mut before, 0).insert(0, json!({"name": "DEBUG", "value": "1"}));
        env(&mut before, 1).push(json!({"name": "COPY", "value": PW}));
        let mut after = at(rotated);
        env(&mut after, 0).insert(0, json!({"name": "DEBUG", "value": "1"}));
        env(&mut after, 1).push(json!({"name": "COPY", "value": PW}));
        env(&mut after, 0).remove(1);
        let changes = diff_changes(&[&new, &old], before, after);
        assert_no_secret(&changes, &[PW, rotated]);
        assert_eq!(
            paths(&changes),
            [
                format!("{WORKER_ENV}[name=\"QUEUE\"]"),
                format!("{WORKER_ENV}[name=\"DB_PASSWORD\"].value"),
                "spec.template.spec.containers[name=\"sidecar\"].env[name=\"TOKEN\"].value"
                    .to_owned(),
            ]
        );
        // Without the recorded revision's digests, the copy would show the old value.
        let mut before = live_applied.clone();
        env(&mut before, 1).push(json!({"name": "COPY", "value": PW}));
        let only_new = diff_changes(&[&new], before.clone(), at(rotated));
        assert!(printed(&only_new).contains(PW), "the test shows something");
        assert_no_secret(
            &diff_changes(&[&new, &old], before, at(rotated)),
            &[PW, rotated],
        );
    }

    /// Shrunk by `what_may_be_printed` from a case the masking before keyed pairing
    /// leaked: two entries added by hand to a list of containers, one of them a copy of
    /// the secret an env var holds; the env var's own value then showed as well.
    #[test]
    fn counterexample_entries_added_to_the_containers_list_one_a_copy_of_the_secret() {
        let secret = "SA0AAAA0AO0";
        let at = |value: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker", "annotations": {}},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "a", "image": "app:a", "args": [],
                        "env": [{"name": "A", "value": value}],
                        "ports": [{"containerPort": 1, "protocol": "TCP"}, {"containerPort": 1, "protocol": "TCP"}],
                        "volumeMounts": []}],
                    "initContainers": [{"name": "a", "image": "app:a", "args": [], "env": [],
                        "ports": [{"containerPort": 1, "protocol": "TCP"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/a"}]}],
                    "volumes": [{"name": "v", "emptyDir": {}}]}}}})
        };
        let stored = crate::redact::stored_form(&at("<secret:0>"), &at(secret));
        let mut live = at(secret);
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap();
        containers.push(json!({"name": "A", "value": secret}));
        containers.insert(0, json!({"name": "A", "value": "a"}));
        let drift = drift_changes(&stored, live);
        assert_no_secret(&drift, &[secret]);
        assert_eq!(
            paths(&drift),
            [
                "spec.template.spec.containers[name=\"A\"]",
                "spec.template.spec.containers[name=\"A\"]"
            ]
        );
    }
}

/// The property of what `status` and `diff` may print: for any recorded object whose
/// secret fields are held as digests and any drift of it live (entries added, removed,
/// reordered, renamed, values changed, a secret copied under another name) and any
/// rotation of its secrets, no form of any secret value is in the printed changes.
#[cfg(test)]
mod what_may_be_printed {
    use super::tests_support::*;
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

    fn config() -> Config {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        Config {
            // More with `PROPTEST_CASES` (a long run on demand).
            cases: var("PROPTEST_CASES").map_or(512, |n: u64| n as u32),
            // Seeded: the same cases on every run; `PROPTEST_RNG_SEED` picks others.
            rng_seed: RngSeed::Fixed(var("PROPTEST_RNG_SEED").unwrap_or(0x5ec2e7)),
            failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn no_secret_value_in_drift_or_diff(
            object in object_spec(),
            old in secrets("O"),
            new in secrets("N"),
            drift in proptest::collection::vec(drift_op(), 0..6),
        ) {
            let applied = render(&object, &|i| old[i].clone());
            let stored = crate::redact::stored_form(&render(&object, &|i| format!("<secret:{i}>")), &applied);
            prop_assert!(drift_changes(&stored, applied.clone()).is_empty());

            // The secrets the object holds (a map key given twice holds the last).
            let text = applied.to_string();
            let used: Vec<usize> = (0..old.len()).filter(|&i| text.contains(&old[i])).collect();
            let mut live = applied.clone();
            for op in &drift {
                apply_op(&mut live, op, &used, &old);
            }
            let changes = drift_changes(&stored, live.clone());
            let mut forms = crate::redact::Scrubber::new();
            old.iter().chain(&new).for_each(|v| forms.add(v));
            let text = printed_changes(&changes);
            prop_assert!(!forms.finds(&text), "status prints a secret:\n{}", text);

            let rotated = render(&object, &|i| new[i].clone());
            let stored_new = crate::redact::stored_form(&render(&object, &|i| format!("<secret:{i}>")), &rotated);
            let mut after = rotated;
            for op in &drift {
                apply_op(&mut after, op, &used, &new);
            }
            let changes = diff_changes(&[&stored_new, &stored], live, after);
            let text = printed_changes(&changes);
            prop_assert!(!forms.finds(&text), "diff prints a secret:\n{}", text);
        }
    }
}

/// Random recorded objects and live drift, for [`what_may_be_printed`].
#[cfg(test)]
mod tests_support {
    use super::FieldChange;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    /// A field's value: shown in the clear, or secret `i` of the pool.
    #[derive(Debug, Clone)]
    pub enum Field {
        Clear(String),
        Secret(usize),
    }

    #[derive(Debug, Clone)]
    pub struct Container {
        name: String,
        env: Vec<(String, Field)>,
        args: Vec<Field>,
        ports: Vec<u16>,
        mounts: Vec<String>,
    }

    #[derive(Debug, Clone)]
    pub struct ObjectSpec {
        annotations: Vec<(Field, Field)>,
        containers: Vec<Container>,
        init: Vec<Container>,
    }

    /// Secret values: long enough to be scrubbed, of an alphabet no clear value uses.
    pub fn secrets(tag: &'static str) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec("[A-Z0-9]{8,14}", 3).prop_map(move |values| {
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| format!("S{v}{tag}{i}"))
                .collect()
        })
    }

    fn field() -> impl Strategy<Value = Field> {
        prop_oneof![
            "[a-z]{1,8}".prop_map(Field::Clear),
            (0..3usize).prop_map(Field::Secret)
        ]
    }

    fn container() -> impl Strategy<Value = Container> {
        (
            "[a-z]{1,3}",
            proptest::collection::vec(("[A-Z_]{1,3}", field()), 0..5),
            proptest::collection::vec(field(), 0..4),
            proptest::collection::vec(1u16..20, 0..3),
            proptest::collection::vec("/[a-z]{1,3}", 0..3),
        )
            .prop_map(|(name, env, args, ports, mounts)| Container {
                name,
                env,
                args,
                ports,
                mounts,
            })
    }

    pub fn object_spec() -> impl Strategy<Value = ObjectSpec> {
        (
            proptest::collection::vec(
                (
                    prop_oneof![
                        3 => "[a-z]{1,6}".prop_map(Field::Clear),
                        1 => (0..3usize).prop_map(Field::Secret)
                    ],
                    field(),
                ),
                0..4,
            ),
            proptest::collection::vec(container(), 1..4),
            proptest::collection::vec(container(), 0..2),
        )
            .prop_map(|(annotations, containers, init)| ObjectSpec {
                annotations,
                containers,
                init,
            })
    }

    /// The object as a Deployment, each secret field written by `secret`.
    pub fn render(object: &ObjectSpec, secret: &dyn Fn(usize) -> String) -> Value {
        let text = |f: &Field| match f {
            Field::Clear(t) => t.clone(),
            Field::Secret(i) => secret(*i),
        };
        let container = |c: &Container| {
            json!({
                "name": c.name,
                "image": format!("app:{}", c.name),
                "args": c.args.iter().map(text).collect::<Vec<_>>(),
                "env": c.env.iter().map(|(n, v)| json!({"name": n, "value": text(v)})).collect::<Vec<_>>(),
                "ports": c.ports.iter().map(|p| json!({"containerPort": p, "protocol": "TCP"})).collect::<Vec<_>>(),
                "volumeMounts": c.mounts.iter().map(|m| json!({"name": "v", "mountPath": m})).collect::<Vec<_>>(),
            })
        };
        let annotations: Map<String, Value> = object
            .annotations
            .iter()
            .map(|(k, v)| (text(k), Value::String(text(v))))
            .collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "worker", "annotations": annotations},
            "spec": {"template": {"spec": {
                "containers": object.containers.iter().map(container).collect::<Vec<_>>(),
                "initContainers": object.init.iter().map(container).collect::<Vec<_>>(),
                "volumes": [{"name": "v", "emptyDir": {}}]}}}})
    }

    /// One hand edit of the live object: what, where (an index among its lists or
    /// maps), which entry, and a fresh clear word.
    #[derive(Debug, Clone)]
    pub struct DriftOp {
        kind: u8,
        at: usize,
        entry: usize,
        word: String,
    }

    pub fn drift_op() -> impl Strategy<Value = DriftOp> {
        (0u8..8, any::<usize>(), any::<usize>(), "[a-z]{1,6}").prop_map(
            |(kind, at, entry, word)| DriftOp {
                kind,
                at,
                entry,
                word,
            },
        )
    }

    /// JSON pointers of every list (`lists`) or map (else) in `value`.
    fn containers_of(value: &Value, pointer: String, lists: bool, out: &mut Vec<String>) {
        match value {
            Value::Array(items) => {
                if lists {
                    out.push(pointer.clone());
                }
                for (i, item) in items.iter().enumerate() {
                    containers_of(item, format!("{pointer}/{i}"), lists, out);
                }
            }
            Value::Object(map) => {
                if !lists {
                    out.push(pointer.clone());
                }
                for (key, item) in map {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    containers_of(item, format!("{pointer}/{key}"), lists, out);
                }
            }
            _ => {}
        }
    }

    /// Applies one hand edit; `used` are the secrets the object holds (`pool`'s
    /// indexes): a copy takes one of them, never a value the object does not hold.
    pub fn apply_op(live: &mut Value, op: &DriftOp, used: &[usize], pool: &[String]) {
        let mut pointers = Vec::new();
        let lists = op.kind < 4;
        containers_of(live, String::new(), lists, &mut pointers);
        if pointers.is_empty() {
            return;
        }
        let pointer = &pointers[op.at % pointers.len()];
        let Some(target) = live.pointer_mut(pointer) else {
            return;
        };
        let upper = op.word.to_uppercase();
        match (op.kind, target) {
            // Added (an env var by hand: `kubectl set env`), at any place.
            (0, Value::Array(items)) => {
                let keyed = items.first().is_some_and(|i| i.get("name").is_some());
                let entry = if keyed {
                    json!({"name": upper, "value": op.word})
                } else {
                    json!(op.word)
                };
                let at = op.entry % (items.len() + 1);
                items.insert(at, entry);
            }
            (1, Value::Array(items)) if !items.is_empty() => {
                let at = op.entry % items.len();
                items.remove(at);
            }
            (2, Value::Array(items)) => {
                if op.entry.is_multiple_of(2) {
                    items.reverse();
                } else if !items.is_empty() {
                    let by = op.entry % items.len();
                    items.rotate_left(by);
                }
            }
            // A secret the object holds, copied under a new name.
            (3, Value::Array(items)) if !used.is_empty() => {
                let secret = &pool[used[op.entry % used.len()]];
                items.push(json!({"name": upper, "value": secret}));
            }
            // A value changed to a new one.
            (4, Value::Object(map)) if !map.is_empty() => {
                let key = map.keys().nth(op.entry % map.len()).cloned();
                if let Some(value) = key.and_then(|k| map.get_mut(&k)) {
                    if !value.is_object() && !value.is_array() {
                        *value = json!(op.word);
                    }
                }
            }
            // A key renamed, its value kept: an env var's name, or a map key.
            (5, Value::Object(map)) if !map.is_empty() => {
                if map.contains_key("name") {
                    map.insert("name".into(), json!(upper));
                } else if let Some(key) = map.keys().nth(op.entry % map.len()).cloned() {
                    if let Some(value) = map.shift_remove(&key) {
                        map.insert(op.word.clone(), value);
                    }
                }
            }
            (6, Value::Object(map)) => {
                map.insert(op.word.clone(), json!(upper));
            }
            (7, Value::Object(map)) if !map.is_empty() => {
                let key = map.keys().nth(op.entry % map.len()).cloned();
                if let Some(key) = key {
                    map.shift_remove(&key);
                }
            }
            _ => {}
        }
    }

    /// What `status` and `diff` print of the changes: their lines and their JSON, the
    /// digests shown as `<redacted>`, and nothing registered with the scrubber
    /// (`status` reads no value from Vault).
    pub fn printed_changes(changes: &[FieldChange]) -> String {
        let show = crate::action::status::show;
        let lines: Vec<String> = changes
            .iter()
            .map(|c| format!("{}: {} -> {}", c.path, show(&c.from), show(&c.to)))
            .collect();
        crate::redact::hide_digests(&format!(
            "{}\n{}",
            lines.join("\n"),
            serde_json::to_string(changes).unwrap_or_default()
        ))
    }
}
