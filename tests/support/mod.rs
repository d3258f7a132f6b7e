//! Test support for the cluster layer's integration tests.
//!
//! INTERIM until `flotilla_fleet::testing` lands: the cluster is the one named by
//! `FLOTILLA_TEST_KUBECONFIG` (and `FLOTILLA_TEST_CONTEXT`, default the current
//! context), started by hand as TESTENV.md describes; pods of each test's namespace are
//! driven by [`kubelet`], a minimal simulated kubelet scoped to that namespace.
#![allow(dead_code)]

pub mod kubelet;

use flotilla::action::cluster_release::{Rendered, RunOptions};
use flotilla::cluster::{load_kubeconfig, ClusterHandle, LockOptions};
use flotilla::release::ChartRef;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub struct TestCluster {
    pub handle: ClusterHandle,
    pub namespace: String,
}

/// A fresh namespace name on the test cluster, with a simulated kubelet for it.
pub async fn cluster(test: &str) -> TestCluster {
    let t = cluster_in(&unique_namespace(test)).await;
    kubelet::spawn(t.handle.client(), &t.namespace);
    t
}

/// The test cluster, in a namespace another process created (no kubelet of our own).
pub async fn cluster_in(namespace: &str) -> TestCluster {
    let path = std::env::var("FLOTILLA_TEST_KUBECONFIG")
        .expect("FLOTILLA_TEST_KUBECONFIG must name the kubeconfig of the test cluster");
    let kubeconfig = load_kubeconfig(Some(std::path::Path::new(&path))).expect("kubeconfig");
    let context = std::env::var("FLOTILLA_TEST_CONTEXT")
        .ok()
        .or_else(|| kubeconfig.current_context.clone())
        .expect("a context");
    let handle = ClusterHandle::connect(&kubeconfig, &context)
        .await
        .expect("connect");
    TestCluster {
        handle,
        namespace: namespace.to_owned(),
    }
}

pub fn unique_namespace(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!(
        "t-{test}-{stamp}-{}-{}",
        std::process::id() % 1000,
        N.fetch_add(1, Ordering::Relaxed)
    )
    .replace('_', "-")
    .chars()
    .take(63)
    .collect()
}

pub fn run_options() -> RunOptions {
    let mut opts = RunOptions::new(Duration::from_secs(60));
    opts.lock = LockOptions {
        duration: Duration::from_secs(3),
        holder: format!("test@host pid {}", std::process::id()),
    };
    opts
}

/// The example release's objects: a config map, a secret, a service and a deployment
/// `web` with the given image tag and replicas; `extra` adds a config map `extra`.
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
        release: "app1".into(),
        namespace: namespace.to_owned(),
        chart: ChartRef {
            name: "app1".into(),
            version: "0.1.0".into(),
        },
        app_version: tag.to_owned(),
        objects,
        values: json!({"image": {"tag": tag}, "secrets": {"db-password": "hunter2"}}),
    }
}

pub fn deployment(name: &str, tag: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "web", "image": format!("registry.local/app1:{tag}")}]}}}})
}
