//! Test support for the cluster layer's integration tests: the shared local fleet
//! (`flotilla_fleet::testing`), a fresh namespace per test, and the example release's
//! objects built in code (the cluster layer takes rendered objects).
#![allow(dead_code)]

use flotilla::cluster::{load_kubeconfig, ClusterHandle, LockOptions};
use flotilla::ops::{Outcome, Rendered, RunOptions};
use flotilla::release::{ChartRef, Status};
use flotilla_fleet::testing::Fleet;
use serde_json::{json, Value};
use std::time::Duration;

pub struct TestCluster {
    pub handle: ClusterHandle,
    pub namespace: String,
}

/// The first cluster of the shared fleet, in a fresh namespace.
pub async fn cluster(test: &str) -> TestCluster {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace(test).await;
    cluster_in(&namespace).await
}

/// The first cluster of the shared fleet, in an existing namespace (a child process
/// gets the parent's fleet through `FLOTILLA_FLEET_DIR`).
pub async fn cluster_in(namespace: &str) -> TestCluster {
    flotilla::install_tls_provider();
    let fleet = Fleet::shared();
    let kubeconfig = load_kubeconfig(Some(&fleet.kubeconfig())).expect("fleet kubeconfig");
    let context = fleet
        .clusters()
        .into_iter()
        .next()
        .expect("a fleet cluster");
    let handle = ClusterHandle::connect(&kubeconfig, &context)
        .await
        .expect("connect");
    TestCluster {
        handle,
        namespace: namespace.to_owned(),
    }
}

pub fn fleet_dir() -> std::path::PathBuf {
    Fleet::shared().dir().to_path_buf()
}

pub fn run_options() -> RunOptions {
    let mut opts = RunOptions::new(Duration::from_secs(60));
    opts.lock = LockOptions {
        duration: Duration::from_secs(3),
        holder: format!("test@host pid {}", std::process::id()),
        // Refuse at once: these tests look at the refusal itself.
        wait: Duration::ZERO,
    };
    opts
}

/// The example release's objects: a config map, a secret, a service and a deployment
/// `app1-web` with the given image tag and replicas; `extra` adds a config map.
pub fn rendered(namespace: &str, tag: &str, replicas: u32, extra: bool) -> Rendered {
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app1-config"},
               "data": {"level": "info", "version": tag}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app1-db"},
               "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app1-web"},
               "spec": {"selector": {"app": "app1-web"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        deployment("app1-web", tag, replicas),
    ];
    if extra {
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app1-extra"}, "data": {"a": "b"}}));
    }
    Rendered {
        hooks: Vec::new(),
        release: "app1".into(),
        namespace: namespace.to_owned(),
        chart: ChartRef {
            name: "app1".into(),
            version: "0.1.0".into(),
        },
        app_version: tag.to_owned(),
        stored: flotilla::redact::redact_manifest(&objects),
        objects,
        values: json!({"image": {"tag": tag}, "secrets": {"db-password": "hunter2"}}),
        source: None,
    }
}

/// The image of the example's containers at `tag` (the simulated kubelet runs a pod by
/// its tag: `crashloop`, `jobfail`, ...).
pub fn image(tag: &str) -> String {
    format!("registry.local/app1:{tag}")
}

/// A release of the given objects only.
pub fn release(namespace: &str, tag: &str, objects: Vec<Value>) -> Rendered {
    Rendered {
        stored: flotilla::redact::redact_manifest(&objects),
        objects,
        ..rendered(namespace, tag, 1, false)
    }
}

/// `outcome`, which must be a deploy that ended `deployed` without an error.
pub fn deployed(outcome: Outcome) -> Outcome {
    assert!(
        outcome.error.is_none(),
        "deploy failed: {:?}",
        outcome.error
    );
    assert_eq!(outcome.status, Status::Deployed);
    outcome
}

pub fn deployment(name: &str, tag: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "web", "image": image(tag)}]}}}})
}

/// A DaemonSet `app1-agent` of one container on every node, image tag `tag`.
pub fn daemonset(tag: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "app1-agent"},
           "spec": {"selector": {"matchLabels": {"app": "app1-agent"}},
                    "template": {"metadata": {"labels": {"app": "app1-agent"}},
                                 "spec": {"containers": [{"name": "agent", "image": image(tag)}]}}}})
}
