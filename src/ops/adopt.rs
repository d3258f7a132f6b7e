//! Taking over a release that another tool installed, in one cluster: a Helm release's
//! deployed revision becomes a revision to record ([`imported_revision`]) and, once recorded,
//! its objects stop being Helm's ([`release_from_helm`]).

use super::Rendered;
use crate::cluster::labels::IMPORTED_FROM;
use crate::cluster::{ClusterError, ClusterHandle, HelmRelease, ObjectRef};
use crate::release::{values_without_secrets, ChartRef, RevisionSource};
use serde_json::Value;

/// The deployed revision of Helm release `helm_name` in `namespace`; `None` when the
/// cluster has none.
pub async fn read_helm(
    handle: &ClusterHandle,
    namespace: &str,
    helm_name: &str,
) -> Result<Option<HelmRelease>, ClusterError> {
    handle.helm_release(namespace, helm_name).await
}

/// A Helm release's deployed revision as the revision release `release` records: Helm's
/// objects exactly as Helm applied them (each annotated [`IMPORTED_FROM`], so their pod
/// templates stay as they are), the chart's name and versions, and `values` (the chart's
/// merged with what the release was given).
pub fn imported_revision(helm: &HelmRelease, release: &str, values: &Value) -> Rendered {
    let origin = format!("helm/{}/{}", helm.name, helm.revision);
    let objects = helm
        .objects
        .iter()
        .cloned()
        .map(|mut object| {
            crate::cluster::labels::annotate(&mut object, IMPORTED_FROM, &origin);
            object
        })
        .collect();
    let mut rendered = Rendered {
        release: release.to_owned(),
        namespace: helm.namespace.clone(),
        chart: ChartRef {
            name: helm.chart_name.clone(),
            version: helm.chart_version.clone(),
        },
        app_version: if helm.app_version.is_empty() {
            helm.chart_version.clone()
        } else {
            helm.app_version.clone()
        },
        objects,
        stored: Vec::new(),
        values: values_without_secrets(values),
        source: Some(RevisionSource {
            imported: Some(origin),
            ..Default::default()
        }),
    };
    rendered.store_as_rendered();
    rendered
}

/// After the imported revision is recorded: each of its objects loses Helm's ownership
/// annotations and field manager, and with `remove_history` Helm's revision Secrets are
/// deleted. Returns the Secrets deleted.
pub async fn release_from_helm(
    handle: &ClusterHandle,
    rendered: &Rendered,
    helm_name: &str,
    remove_history: bool,
) -> Result<Vec<String>, ClusterError> {
    for object in &rendered.objects {
        let id: ObjectRef = handle.identity(object, &rendered.namespace).await?;
        handle.release_from_helm(&id, &rendered.namespace).await?;
    }
    if remove_history {
        return handle
            .delete_helm_history(&rendered.namespace, helm_name)
            .await;
    }
    Ok(Vec::new())
}
