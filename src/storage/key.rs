//! The release's checksum key: 32 random bytes in a Secret of the release namespace,
//! `flotilla.<release>.checksum-key`, the key of the chart helper `secretsum` (an HMAC of
//! the secret values in a pod annotation). Whoever can read it can read the release's
//! Secrets anyway; whoever can only `get pods` sees checksums they cannot test guesses
//! against. Created by the first deploy, kept across deploys (a new key would restart
//! every pod), never in a record, never pruned.

use crate::cluster::{ClusterError, ClusterHandle};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;
use std::io::Read;
use zeroize::Zeroizing;

const DATA_KEY: &str = "key";
const KEY_LEN: usize = 32;

pub fn checksum_key_name(release: &str) -> String {
    format!("{}.{release}.checksum-key", super::RECORD_PREFIX)
}

/// The release's key in this cluster; with `create`, made when there is none (the
/// namespace too). `None` without `create` when there is none yet (`diff` before the
/// first deploy). A deploy reads it before it holds the lease ([`read_checksum_key`])
/// and writes a new one only once it does ([`new_checksum_key`],
/// [`create_checksum_key`]).
pub async fn checksum_key(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    create: bool,
    create_namespace: bool,
) -> Result<Option<Zeroizing<Vec<u8>>>, ClusterError> {
    if let Some(key) = read_checksum_key(cluster, namespace, release).await? {
        return Ok(Some(key));
    }
    if !create {
        return Ok(None);
    }
    cluster
        .ensure_namespace(namespace, create_namespace)
        .await?;
    let key = new_checksum_key(cluster, namespace, release)?;
    match create_checksum_key(cluster, namespace, release, &key).await {
        Ok(()) => Ok(Some(key)),
        // Another run made it first: use that one.
        Err(ClusterError::LockLost { .. }) => read_checksum_key(cluster, namespace, release).await,
        Err(err) => Err(err),
    }
}

fn key_error(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    message: String,
    source: Option<std::io::Error>,
) -> ClusterError {
    ClusterError::Records {
        context: cluster.context().to_owned(),
        namespace: namespace.to_owned(),
        release: release.to_owned(),
        message: format!("checksum key {}: {message}", checksum_key_name(release)),
        source: source.map(Into::into),
    }
}

fn key_object(namespace: &str, release: &str) -> String {
    format!(
        "the checksum key of `{release}` (Secret {namespace}/{})",
        checksum_key_name(release)
    )
}

/// Known to the scrubber from now on, in the form it takes in a Secret.
fn registered(key: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    use base64::Engine;
    crate::redact::register(&base64::engine::general_purpose::STANDARD.encode(&*key));
    key
}

/// The release's key in this cluster, `None` when there is none (nor, maybe, the
/// namespace). Reads only.
pub async fn read_checksum_key(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, ClusterError> {
    let api: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let name = checksum_key_name(release);
    match api.get_opt(&name).await {
        Ok(Some(secret)) => secret
            .data
            .and_then(|mut d| d.remove(DATA_KEY))
            .map(|b| Zeroizing::new(b.0))
            .filter(|k| !k.is_empty())
            .map(registered)
            .map(Some)
            .ok_or_else(|| {
                key_error(
                    cluster,
                    namespace,
                    release,
                    "read: has no `key` data".into(),
                    None,
                )
            }),
        Ok(None) => Ok(None),
        // A namespace that does not exist yet has no key.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(cluster.error("read", &key_object(namespace, release), err)),
    }
}

/// A key drawn now, for a cluster that has none: the first deploy renders with it and
/// writes it ([`create_checksum_key`]) once it holds the release's lease.
pub fn new_checksum_key(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
) -> Result<Zeroizing<Vec<u8>>, ClusterError> {
    let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(|e| {
            key_error(
                cluster,
                namespace,
                release,
                "cannot draw random bytes".into(),
                Some(e),
            )
        })?;
    Ok(registered(key))
}

/// Writes `key` as the release's key, in a namespace that exists. One that exists
/// already is another run's (made since this run read there was none): refused as a
/// concurrent writer ([`ClusterError::LockLost`]), never overwritten, since what this
/// run rendered is keyed by its own.
pub async fn create_checksum_key(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    key: &[u8],
) -> Result<(), ClusterError> {
    let api: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let name = checksum_key_name(release);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "flotilla.dev/checksum-key".to_owned(),
                release.to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("flotilla.dev/checksum-key.v1".to_owned()),
        data: Some(BTreeMap::from([(
            DATA_KEY.to_owned(),
            ByteString(key.to_vec()),
        )])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(ClusterError::LockLost {
            context: cluster.context().to_owned(),
            message: format!(
                "{} was created by another run since this run read that there was none; nothing was changed, run again",
                key_object(namespace, release)
            ),
        }),
        Err(err) => Err(cluster.error("create", &key_object(namespace, release), err)),
    }
}
