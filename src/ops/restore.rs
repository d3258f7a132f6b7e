//! Put one release in one cluster back on a recorded revision: its recorded manifest
//! re-applied, as a new revision of operation `rollback`.

use super::upgrade::{run, Desired, Scope};
use super::{release_error, HeldLock, KubeClient, Outcome, RunOptions};
use crate::cluster::{ClusterError, ClusterHandle, ObjectRef};
use crate::release;
use crate::storage::{RecordStore, SecretStore};
use serde_json::Value;

/// Which recorded revision a restore goes back to, and the run it is part of.
pub struct RestoreTo<'a> {
    pub revision: u32,
    /// The run that restores: the deployment id the new revision records (it also
    /// records the deployment whose content it brings back).
    pub deployment_id: &'a str,
    /// Objects of the revision rendered again with secret values read now: each
    /// replaces the recorded object of the same identity ([`objects_to_apply`]). A recorded Secret with
    /// no fresh object is kept as it is live (its values are never recorded) and
    /// reported in [`Outcome::kept_live`].
    pub fresh: &'a [Value],
    /// Objects (by identity) whose secret inputs could not be read now: kept as
    /// they are live, whatever their kind, rather than applied from the record. Any
    /// other recorded object with a secret field (a digest in the record) and no fresh
    /// render takes its secret fields from the live object.
    pub unreadable: &'a [ObjectRef],
}

/// What a restore applies for each object of the recorded `manifest`: the fresh object
/// of the same identity (group, kind, namespace, name); else, for a Secret (whose
/// values are never recorded) or an object whose secrets could not be read, `None`:
/// kept as it is live; else the recorded object. An object that names no namespace is
/// in `namespace`, the release's, on every side (a cluster-scoped one, which names none
/// either, compares with itself): two objects of one kind and name in two namespaces are
/// never taken for each other.
pub fn objects_to_apply(
    manifest: &[Value],
    fresh: &[Value],
    unreadable: &[ObjectRef],
    namespace: &str,
) -> Result<Vec<Option<Value>>, String> {
    let fresh: Vec<(ObjectRef, &Value)> = fresh
        .iter()
        .filter_map(|f| Some((identity(f, namespace).ok()?, f)))
        .collect();
    let unreadable: Vec<ObjectRef> = unreadable
        .iter()
        .cloned()
        .map(|mut id| {
            id.namespace.get_or_insert_with(|| namespace.to_owned());
            id
        })
        .collect();
    let mut objects = Vec::with_capacity(manifest.len());
    for object in manifest {
        let id = identity(object, namespace)?;
        let found = fresh.iter().find(|(f, _)| *f == id).map(|(_, f)| *f);
        objects.push(match found {
            Some(found) => Some(found.clone()),
            None if release::is_secret(object) || unreadable.contains(&id) => None,
            None => Some(object.clone()),
        });
    }
    Ok(objects)
}

/// `object`'s identity, in `namespace` when it names none.
fn identity(object: &Value, namespace: &str) -> Result<ObjectRef, String> {
    let mut id = ObjectRef::of(object)?;
    id.namespace.get_or_insert_with(|| namespace.to_owned());
    Ok(id)
}

/// Registers with the scrubber the live values standing where `recorded` holds
/// digests: the secret values a restore without fresh ones re-applies (or keeps, in a
/// Secret), which an API server's message or a pod's log may echo as it would a value
/// read from Vault. A Secret's `data` is registered decoded too.
fn register_live_values(recorded: &Value, live: &Value) {
    /// `field`: the name of the field holding `recorded`, which says how a list's
    /// entries pair (the drift and fill-in rule: [`crate::redact::pair_entries`]).
    fn walk(recorded: &Value, live: &Value, field: &str, in_data: bool) {
        match (recorded, live) {
            (Value::String(digest), live) if crate::redact::is_redacted(digest) => {
                let text = match live {
                    Value::String(text) => text.clone(),
                    Value::Null => return,
                    other => other.to_string(),
                };
                crate::redact::register(&text);
                if in_data {
                    use base64::Engine;
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&text) {
                        crate::redact::register(&String::from_utf8_lossy(&bytes));
                    }
                }
            }
            (Value::Object(recorded), Value::Object(live)) => {
                for (key, value) in recorded {
                    if let Some(other) = live.get(key) {
                        walk(value, other, key, in_data);
                    }
                }
            }
            (Value::Array(recorded), Value::Array(live)) => {
                for pair in crate::redact::pair_entries(field, recorded, live).pairs {
                    if let (Some(l), Some(r)) = (pair.left, pair.right) {
                        walk(&recorded[l], &live[r], field, in_data);
                    }
                }
            }
            _ => {}
        }
    }
    let secret = release::is_secret(recorded);
    match (recorded, live) {
        (Value::Object(fields), Value::Object(live_fields)) if secret => {
            for (key, value) in fields {
                if let Some(other) = live_fields.get(key) {
                    walk(value, other, key, key == "data");
                }
            }
        }
        _ => walk(recorded, live, "", false),
    }
}

