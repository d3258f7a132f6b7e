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
/// first deploy).
pub async fn checksum_key(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    create: bool,
    create_namespace: bool,
) -> Result<Option<Zeroizing<Vec<u8>>>, ClusterError> {
    let error = |action: &str, source: &dyn std::fmt::Display| ClusterError::Records {
        context: cluster.context().to_owned(),
        namespace: namespace.to_owned(),
        release: release.to_owned(),
        message: format!(
            "checksum key {}: {action}: {source}",
            checksum_key_name(release)
        ),
    };
    let api: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let name = checksum_key_name(release);
    let object = format!("the checksum key of `{release}` (Secret {namespace}/{name})");
    let request_error = |verb: &str, err: kube::Error| cluster.error(verb, &object, err);
    let read = |secret: Secret| {
        secret
            .data
            .and_then(|mut d| d.remove(DATA_KEY))
            .map(|b| Zeroizing::new(b.0))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| error("read", &"has no `key` data"))
    };
    let registered = |key: Zeroizing<Vec<u8>>| {
        use base64::Engine;
        crate::redact::register(&base64::engine::general_purpose::STANDARD.encode(&*key));
        key
    };
    match api.get_opt(&name).await {
        Ok(Some(secret)) => return read(secret).map(registered).map(Some),
        Ok(None) => {}
        // A namespace that does not exist yet has no key.
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(err) => return Err(request_error("read", err)),
    }
    if !create {
        return Ok(None);
    }
    cluster
        .ensure_namespace(namespace, create_namespace)
        .await?;
    let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(|e| error("cannot draw random bytes", &e))?;
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
        Ok(_) => Ok(Some(registered(key))),
        // Another run made it first: use that one.
        Err(kube::Error::Api(status)) if status.code == 409 => match api.get(&name).await {
            Ok(secret) => read(secret).map(registered).map(Some),
            Err(err) => Err(request_error("read", err)),
        },
        Err(err) => Err(request_error("create", err)),
    }
}
