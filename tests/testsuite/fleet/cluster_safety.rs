//! What a deploy may touch, on a real kube-apiserver and controller-manager (the
//! fleet's simulated kubelet runs pods by image tag): identity without the apiVersion,
//! prune only after health and never of what cannot come back, ownership before any
//! change, and health rules that match the controllers (old revisions, OnDelete,
//! partition, Jobs replaced and failing). API versions are picked from discovery, so
//! the tests hold on any server version the fleet runs.

use crate::support::cluster as support;
use crate::support::rollout as rollout_support;

use flotilla::cluster::{ClusterError, DiffAction, Event, ObjectRef};
use flotilla::exit::{Classify, ExitKind};
use flotilla::ops::{self, Rendered};
use flotilla::release::Status;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use support::{cluster, daemonset, deployed, image, release, rendered, run_options};

fn names(ids: &[ObjectRef]) -> Vec<String> {
    ids.iter()
        .map(|id| format!("{}/{}", id.kind, id.name))
        .collect()
}

/// Two apiVersions of `group` the server serves, older first: what a chart moves an
/// object between during a deprecation window.
async fn version_move(
    client: &kube::Client,
    group: &str,
    pairs: &[(&str, &str)],
) -> (String, String) {
    let served: Vec<String> = kube::discovery::group(client, group)
        .await
        .expect("discovery")
        .versions()
        .map(str::to_owned)
        .collect();
    let (old, new) = pairs
        .iter()
        .find(|(old, new)| served.iter().any(|v| v == old) && served.iter().any(|v| v == new))
        .unwrap_or_else(|| panic!("{group}: no pair of {pairs:?} among served {served:?}"));
    (format!("{group}/{old}"), format!("{group}/{new}"))
}

fn hpa(api_version: &str, max: u32) -> Value {
    json!({"apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "app1-web"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app1-web"},
                    "minReplicas": 1, "maxReplicas": max}})
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn an_hpa_moved_to_a_newer_api_version_survives_and_diff_shows_an_update() {
    let t = cluster("hpa-move").await;
    let opts = run_options();
    let (old, new) = version_move(
        &t.handle.client(),
        "autoscaling",
        &[("v2beta1", "v2beta2"), ("v2beta2", "v2"), ("v1", "v2")],
    )
    .await;
    let mut first = rendered(&t.namespace, "1", 1, false);
    first.objects.push(hpa(&old, 3));
    first.store_as_rendered();
    deployed(ops::deploy(&t.handle, &first, "d1", &opts).await.unwrap());

    let mut second = rendered(&t.namespace, "1", 1, false);
    second.objects.push(hpa(&new, 4));
    second.store_as_rendered();
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let diff = ops::diff(&t.handle, &history, &second).await.unwrap();
    assert!(
        diff.iter().all(|d| d.action != DiffAction::Delete),
        "{diff:#?}"
    );
    let moved = diff
        .iter()
        .find(|d| d.object.kind == "HorizontalPodAutoscaler")
        .expect("the HPA in the diff");
    assert_eq!(moved.action, DiffAction::Update, "{moved:#?}");
    assert!(
        moved.changes.iter().any(|c| c.path == "spec.maxReplicas"),
        "{moved:#?}"
    );

    let outcome = deployed(ops::deploy(&t.handle, &second, "d2", &opts).await.unwrap());
    assert!(outcome.pruned.is_empty(), "{:?}", outcome.pruned);
    let id = ObjectRef {
        api_version: new.clone(),
        kind: "HorizontalPodAutoscaler".into(),
        namespace: Some(t.namespace.clone()),
        name: "app1-web".into(),
    };
    let live = t
        .handle
        .get_live(&id, &t.namespace)
        .await
        .unwrap()
        .expect("the HPA survives the move");
    assert_eq!(live.data["spec"]["maxReplicas"], 4);
    // Uninstall finds it through the newest recorded version.
    let deleted = ops::uninstall(&t.handle, &t.namespace, "app1", &opts)
        .await
        .unwrap();
    assert!(names(&deleted).contains(&"HorizontalPodAutoscaler/app1-web".to_owned()));
    assert!(t
        .handle
        .get_live(&id, &t.namespace)
        .await
        .unwrap()
        .is_none());
}

