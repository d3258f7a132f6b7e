//! Secrets against a fake Vault API, only for what a real HashiCorp Vault cannot be made
//! to show (everything else is in tests/vault_fleet.rs, against the real server): how
//! many requests were in flight at once, with a latency added to each answer. Vault
//! cannot be told to slow its answers, and records no high-water mark of requests in
//! flight (`sys/in-flight-req` shows only the requests of the moment it is asked).
//!
//! The test that talks to the fake says `fake_vault` in its name. The other tests here
//! need no Vault at all (bad settings, a release without secrets, `secrets policy`).

#[path = "vault_support/mod.rs"]
mod support;

use flotilla::vault::{resolve_for_environment, VaultEnv};
use serde_json::json;
use support::fake_vault::{FakeVault, Token};
use support::{flotilla, TestRepo};

const DB_V1: &str = "db-pass-version-one-9f2c";
const DB_V2: &str = "db-pass-version-two-7d1e";
const ONPREM: &str = "onprem-pass-3b8a";
const API: &str = "api-token-5c6d";

async fn seeded(kv_version: u8) -> FakeVault {
    let vault = FakeVault::start("kv", kv_version).await;
    vault.put("dev/hello/db", json!({ "password": DB_V1 }));
    vault.put(
        "dev/hello/db",
        json!({ "password": DB_V2, "user": "hello" }),
    );
    vault.put("dev/hello/db-onprem", json!({ "password": ONPREM }));
    vault.put("dev/hello/api", json!({ "token": API, "port": 8443 }));
    vault.token("root-token", Token::default());
    vault
}

fn vars(vault: &FakeVault, token: &str) -> VaultEnv {
    VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", token),
    ])
}

#[tokio::test]
async fn unreachable_vault_is_exit_3_naming_the_address() {
    let repo = TestRepo::standard(1);
    let address = format!("http://127.0.0.1:{}", support::closed_port());
    let run = flotilla(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[("VAULT_ADDR", &address), ("VAULT_TOKEN", "t")],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.both());
    assert!(
        run.stderr
            .starts_with(&format!("error: Vault at {address} is unreachable: ")),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn no_token_anywhere_is_a_configuration_error() {
    let repo = TestRepo::standard(1);
    let run = flotilla(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[("VAULT_ADDR", "http://127.0.0.1:9")],
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.both());
    assert!(
        run.stderr.contains("environments/dev.yaml: vault.auth: method token needs a Vault token: set VAULT_TOKEN or write ~/.vault-token"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn secrets_policy_for_kv2_reads_data_paths_only() {
    let repo = TestRepo::standard(2);
    let run = flotilla(
        repo.root(),
        &["secrets", "policy", "hello", "--env", "dev"],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.both());
    let paths: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("path "))
        .collect();
    assert_eq!(
        paths,
        vec![
            "path \"kv/data/dev/hello/api\" {",
            "path \"kv/data/dev/hello/db\" {",
            "path \"kv/data/dev/hello/db-onprem\" {",
        ]
    );
    assert_eq!(run.stdout.matches("capabilities = [\"read\"]").count(), 3);
    assert!(
        run.stdout
            .contains("# db-password: dev-a, dev-b\npath \"kv/data/dev/hello/db\""),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_ca_bundle_that_is_not_there_is_a_configuration_error() {
    let repo = TestRepo::standard(1);
    let run = flotilla(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[
            ("VAULT_ADDR", "https://vault.internal:8200"),
            ("VAULT_TOKEN", "t"),
            ("VAULT_CACERT", "/nonexistent/ca.pem"),
        ],
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.both());
    assert!(
        run.stderr
            .starts_with("error: VAULT_CACERT=/nonexistent/ca.pem: cannot read the CA bundle: "),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_release_without_secrets_is_checked_without_vault() {
    let release = support::RELEASE
        .split("  secrets:\n")
        .next()
        .unwrap_or_default()
        .to_string();
    let environment = support::ENVIRONMENT.replace(
        "vault:\n  address: http://127.0.0.1:9\n  auth: { method: token }\n  kv: { mount: kv, version: KV_VERSION }\n",
        "",
    );
    let repo = TestRepo::new(1, &environment, &release);
    std::fs::write(
        repo.file("releases/hello/chart/templates/secret.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata: {}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = flotilla(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.both());
    assert_eq!(
        run.stdout,
        "release hello maps no secrets: nothing to check in dev\n"
    );
    let run = flotilla(
        repo.root(),
        &["secrets", "policy", "hello", "--env", "dev"],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.both());
    assert!(
        run.stdout.contains("needs no access to Vault"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn reads_run_concurrently_within_the_bound_fake_vault() {
    let vault = seeded(2).await;
    vault.state().latency = Some(std::time::Duration::from_millis(20));
    // 20 secrets, each on its own path, for 3 clusters: 60 mappings, 20 reads.
    let mut release = support::RELEASE
        .split("  secrets:\n")
        .next()
        .unwrap_or_default()
        .to_string();
    release.push_str("  secrets:\n");
    for i in 0..20 {
        vault.put(
            &format!("dev/many/s{i}"),
            json!({ "value": format!("v{i}") }),
        );
        release.push_str(&format!(
            "    - secret_id: s{i}\n      contexts:\n        - name: default\n          vaultPath: kv/dev/many/s{i}\n          vaultKey: value\n"
        ));
    }
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let resolution = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolution.plan.entries.len(), 60);
    assert_eq!(resolution.reads, 20);
    assert_eq!(vault.kv_reads().len(), 20);
    let max = vault.state().max_in_flight;
    assert!(
        max <= flotilla::vault::READ_CONCURRENCY,
        "{max} requests at once, over the bound of {}",
        flotilla::vault::READ_CONCURRENCY
    );
    println!(
        "reads in flight at most: {max} (bound {})",
        flotilla::vault::READ_CONCURRENCY
    );
}