/// The hooks a restore to `target` runs, from its record: a hook whose recorded object
/// holds a secret (a digest where the value was) cannot be created from the record, so
/// it is left out with a warning, as it would create the digest in place of the value.
fn rollback_hooks(
    context: &str,
    target: &release::ReleaseRecord,
) -> Vec<(crate::engine::Hook, Value)> {
    use crate::engine::HookEvent;
    super::hooks::recorded_hooks(
        context,
        target,
        &[HookEvent::PreRollback, HookEvent::PostRollback],
    )
}

/// Rolls `release` on one cluster back to `to.revision`.
pub async fn restore(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    to: &RestoreTo<'_>,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let store = SecretStore::new(cluster, namespace, release);
    restore_with(cluster, &store, namespace, release, to, opts).await
}

/// [`restore`] on any cluster client and record store.
pub async fn restore_with<K: KubeClient, S: RecordStore>(
    cluster: &K,
    store: &S,
    namespace: &str,
    release: &str,
    to: &RestoreTo<'_>,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    super::with_lease(cluster, namespace, release, opts, async |lease| {
        restore_under(cluster, lease, store, namespace, release, to, opts).await
    })
    .await
}

/// [`restore`] under the release's lease, which the caller holds, `store` the records
/// as read under it.
pub async fn restore_under<K: KubeClient, L: HeldLock, S: RecordStore>(
    cluster: &K,
    lock: &L,
    store: &S,
    namespace: &str,
    release: &str,
    to: &RestoreTo<'_>,
    opts: &RunOptions,
) -> Result<Outcome, ClusterError> {
    let history = store.history().await?;
    let target = history.get(to.revision).ok_or_else(|| {
        release_error(
            cluster.context(),
            format!(
                "release `{release}` has no revision {} (it has: {})",
                to.revision,
                history.summary()
            ),
        )
    })?;
    // The record as read under the lease is the one applied: checked here, whoever
    // checked it before (a rollback, between its first read and this one; the automatic
    // restore of a failed deploy, not at all).
    let key = opts.record_key.as_deref().filter(|_| !opts.trust_records);
    let trust = release::check_record(target, cluster.context(), key);
    if !trust.is_clean() {
        return Err(release_error(
            cluster.context(),
            format!(
                "refused to restore, nothing changed: {} (`flotilla rollback --trust-records` accepts a record whose MAC is missing or does not verify)",
                trust
                    .problems(&release::describe_record(target, cluster.context()))
                    .join("; ")
            ),
        ));
    }
    let mut objects = objects_to_apply(&target.manifest, to.fresh, to.unreadable, namespace)
        .map_err(|m| release_error(cluster.context(), m))?;
    // A recorded object that held a secret (an env var, an annotation, a checksum:
    // recorded as digests) and has no fresh render: its digests filled from what is
    // live, the secret values in use now, list entries matched by key (the live object
    // may be a failed revision's, with entries added, removed or moved). One the live
    // object cannot fill is kept live whole: said in a warning, in the outcome's
    // `kept_live` and in the record, never applied with a value from another field.
    // (A fresh object has values, never digests.)
    for slot in objects.iter_mut() {
        let Some(object) = slot
            .as_ref()
            .filter(|o| crate::redact::contains_redacted(o))
        else {
            continue;
        };
        let live_id = cluster.identity(object, namespace).await?;
        *slot = match cluster.live_object(&live_id, namespace).await? {
            Some(live) => {
                register_live_values(object, &live);
                match crate::redact::fill_redacted(object, &live) {
                    Ok(filled) => Some(filled),
                    Err(field) => {
                        tracing::warn!(
                            cluster = cluster.context(),
                            "{live_id}: kept as it is live, not restored to revision {}: its \
                             field {field} held a secret, and the live object has no such \
                             field to take the value from",
                            target.revision
                        );
                        None
                    }
                }
            }
            None => None,
        };
    }
    // A Secret kept as it is live (no fresh value: Vault is down, or the revision was
    // imported) holds the values the restored pods use now.
    for (slot, recorded) in objects.iter().zip(&target.manifest) {
        if slot.is_none() && release::is_secret(recorded) {
            let id = cluster.identity(recorded, namespace).await?;
            if let Some(live) = cluster.live_object(&id, namespace).await? {
                register_live_values(recorded, &live);
            }
        }
    }
    let desired = Desired {
        objects,
        record_manifest: target.manifest.clone(),
        values: target.values.clone(),
        chart: target.chart.clone(),
        app_version: target.app_version.clone(),
        rollback_of: Some(target.revision),
        restores: Some(target.content_id().to_owned()),
        source: target.source.clone(),
        hooks: rollback_hooks(cluster.context(), target),
        recorded_hooks: target.hooks.clone(),
    };
    let scope = Scope {
        release,
        namespace,
        deployment_id: to.deployment_id,
    };
    run(cluster, lock, store, &scope, desired, opts).await
}

