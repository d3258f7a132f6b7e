//! Helm hooks in every cluster of the fleet's `dev` environment, with the chart of
//! `tests/fixtures/helm-hooks`: a weighted `pre-install,pre-upgrade` ConfigMap and
//! migration Job before the apply, a `post-install,post-upgrade` Job once the release
//! is healthy, a `pre-rollback` ConfigMap, a `test` Pod never run. The simulated
//! kubelet fails the pod of a Job whose image tag is `jobfail`, which the chart gives
//! the migration in the clusters its `migrate.failIn` names.

use super::helm_charts::{records, repo, with_helm, write};
use crate::support::rollout::{copy_dir, ok};
use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::path::Path;

const CONTEXTS: [&str; 3] = ["dev-europe-west1", "dev-us-central1", "dev-paris-dc1"];

/// The fixture chart as release `hooked` of `namespace`, `failIn` the clusters whose
/// migration fails.
fn hooked_release(root: &Path, namespace: &str, fail_in: &[&str]) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/helm-hooks"),
        &root.join("releases/hooked/hooked"),
    );
    write(
        &root.join("releases/hooked/release.yaml"),
        &format!(
            "apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: hooked, namespace: {namespace} }}\nspec:\n  chart: ./hooked\n  version: 1.0.0\n  values:\n    migrate: {{ failIn: {fail_in:?} }}\n"
        ),
    );
}

