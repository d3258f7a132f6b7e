//! The automatic restore of a failed deploy puts each secret back into its own field,
//! on the shared fleet with its real Vault: the failed revision inserted an env var
//! before `DB_PASSWORD`, and the worker the restore brings back has exactly the env of
//! the revision before, the password as Vault holds it. A failed revision that renamed
//! the secret env var leaves nothing live to fill it from: the restore renders the
//! revision again from its record, the password read from Vault, never another entry's
//! value. (Where nothing can be rendered again, the worker is kept live and the run
//! says so: `ops::restore`'s unit tests.)

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use rollout_support::*;

/// A worker whose env has `DB_PASSWORD` from Vault; with `insertEnv`, another env var
/// comes before it; with `renameEnv`, it is named `DB_PASS`.
const WORKER: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{Release.Name}}-worker
spec:
  replicas: 1
  selector:
    matchLabels: { app: {{Release.Name}}-worker }
  template:
    metadata:
      labels: { app: {{Release.Name}}-worker }
    spec:
      containers:
        - name: worker
          image: "registry.local/hello:{{Release.Version}}"
          env:
{{#if Values.insertEnv}}
            - name: INSERTED
              value: "inserted-by-the-failed-revision"
{{/if}}
            - name: {{#if Values.renameEnv}}DB_PASS{{else}}DB_PASSWORD{{/if}}
              value: {{quote Values.secrets.[db-password]}}
            - name: QUEUE
              value: jobs
"#;

/// The worker's image and env (name, value) in `context`.
async fn worker(fleet: &Fleet, context: &str, namespace: &str) -> (String, Vec<(String, String)>) {
    let deployments: kube::Api<Deployment> =
        kube::Api::namespaced(fleet.client(context).await, namespace);
    let live = deployments
        .get("hello-worker")
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let container = live
        .spec
        .template
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .unwrap_or_else(|| panic!("{context}: no container"));
    let env = container
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    (container.image.unwrap_or_default(), env)
}

/// What the fleet's Vault holds at `kv/prod/hello/db`, key `password`.
async fn vault_password(fleet: &Fleet) -> String {
    let client = vault_admin(fleet);
    let values: std::collections::HashMap<String, String> =
        vaultrs::kv1::get(&client, "kv", "prod/hello/db")
            .await
            .unwrap_or_else(|e| panic!("reading kv/prod/hello/db: {e}"));
    values
        .get("password")
        .cloned()
        .unwrap_or_else(|| panic!("no password at kv/prod/hello/db"))
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_automatic_restore_fills_each_secret_from_its_own_env_var() {
    let fleet = Fleet::shared();
    let waves = fleet_waves(fleet, true);
    let canary = waves[0].0.clone();
    let repo = repo("env-shift", &[("prod", &as_env(&waves))], "60s");
    std::fs::write(
        repo.root()
            .join("releases/hello/chart/templates/worker.yaml"),
        WORKER,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let password = runtime.block_on(vault_password(fleet));

    deploy_ok(fleet, &repo, "prod", "v1");
    let before = runtime.block_on(worker(fleet, &canary, &repo.namespace));
    assert_eq!(
        before,
        (
            "registry.local/hello:v1".to_owned(),
            vec![
                ("DB_PASSWORD".to_owned(), password.clone()),
                ("QUEUE".to_owned(), "jobs".to_owned())
            ]
        ),
        "{canary}: A as deployed"
    );

    // A version that crashes and inserts an env var before DB_PASSWORD: it fails in
    // the canary wave, and that cluster is put back on A automatically, its secret
    // fields taken from the live (failed) object.
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "crashloop",
            "--set",
            "insertEnv=true",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(result_of(&report, &canary), "rolled-back", "{report:#}");
    assert!(
        cluster_in(&report, &canary).get("kept_live").is_none(),
        "nothing kept live: {report:#}"
    );

    let after = runtime.block_on(worker(fleet, &canary, &repo.namespace));
    assert_eq!(
        after, before,
        "{canary}: the restored worker runs exactly A's env, the password Vault's"
    );
    for (context, _) in &waves[1..] {
        let untouched = runtime.block_on(worker(fleet, context, &repo.namespace));
        assert_eq!(untouched, before, "{context}: never touched");
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_secret_env_var_the_failed_revision_renamed_comes_back_from_the_record_and_vault() {
    let fleet = Fleet::shared();
    let waves = fleet_waves(fleet, true);
    let canary = waves[0].0.clone();
    let repo = repo("env-renamed", &[("prod", &as_env(&waves))], "60s");
    std::fs::write(
        repo.root()
            .join("releases/hello/chart/templates/worker.yaml"),
        WORKER,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    deploy_ok(fleet, &repo, "prod", "v1");
    let before = runtime.block_on(worker(fleet, &canary, &repo.namespace));

    // The failed revision renamed the env var: nothing live holds DB_PASSWORD's value
    // under its name. The restore renders A again from its record, with the password
    // read from Vault: A's worker exactly, never another entry's value.
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "crashloop",
            "--set",
            "renameEnv=true",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let after = runtime.block_on(worker(fleet, &canary, &repo.namespace));
    assert_eq!(after, before, "{canary}: A's worker, the password Vault's");
}
