//! A release in a namespace it shares with many pods of another application, one of them
//! crashlooping: the deploy's health wait and `status` judge only the release's pods,
//! and ask the API server only for them (the request log shows that the pod watch, the
//! soak's samples and status's pod list carry a label selector), on the shared fleet
//! through the binary.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::{wait_for, Fleet};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rollout_support::{at_root, copy_of_this_repo, describe};
use serde_json::json;
use std::process::Output;
use std::time::Duration;

const CLUSTER: &str = "dev-europe-west1";
/// The other application's pods; the last one crashloops.
const NEIGHBOURS: usize = 200;

/// A pod of the other application, labelled as the example release's pods are but for
/// its instance: only the release's selectors tell them apart.
fn neighbour(i: usize) -> Pod {
    let tag = if i + 1 == NEIGHBOURS {
        "crashloop"
    } else {
        "1.0"
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("neighbour-{i}"), "labels": {
            "app.kubernetes.io/instance": "neighbour",
            "app.kubernetes.io/component": "web",
        }},
        "spec": {"containers": [{"name": "web", "image": format!("registry.local/neighbour:{tag}")}]}
    }))
    .unwrap()
}

fn crashlooping(pod: &Pod) -> bool {
    let waiting = || {
        let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
        status.state.as_ref()?.waiting.as_ref()?.reason.clone()
    };
    waiting().as_deref() == Some("CrashLoopBackOff")
}

/// The request log's lines of reads of the pods of `namespace` (lists and watches).
fn pod_reads<'a>(log: &'a str, namespace: &str) -> Vec<&'a str> {
    let path = format!(" GET /api/v1/namespaces/{namespace}/pods?");
    log.lines()
        .filter(|l| l.contains("flotilla::requests") && l.contains(&path))
        .collect()
}

fn logged(fleet: &Fleet, root: &std::path::Path, args: &[&str]) -> Output {
    at_root(fleet, root, args)
        .env("FLOTILLA_LOG", "warn,flotilla::requests=debug")
        .output()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_release_among_many_other_pods_judges_and_reads_only_its_own() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("shared-ns").await;
    let client = fleet.client(CLUSTER).await;
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    futures::stream::iter(0..NEIGHBOURS)
        .map(|i| {
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &neighbour(i)).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create the other application's pods");
    let crashing = format!("neighbour-{}", NEIGHBOURS - 1);
    wait_for(pods.clone(), &crashing, Duration::from_secs(60), |p| {
        p.is_some_and(crashlooping)
    })
    .await
    .unwrap();

    let repo = copy_of_this_repo(&namespace);
    let root = repo.path();
    // A soak samples the release's pods every 2 s: those reads are filtered too.
    let env = root.join("environments/dev.yaml");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(
        &env,
        text.replace(
            "  on_failure: rollback\n",
            "  on_failure: rollback\n  waves:\n    - wave: 0\n      soak: 3s\n",
        ),
    )
    .unwrap();
    let deploy = logged(
        fleet,
        root,
        &["deploy", "hello", "--env", "dev", "--clusters", CLUSTER],
    );
    assert!(deploy.status.success(), "{}", describe(&deploy));
    let log = String::from_utf8_lossy(&deploy.stderr);
    let watches = pod_reads(&log, &namespace);
    assert!(
        watches.iter().any(|l| l.contains("watch=true")),
        "no watch of the pods in the request log:\n{log}"
    );
    for line in &watches {
        // The workloads' pods, or the release's own (hook) Pods by its labels.
        assert!(
            line.contains("labelSelector=")
                && (line.contains("instance%3Dhello") || line.contains("release%3Dhello")),
            "the health wait or the soak reads the pods of the whole namespace: {line}"
        );
    }
    assert!(
        watches.iter().any(|l| !l.contains("watch=true")),
        "no soak sample of the pods in the request log:\n{log}"
    );

    let status = logged(
        fleet,
        root,
        &[
            "status",
            "hello",
            "--env",
            "dev",
            "--cluster",
            CLUSTER,
            "-o",
            "json",
        ],
    );
    assert!(status.status.success(), "{}", describe(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report[CLUSTER]["health"], "healthy", "{report:#}");
    assert!(report[CLUSTER].get("failing_pods").is_none(), "{report:#}");
    let log = String::from_utf8_lossy(&status.stderr);
    let lists = pod_reads(&log, &namespace);
    assert_eq!(lists.len(), 1, "one list of the pods:\n{log}");
    assert!(
        lists[0].contains("labelSelector=") && lists[0].contains("instance%3Dhello"),
        "status reads the pods of the whole namespace: {}",
        lists[0]
    );
    // What both judged without: the other application's pod crashlooping all along.
    let crash = pods.get(&crashing).await.unwrap();
    assert!(crashlooping(&crash), "{crash:?}");
    // The shared fleet's kubelet would go on running them for every later test.
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app.kubernetes.io/instance=neighbour"),
    )
    .await
    .expect("delete the other application's pods");
}
