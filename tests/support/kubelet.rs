//! INTERIM: a minimal simulated kubelet for one namespace (until the fleet's lands):
//! binds pending pods, reports them Ready (or in CrashLoopBackOff for the `crashloop`
//! tag), and completes deletions. Watch-driven, ends with the test's runtime.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::json;

pub fn spawn(client: Client, namespace: &str) {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    tokio::spawn(async move {
        let mut pods = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(pod)) = pods.next().await {
            let _ = handle(&api, &pod).await;
        }
    });
}

async fn handle(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let name = pod.name_any();
    if pod.metadata.deletion_timestamp.is_some() {
        api.delete(
            &name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await?;
        return Ok(());
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.node_name.is_none() {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                             "target": {"apiVersion": "v1", "kind": "Node", "name": "fake-node-1"}});
        let request = http::Request::post(format!(
            "/api/v1/namespaces/{}/pods/{name}/binding",
            pod.namespace().unwrap_or_default()
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
        api.clone().into_client().request_text(request).await?;
        return Ok(());
    }
    if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
        return Ok(());
    }
    let crash = spec
        .containers
        .iter()
        .any(|c| c.image.as_deref().unwrap_or("").ends_with(":crashloop"));
    let statuses: Vec<_> = spec.containers.iter().map(|c| {
        if crash {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": false, "restartCount": 3,
                   "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}})
        } else {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": true, "restartCount": 0,
                   "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
        }
    }).collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": if crash {"False"} else {"True"}, "lastTransitionTime": now}],
        "containerStatuses": statuses}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}