fn pvc(name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name, "annotations": annotations},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

/// Every progress event of a run, as text, in order.
fn recorded_events(opts: &mut ops::RunOptions) -> Arc<Mutex<Vec<String>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    opts.progress = Arc::new(move |_, event| {
        let line = match event {
            Event::Ready(id) => format!("ready {}/{}", id.kind, id.name),
            Event::Pruned(id) => format!("pruned {}/{}", id.kind, id.name),
            Event::Kept(kept) => format!("kept {}/{}", kept.object.kind, kept.object.name),
            _ => return,
        };
        sink.lock().unwrap().push(line);
    });
    events
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_dropped_pvc_survives_and_an_opted_in_one_goes_only_after_health() {
    let t = cluster("pvc-kept").await;
    let mut opts = run_options();
    let mut first = rendered(&t.namespace, "1", 1, false);
    first.objects.extend([
        pvc("app1-data", json!({})),
        pvc("app1-scratch", json!({"flotilla.dev/resource-policy": "delete"})),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app1-keep", "annotations": {"helm.sh/resource-policy": "keep"}},
               "data": {"a": "b"}}),
    ]);
    first.store_as_rendered();
    deployed(ops::deploy(&t.handle, &first, "d1", &opts).await.unwrap());

    // The new revision drops all three and takes two seconds to be healthy.
    let events = recorded_events(&mut opts);
    let second = rendered(&t.namespace, "slow-2", 1, false);
    let outcome = deployed(ops::deploy(&t.handle, &second, "d2", &opts).await.unwrap());
    assert_eq!(
        names(&outcome.pruned),
        ["PersistentVolumeClaim/app1-scratch"]
    );
    let mut kept: Vec<(String, String)> = outcome
        .kept
        .iter()
        .map(|k| (k.object.name.clone(), k.reason.clone()))
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0].0, "app1-data");
    assert!(kept[0].1.contains("never pruned"), "{kept:?}");
    assert_eq!(
        kept[1],
        (
            "app1-keep".to_owned(),
            "annotated helm.sh/resource-policy: keep".to_owned()
        )
    );
    let events = events.lock().unwrap().clone();
    let at = |line: &str| {
        events
            .iter()
            .position(|e| e == line)
            .unwrap_or_else(|| panic!("no `{line}` in {events:?}"))
    };
    assert!(
        at("ready Deployment/app1-web") < at("pruned PersistentVolumeClaim/app1-scratch"),
        "{events:?}"
    );

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(t.handle.client(), &t.namespace);
    let data = pvcs
        .get("app1-data")
        .await
        .expect("the dropped PVC survives");
    assert!(data.metadata.deletion_timestamp.is_none());
    // The opted-in one is deleted (held Terminating by the pvc-protection finalizer when
    // that admission plugin runs, with no controller to lift it).
    let scratch = pvcs.get_opt("app1-scratch").await.unwrap();
    assert!(
        scratch.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "app1-scratch was not deleted"
    );
    let records = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let description = &records.deployed().unwrap().description;
    assert!(description.contains("not pruned: "), "{description}");

    // The keep annotation holds on uninstall too.
    ops::uninstall(&t.handle, &t.namespace, "app1", &opts)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    assert!(cms.get_opt("app1-keep").await.unwrap().is_some());
    assert!(cms.get_opt("app1-config").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_failed_deploy_that_dropped_an_object_leaves_it_there() {
    let t = cluster("failed-keeps").await;
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
    let outcome = ops::deploy(
        &t.handle,
        &rendered(&t.namespace, "crashloop", 1, false),
        "d2",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(outcome.status, Status::Failed);
    assert!(outcome.pruned.is_empty(), "{:?}", outcome.pruned);
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    let extra = cms.get("app1-extra").await.expect("still there");
    assert!(extra.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_configmap_made_with_kubectl_is_refused_unchanged_then_adopted() {
    let t = cluster("adopt").await;
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    let theirs = ConfigMap {
        metadata: ObjectMeta {
            name: Some("app1-config".into()),
            ..Default::default()
        },
        data: Some([("level".to_owned(), "debug".to_owned())].into()),
        ..Default::default()
    };
    let params = PostParams {
        field_manager: Some("kubectl-create".into()),
        ..Default::default()
    };
    let before = cms.create(&params, &theirs).await.unwrap();

    let mut opts = run_options();
    let err = ops::deploy(
        &t.handle,
        &rendered(&t.namespace, "1", 1, false),
        "d1",
        &opts,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClusterError::NotOwned { .. }), "{err}");
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let text = err.to_string();
    assert!(
        text.contains(&format!("ConfigMap {}/app1-config", t.namespace)),
        "{text}"
    );
    assert!(text.contains("kubectl-create"), "{text}");
    assert!(text.contains("--adopt"), "{text}");
    // Nothing changed: the object as it was, no record, no other object.
    let after = cms.get("app1-config").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert!(ops::history(&t.handle, &t.namespace, "app1")
        .await
        .unwrap()
        .is_empty());
    let secrets: Api<Secret> = Api::namespaced(t.handle.client(), &t.namespace);
    assert!(secrets.get_opt("app1-db").await.unwrap().is_none());
    // diff shows the adoption and whose the object is.
    let diff = ops::diff(
        &t.handle,
        &Default::default(),
        &rendered(&t.namespace, "1", 1, false),
    )
    .await
    .unwrap();
    let config = diff
        .iter()
        .find(|d| d.object.name == "app1-config")
        .unwrap();
    assert_eq!(config.action, DiffAction::Adopt, "{config:#?}");
    assert!(
        config
            .owner
            .as_deref()
            .is_some_and(|o| o.contains("kubectl-create")),
        "{config:#?}"
    );
    assert!(
        config.changes.iter().any(|c| c.path == "data.level"),
        "{config:#?}"
    );
    let unchanged = cms.get("app1-config").await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version,
        before.metadata.resource_version
    );

    opts.adopt = true;
    let outcome = deployed(
        ops::deploy(
            &t.handle,
            &rendered(&t.namespace, "1", 1, false),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        names(
            &outcome
                .adopted
                .iter()
                .map(|a| a.object.clone())
                .collect::<Vec<_>>()
        ),
        ["ConfigMap/app1-config"]
    );
    let adopted = cms.get("app1-config").await.unwrap();
    let labels = adopted.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("flotilla.dev/release").map(String::as_str),
        Some("app1")
    );
    assert_eq!(
        adopted
            .data
            .unwrap_or_default()
            .get("level")
            .map(String::as_str),
        Some("info")
    );
    let managers: Vec<String> = adopted
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&format!("flotilla/{}/app1", t.namespace)),
        "{managers:?}"
    );
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let description = &history.deployed().unwrap().description;
    assert!(
        description.contains(&format!("adopted: ConfigMap {}/app1-config", t.namespace)),
        "{description}"
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_second_release_rendering_the_same_object_is_refused() {
    let t = cluster("two-releases").await;
    let opts = run_options();
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
    let other = Rendered {
        release: "app2".into(),
        ..rendered(&t.namespace, "2", 1, false)
    };
    let err = ops::deploy(&t.handle, &other, "d2", &opts)
        .await
        .unwrap_err();
    match &err {
        ClusterError::NotOwned { owner, object, .. } => {
            assert_eq!(owner, "flotilla release `app1`");
            assert_eq!(object, &format!("ConfigMap {}/app1-config", t.namespace));
        }
        other => panic!("{other}"),
    }
    assert!(ops::history(&t.handle, &t.namespace, "app2")
        .await
        .unwrap()
        .is_empty());
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    let live = cms.get("app1-config").await.unwrap();
    assert_eq!(
        live.data
            .unwrap_or_default()
            .get("version")
            .map(String::as_str),
        Some("1")
    );
}

fn statefulset(tag: &str, replicas: u32, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "app1-db"},
           "spec": {"replicas": replicas, "serviceName": "app1-db",
                    "podManagementPolicy": "Parallel", "updateStrategy": strategy,
                    "selector": {"matchLabels": {"app": "app1-db"}},
                    "template": {"metadata": {"labels": {"app": "app1-db"}},
                                 "spec": {"containers": [{"name": "db", "image": image(tag)}]}}}})
}

