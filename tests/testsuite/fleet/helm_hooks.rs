//! Helm hooks in every cluster of the fleet's `dev` environment, with the chart of
//! `tests/fixtures/helm-hooks`: a weighted `pre-install,pre-upgrade` ConfigMap and
//! migration Job before the apply, a `post-install,post-upgrade` Job once the release
//! is healthy, a `pre-rollback` ConfigMap, a `test` Pod never run. The simulated
//! kubelet fails a pod that runs to completion (a Job's, a hook or test Pod) whose
//! image tag is `jobfail`, which the chart gives the migration in the clusters its
//! `migrate.failIn` names and its test Pod in those of `smoke.failIn`. Also a
//! `post-install,post-upgrade` Pod, waited for until it completed, a `pre-delete` Job
//! and a `post-delete` ConfigMap that `uninstall` runs.

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
    hooked_release_failing(root, namespace, fail_in, &[]);
}

/// [`hooked_release`], `smoke_fail_in` the clusters whose Helm test fails.
fn hooked_release_failing(root: &Path, namespace: &str, fail_in: &[&str], smoke_fail_in: &[&str]) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/helm-hooks"),
        &root.join("releases/hooked/hooked"),
    );
    write(
        &root.join("releases/hooked/release.yaml"),
        &format!(
            "apiVersion: flotilla/v1\nkind: Release\nmetadata: {{ name: hooked, namespace: {namespace} }}\nspec:\n  chart: ./hooked\n  version: 1.0.0\n  values:\n    migrate: {{ failIn: {fail_in:?} }}\n    smoke: {{ failIn: {smoke_fail_in:?} }}\n"
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
        // The post-upgrade Pod was waited for until it completed (it ends 2 s after it
        // started), and kept (Helm's default policy).
        let notify = Api::<Pod>::namespaced(client.clone(), &namespace)
            .get("hooked-notify")
            .await
            .unwrap_or_else(|e| panic!("{context}: the Pod hook did not run: {e}"));
        assert_eq!(
            notify.status.and_then(|s| s.phase).as_deref(),
            Some("Succeeded"),
            "{context}: the deploy did not wait for the Pod hook to complete"
        );
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
                "hooked-deleted",
                "hooked-drain",
                "hooked-migrate",
                "hooked-notify",
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
        &[
            "deploy",
            "hooked",
            "--env",
            "dev",
            "--version",
            "2.0.0",
            "-o",
            "json",
        ],
    );
    let said = stderr_of(&failed);
    assert!(!failed.status.success(), "{said}");
    // The report names the hook, its cluster, how its pod ended and its log lines (read
    // through the API server from the simulated kubelet).
    let report: Value = serde_json::from_slice(&failed.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&failed.stdout)));
    let cluster = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == "dev-us-central1")
        .unwrap_or_else(|| panic!("{report:#}"));
    let error = cluster["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Job") && error.contains("hooked-migrate (pre-upgrade hook) failed"),
        "{cluster:#}"
    );
    assert!(
        error.contains("container migrate terminated: Error (exit code 1)"),
        "{cluster:#}"
    );
    let pod = &cluster["diagnosis"]["pods"][0];
    assert!(
        pod["pod"]
            .as_str()
            .unwrap_or_default()
            .starts_with("hooked-migrate-"),
        "{cluster:#}"
    );
    assert_eq!(pod["container"], "migrate", "{cluster:#}");
    assert_eq!(pod["reason"], "Error (exit code 1)", "{cluster:#}");
    let hook_pod = pod["pod"].as_str().unwrap_or_default();
    assert!(pod.get("logs_unavailable").is_none(), "{cluster:#}");
    assert_eq!(
        pod["logs"].as_array().and_then(|l| l.last()),
        Some(&Value::from(format!(
            "simulated job failure: container migrate of pod {hook_pod} exited 1 (fake kubelet)"
        ))),
        "{cluster:#}"
    );
    // The text report says the same, under the cluster's name.
    hooked_release(root, &namespace, &["dev-us-central1"]);
    let text = with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev", "--version", "2.0.0"],
    );
    let shown = String::from_utf8_lossy(&text.stdout).into_owned() + &stderr_of(&text);
    assert!(!text.status.success(), "{shown}");
    assert!(
        shown.contains("hooked-migrate (pre-upgrade hook)"),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("dev-us-central1:   pod ")
                && l.contains("/hooked-migrate-")
                && l.contains("container migrate: Error (exit code 1)")),
        "{shown}"
    );
    assert!(
        shown.lines().any(|l| {
            l.starts_with(
            "dev-us-central1:       simulated job failure: container migrate of pod hooked-migrate-"
        ) && l.ends_with(" exited 1 (fake kubelet)")
        }),
        "{shown}"
    );
    assert!(!shown.contains("not served"), "{shown}");
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

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn uninstall_runs_the_pre_delete_and_post_delete_hooks_of_the_deployed_revision() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("hooks-delete").await;
    let repo = repo();
    let root = repo.path();
    hooked_release(root, &namespace, &[]);
    ok(with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev", "--version", "3.0.0"],
    ));
    for context in CONTEXTS {
        assert!(
            Api::<Job>::namespaced(fleet.client(context).await, &namespace)
                .get_opt("hooked-drain")
                .await
                .unwrap()
                .is_none(),
            "{context}: a pre-delete hook ran at a deploy"
        );
    }
    ok(with_helm(
        fleet,
        root,
        &["uninstall", "hooked", "--env", "dev", "--yes"],
    ));
    for context in CONTEXTS {
        let client = fleet.client(context).await;
        // The pre-delete Job ran to completion, from the record of the deployed
        // revision (the checkout's chart is not read by an uninstall).
        let drain = Api::<Job>::namespaced(client.clone(), &namespace)
            .get("hooked-drain")
            .await
            .unwrap_or_else(|e| panic!("{context}: no pre-delete hook ran: {e}"));
        assert!(
            drain.status.and_then(|s| s.completion_time).is_some(),
            "{context}: the pre-delete hook did not complete"
        );
        let deleted = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("hooked-deleted")
            .await
            .unwrap_or_else(|e| panic!("{context}: no post-delete hook ran: {e}"));
        assert_eq!(deleted.data.unwrap()["version"], "3.0.0", "{context}");
        // The release is gone; its hooks are not objects of it.
        assert!(
            Api::<Deployment>::namespaced(client.clone(), &namespace)
                .get_opt("hooked-web")
                .await
                .unwrap()
                .is_none(),
            "{context}"
        );
        assert!(
            records(fleet, context, &namespace).await.is_empty(),
            "{context}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_helm_test_failing_in_the_canary_wave_stops_the_run_and_puts_the_canary_back() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("hooks-tests").await;
    let repo = repo();
    let root = repo.path();
    // The first cluster is the canary (wave 0), gated by the chart's Helm tests.
    let env = root.join("environments/dev.yaml");
    let text = std::fs::read_to_string(&env)
        .unwrap()
        .replace(
            "  on_failure: rollback\n",
            "  on_failure: rollback\n  waves:\n    - wave: 0\n      verify: [ { helm_tests: true, timeout: 1m } ]\n",
        )
        .replace(
            "  - context: dev-us-central1\n",
            "  - context: dev-us-central1\n    wave: 1\n",
        )
        .replace(
            "  - context: dev-paris-dc1\n",
            "  - context: dev-paris-dc1\n    wave: 1\n",
        );
    write(&env, &text);
    hooked_release(root, &namespace, &[]);
    // The tests pass: the run goes on to wave 1.
    ok(with_helm(
        fleet,
        root,
        &["deploy", "hooked", "--env", "dev"],
    ));
    let canary = fleet.client(CONTEXTS[0]).await;
    let smoke = Api::<Pod>::namespaced(canary.clone(), &namespace)
        .get("hooked-smoke")
        .await
        .expect("the gate ran the test Pod in the canary");
    assert_eq!(
        smoke.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded")
    );
    for context in &CONTEXTS[1..] {
        assert_eq!(
            image(fleet, context, &namespace).await,
            "registry.example/web:1.0.0"
        );
        // Only wave 0 has the gate.
        assert!(
            Api::<Pod>::namespaced(fleet.client(context).await, &namespace)
                .get_opt("hooked-smoke")
                .await
                .unwrap()
                .is_none(),
            "{context}"
        );
    }

    // 2.0.0's test fails in the canary: the run stops there and the canary goes back.
    hooked_release_failing(root, &namespace, &[], &[CONTEXTS[0]]);
    let failed = with_helm(
        fleet,
        root,
        &[
            "deploy",
            "hooked",
            "--env",
            "dev",
            "--version",
            "2.0.0",
            "-o",
            "json",
        ],
    );
    assert!(!failed.status.success(), "{}", stderr_of(&failed));
    let report: Value = serde_json::from_slice(&failed.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&failed.stdout)));
    let shown = report.to_string();
    assert!(shown.contains("helm-tests"), "{report:#}");
    assert!(shown.contains("hooked-smoke"), "{report:#}");
    assert!(
        shown.contains("container smoke terminated: Error (exit code 1)"),
        "{report:#}"
    );
    for context in CONTEXTS {
        assert_eq!(
            image(fleet, context, &namespace).await,
            "registry.example/web:1.0.0",
            "{context}: {report:#}"
        );
    }
    let canary_record = record(fleet, CONTEXTS[0], &namespace, None).await;
    assert_eq!(canary_record["operation"], "rollback", "{canary_record}");
    // Wave 1 was never started.
    let untouched = record(fleet, CONTEXTS[1], &namespace, None).await;
    assert_eq!(untouched["revision"], 1, "{untouched}");
}
