//! The records in the cluster itself: one Kubernetes Secret per revision, compressed,
//! labelled for listing.
//!
//! Layout (chosen here, relied on by `history` and by other tools that list records):
//! - name `flotilla.<release>.v<revision>` in the release namespace;
//! - type `flotilla.dev/release.v1`;
//! - labels `owner=flotilla`, `flotilla.dev/release`, `flotilla.dev/revision`,
//!   `flotilla.dev/status`, `flotilla.dev/deployment-id`;
//! - data key `release`: the record as JSON, gzip-compressed (the API's own base64 on
//!   top, as for every Secret).
//!
//! A Secret with these labels and type that does not decode (damaged, written by a
//! newer version, a gzip bomb) is skipped, not an error: one bad record must not stop
//! every command. It is named in a warning once per process, and kept in the
//! [`History`] so that a change it could hide is refused
//! ([`History::check_skipped`]).
//!
//! Every write has a precondition: a create fails when the revision exists, an update
//! or a delete when the record is no longer at the resourceVersion this store last read
//! or wrote. Such a failure is another writer racing this run (it lost its lease): it
//! is reported as [`ClusterError::LockLost`], and nothing is overwritten.

use super::{codec, RecordStore};
use crate::cluster::{labels, ClusterError, ClusterHandle};
use crate::release::{History, ReleaseRecord, SkippedRecord};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const RECORD_TYPE: &str = "flotilla.dev/release.v1";
pub const RECORD_PREFIX: &str = "flotilla";
const DATA_KEY: &str = "release";
const OWNER_LABEL: &str = "owner";
const REVISION_LABEL: &str = "flotilla.dev/revision";
const STATUS_LABEL: &str = "flotilla.dev/status";
const DEPLOYMENT_LABEL: &str = "flotilla.dev/deployment-id";

/// The records of one release in one cluster, kept as Secrets there. Clones share what
/// they read: the resourceVersion of each record, the precondition of its next write.
#[derive(Clone)]
pub struct SecretStore {
    api: Api<Secret>,
    cluster: ClusterHandle,
    context: String,
    namespace: String,
    release: String,
    versions: Arc<Mutex<BTreeMap<u32, String>>>,
}

pub fn record_name(release: &str, revision: u32) -> String {
    format!("{RECORD_PREFIX}.{release}.v{revision}")
}

impl SecretStore {
    pub fn new(cluster: &ClusterHandle, namespace: &str, release: &str) -> SecretStore {
        SecretStore {
            api: Api::namespaced(cluster.client(), namespace),
            cluster: cluster.clone(),
            context: cluster.context().to_owned(),
            namespace: namespace.to_owned(),
            release: release.to_owned(),
            versions: Arc::default(),
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, String>> {
        // Each change is one insert or remove: a panic elsewhere leaves it consistent.
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resourceVersion of `revision` as this store last read or wrote it.
    fn version_of(&self, revision: u32, verb: &str) -> Result<String, ClusterError> {
        self.versions().get(&revision).cloned().ok_or_else(|| {
            self.error(
                format!("cannot {verb} revision {revision}: this run never read it (records are written only after they are listed)"),
                None,
            )
        })
    }

    fn note_version(&self, revision: u32, secret: &Secret) {
        if let Some(version) = &secret.metadata.resource_version {
            self.versions().insert(revision, version.clone());
        }
    }

    /// A write whose precondition failed: another writer changed the records.
    fn raced(&self, verb: &str, revision: u32, what: &str) -> ClusterError {
        ClusterError::LockLost {
            context: self.context.clone(),
            message: format!(
                "cannot {verb} the record of revision {revision} of `{}` (Secret {}/{}): {what} since this run read it; another writer holds the records now, nothing was overwritten",
                self.release,
                self.namespace,
                record_name(&self.release, revision)
            ),
        }
    }

    /// A failed request to `verb` (`list`, `create`) the records, or one of them
    /// (`revision`): no answer is an unreachable cluster, 401/403 a denial (so a record
    /// write lost mid-run says which it is), any other answer the server's message.
    fn request_error(&self, verb: &str, revision: Option<u32>, err: kube::Error) -> ClusterError {
        let object = match revision {
            None => format!(
                "the release records of `{}` (Secrets in namespace `{}`)",
                self.release, self.namespace
            ),
            Some(revision) => format!(
                "the record of revision {revision} of `{}` (Secret {}/{})",
                self.release,
                self.namespace,
                record_name(&self.release, revision)
            ),
        };
        self.cluster.error(verb, &object, err)
    }

    /// A failure of the store itself; `source`, the encoding's, is told after `message`.
    fn error(&self, message: String, source: Option<codec::CodecError>) -> ClusterError {
        ClusterError::Records {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            release: self.release.clone(),
            message,
            source: source.map(Into::into),
        }
    }

    fn encode(&self, record: &ReleaseRecord) -> Result<Secret, ClusterError> {
        let bytes = codec::compress(record)
            .map_err(|e| self.error(format!("revision {}", record.revision), Some(e)))?;
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(record_name(&record.name, record.revision)),
                namespace: Some(record.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (OWNER_LABEL.to_owned(), labels::MANAGER.to_owned()),
                    (labels::RELEASE.to_owned(), record.name.clone()),
                    (REVISION_LABEL.to_owned(), record.revision.to_string()),
                    (STATUS_LABEL.to_owned(), record.status.as_str().to_owned()),
                    (DEPLOYMENT_LABEL.to_owned(), record.deployment_id.clone()),
                ])),
                ..Default::default()
            },
            type_: Some(RECORD_TYPE.to_owned()),
            data: Some(BTreeMap::from([(DATA_KEY.to_owned(), ByteString(bytes))])),
            ..Default::default()
        })
    }

    fn decode(&self, secret: &Secret) -> Result<ReleaseRecord, String> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .ok_or_else(|| format!("it has no `{DATA_KEY}` data"))?;
        codec::decompress(&bytes.0).map_err(|e| format!("its `{DATA_KEY}` data {e}"))
    }

    /// Every record that reads, oldest revision first, and those that do not.
    async fn read(&self) -> Result<(Vec<ReleaseRecord>, Vec<SkippedRecord>), ClusterError> {
        let selector = format!(
            "{OWNER_LABEL}={},{}={}",
            labels::MANAGER,
            labels::RELEASE,
            self.release
        );
        let secrets = match self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            // The first request of every command: a transport failure here is the
            // cluster being unreachable (exit code 3), not a problem with the records.
            Err(err) => return Err(self.request_error("list", None, err)),
        };
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        let mut versions = BTreeMap::new();
        for secret in secrets
            .iter()
            .filter(|s| s.type_.as_deref() == Some(RECORD_TYPE))
        {
            let name = secret.metadata.name.clone().unwrap_or_default();
            let revision = match self.decode(secret) {
                Ok(record) => {
                    let revision = record.revision;
                    records.push(record);
                    Some(revision)
                }
                Err(why) => {
                    let record = SkippedRecord {
                        namespace: self.namespace.clone(),
                        revision: revision_of(&self.release, &name),
                        secret: name,
                        why,
                    };
                    warn_once(&self.context, &self.release, &record);
                    let revision = record.revision;
                    skipped.push(record);
                    revision
                }
            };
            // What this store read, skipped records included (an uninstall deletes
            // them), is what its next writes are conditioned on.
            if let (Some(revision), Some(version)) = (revision, &secret.metadata.resource_version) {
                versions.insert(revision, version.clone());
            }
        }
        *self.versions() = versions;
        records.sort_by_key(|r| r.revision);
        Ok((records, skipped))
    }
}

