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
    let mut objects = objects_to_apply(&target.manifest, to.fresh, to.unreadable, namespace)
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
            Some(live) => crate::redact::fill_redacted(object, &live),
            None => None,
        };
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
}
