//! The health wait for StatefulSets, DaemonSets and Jobs on a real kube-apiserver and
//! controller-manager (the fleet's simulated kubelet runs the pods by image tag).
//!
//! A Job reaching `Failed` (the kubelet's `jobfail` tag), Jobs replaced across deploys,
//! old revisions, OnDelete and partition are in `cluster_safety.rs`.

use crate::support::cluster as support;

use flotilla::cluster::ClusterError;
use flotilla::ops::{self, Outcome};
use flotilla::release::Status;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};
use std::time::Duration;
use support::{cluster, daemonset, deployed, image, release, run_options};

fn statefulset(tag: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "app1-db"},
           "spec": {"replicas": replicas, "serviceName": "app1-db",
                    "selector": {"matchLabels": {"app": "app1-db"}},
                    "template": {"metadata": {"labels": {"app": "app1-db"}},
                                 "spec": {"containers": [{"name": "db", "image": image(tag)}]}}}})
}

fn job(tag: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "app1-migrate"},
           "spec": {"backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "migrate", "image": image(tag)}]}}}})
}

fn unhealthy(outcome: &Outcome) -> (&str, &str) {
    assert_eq!(outcome.status, Status::Failed);
    match &outcome.error {
        Some(ClusterError::Unhealthy { object, reason, .. }) => (object, reason),
        other => panic!("expected an unhealthy pod, not the timeout: {other:?}"),
    }
}

