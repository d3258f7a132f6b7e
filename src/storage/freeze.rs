//! An environment's freeze in one cluster: a ConfigMap `flotilla.freeze.<env>` in the
//! namespace the environment file names (`freeze.namespace`), else in each release's
//! namespace (where its records are, which its deployers may read), labelled `owner=flotilla` and `flotilla.dev/freeze=<env>`, data
//! key `freeze` = the [`Freeze`] as JSON. Not a secret: who froze what and why is for
//! anyone who can read the namespace. Every cluster of the environment keeps a copy, so
//! a runner that reaches any of them sees it; a deploy looks in every release's
//! namespace, so a release added after the freeze sees it too (`action::freeze`).

use crate::cluster::{labels, ClusterError, ClusterHandle};
use crate::release::{ClusterFreeze, Freeze};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use std::collections::BTreeMap;

const DATA_KEY: &str = "freeze";
pub const FREEZE_LABEL: &str = "flotilla.dev/freeze";

pub fn freeze_name(environment: &str) -> String {
    format!("{}.freeze.{environment}", super::RECORD_PREFIX)
}

fn object(namespace: &str, environment: &str) -> String {
    format!(
        "the freeze of environment `{environment}` (ConfigMap {namespace}/{})",
        freeze_name(environment)
    )
}

/// The freeze this cluster keeps for `environment`. An object that does not decode is
/// unreadable, never "not frozen": someone meant something by it.
pub async fn read_freeze(
    cluster: &ClusterHandle,
    namespace: &str,
    environment: &str,
) -> ClusterFreeze {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    match api.get_opt(&freeze_name(environment)).await {
        Ok(None) => ClusterFreeze::Clear,
        // The namespace does not exist: nothing is kept there.
        Err(kube::Error::Api(status)) if status.code == 404 => ClusterFreeze::Clear,
        Err(err) => ClusterFreeze::Unreadable(
            cluster
                .error("read", &object(namespace, environment), err)
                .to_string(),
        ),
        Ok(Some(map)) => {
            let text = map.data.and_then(|mut d| d.remove(DATA_KEY));
            match text.as_deref().map(serde_json::from_str::<Freeze>) {
                Some(Ok(freeze)) => ClusterFreeze::Frozen(freeze),
                Some(Err(err)) => ClusterFreeze::Unreadable(format!(
                    "{} does not decode ({err}); delete it with `flotilla unfreeze` or fix it",
                    object(namespace, environment)
                )),
                None => ClusterFreeze::Unreadable(format!(
                    "{} has no `{DATA_KEY}` data; delete it with `flotilla unfreeze`",
                    object(namespace, environment)
                )),
            }
        }
    }
}

/// Keeps `freeze` in this cluster, replacing the one it kept (a new reason or end).
pub async fn write_freeze(
    cluster: &ClusterHandle,
    namespace: &str,
    freeze: &Freeze,
) -> Result<(), ClusterError> {
    let environment = &freeze.environment;
    let what = object(namespace, environment);
    let text = serde_json::to_string(freeze).map_err(|err| ClusterError::Release {
        context: cluster.context().to_owned(),
        message: format!("{what}: {err}"),
    })?;
    cluster.ensure_namespace(namespace, true).await?;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    let mut map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(freeze_name(environment)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                ("owner".to_owned(), labels::MANAGER.to_owned()),
                (FREEZE_LABEL.to_owned(), environment.clone()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), text)])),
        ..ConfigMap::default()
    };
    match api.get_opt(&freeze_name(environment)).await {
        Ok(None) => api
            .create(&PostParams::default(), &map)
            .await
            .map(drop)
            .map_err(|err| cluster.error("create", &what, err)),
        Ok(Some(found)) => {
            // At the version read: a freeze written meanwhile by another runner is
            // refused (409), not silently replaced.
            map.metadata.resource_version = found.metadata.resource_version;
            api.replace(&freeze_name(environment), &PostParams::default(), &map)
                .await
                .map(drop)
                .map_err(|err| cluster.error("replace", &what, err))
        }
        Err(err) => Err(cluster.error("read", &what, err)),
    }
}

/// Removes this cluster's freeze; `false` when it kept none.
pub async fn delete_freeze(
    cluster: &ClusterHandle,
    namespace: &str,
    environment: &str,
) -> Result<bool, ClusterError> {
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    match api
        .delete(&freeze_name(environment), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(cluster.error("delete", &object(namespace, environment), err)),
    }
}
