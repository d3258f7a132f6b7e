//! The cluster layer on a real kube-apiserver: deploy, upgrade, prune, rollback, health
//! failures, conflicts, locks, repair of a killed run, drift, history limit.

use crate::support::cluster as support;

use flotilla::cluster::{ClusterError, ClusterHandle};
use flotilla::ops::{self, restore::RestoreTo, ObjectHealth};
use flotilla::release::{Operation, Status};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;
use support::{cluster, deployed, rendered, run_options};

async fn web(handle: &ClusterHandle, ns: &str) -> Deployment {
    Api::<Deployment>::namespaced(handle.client(), ns)
        .get("app1-web")
        .await
        .expect("deployment app1-web")
}

fn image_and_replicas(d: &Deployment) -> (String, i32) {
    let image = d
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default();
    (image, d.spec.replicas.unwrap_or(1))
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn install_upgrade_prune_then_rollback_restores_previous_objects() {
    let t = cluster("upgrade").await;
    let opts = run_options();
    let v1 = rendered(&t.namespace, "1.0.0", 2, true);
    let first = deployed(
        ops::deploy(&t.handle, &v1, "d1", &opts)
            .await
            .expect("install"),
    );
    assert_eq!((first.revision, first.previous), (1, None));

    let live = web(&t.handle, &t.namespace).await;
    let labels = live.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("flotilla")
    );
    assert_eq!(
        labels.get("flotilla.dev/release").map(String::as_str),
        Some("app1")
    );
    let before = image_and_replicas(&live);

    let v2 = rendered(&t.namespace, "2.0.0", 3, false);
    let second = deployed(
        ops::deploy(&t.handle, &v2, "d2", &opts)
            .await
            .expect("upgrade"),
    );
    assert_eq!((second.revision, second.previous), (2, Some(1)));
    assert_eq!(
        image_and_replicas(&web(&t.handle, &t.namespace).await),
        ("registry.local/app1:2.0.0".into(), 3)
    );
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    assert!(
        cms.get_opt("app1-extra").await.unwrap().is_none(),
        "removed object not pruned"
    );
    assert_eq!(second.pruned.len(), 1);

    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let statuses: Vec<_> = history.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(
        statuses,
        vec![(1, Status::Superseded), (2, Status::Deployed)]
    );
    let stored = serde_json::to_string(&history).unwrap();
    assert!(
        !stored.contains("aHVudGVyMg==") && !stored.contains("hunter2"),
        "a secret value was recorded"
    );

    // Back to the deployment before the current one.
    let previous = history.revision_of("d1").expect("deployment d1");
    let to = RestoreTo {
        revision: previous.revision,
        deployment_id: "d3",
        fresh: &[],
        unreadable: &[],
    };
    let back = deployed(
        ops::restore(&t.handle, &t.namespace, "app1", &to, &opts)
            .await
            .expect("rollback"),
    );
    assert_eq!(back.revision, 3);
    assert_eq!(
        image_and_replicas(&web(&t.handle, &t.namespace).await),
        before
    );
    assert_eq!(
        cms.get("app1-extra").await.unwrap().data,
        Some([("a".to_string(), "b".to_string())].into())
    );
    assert_eq!(
        cms.get("app1-config").await.unwrap().data.unwrap()["version"],
        "1.0.0"
    );
    // The secret's value is never recorded: the rollback kept the live one.
    assert_eq!(back.kept_live.len(), 1);
    let secret = Api::<Secret>::namespaced(t.handle.client(), &t.namespace)
        .get("app1-db")
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, b"hunter2");

    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.operation, last.rollback_of, last.status),
        (Operation::Rollback, Some(1), Status::Deployed)
    );
    assert_eq!(history[1].status, Status::RolledBack);
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn prune_never_deletes_an_object_that_lost_our_labels() {
    let t = cluster("prune-owned").await;
    let opts = run_options();
    deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 1, true),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    // Someone adopts the object: it is theirs now.
    let patch = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}});
    cms.patch("app1-extra", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let outcome = deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "2", 1, false),
            "d2",
            &opts,
        )
        .await
        .unwrap(),
    );
    assert!(outcome.pruned.is_empty(), "{:?}", outcome.pruned);
    assert!(cms.get_opt("app1-extra").await.unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn crashloop_fails_at_once_naming_pod_and_container() {
    let t = cluster("crashloop").await;
    let mut opts = run_options();
    opts.timeout = Duration::from_secs(300);
    deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 1, false),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    let outcome = ops::deploy(
        &t.handle,
        &rendered(&t.namespace, "crashloop", 2, false),
        "d2",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(outcome.status, Status::Failed);
    match outcome.error {
        Some(ClusterError::Unhealthy { object, reason, .. }) => {
            assert!(
                object.contains("Deployment") && object.contains("app1-web"),
                "{object}"
            );
            assert!(
                reason.contains("CrashLoopBackOff")
                    && reason.contains("pod app1-web-")
                    && reason.contains("container web"),
                "{reason}"
            );
        }
        other => panic!("expected an unhealthy pod, not the timeout: {other:?}"),
    }
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    assert_eq!(history[1].status, Status::Failed);
    assert!(history[1].description.contains("CrashLoopBackOff"));
    assert_eq!(
        history[0].status,
        Status::Deployed,
        "the failed deploy must not supersede the good one"
    );
    // Back to the last good revision, still the deployed one.
    let to = RestoreTo {
        revision: history.deployed().expect("a deployed revision").revision,
        deployment_id: "d3",
        fresh: &[],
        unreadable: &[],
    };
    let back = deployed(
        ops::restore(&t.handle, &t.namespace, "app1", &to, &opts)
            .await
            .unwrap(),
    );
    assert_eq!(
        ops::history(&t.handle, &t.namespace, "app1").await.unwrap()[2].rollback_of,
        Some(1)
    );
    assert_eq!(back.previous, Some(1));
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_field_owned_by_another_manager_is_reported_then_forced() {
    let t = cluster("conflict").await;
    let mut opts = run_options();
    deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 2, false),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    let deployments: Api<Deployment> = Api::namespaced(t.handle.client(), &t.namespace);
    let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app1-web"}, "spec": {"replicas": 5}});
    deployments
        .patch(
            "app1-web",
            &PatchParams::apply("hpa-controller").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    let outcome = ops::deploy(
        &t.handle,
        &rendered(&t.namespace, "1", 3, false),
        "d2",
        &opts,
    )
    .await
    .unwrap();
    match &outcome.error {
        Some(err @ ClusterError::Conflict { conflicts, .. }) => {
            assert_eq!(conflicts[0].manager, "hpa-controller");
            assert_eq!(conflicts[0].field, ".spec.replicas");
            assert!(err.to_string().contains("--force-conflicts"), "{err}");
        }
        other => panic!("expected a conflict: {other:?}"),
    }
    opts.force_conflicts = true;
    deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 3, false),
            "d3",
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!(image_and_replicas(&web(&t.handle, &t.namespace).await).1, 3);
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn two_concurrent_deploys_one_is_refused_naming_the_holder() {
    let t = cluster("concurrent").await;
    let mut a = run_options();
    a.lock.holder = "alice@ci-1 pid 11".into();
    let mut b = run_options();
    b.lock.holder = "bob@laptop pid 22".into();
    let v = rendered(&t.namespace, "1", 1, false);
    let (ra, rb) = tokio::join!(
        ops::deploy(&t.handle, &v, "da", &a),
        ops::deploy(&t.handle, &v, "db", &b)
    );
    let (ok, refused) = match (ra, rb) {
        (Ok(ok), Err(err)) => (ok, (err, "alice@ci-1 pid 11")),
        (Err(err), Ok(ok)) => (ok, (err, "bob@laptop pid 22")),
        (a, b) => panic!("exactly one must be refused: {a:?} / {b:?}"),
    };
    deployed(ok);
    match refused.0 {
        ClusterError::Locked { holder, since, .. } => {
            assert_eq!(holder, refused.1);
            assert!(since.ends_with('Z'), "{since}");
        }
        other => panic!("expected a lock refusal: {other:?}"),
    }
    assert_eq!(
        ops::history(&t.handle, &t.namespace, "app1")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn drift_is_reported_after_a_hand_edit() {
    let t = cluster("drift").await;
    let opts = run_options();
    deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 2, false),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    let report = ops::status(&t.handle, &t.namespace, "app1").await.unwrap();
    assert!(!report.drifted(), "{:?}", report.objects);
    assert!(
        report
            .objects
            .iter()
            .any(|o| o.object.kind == "Deployment" && o.health == ObjectHealth::Ready),
        "{:?}",
        report.objects
    );

    let deployments: Api<Deployment> = Api::namespaced(t.handle.client(), &t.namespace);
    let edit = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.local/app1:hotfix"}]}}}});
    deployments
        .patch(
            "app1-web",
            &PatchParams::default(),
            &Patch::Strategic(&edit),
        )
        .await
        .unwrap();
    let report = ops::status(&t.handle, &t.namespace, "app1").await.unwrap();
    assert!(report.drifted());
    let web = report
        .objects
        .iter()
        .find(|o| o.object.kind == "Deployment")
        .unwrap();
    assert_eq!(web.drift.len(), 1, "{:?}", web.drift);
    assert_eq!(
        web.drift[0].path,
        "spec.template.spec.containers[name=\"web\"].image"
    );
    assert_eq!(web.drift[0].to, Some(json!("registry.local/app1:hotfix")));
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn diff_shows_changes_and_never_secret_values() {
    let t = cluster("diff").await;
    let opts = run_options();
    deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 2, true),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    let mut next = rendered(&t.namespace, "1", 4, false);
    next.objects[1]["data"]["password"] = json!("bmV3LXBhc3N3b3Jk");
    next.store_as_rendered();
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let diffs = ops::diff(&t.handle, &history, &next).await.unwrap();
    let text = serde_json::to_string(&diffs).unwrap();
    assert!(
        !text.contains("bmV3LXBhc3N3b3Jk") && !text.contains("aHVudGVyMg=="),
        "{text}"
    );
    let action = |kind: &str, name: &str| {
        diffs
            .iter()
            .find(|d| d.object.kind == kind && d.object.name == name)
            .map(|d| d.action.to_string())
    };
    assert_eq!(action("Secret", "app1-db").as_deref(), Some("update"));
    assert_eq!(
        action("ConfigMap", "app1-config").as_deref(),
        Some("unchanged")
    );
    assert_eq!(action("ConfigMap", "app1-extra").as_deref(), Some("delete"));
    let web = diffs
        .iter()
        .find(|d| d.object.kind == "Deployment")
        .unwrap();
    assert_eq!(web.action, flotilla::cluster::DiffAction::Update);
    assert!(
        web.changes
            .iter()
            .any(|c| c.path == "spec.replicas" && c.to == Some(json!(4))),
        "{:?}",
        web.changes
    );
    // A dry run changes nothing.
    assert_eq!(image_and_replicas(&super_web(&t).await).1, 2);
}

async fn super_web(t: &support::TestCluster) -> Deployment {
    web(&t.handle, &t.namespace).await
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn history_after_twelve_revisions_keeps_ten_and_uninstall_removes_everything() {
    let t = cluster("history").await;
    let opts = run_options();
    for n in 1..=12 {
        let mut v = rendered(&t.namespace, &n.to_string(), 1, false);
        v.objects.retain(|o| o["kind"] == "ConfigMap");
        v.store_as_rendered();
        deployed(
            ops::deploy(&t.handle, &v, &format!("d{n}"), &opts)
                .await
                .unwrap(),
        );
    }
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let revisions: Vec<u32> = history.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, (3..=12).collect::<Vec<_>>());
    assert_eq!(history.last().unwrap().deployment_id, "d12");

    let deleted = ops::uninstall(&t.handle, &t.namespace, "app1", &opts)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(ops::history(&t.handle, &t.namespace, "app1")
        .await
        .unwrap()
        .is_empty());
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    assert!(cms.get_opt("app1-config").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_custom_kind_defined_by_the_same_release_is_applied_and_pruned() {
    let t = cluster("crd").await;
    let opts = run_options();
    // A unique group per test run: CRDs are cluster-wide and other tests share the fleet.
    let group = format!("{}.flotilla.test", t.namespace);
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
    });
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                        "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let mut v1 = rendered(&t.namespace, "1", 1, false);
    // The custom object first: the apply order must put its CRD before it.
    v1.objects.insert(0, widget);
    v1.objects.push(crd.clone());
    v1.store_as_rendered();
    deployed(ops::deploy(&t.handle, &v1, "d1", &opts).await.unwrap());
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let widget_id = history[0]
        .objects
        .iter()
        .find(|o| o.kind == "Widget")
        .cloned()
        .unwrap();
    assert_eq!(widget_id.namespace.as_deref(), Some(t.namespace.as_str()));
    let crd_id = history[0]
        .objects
        .iter()
        .find(|o| o.kind == "CustomResourceDefinition")
        .cloned()
        .unwrap();
    assert_eq!(crd_id.namespace, None, "a CRD is cluster-scoped");
    assert!(t
        .handle
        .get_live(&widget_id, &t.namespace)
        .await
        .unwrap()
        .is_some());

    let mut v2 = rendered(&t.namespace, "1", 1, false);
    v2.objects.push(crd);
    v2.store_as_rendered();
    let outcome = deployed(ops::deploy(&t.handle, &v2, "d2", &opts).await.unwrap());
    assert_eq!(outcome.pruned, vec![widget_id.clone()]);
    assert!(t
        .handle
        .get_live(&widget_id, &t.namespace)
        .await
        .unwrap()
        .is_none());

    // Clean up the cluster-wide object (uninstall deletes what the release owns).
    ops::uninstall(&t.handle, &t.namespace, "app1", &opts)
        .await
        .unwrap();
    // Gone, or going (the API server finalises a CRD after deleting its objects).
    let crd_left = t.handle.get_live(&crd_id, &t.namespace).await.unwrap();
    assert!(crd_left.is_none_or(|c| c.metadata.deletion_timestamp.is_some()));
}
