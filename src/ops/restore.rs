//! Put one release in one cluster back on a recorded revision: its recorded manifest
//! re-applied, as a new revision of operation `rollback`.

use super::upgrade::{run, Desired, Scope};
use super::{release_error, KubeClient, Outcome, RunOptions};
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
    /// replaces the recorded object of the same kind and name. A recorded Secret with
    /// no fresh object is kept as it is live (its values are never recorded) and
    /// reported in [`Outcome::kept_live`].
    pub fresh: &'a [Value],
    /// Objects (by kind and name) whose secret inputs could not be read now: kept as
    /// they are live, whatever their kind, rather than applied from the record. Any
    /// other recorded object with a secret field (a digest in the record) and no fresh
    /// render takes its secret fields from the live object.
    pub unreadable: &'a [ObjectRef],
}

/// What a restore applies for each object of the recorded `manifest`: the fresh object
/// of the same kind and name; else, for a Secret (whose values are never recorded) or
/// an object whose secrets could not be read, `None`: kept as it is live; else the
/// recorded object.
pub fn objects_to_apply(
    manifest: &[Value],
    fresh: &[Value],
    unreadable: &[ObjectRef],
) -> Result<Vec<Option<Value>>, String> {
    let mut objects = Vec::with_capacity(manifest.len());
    for object in manifest {
        let id = ObjectRef::of(object)?;
        let same = |other: &ObjectRef| other.kind == id.kind && other.name == id.name;
        let found = fresh
            .iter()
            .find(|f| ObjectRef::of(f).ok().is_some_and(|f| same(&f)));
        objects.push(match found {
            Some(found) => Some(found.clone()),
            None if release::is_secret(object) || unreadable.iter().any(same) => None,
            None => Some(object.clone()),
        });
    }
    Ok(objects)
}

/// Registers with the scrubber the live values standing where `recorded` holds
/// digests: the secret values a restore without fresh ones re-applies (or keeps, in a
/// Secret), which an API server's message or a pod's log may echo as it would a value
/// read from Vault. A Secret's `data` is registered decoded too.
fn register_live_values(recorded: &Value, live: &Value) {
    fn walk(recorded: &Value, live: &Value, in_data: bool) {
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
                        walk(value, other, in_data);
                    }
                }
            }
            (Value::Array(recorded), Value::Array(live)) => {
                for (index, item) in recorded.iter().enumerate() {
                    // An env var or a container by its name, else by its place.
                    let name = item.get("name").filter(|n| n.is_string());
                    let other = match name {
                        Some(name) => live.iter().find(|l| l.get("name") == Some(name)),
                        None => live.get(index),
                    };
                    if let Some(other) = other {
                        walk(item, other, in_data);
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
                    walk(value, other, key == "data");
                }
            }
        }
        _ => walk(recorded, live, false),
    }
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
    let mut objects = objects_to_apply(&target.manifest, to.fresh, to.unreadable)
        .map_err(|m| release_error(cluster.context(), m))?;
    // A recorded object that held a secret (an env var, an annotation, a checksum:
    // recorded as digests) and has no fresh render: its digests filled from what is
    // live, the secret values in use now; one the live object cannot fill is kept live
    // whole. (A fresh object has values, never digests.)
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
                crate::redact::fill_redacted(object, &live)
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
    };
    let scope = Scope {
        release,
        namespace,
        deployment_id: to.deployment_id,
    };
    run(cluster, store, &scope, desired, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