#[cfg(test)]
mod tests {
    //! A restore's fill-in on the cluster in memory: each secret field from its own
    //! entry of the live object, or the object kept live and said so.
    use super::*;
    use crate::ops::fake::FakeKube;
    use crate::ops::upgrade::deploy_with;
    use crate::ops::Rendered;
    use crate::release::{ChartRef, Status};
    use crate::storage::MemoryStore;
    use serde_json::json;
    use std::time::Duration;

    const PASSWORD: &str = "worker-db-password-57";

    /// A worker whose env is `names` in order, `DB_PASSWORD` holding the password.
    fn worker(version: &str, names: &[&str]) -> Rendered {
        let at = |password: &str| {
            let env: Vec<Value> = names
                .iter()
                .map(|n| match *n {
                    "DB_PASSWORD" => json!({"name": n, "value": password}),
                    other => json!({"name": other, "value": format!("{other}-value")}),
                })
                .collect();
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "worker", "image": format!("w:{version}"), "env": env}]}}}})
        };
        let objects = vec![at(PASSWORD)];
        Rendered {
            hooks: Vec::new(),
            release: "hello".into(),
            namespace: "ns".into(),
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: version.into(),
            stored: vec![crate::redact::stored_form(&at("<secret:db>"), &objects[0])],
            objects,
            values: json!({}),
            source: None,
        }
    }

    fn live_env(kube: &FakeKube) -> Value {
        let live = kube.live.lock().unwrap();
        let worker = live.iter().find(|(id, _)| id.name == "worker").unwrap().1;
        worker["spec"]["template"]["spec"]["containers"][0]["env"].clone()
    }

    async fn failed_then_restored(failed: &[&str]) -> (FakeKube, Outcome) {
        let (kube, store) = (FakeKube::new(), MemoryStore::new());
        let opts = RunOptions::new(Duration::from_secs(5));
        let a = worker("1", &["DB_PASSWORD", "QUEUE"]);
        deploy_with(&kube, &store, &a, "d1", &opts).await.unwrap();
        deploy_with(&kube, &store, &worker("crashloop", failed), "d2", &opts)
            .await
            .unwrap();
        // The automatic restore: no fresh render of the worker, its secret fields
        // taken from the live (failed) object.
        let to = RestoreTo {
            revision: 1,
            deployment_id: "d2",
            fresh: &[],
            unreadable: &[],
        };
        let back = restore_with(&kube, &store, "ns", "hello", &to, &opts)
            .await
            .unwrap();
        (kube, back)
    }

    #[tokio::test]
    async fn an_env_var_inserted_before_the_secret_lends_it_nothing() {
        let (kube, back) = failed_then_restored(&["INSERTED", "DB_PASSWORD", "QUEUE"]).await;
        assert_eq!(back.status, Status::Deployed);
        assert!(back.kept_live.is_empty(), "{:?}", back.kept_live);
        assert_eq!(
            live_env(&kube),
            json!([{"name": "DB_PASSWORD", "value": PASSWORD},
                   {"name": "QUEUE", "value": "QUEUE-value"}])
        );
    }

    #[tokio::test]
    async fn a_secret_entry_the_live_object_lacks_keeps_the_object_live_and_says_so() {
        let (kube, back) = failed_then_restored(&["QUEUE", "DB_PASS"]).await;
        assert_eq!(back.status, Status::Deployed);
        assert_eq!(back.kept_live.len(), 1, "{:?}", back.kept_live);
        assert_eq!(back.kept_live[0].name, "worker");
        // Not applied with another field's value: as it is live.
        assert_eq!(
            live_env(&kube),
            json!([{"name": "QUEUE", "value": "QUEUE-value"},
                   {"name": "DB_PASS", "value": "DB_PASS-value"}])
        );
    }

    fn config_map(namespace: Option<&str>, value: &str) -> Value {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings"}, "data": {"v": value}});
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        object
    }

    #[test]
    fn objects_of_one_kind_and_name_in_two_namespaces_are_never_mixed_up() {
        // The release's own (no namespace: the release's) and one in `other`.
        let manifest = [
            config_map(None, "old-own"),
            config_map(Some("other"), "old-other"),
        ];
        let fresh = [
            config_map(Some("other"), "new-other"),
            config_map(None, "new-own"),
        ];
        let applied = objects_to_apply(&manifest, &fresh, &[], "ns").unwrap();
        assert_eq!(
            applied,
            [Some(fresh[1].clone()), Some(fresh[0].clone())],
            "each recorded object takes the fresh one of its own namespace"
        );
        // Named with the release namespace or without one: the same object.
        let named = [config_map(Some("ns"), "new-own")];
        let applied = objects_to_apply(&manifest, &named, &[], "ns").unwrap();
        assert_eq!(applied, [Some(named[0].clone()), Some(manifest[1].clone())]);
        // What could not be read in one namespace keeps only that one live.
        let mut unreadable = ObjectRef::of(&manifest[1]).unwrap();
        unreadable.namespace = Some("other".into());
        let applied = objects_to_apply(&manifest, &[], &[unreadable], "ns").unwrap();
        assert_eq!(applied, [Some(manifest[0].clone()), None]);
        // A cluster-scoped object names no namespace on either side.
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader"}, "rules": []});
        let one = std::slice::from_ref(&role);
        let applied = objects_to_apply(one, one, &[], "ns").unwrap();
        assert_eq!(applied, [Some(role)]);
    }

    #[test]
    fn live_values_a_restore_reapplies_or_keeps_are_scrubbed() {
        let env = |value: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"template": {"spec": {"containers": [{"name": "web", "env": [
                       {"name": "LEVEL", "value": "info"},
                       {"name": "DB_PASSWORD", "value": value}]}]}}}})
        };
        let recorded = env(&crate::redact::redacted("old-value"));
        let mut live = env("restore-live-canary-1");
        // The live list in another order: matched by name.
        if let Some(list) = live.pointer_mut("/spec/template/spec/containers/0/env") {
            list.as_array_mut().unwrap().reverse();
        }
        register_live_values(&recorded, &live);
        assert!(!crate::redact::scrub("x restore-live-canary-1 x").contains("canary"));
        assert_eq!(crate::redact::scrub("info"), "info");

        use base64::Engine;
        let secret = |value: &str| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                   "data": {"password": value}})
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode("restore-live-canary-2");
        register_live_values(&secret(&crate::redact::redacted("old")), &secret(&encoded));
        assert!(!crate::redact::scrub("restore-live-canary-2").contains("canary"));
    }
}

