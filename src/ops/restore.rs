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