async fn image(fleet: &Fleet, context: &str, namespace: &str) -> String {
    let web = Api::<Deployment>::namespaced(fleet.client(context).await, namespace)
        .get("hooked-web")
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    web.spec.template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

/// The record of `revision` (`None`: the newest) of the release in `context`, as JSON.
async fn record(fleet: &Fleet, context: &str, namespace: &str, revision: Option<u64>) -> Value {
    let records: Vec<Value> = records(fleet, context, namespace)
        .await
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).unwrap())
        .collect();
    let found = match revision {
        Some(revision) => records
            .into_iter()
            .find(|r| r["revision"].as_u64() == Some(revision)),
        None => records.into_iter().max_by_key(|r| r["revision"].as_u64()),
    };
    found.unwrap_or_else(|| panic!("{context}: no record {revision:?}"))
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_pre_upgrade_migration_job_runs_before_the_apply_and_the_deploy_succeeds() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("hooks-ok").await;
    let repo = repo();
    let root = repo.path();
    hooked_release(root, &namespace, &[]);
    ok(with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev"],
    ));
    ok(with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev", "--version", "2.0.0"],
    ));
    for context in CONTEXTS {
        let client = fleet.client(context).await;
        assert_eq!(
            image(fleet, context, &namespace).await,
            "registry.example/web:2.0.0"
        );
        // The migration of 2.0.0 ran to completion, and before the new ReplicaSet.
        let job = Api::<Job>::namespaced(client.clone(), &namespace)
            .get("hooked-migrate")
            .await
            .unwrap();
        let containers = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers;
        assert_eq!(
            containers[0].image.as_deref(),
            Some("registry.example/migrate:2.0.0"),
            "{context}: the hook of the earlier run was not replaced"
        );
        let completed = job
            .status
            .as_ref()
            .and_then(|s| s.completion_time.clone())
            .unwrap_or_else(|| panic!("{context}: the migration did not complete"));
        let sets = Api::<ReplicaSet>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .unwrap();
        let new_set = sets
            .items
            .iter()
            .find(|rs| {
                rs.spec
                    .template
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .is_some_and(|s| {
                        s.containers[0].image.as_deref() == Some("registry.example/web:2.0.0")
                    })
            })
            .unwrap();
        assert!(
            completed.0 <= new_set.metadata.creation_timestamp.clone().unwrap().0,
            "{context}: the release was applied before its migration completed"
        );
        // hook-succeeded: the schema ConfigMap and the post-upgrade Job are gone.
        assert!(Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get_opt("hooked-schema")
            .await
            .unwrap()
            .is_none());
        assert!(Api::<Job>::namespaced(client.clone(), &namespace)
            .get_opt("hooked-warm")
            .await
            .unwrap()
            .is_none());
        // The test hook is `helm test`'s: never created by a deploy.
        assert!(Api::<Pod>::namespaced(client.clone(), &namespace)
            .get_opt("hooked-smoke")
            .await
            .unwrap()
            .is_none());
        // Recorded with the revision, never one of its objects.
        let record = record(fleet, context, &namespace, None).await;
        let objects = record["objects"].to_string();
        assert!(!objects.contains("hooked-migrate"), "{context}: {objects}");
        let mut hooks: Vec<&str> = record["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["manifest"]["metadata"]["name"].as_str())
            .collect();
        hooks.sort();
        assert_eq!(
            hooks,
            [
                "hooked-migrate",
                "hooked-rolled-back",
                "hooked-schema",
                "hooked-smoke",
                "hooked-warm"
            ],
            "{context}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_failing_pre_upgrade_hook_fails_the_cluster_and_nothing_of_the_new_revision_stays() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("hooks-fail").await;
    let repo = repo();
    let root = repo.path();
    hooked_release(root, &namespace, &[]);
    ok(with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev"],
    ));
    hooked_release(root, &namespace, &["dev-us-central1"]);
    let failed = with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev", "--version", "2.0.0"],
    );
    let said = stderr_of(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(
        said.contains("hooked-migrate (pre-upgrade hook) failed"),
        "the report does not name the hook: {said}"
    );
    // The diagnosis names the hook's pod and how it ended.
    assert!(said.contains("hooked-migrate-"), "no pod named: {said}");
    for context in CONTEXTS {
        assert_eq!(
            image(fleet, context, &namespace).await,
            "registry.example/web:1.0.0",
            "{context}: {said}"
        );
        // The coordinated rollback ran the pre-rollback hook of the revision it went
        // back to, from its record.
        let rolled_back = Api::<ConfigMap>::namespaced(fleet.client(context).await, &namespace)
            .get("hooked-rolled-back")
            .await
            .unwrap_or_else(|e| panic!("{context}: no pre-rollback hook ran: {e}"));
        assert_eq!(rolled_back.data.unwrap()["to"], "1.0.0", "{context}");
    }
    // The revision the hook failed is recorded failed; the coordinated rollback wrote
    // the one after it.
    let failed = record(fleet, "dev-us-central1", &namespace, Some(2)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_hook_failing_in_the_second_wave_puts_the_first_wave_back() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("hooks-waves").await;
    let repo = repo();
    let root = repo.path();
    // Two clusters, one per wave.
    let env = root.join("environments/dev.yaml");
    let text = std::fs::read_to_string(&env).unwrap();
    let (head, _) = text.split_once("  - context: dev-paris-dc1").unwrap();
    let head = head.replace(
        "  - context: dev-us-central1\n",
        "  - context: dev-us-central1\n    wave: 1\n",
    );
    write(&env, &head);
    hooked_release(root, &namespace, &[]);
    ok(with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev"],
    ));
    hooked_release(root, &namespace, &["dev-us-central1"]);
    let failed = with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev", "--version", "2.0.0"],
    );
    let said = stderr_of(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(said.contains("hooked-migrate (pre-upgrade hook)"), "{said}");
    // Wave 0 had deployed 2.0.0 (its migration ran): the coordinated rollback put it
    // back on 1.0.0.
    let record = record(fleet, "dev-europe-west1", &namespace, None).await;
    assert_eq!(record["operation"], "rollback", "{record}");
    for context in ["dev-europe-west1", "dev-us-central1"] {
        assert_eq!(
            image(fleet, context, &namespace).await,
            "registry.example/web:1.0.0",
            "{context}: {said}"
        );
    }
}