async fn pod_images(api: &Api<Pod>, selector: &str) -> Vec<String> {
    let mut images: Vec<String> = api
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect();
    images.sort();
    images
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn statefulset_deploy_waits_until_its_replicas_are_ready() {
    let t = cluster("sts-ready").await;
    // slow-2: each pod gets ready 2 s after it starts, so a wait that returned on the
    // first status would see fewer ready replicas than asked for.
    let outcome = deployed(
        ops::deploy(
            &t.handle,
            &release(&t.namespace, "slow-2", vec![statefulset("slow-2", 2)]),
            "d1",
            &run_options(),
        )
        .await
        .expect("deploy"),
    );
    assert_eq!(outcome.revision, 1);
    let sts = Api::<StatefulSet>::namespaced(t.handle.client(), &t.namespace)
        .get("app1-db")
        .await
        .expect("statefulset");
    let status = sts.status.expect("status");
    assert_eq!(status.ready_replicas, Some(2), "{status:?}");
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    assert_eq!(history[0].status, Status::Deployed);
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn statefulset_crashloop_fails_fast_naming_the_pod() {
    let t = cluster("sts-crash").await;
    let mut opts = run_options();
    // Far longer than the test may take: only the CrashLoopBackOff rule ends it early.
    opts.timeout = Duration::from_secs(300);
    let outcome = ops::deploy(
        &t.handle,
        &release(&t.namespace, "crashloop", vec![statefulset("crashloop", 2)]),
        "d1",
        &opts,
    )
    .await
    .expect("deploy");
    let (object, reason) = unhealthy(&outcome);
    assert!(
        object.contains("StatefulSet") && object.contains("app1-db"),
        "{object}"
    );
    assert!(
        reason.contains("CrashLoopBackOff")
            && reason.contains("pod app1-db-0")
            && reason.contains("container db"),
        "{reason}"
    );
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    assert_eq!(history[0].status, Status::Failed);
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn statefulset_upgrade_waits_for_the_new_revision() {
    let t = cluster("sts-upgrade").await;
    let opts = run_options();
    deployed(
        ops::deploy(
            &t.handle,
            &release(&t.namespace, "1.0.0", vec![statefulset("1.0.0", 2)]),
            "d1",
            &opts,
        )
        .await
        .expect("install"),
    );
    let api = Api::<StatefulSet>::namespaced(t.handle.client(), &t.namespace);
    let before = api.get("app1-db").await.expect("statefulset");
    let old_revision = before.status.and_then(|s| s.update_revision);

    // The new pods take 2 s each to get ready, and the controller replaces them one at
    // a time: returning before the rollout ends would leave a 1.0.0 pod behind.
    let second = deployed(
        ops::deploy(
            &t.handle,
            &release(&t.namespace, "slow-2", vec![statefulset("slow-2", 2)]),
            "d2",
            &opts,
        )
        .await
        .expect("upgrade"),
    );
    assert_eq!((second.revision, second.previous), (2, Some(1)));
    let status = api
        .get("app1-db")
        .await
        .expect("statefulset")
        .status
        .expect("status");
    assert_ne!(status.update_revision, old_revision, "{status:?}");
    assert_eq!(
        status.current_revision, status.update_revision,
        "{status:?}"
    );
    assert_eq!(status.updated_replicas, Some(2), "{status:?}");
    assert_eq!(status.ready_replicas, Some(2), "{status:?}");
    let pods = Api::<Pod>::namespaced(t.handle.client(), &t.namespace);
    assert_eq!(
        pod_images(&pods, "app=app1-db").await,
        vec![image("slow-2"), image("slow-2")]
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn daemonset_becomes_healthy_with_one_pod_on_each_node() {
    let t = cluster("ds-ready").await;
    deployed(
        ops::deploy(
            &t.handle,
            &release(&t.namespace, "slow-1", vec![daemonset("slow-1")]),
            "d1",
            &run_options(),
        )
        .await
        .expect("deploy"),
    );
    let status = Api::<DaemonSet>::namespaced(t.handle.client(), &t.namespace)
        .get("app1-agent")
        .await
        .expect("daemonset")
        .status
        .expect("status");
    // The fleet's simulated kubelet runs this many nodes per cluster.
    let nodes = i32::try_from(flotilla_fleet::supervisor::NODES).expect("node count");
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.number_available,
            status.updated_number_scheduled
        ),
        (nodes, Some(nodes), Some(nodes)),
        "{status:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn job_completes_and_the_deploy_succeeds() {
    let t = cluster("job-done").await;
    deployed(
        ops::deploy(
            &t.handle,
            &release(&t.namespace, "1.0.0", vec![job("1.0.0")]),
            "d1",
            &run_options(),
        )
        .await
        .expect("deploy"),
    );
    let status = Api::<Job>::namespaced(t.handle.client(), &t.namespace)
        .get("app1-migrate")
        .await
        .expect("job")
        .status
        .expect("status");
    assert_eq!(status.succeeded, Some(1), "{status:?}");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn job_whose_pod_crash_loops_fails_fast_naming_the_pod() {
    let t = cluster("job-crash").await;
    let mut opts = run_options();
    opts.timeout = Duration::from_secs(300);
    let outcome = ops::deploy(
        &t.handle,
        &release(&t.namespace, "crashloop", vec![job("crashloop")]),
        "d1",
        &opts,
    )
    .await
    .expect("deploy");
    let (object, reason) = unhealthy(&outcome);
    assert!(
        object.contains("Job") && object.contains("app1-migrate"),
        "{object}"
    );
    assert!(
        reason.contains("CrashLoopBackOff") && reason.contains("pod app1-migrate-"),
        "{reason}"
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn job_whose_pod_never_completes_times_out_naming_the_job() {
    let t = cluster("job-never").await;
    let mut opts = run_options();
    opts.timeout = Duration::from_secs(5);
    let outcome = ops::deploy(
        &t.handle,
        &release(&t.namespace, "never", vec![job("never")]),
        "d1",
        &opts,
    )
    .await
    .expect("deploy");
    assert_eq!(outcome.status, Status::Failed);
    match &outcome.error {
        Some(ClusterError::Timeout { pending, .. }) => {
            assert_eq!(pending.len(), 1, "{pending:?}");
            assert!(
                pending[0].contains("Job") && pending[0].contains("app1-migrate"),
                "{pending:?}"
            );
        }
        other => panic!("expected the timeout: {other:?}"),
    }
}
