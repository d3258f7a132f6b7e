//! `status`, `diff` (on one cluster and on every cluster) and `uninstall` end to end
//! through the binary, after `deploy`s, on the fleet with its real
//! Vault API (RustyVault behind the fleet's envelope proxy): the example release `hello`
//! in a fresh namespace of one dev cluster. Secret values must reach the cluster and
//! nothing else: not stdout, not stderr, not the records.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rollout_support::{at_root, copy_of_this_repo as repo, ok, output_never_showing};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const CLUSTER: &str = "dev-europe-west1";
const DB_PASSWORD: &str = "fake-dev-hello-db-password-1111";
const API_TOKEN: &str = "fake-dev-hello-api-token-3333";

/// `flotilla --root ROOT ARGS` on the fleet, never printing a secret value of the repo.
fn never_showing(fleet: &Fleet, root: &Path, args: &[&str]) -> Output {
    output_never_showing(at_root(fleet, root, args), args, &[DB_PASSWORD, API_TOKEN])
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn status_diff_uninstall_after_deploys_with_vault() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("cli").await;
    let repo = repo(&namespace);
    let root = repo.path();
    let target = ["--env", "dev", "--cluster", CLUSTER];
    let with = |command: &str, extra: &[&'static str]| -> Vec<String> {
        let mut args = vec![command.to_owned(), "hello".to_owned()];
        args.extend(target.iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        never_showing(
            fleet,
            root,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    // deploy, history and rollback are the multi-cluster commands (one cluster here).
    let deploy = |extra: &[&str]| {
        let mut args = vec!["deploy", "hello", "--env", "dev", "--clusters", CLUSTER];
        args.extend_from_slice(extra);
        never_showing(fleet, root, &args)
    };
    ok(deploy(&[]));
    let client = fleet.client(CLUSTER).await;
    // The value came from Vault into the cluster, and nowhere else.
    let secrets: Vec<Secret> = Api::<Secret>::namespaced(client.clone(), &namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let in_cluster = secrets.iter().any(|s| {
        let values = s
            .data
            .iter()
            .flatten()
            .map(|(_, v)| String::from_utf8_lossy(&v.0).into_owned());
        let strings = s.string_data.iter().flatten().map(|(_, v)| v.clone());
        values.chain(strings).any(|v| v.contains(DB_PASSWORD))
    });
    assert!(
        in_cluster,
        "the database password from Vault is not in any Secret of {namespace}"
    );

    ok(deploy(&["--version", "1.1.0"]));
    let status = json(run(with("status", &["-o", "json"])));
    assert_eq!(status.as_object().map(|m| m.len()), Some(1), "{status}");
    let status = &status[CLUSTER];
    assert_eq!(status["revision"], 2);
    assert_eq!(status["status"], "deployed");
    for object in status["objects"].as_array().unwrap() {
        assert_eq!(object["drift"], Value::Array(vec![]), "{object}");
    }

    let diff = json(run(with("diff", &["--version", "1.2.0", "-o", "json"])));
    let updated: Vec<&Value> = diff[CLUSTER]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "update")
        .collect();
    assert!(
        updated.iter().any(|d| d["object"]["kind"] == "Deployment"),
        "{diff}"
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .list(&Default::default())
        .await
        .unwrap();
    for d in &deployments.items {
        let image = d
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone())
            .unwrap_or_default();
        assert!(image.ends_with(":1.1.0"), "a dry run changed {image}");
    }

    // A cluster the environment does not have: bad input, exit 2.
    let out = never_showing(
        fleet,
        root,
        &[
            "status",
            "hello",
            "--env",
            "dev",
            "--cluster",
            "dev-nowhere",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dev-nowhere"));

    ok(run(with("uninstall", &[])));
    let left = Api::<Deployment>::namespaced(client, &namespace)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(left.items.is_empty());
    let out = run(with("status", &[]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not installed"));
}

/// Without `--cluster`: every cluster of `dev`, deployed together; a Deployment edited
/// by hand in one cluster is drift there only; a new version is a change everywhere.
#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn status_and_diff_on_every_cluster_after_a_deploy() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("every").await;
    let repo = repo(&namespace);
    let root = repo.path();
    ok(never_showing(
        fleet,
        root,
        &["deploy", "hello", "--env", "dev"],
    ));
    let contexts = fleet.clusters();
    assert!(contexts.len() >= 2, "{contexts:?}");

    // By hand, as someone with kubectl would: one more replica in one cluster.
    let deployments = Api::<Deployment>::namespaced(fleet.client(CLUSTER).await, &namespace);
    let deployment = deployments
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let name = deployment.metadata.name.clone().unwrap();
    let replicas = deployment.spec.replicas.unwrap_or(1);
    deployments
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": replicas + 1}})),
        )
        .await
        .unwrap();

    let status = json(never_showing(
        fleet,
        root,
        &["status", "hello", "--env", "dev", "-o", "json"],
    ));
    for context in &contexts {
        let objects = status[context]["objects"].as_array().unwrap();
        let drifted: Vec<&Value> = objects
            .iter()
            .filter(|o| o["drift"] != Value::Array(vec![]))
            .collect();
        if context == CLUSTER {
            assert_eq!(drifted.len(), 1, "{status}");
            assert_eq!(drifted[0]["object"]["kind"], "Deployment", "{status}");
        } else {
            assert!(drifted.is_empty(), "{context}: {status}");
        }
    }
    let table = ok(never_showing(
        fleet,
        root,
        &["status", "hello", "--env", "dev"],
    ));
    for context in &contexts {
        assert!(table.contains(context.as_str()), "{table}");
        // Details only for the cluster with drift.
        assert_eq!(
            table.contains(&format!("== {context} ")),
            context == CLUSTER,
            "{table}"
        );
    }

    // A deploy would stop on the hand-edited field there; the others are still shown.
    let diff_args = [
        "diff",
        "hello",
        "--env",
        "dev",
        "--version",
        "1.2.0",
        "-o",
        "json",
    ];
    let out = never_showing(fleet, root, &diff_args);
    assert!(!out.status.success());
    let diff: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = diff[CLUSTER]["error"].as_str().unwrap_or_default();
    assert!(error.contains(".spec.replicas"), "{diff}");

    // Put back by hand: a new version is then a change in every cluster.
    deployments
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
    let diff = json(never_showing(fleet, root, &diff_args));
    for context in &contexts {
        let changes = diff[context].as_array().unwrap();
        assert!(
            changes
                .iter()
                .any(|d| d["action"] == "update" && d["object"]["kind"] == "Deployment"),
            "{context}: {diff}"
        );
    }
    let text = ok(never_showing(
        fleet,
        root,
        &["diff", "hello", "--env", "dev", "--version", "1.2.0"],
    ));
    for context in &contexts {
        assert!(text.contains(&format!("== {context}\n")), "{text}");
    }
}

/// One cluster that cannot be reached: the others are still reported, that cluster's row
/// says so, and the command exits 3.
#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn status_on_every_cluster_with_one_unreachable() {
    let fleet = Fleet::shared();
    let namespace = fleet.namespace("down").await;
    let repo = repo(&namespace);
    let root = repo.path();
    ok(never_showing(
        fleet,
        root,
        &["deploy", "hello", "--env", "dev"],
    ));

    // The same kubeconfig, with CLUSTER's API server on a port nothing listens on.
    let mut config = kube::config::Kubeconfig::read_from(fleet.kubeconfig()).unwrap();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == CLUSTER)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap();
    for named in &mut config.clusters {
        if named.name == cluster_name {
            if let Some(cluster) = named.cluster.as_mut() {
                cluster.server = Some("https://127.0.0.1:1".into());
            }
        }
    }
    let kubeconfig = root.join("kubeconfig-one-down");
    std::fs::write(&kubeconfig, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap();

    let out = never_showing(
        fleet,
        root,
        &[
            "status",
            "hello",
            "--env",
            "dev",
            "--kubeconfig",
            kubeconfig,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let down = table
        .lines()
        .find(|l| l.trim_start().starts_with(CLUSTER))
        .unwrap_or_default();
    assert!(down.contains("unreachable"), "{table}");
    for context in fleet.clusters().iter().filter(|c| c.as_str() != CLUSTER) {
        let row = table
            .lines()
            .find(|l| l.trim_start().starts_with(context.as_str()))
            .unwrap_or_default();
        assert!(row.contains("healthy"), "{table}");
    }
}
