//! `deploy --dry-run` on the shared fleet: the plan (waves, clusters, revision from →
//! to, the Vault paths it would read) without changing anything: every object of the
//! release namespace (records, workloads, leases) keeps its resourceVersion, and no
//! Vault is needed at all.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use rollout_support::*;
use std::collections::BTreeMap;

/// (name, resourceVersion) of every `K` in the namespace.
async fn listed<K>(client: kube::Client, ns: &str) -> Vec<(String, String)>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client, ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
        .collect()
}

/// (cluster, kind, name) → resourceVersion of everything in the namespace.
async fn versions(fleet: &Fleet, ns: &str) -> BTreeMap<(String, &'static str, String), String> {
    let mut all = BTreeMap::new();
    for cluster in fleet.clusters() {
        let client = fleet.client(&cluster).await;
        let kinds = [
            ("Secret", listed::<Secret>(client.clone(), ns).await),
            ("Deployment", listed::<Deployment>(client.clone(), ns).await),
            ("ConfigMap", listed::<ConfigMap>(client.clone(), ns).await),
            ("Lease", listed::<Lease>(client.clone(), ns).await),
        ];
        for (kind, items) in kinds {
            for (name, rv) in items {
                all.insert((cluster.clone(), kind, name), rv);
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn deploy_dry_run_prints_the_plan_and_changes_nothing_without_vault() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let list = fleet_waves(fleet, true);
    let repo = repo("dry-run", &[("prod", &as_env(&list))], "60s");
    deploy_ok(fleet, &repo, "prod", "v1");
    let before = versions(fleet, &repo.namespace).await;
    assert!(
        before.keys().any(|(_, kind, _)| *kind == "Secret"),
        "{before:?}"
    );

    // No Vault: an address where nothing listens and a token nobody issued.
    let dry_run = |format: &str| {
        command(
            fleet,
            &repo,
            &[
                "deploy",
                "hello",
                "--env",
                "prod",
                "--version",
                "v2",
                "--dry-run",
                "-o",
                format,
            ],
        )
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("VAULT_TOKEN", "not-a-token")
        .output()
        .unwrap()
    };
    let out = dry_run("json");
    assert!(out.status.success(), "{}", describe(&out));
    let plan = json(&out);
    assert_eq!(plan["dry_run"], true, "{plan:#}");
    assert_eq!(plan["environment"], "prod");
    assert_eq!(plan["waves"][0][0], clusters[0].as_str(), "{plan:#}");
    assert_eq!(
        plan["waves"][1].as_array().unwrap().len(),
        clusters.len() - 1
    );
    // Every row and read an object of fields: CI splits no string.
    assert_eq!(
        plan["vault_reads"],
        serde_json::json!([{ "path": "kv/prod/hello/db", "key": "password", "version": null }]),
        "{plan:#}"
    );
    let rows = plan["clusters"].as_array().unwrap();
    assert_eq!(rows.len(), clusters.len());
    for row in rows {
        assert_eq!(row["now"]["revision"], 1, "{row:#}");
        assert_eq!(row["now"]["app_version"], "v1", "{row:#}");
        assert_eq!(row["now"]["status"], "deployed", "{row:#}");
        assert!(
            row["now"]["deployment_id"]
                .as_str()
                .is_some_and(|id| id.len() > 16),
            "{row:#}"
        );
        assert_eq!(
            row["next"],
            serde_json::json!({ "revision": 2, "app_version": "v2" }),
            "{row:#}"
        );
        assert_eq!(
            row["vault"],
            serde_json::json!([{
                "secret_id": "db-password",
                "path": "kv/prod/hello/db",
                "key": "password",
                "version": null
            }])
        );
        assert!(
            row["wave"].is_u64() && row["cluster"].is_string(),
            "{row:#}"
        );
    }
    let out = dry_run("table");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "deploy hello to prod: {} cluster(s) in 2 wave(s) (dry run: nothing changed)",
            clusters.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("vault reads (1 distinct; paths and keys, never values):\n  kv/prod/hello/db#password (db-password for "),
        "{text}"
    );
    assert!(!text.contains("fake-prod-hello-db-password"), "{text}");

    assert_eq!(versions(fleet, &repo.namespace).await, before);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn rollback_dry_run_prints_its_plan_the_same_way_and_changes_nothing() {
    let fleet = Fleet::shared();
    let list = fleet_waves(fleet, false);
    let repo = repo("dry-rollback", &[("prod", &as_env(&list))], "60s");
    let ids: Vec<String> = ["v1", "v2"]
        .iter()
        .map(|v| deploy_ok(fleet, &repo, "prod", v))
        .collect();
    let before = versions(fleet, &repo.namespace).await;
    let out = run(
        fleet,
        &repo,
        &[
            "rollback",
            "hello",
            "--env",
            "prod",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let plan = json(&out);
    assert_eq!(plan["dry_run"], true, "{plan:#}");
    assert_eq!(plan["target"], ids[0].as_str(), "{plan:#}");
    for row in plan["clusters"].as_array().unwrap() {
        assert_eq!(row["reachable"], true, "{row:#}");
        assert_eq!(
            row["now"],
            serde_json::json!({
                "revision": 2, "deployment_id": ids[1], "app_version": "v2", "status": "deployed"
            }),
            "{row:#}"
        );
        assert_eq!(
            row["to"],
            serde_json::json!({ "revision": 1, "deployment_id": ids[0], "app_version": "v1" }),
            "{row:#}"
        );
    }
    let out = run(
        fleet,
        &repo,
        &["rollback", "hello", "--env", "prod", "--dry-run"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "rollback to deployment {} (dry run: nothing changed)",
            ids[0]
        )),
        "{text}"
    );
    assert_eq!(versions(fleet, &repo.namespace).await, before);
}