#[cfg(test)]
mod record_checks {
    //! A restore checks the record it reads, whoever checked it before.
    use super::*;
    use crate::ops::fake::FakeKube;
    use crate::ops::upgrade::deploy_with;
    use crate::ops::{KubeClient, Rendered};
    use crate::release::{ChartRef, RecordKey, ReleaseRecord, Status};
    use crate::storage::MemoryStore;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    fn rendered(version: &str) -> Rendered {
        let objects = vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "config"}, "data": {"version": version}})];
        Rendered {
            hooks: Vec::new(),
            release: "hello".into(),
            namespace: "ns".into(),
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: version.into(),
            stored: objects.clone(),
            objects,
            values: json!({}),
            source: None,
        }
    }

    fn signed() -> RunOptions {
        let mut opts = RunOptions::new(Duration::from_secs(5));
        opts.record_key = Some(Arc::new(RecordKey::new(
            "prod",
            "kv/flotilla/prod/record-key#hmac",
            b"0123456789abcdef0123",
        )));
        opts
    }

    /// Revisions 1 and 2 deployed and signed, then revision 1 as `edit` leaves it.
    async fn history_with_edited_first(
        kube: &FakeKube,
        edit: impl FnOnce(&mut ReleaseRecord),
    ) -> MemoryStore {
        let store = MemoryStore::new();
        for (version, id) in [("1", "d1"), ("2", "d2")] {
            deploy_with(kube, &store, &rendered(version), id, &signed())
                .await
                .unwrap();
        }
        let mut records = store.records();
        assert!(records.iter().all(|r| r.mac.starts_with("hmac-sha256:")));
        let key = signed().record_key.unwrap();
        assert!(records
            .iter()
            .all(|r| release::check_record(r, kube.context(), Some(&key)).is_clean()));
        edit(&mut records[0]);
        MemoryStore::with(records)
    }

    type Edit = dyn Fn(&mut ReleaseRecord);

    fn back_to_1() -> RestoreTo<'static> {
        RestoreTo {
            revision: 1,
            deployment_id: "rb",
            fresh: &[],
            unreadable: &[],
        }
    }

    fn live_version(kube: &FakeKube) -> String {
        let live = kube.live.lock().unwrap();
        let config = live.iter().find(|(id, _)| id.name == "config").unwrap().1;
        config["data"]["version"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_record_changed_after_it_was_written_is_refused_with_nothing_changed() {
        let kube = FakeKube::new();
        fn evil(r: &mut ReleaseRecord) {
            r.manifest[0]["data"]["version"] = json!("evil");
        }
        // Its digest no longer matches; with it recomputed, its MAC does not verify.
        let with_digest = |r: &mut ReleaseRecord| {
            evil(r);
            r.digest = release::content_digest(&r.manifest, &r.app_version, &r.chart);
        };
        let edits: [(&str, &Edit); 2] = [
            ("its content digest says", &evil),
            ("its keyed digest (mac) does not verify", &with_digest),
        ];
        for (why, edit) in edits {
            let store = history_with_edited_first(&kube, edit).await;
            let err = restore_with(&kube, &store, "ns", "hello", &back_to_1(), &signed())
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("refused to restore, nothing changed: revision 1 of hello (deployment d1) in cluster")
                    && err.contains(why),
                "{err}"
            );
            assert_eq!(store.records().len(), 2, "no record written");
            assert_eq!(live_version(&kube), "2");
        }
    }

    #[tokio::test]
    async fn an_untampered_record_is_restored_and_trust_records_skips_only_the_mac() {
        let kube = FakeKube::new();
        let store = history_with_edited_first(&kube, |_| {}).await;
        let back = restore_with(&kube, &store, "ns", "hello", &back_to_1(), &signed())
            .await
            .unwrap();
        assert_eq!((back.revision, back.status), (3, Status::Deployed));
        assert_eq!(live_version(&kube), "1");
        assert!(store.records()[2].mac.starts_with("hmac-sha256:"));

        // Unsigned (written before the key): refused, unless the operator trusts it.
        let store = history_with_edited_first(&kube, |r| r.mac.clear()).await;
        let err = restore_with(&kube, &store, "ns", "hello", &back_to_1(), &signed())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("it is not signed"), "{err}");
        let mut trusting = signed();
        trusting.trust_records = true;
        restore_with(&kube, &store, "ns", "hello", &back_to_1(), &trusting)
            .await
            .unwrap();
        // A digest that does not match is refused even then.
        let store = history_with_edited_first(&kube, |r| r.digest = "sha256:00".into()).await;
        assert!(
            restore_with(&kube, &store, "ns", "hello", &back_to_1(), &trusting)
                .await
                .is_err()
        );
    }
}