/// The namespaces of `cluster` that hold records of `release`, found by the records'
/// labels and type in every namespace: where a rollback goes when the descriptor that
/// names the namespace no longer loads. Names only (a metadata list): the records are
/// read again, in their namespace, by the rollback.
pub async fn namespaces_with_records(
    cluster: &ClusterHandle,
    release: &str,
) -> Result<std::collections::BTreeSet<String>, ClusterError> {
    let api: Api<Secret> = Api::all(cluster.client());
    let params = ListParams::default()
        .labels(&format!(
            "{OWNER_LABEL}={},{}={release}",
            labels::MANAGER,
            labels::RELEASE
        ))
        .fields(&format!("type={RECORD_TYPE}"));
    let list = api.list_metadata(&params).await.map_err(|err| {
        cluster.error(
            "list",
            &format!("the release records of `{release}` in every namespace"),
            err,
        )
    })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|secret| secret.metadata.namespace)
        .collect())
}

/// The revision a record's Secret name gives (`flotilla.hello.v4` → 4).
pub(super) fn revision_of(release: &str, secret: &str) -> Option<u32> {
    secret
        .strip_prefix(&format!("{RECORD_PREFIX}.{release}.v"))?
        .parse()
        .ok()
}

/// Names a skipped record, once per process: a deploy reads the records twice.
fn warn_once(context: &str, release: &str, record: &SkippedRecord) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<(String, String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let key = (
        context.to_owned(),
        record.namespace.clone(),
        record.secret.clone(),
    );
    if WARNED.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
        tracing::warn!(
            "cluster `{context}`: release `{release}`: {record}; the release's other records are read without it"
        );
    }
}

impl RecordStore for SecretStore {
    /// Every record of the release that reads, oldest revision first.
    async fn list(&self) -> Result<Vec<ReleaseRecord>, ClusterError> {
        Ok(self.read().await?.0)
    }

    async fn history(&self) -> Result<History, ClusterError> {
        let (records, skipped) = self.read().await?;
        Ok(History::with_skipped(records, skipped))
    }

    /// Fails when the revision exists: another run recorded it first.
    async fn create(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        let secret = self.encode(record)?;
        match self.api.create(&PostParams::default(), &secret).await {
            Ok(created) => {
                self.note_version(record.revision, &created);
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Err(self.raced("create", record.revision, "another run recorded it"))
            }
            Err(err) => Err(self.request_error("create", Some(record.revision), err)),
        }
    }

    /// Rewrites a record (its status, description, timestamps) if it is still as this
    /// store last read or wrote it (a replace at its resourceVersion).
    async fn update(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        let mut secret = self.encode(record)?;
        secret.metadata.resource_version = Some(self.version_of(record.revision, "update")?);
        let name = record_name(&self.release, record.revision);
        match self
            .api
            .replace(&name, &PostParams::default(), &secret)
            .await
        {
            Ok(replaced) => {
                self.note_version(record.revision, &replaced);
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Err(self.raced("update", record.revision, "it was changed"))
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Err(self.raced("update", record.revision, "it was deleted"))
            }
            Err(err) => Err(self.request_error("update", Some(record.revision), err)),
        }
    }

    /// Deletes a record if it is still as this store last read or wrote it; one already
    /// gone is no error (what was asked is done).
    async fn delete(&self, revision: u32) -> Result<(), ClusterError> {
        let version = self.version_of(revision, "delete")?;
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(version),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let result = self
            .api
            .delete(&record_name(&self.release, revision), &params)
            .await;
        match result {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Err(self.raced("delete", revision, "it was changed"))
            }
            Err(err) => return Err(self.request_error("delete", Some(revision), err)),
        }
        self.versions().remove(&revision);
        Ok(())
    }
}
