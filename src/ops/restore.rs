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
    /// they are live, whatever their kind, rather than applied from the record.
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
    let objects = objects_to_apply(&target.manifest, to.fresh, to.unreadable)
        .map_err(|m| release_error(cluster.context(), m))?;
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
