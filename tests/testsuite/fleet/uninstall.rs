//! `uninstall` across every cluster of an environment, on the shared fleet: a lease
//! another run holds in one cluster, or one cluster that cannot be reached, stops it
//! before anything is removed anywhere (exit 3); otherwise every cluster is emptied of
//! what the release owns, wave by wave, what is annotated keep stays and is reported,
//! and the records and leases are gone.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use rollout_support::*;

/// Deployments, release records and the kept ConfigMap, per cluster.
async fn left(fleet: &Fleet, ns: &str) -> Vec<(String, usize, usize, bool)> {
    let mut out = Vec::new();
    for cluster in fleet.clusters() {
        let client = fleet.client(&cluster).await;
        let deployments = Api::<Deployment>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        let records = Api::<Secret>::namespaced(client.clone(), ns)
            .list(&ListParams::default().labels("owner=flotilla"))
            .await
            .unwrap()
            .items
            .len();
        let kept = Api::<ConfigMap>::namespaced(client, ns)
            .get_opt("hello-settings")
            .await
            .unwrap()
            .is_some();
        out.push((cluster, deployments, records, kept));
    }
    out
}

fn installed(state: &[(String, usize, usize, bool)]) -> bool {
    state.iter().all(|(_, d, r, k)| *d == 1 && *r >= 1 && *k)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn uninstall_takes_every_lease_first_refuses_with_nothing_removed_then_empties_every_cluster()
{
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let waves = fleet_waves(fleet, true);
    let repo = repo("uninstall", &[("prod", &as_env(&waves))], "60s");
    std::fs::write(
        repo.root().join("releases/hello/chart/templates/settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{Release.Name}}-settings\n  annotations:\n    helm.sh/resource-policy: keep\ndata:\n  mode: strict\n",
    )
    .unwrap();
    let out = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    assert!(out.status.success(), "{}", describe(&out));
    let state = left(fleet, &repo.namespace).await;
    assert!(installed(&state), "{state:?}");

    // A live run elsewhere holds the lease in the last cluster.
    let holder = fleet.client(clusters.last().unwrap()).await;
    hold_lease(holder.clone(), &repo.namespace, "hello").await;
    let out = run(
        fleet,
        &repo,
        &[
            "uninstall",
            "hello",
            "--env",
            "prod",
            "--lock-timeout",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bob@ci-elsewhere") && stderr.contains("nothing was removed"),
        "{stderr}"
    );
    assert_eq!(left(fleet, &repo.namespace).await, state);
    Api::<Lease>::namespaced(holder, &repo.namespace)
        .delete("flotilla.hello", &DeleteParams::default())
        .await
        .unwrap();

    // A cluster of the environment that cannot be reached: nothing removed either.
    let kubeconfig = fleet
        .env()
        .into_iter()
        .find(|(k, _)| k == "KUBECONFIG")
        .map(|(_, v)| v)
        .unwrap();
    let mut config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let user = config["users"][0]["name"].clone();
    config["clusters"].as_sequence_mut().unwrap().push(
        serde_yaml_ng::from_str("{name: gone, cluster: {server: 'https://127.0.0.1:1'}}").unwrap(),
    );
    let mut context: serde_yaml_ng::Value =
        serde_yaml_ng::from_str("{name: gone, context: {cluster: gone}}").unwrap();
    context["context"]["user"] = user;
    config["contexts"].as_sequence_mut().unwrap().push(context);
    let broken = repo.root().join("kubeconfig-with-gone");
    std::fs::write(&broken, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let env_text = std::fs::read_to_string(repo.root().join("environments/prod.yaml")).unwrap();
    std::fs::write(
        repo.root().join("environments/prod.yaml"),
        format!("{env_text}  - context: gone\n    global: {{ cloud: true, env: prod, region: r, clusterName: gone }}\n"),
    )
    .unwrap();
    let out = command(fleet, &repo, &["uninstall", "hello", "--env", "prod"])
        .env("KUBECONFIG", &broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gone"),
        "{}",
        describe(&out)
    );
    assert_eq!(left(fleet, &repo.namespace).await, state);
    std::fs::write(repo.root().join("environments/prod.yaml"), env_text).unwrap();

    let out = run(
        fleet,
        &repo,
        &["uninstall", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["succeeded"], true, "{report:#}");
    let rows = report["clusters"].as_array().unwrap();
    assert_eq!(rows.len(), clusters.len());
    for row in rows {
        assert_eq!(row["result"], "uninstalled", "{row:#}");
        let deleted: Vec<&str> = row["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(
            deleted.contains(&format!("Deployment {}/hello-web", repo.namespace).as_str()),
            "{row:#}"
        );
        assert_eq!(
            row["kept"][0]["object"]["name"], "hello-settings",
            "{row:#}"
        );
        assert!(
            row["kept"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("helm.sh/resource-policy: keep"),
            "{row:#}"
        );
    }
    for (cluster, deployments, records, kept) in left(fleet, &repo.namespace).await {
        assert_eq!((deployments, records, kept), (0, 0, true), "{cluster}");
        let client = fleet.client(&cluster).await;
        let lease = Api::<Lease>::namespaced(client, &repo.namespace)
            .get_opt("flotilla.hello")
            .await
            .unwrap();
        assert!(lease.is_none(), "{cluster}: {lease:?}");
    }
    // Nothing left to remove: said, exit 2.
    let out = run(fleet, &repo, &["uninstall", "hello", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not installed"),
        "{}",
        describe(&out)
    );
}

/// The safe ways to uninstall: `--dry-run` lists what would go and changes nothing;
/// `--keep-history` removes the objects but keeps the records, and `rollback` then
/// brings the release back in every cluster.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn uninstall_dry_run_changes_nothing_and_keep_history_lets_rollback_bring_it_back() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let waves = fleet_waves(fleet, true);
    let repo = repo("keep-history", &[("prod", &as_env(&waves))], "60s");
    let id = deploy_ok(fleet, &repo, "prod", "v1");
    let before = left(fleet, &repo.namespace).await;

    let out = run(
        fleet,
        &repo,
        &[
            "uninstall",
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
    assert_eq!(
        plan["clusters"].as_array().map(Vec::len),
        Some(clusters.len())
    );
    assert_eq!(left(fleet, &repo.namespace).await, before);

    let out = run(
        fleet,
        &repo,
        &["uninstall", "hello", "--env", "prod", "--keep-history"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    for (cluster, deployments, records, _) in left(fleet, &repo.namespace).await {
        assert_eq!((deployments, records), (0, 1), "{cluster}");
    }
    let status = run(fleet, &repo, &["status", "hello", "--env", "prod"]);
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("uninstalled with its history kept"),
        "{}",
        describe(&status)
    );

    let out = run(
        fleet,
        &repo,
        &["rollback", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["target"], id.as_str(), "{}", describe(&out));
    for (cluster, deployments, _, _) in left(fleet, &repo.namespace).await {
        assert_eq!(deployments, 1, "{cluster}");
    }
    for cluster in &clusters {
        let (_, content, version) = deployed(fleet, &repo, "prod", cluster)
            .unwrap_or_else(|| panic!("{cluster}: nothing deployed"));
        assert_eq!((content.as_str(), version.as_str()), (id.as_str(), "v1"));
    }
}