fn rolling() -> Value {
    json!({"type": "RollingUpdate"})
}

/// `pod name → image` of the pods that match `selector`.
async fn pod_images(api: &Api<Pod>, selector: &str) -> Vec<(String, String)> {
    let mut images: Vec<(String, String)> = api
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            Some((
                p.metadata.name.clone()?,
                p.spec.as_ref()?.containers.first()?.image.clone()?,
            ))
        })
        .collect();
    images.sort();
    images
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_statefulset_crashlooping_on_its_old_revision_upgrades_to_a_healthy_one() {
    let t = cluster("sts-fix").await;
    let opts = run_options();
    let broken = release(
        &t.namespace,
        "crashloop",
        vec![statefulset("crashloop", 1, rolling())],
    );
    let failed = ops::deploy(&t.handle, &broken, "d1", &opts).await.unwrap();
    assert_eq!(failed.status, Status::Failed, "{:?}", failed.error);
    // The fix: the old pod still crash-loops while the controller replaces it.
    let fixed = release(&t.namespace, "2", vec![statefulset("2", 1, rolling())]);
    deployed(ops::deploy(&t.handle, &fixed, "d2", &opts).await.unwrap());
    let pods: Api<Pod> = Api::namespaced(t.handle.client(), &t.namespace);
    assert_eq!(
        pod_images(&pods, "app=app1-db").await,
        [("app1-db-0".to_owned(), image("2"))]
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_daemonset_crashlooping_on_its_old_revision_upgrades_to_a_healthy_one() {
    let t = cluster("ds-fix").await;
    let opts = run_options();
    let broken = release(&t.namespace, "crashloop", vec![daemonset("crashloop")]);
    let failed = ops::deploy(&t.handle, &broken, "d1", &opts).await.unwrap();
    assert_eq!(failed.status, Status::Failed, "{:?}", failed.error);
    let fixed = release(&t.namespace, "2", vec![daemonset("2")]);
    deployed(ops::deploy(&t.handle, &fixed, "d2", &opts).await.unwrap());
    let pods: Api<Pod> = Api::namespaced(t.handle.client(), &t.namespace);
    let images: Vec<String> = pod_images(&pods, "app=app1-agent")
        .await
        .into_iter()
        .map(|(_, image)| image)
        .collect();
    // One pod per node of the fleet, every one on the new template.
    assert!(!images.is_empty());
    assert!(images.iter().all(|i| *i == image("2")), "{images:?}");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn on_delete_and_partition_are_healthy_as_kubectl_rollout_status_says() {
    let t = cluster("sts-strategies").await;
    let opts = run_options();
    // OnDelete: the new template waits for someone to delete the pods; the deploy is
    // healthy once every replica is ready, and no pod was replaced.
    let on_delete = json!({"type": "OnDelete"});
    let v1 = release(
        &t.namespace,
        "1",
        vec![statefulset("1", 1, on_delete.clone())],
    );
    deployed(ops::deploy(&t.handle, &v1, "d1", &opts).await.unwrap());
    let v2 = release(&t.namespace, "2", vec![statefulset("2", 1, on_delete)]);
    deployed(ops::deploy(&t.handle, &v2, "d2", &opts).await.unwrap());
    let pods: Api<Pod> = Api::namespaced(t.handle.client(), &t.namespace);
    assert_eq!(
        pod_images(&pods, "app=app1-db").await,
        [("app1-db-0".to_owned(), image("1"))]
    );
    let sts: Api<StatefulSet> = Api::namespaced(t.handle.client(), &t.namespace);
    let status = sts.get("app1-db").await.unwrap().status.unwrap();
    assert_eq!(status.updated_replicas.unwrap_or(0), 0, "{status:?}");

    // Partition 1 of 2 replicas: only app1-db-1 moves to the new template.
    let partition = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
    let v3 = release(
        &t.namespace,
        "3",
        vec![statefulset("3", 2, partition.clone())],
    );
    deployed(ops::deploy(&t.handle, &v3, "d3", &opts).await.unwrap());
    let v4 = release(&t.namespace, "4", vec![statefulset("4", 2, partition)]);
    deployed(ops::deploy(&t.handle, &v4, "d4", &opts).await.unwrap());
    let images = pod_images(&pods, "app=app1-db").await;
    assert_eq!(
        images.last(),
        Some(&("app1-db-1".to_owned(), image("4"))),
        "{images:?}"
    );
    assert_ne!(images[0].1, image("4"), "{images:?}");
}

fn job(tag: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "app1-migrate"},
           "spec": {"backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "migrate", "image": image(tag)}]}}}})
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_job_whose_image_changes_is_replaced_and_waited_for_on_every_deploy() {
    let t = cluster("job-three").await;
    let opts = run_options();
    let jobs: Api<Job> = Api::namespaced(t.handle.client(), &t.namespace);
    let mut uids = Vec::new();
    for (n, tag) in ["1", "2", "3"].iter().enumerate() {
        let r = release(&t.namespace, tag, vec![job(tag)]);
        if n > 0 {
            let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
            let diff = ops::diff(&t.handle, &history, &r).await.unwrap();
            assert_eq!(diff.len(), 1, "{diff:#?}");
            assert_eq!(diff[0].action, DiffAction::Replace, "{diff:#?}");
        }
        deployed(
            ops::deploy(&t.handle, &r, &format!("d{n}"), &opts)
                .await
                .unwrap(),
        );
        let live = jobs.get("app1-migrate").await.unwrap();
        let template = live.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(
            template.containers[0].image.as_deref(),
            Some(image(tag).as_str())
        );
        let complete = live
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        assert!(complete, "deploy {tag} returned before its Job completed");
        uids.push(live.metadata.uid.unwrap());
    }
    uids.dedup();
    assert_eq!(uids.len(), 3, "each image change replaces the Job");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_job_that_fails_fails_the_cluster_with_its_pods_reason() {
    let t = cluster("job-fails").await;
    let opts = run_options();
    let r = release(&t.namespace, "jobfail", vec![job("jobfail")]);
    let outcome = ops::deploy(&t.handle, &r, "d1", &opts).await.unwrap();
    assert_eq!(outcome.status, Status::Failed);
    match &outcome.error {
        Some(ClusterError::Unhealthy { object, reason, .. }) => {
            assert_eq!(object, &format!("Job {}/app1-migrate", t.namespace));
            assert!(reason.starts_with("job failed: "), "{reason}");
            assert!(
                reason.contains("container migrate terminated: Error (exit code 1)"),
                "{reason}"
            );
        }
        other => panic!("expected the Job's failure, not {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_deployer_that_may_not_read_namespaces_deploys_into_an_existing_one() {
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    let fleet = flotilla_fleet::testing::Fleet::shared();
    let cluster = fleet.clusters()[0].clone();
    let admin = fleet.client(&cluster).await;
    // A namespace where the fleet's `deployer` user may work on the release's kinds
    // only: no rule names `namespaces`, so it may not even read its own.
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let namespace = format!("limited-{}-{unique}", std::process::id());
    rollout_support::create_namespace(&admin, &namespace).await;
    let role = Role {
        metadata: ObjectMeta {
            name: Some("release-kinds".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into(), "apps".into(), "coordination.k8s.io".into()]),
            resources: Some(
                [
                    "configmaps",
                    "secrets",
                    "services",
                    "pods",
                    "deployments",
                    "replicasets",
                    "leases",
                ]
                .map(String::from)
                .to_vec(),
            ),
            verbs: vec!["*".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("release-kinds".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "release-kinds".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: "deployer".into(),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, &namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    flotilla::install_tls_provider();
    let kubeconfig =
        flotilla::cluster::load_kubeconfig(Some(&fleet.kubeconfig())).expect("fleet kubeconfig");
    let handle =
        flotilla::cluster::ClusterHandle::connect(&kubeconfig, &format!("{cluster}-deployer"))
            .await
            .expect("connect");
    // The token really may not read namespaces (RBAC answers as the binding lands).
    let denied = Api::<Namespace>::all(handle.client()).get(&namespace).await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "{denied:?}"
    );
    let opts = run_options();
    deployed(
        ops::deploy(&handle, &rendered(&namespace, "1", 1, false), "d1", &opts)
            .await
            .unwrap(),
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_missing_namespace_is_created_only_when_asked() {
    let t = cluster("no-ns").await;
    let missing = format!("{}-absent", t.namespace);
    let mut opts = run_options();
    let err = ops::deploy(&t.handle, &rendered(&missing, "1", 1, false), "d1", &opts)
        .await
        .unwrap_err();
    assert_eq!(err.exit_kind(), ExitKind::UserError);
    assert!(err.to_string().contains("--create-namespace"), "{err}");
    let namespaces: Api<Namespace> = Api::all(t.handle.client());
    assert!(namespaces.get_opt(&missing).await.unwrap().is_none());
    opts.create_namespace = true;
    deployed(
        ops::deploy(&t.handle, &rendered(&missing, "1", 1, false), "d1", &opts)
            .await
            .unwrap(),
    );
    assert!(namespaces.get_opt(&missing).await.unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn an_object_owned_elsewhere_in_one_cluster_stops_the_environment_before_any_change() {
    use rollout_support::{describe, repo, run};
    let fleet = flotilla_fleet::testing::Fleet::shared();
    let clusters = fleet.clusters();
    let (first, second) = (clusters[0].as_str(), clusters[1].as_str());
    let repo = repo("env-owned", &[("prod", &[(first, 0), (second, 1)])], "60s");
    // Someone made the release's Secret by hand in the second cluster (wave 1).
    let client = fleet.client(second).await;
    rollout_support::create_namespace(&client, &repo.namespace).await;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("hello-db".into()),
            ..Default::default()
        },
        string_data: Some([("password".to_owned(), "by-hand".to_owned())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client, &repo.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let out = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cluster `{second}`: Secret {}/hello-db exists and is not release `hello`'s",
            repo.namespace
        )),
        "{stderr}"
    );
    // Nothing changed in the first cluster either (it comes in an earlier wave).
    let records = Api::<Secret>::namespaced(fleet.client(first).await, &repo.namespace)
        .list(&ListParams::default().labels("owner=flotilla"))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0);
    assert_eq!(records, 0, "a record was written in {first}");

    let out = run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", "prod", "--adopt"],
    );
    assert!(out.status.success(), "{}", describe(&out));
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn fields_of_the_former_shared_field_manager_are_handed_over_and_dropped_ones_go() {
    let t = cluster("legacy-manager").await;
    // An object as flotilla applied it before field managers were per release.
    let before = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app1-config", "labels": {
            "app.kubernetes.io/managed-by": "flotilla", "flotilla.dev/release": "app1"}},
        "data": {"level": "info", "dropped": "x"}});
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    cms.patch(
        "app1-config",
        &kube::api::PatchParams::apply("flotilla"),
        &kube::api::Patch::Apply(&before),
    )
    .await
    .unwrap();
    let now = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app1-config"},
                     "data": {"level": "debug"}});
    deployed(
        ops::deploy(
            &t.handle,
            &release(&t.namespace, "1", vec![now]),
            "d1",
            &run_options(),
        )
        .await
        .unwrap(),
    );
    let live = cms.get("app1-config").await.unwrap();
    let data = live.data.clone().unwrap_or_default();
    assert_eq!(data.get("level").map(String::as_str), Some("debug"));
    assert!(!data.contains_key("dropped"), "{data:?}");
    let managers: Vec<String> = live
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(!managers.contains(&"flotilla".to_owned()), "{managers:?}");
    assert!(
        managers.contains(&format!("flotilla/{}/app1", t.namespace)),
        "{managers:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_rollback_hands_back_what_the_failed_run_adopted() {
    let t = cluster("adopt-undo").await;
    let mut opts = run_options();
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
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    let theirs = ConfigMap {
        metadata: ObjectMeta {
            name: Some("app1-extra".into()),
            ..Default::default()
        },
        data: Some([("mine".to_owned(), "yes".to_owned())].into()),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &theirs).await.unwrap();
    opts.adopt = true;
    let failed = ops::deploy(
        &t.handle,
        &rendered(&t.namespace, "crashloop", 1, true),
        "d2",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.adopted.len(), 1, "{:?}", failed.adopted);

    let to = ops::restore::RestoreTo {
        revision: 1,
        deployment_id: "d1",
        fresh: &[],
        unreadable: &[],
    };
    opts.adopt = false;
    let back = deployed(
        ops::restore(&t.handle, &t.namespace, "app1", &to, &opts)
            .await
            .unwrap(),
    );
    assert!(back.pruned.is_empty(), "{:?}", back.pruned);
    assert!(
        back.kept
            .iter()
            .any(|k| k.object.name == "app1-extra"
                && k.reason.starts_with("adopted by deployment d2")),
        "{:?}",
        back.kept
    );
    let live = cms.get("app1-extra").await.expect("still there");
    let labels = live.metadata.labels.clone().unwrap_or_default();
    assert!(!labels.contains_key("flotilla.dev/release"), "{labels:?}");
    let annotations = live.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !annotations.contains_key("flotilla.dev/adopted-by"),
        "{annotations:?}"
    );
    // Not the release's any more: an uninstall leaves it.
    ops::uninstall(&t.handle, &t.namespace, "app1", &opts)
        .await
        .unwrap();
    assert!(cms.get_opt("app1-extra").await.unwrap().is_some());
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_pod_template_labelled_by_an_earlier_flotilla_keeps_its_label_and_its_pods() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let t = cluster("legacy-template").await;
    let opts = run_options();
    // What an earlier flotilla applied: the release's label in the pod template too.
    let mut earlier = rendered(&t.namespace, "1", 1, false);
    for object in &mut earlier.objects {
        if object["kind"] == "Deployment" {
            object["spec"]["template"]["metadata"]["labels"]["flotilla.dev/release"] =
                json!("app1");
        }
    }
    earlier.store_as_rendered();
    deployed(ops::deploy(&t.handle, &earlier, "d1", &opts).await.unwrap());
    let sets = || async {
        let mut names: Vec<String> = Api::<ReplicaSet>::namespaced(t.handle.client(), &t.namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|rs| rs.metadata.name)
            .collect();
        names.sort();
        names
    };
    let before = sets().await;
    assert_eq!(before.len(), 1, "{before:?}");

    // This flotilla renders no label there: the same content must not roll out.
    let now = rendered(&t.namespace, "1", 1, false);
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let diff = ops::diff(&t.handle, &history, &now).await.unwrap();
    let web = diff
        .iter()
        .find(|d| d.object.kind == "Deployment")
        .expect("the Deployment in the diff");
    assert!(
        !web.changes.iter().any(|c| c.path.contains("template")),
        "{web:#?}"
    );
    deployed(ops::deploy(&t.handle, &now, "d2", &opts).await.unwrap());
    assert_eq!(
        sets().await,
        before,
        "a new ReplicaSet: every pod restarted"
    );
    let id = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some(t.namespace.clone()),
        name: "app1-web".into(),
    };
    let live = t.handle.get_live(&id, &t.namespace).await.unwrap().unwrap();
    assert_eq!(
        live.data["spec"]["template"]["metadata"]["labels"]["flotilla.dev/release"],
        "app1"
    );
    // A release that never had it gets none.
    let fresh = cluster("fresh-template").await;
    deployed(
        ops::deploy(
            &fresh.handle,
            &rendered(&fresh.namespace, "1", 1, false),
            "d1",
            &opts,
        )
        .await
        .unwrap(),
    );
    let live = fresh
        .handle
        .get_live(
            &ObjectRef {
                namespace: Some(fresh.namespace.clone()),
                ..id
            },
            &fresh.namespace,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        live.data["spec"]["template"]["metadata"]["labels"]
            .get("flotilla.dev/release")
            .is_none(),
        "{:?}",
        live.data["spec"]["template"]
    );
}
