//! Secrets against a fake Vault API, only for what a real HashiCorp Vault cannot be made
//! to show (everything else is in tests/testsuite/fleet/vault.rs, against the real server): how
//! many requests were in flight at once, with a latency added to each answer (Vault
//! cannot be told to slow its answers, and records no high-water mark of requests in
//! flight); and the client's answers to what a healthy server does not produce on
//! demand: a lookup-self denied to a token that can read, 500/502/429 on lookup-self,
//! `VAULT_TOKEN` in an AppRole environment, the revocation of a login token.
//!
//! The test that talks to the fake says `fake_vault` in its name. The other tests here
//! need no Vault at all (bad settings, a release without secrets, `secrets policy`).

use crate::support::vault as support;

use flotilla::exit::{Classify, ExitKind};
use flotilla::vault::{resolve_for_environment, VaultEnv};
use serde_json::json;
use support::fake_vault::{FakeVault, Token};
use support::{flotilla_with_only, TestRepo};

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
async fn a_refused_token_is_a_credentials_error_once_every_read_is_denied_fake_vault() {
    // Vault answers 403 both to an invalid token and to a valid one without the
    // `default` policy: lookup-self cannot tell them apart, so the reads do, as with the
    // vault CLI, and each denial says the token may be the cause.
    let vault = seeded(2).await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &vars(&vault, "revoked-token"))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    assert_eq!(
        err.to_string(),
        format!(
            "Vault at {} refused the token credentials (VAULT_TOKEN): auth/token/lookup-self and every read were denied: the token is invalid or expired (or has neither the default policy nor one that reads these paths)",
            vault.address
        )
    );
}

#[tokio::test]
async fn a_token_whose_lookup_self_is_denied_but_that_can_read_is_accepted_fake_vault() {
    let vault = seeded(2).await;
    vault.token(
        "no-default-policy",
        Token {
            lookup_denied: true,
            ..Token::default()
        },
    );
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let resolution = resolve_for_environment(&release, &env, &vars(&vault, "no-default-policy"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolution.reads, 3);
    assert_eq!(
        resolution
            .secrets
            .exposed("dev-a")
            .get("api-token")
            .map(String::as_str),
        Some(API)
    );
}

#[tokio::test]
async fn a_5xx_or_429_on_lookup_self_is_an_error_not_a_valid_token_fake_vault() {
    for status in [500u16, 502, 429] {
        let vault = seeded(2).await;
        vault.state().lookup_status = Some(status);
        let repo = TestRepo::standard(2);
        let (release, env) = repo.load();
        let err = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
            .await
            .err()
            .unwrap_or_else(|| panic!("HTTP {status} on lookup-self taken as a valid token"));
        assert_eq!(err.exit_kind(), ExitKind::Environment, "{status}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("auth/token/lookup-self: HTTP {status}")),
            "{status}: {text}"
        );
        assert!(vault.kv_reads().is_empty(), "{status}: nothing read");
    }
}

#[tokio::test]
async fn vault_token_is_used_first_even_in_an_approle_environment_fake_vault() {
    let vault = seeded(2).await;
    vault
        .state()
        .approles
        .insert(("role-1".into(), "secret-1".into()), "approle-token".into());
    vault.token("approle-token", Token::default());
    let environment = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        "auth: { method: approle, role_id_env: HELLO_ROLE_ID, secret_id_env: HELLO_SECRET_ID }",
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    // Neither AppRole variable is set: the engineer's own token is enough.
    let resolution = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolution.reads, 3);
    let state = vault.state();
    assert!(
        !state.requests.iter().any(|r| r.path.contains("/login")),
        "no AppRole login when VAULT_TOKEN is set"
    );
    assert!(state
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/v1/kv/"))
        .all(|r| r.token.as_deref() == Some("root-token")));
    assert!(
        state.revoked.is_empty(),
        "a user's own token is never revoked"
    );
}

#[tokio::test]
async fn a_login_token_is_revoked_when_the_reads_are_done_fake_vault() {
    let vault = seeded(2).await;
    vault
        .state()
        .approles
        .insert(("role-1".into(), "secret-1".into()), "approle-token".into());
    vault.token("approle-token", Token::default());
    let environment = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        "auth: { method: approle, role_id_env: HELLO_ROLE_ID, secret_id_env: HELLO_SECRET_ID }",
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    let login = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("HELLO_ROLE_ID", "role-1"),
        ("HELLO_SECRET_ID", "secret-1"),
    ]);
    resolve_for_environment(&release, &env, &login)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vault.state().revoked, vec!["approle-token".to_string()]);

    // Renewed before the reads once half its lease is gone: a lease of 1 s, and a Vault
    // that takes 600 ms to answer the login, so half of it has passed when reads start.
    let vault = seeded(2).await;
    vault.state().login_ttl = Some(1);
    vault.state().latency = Some(std::time::Duration::from_millis(600));
    vault
        .state()
        .approles
        .insert(("role-1".into(), "secret-1".into()), "approle-token".into());
    vault.token("approle-token", Token::default());
    let login = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("HELLO_ROLE_ID", "role-1"),
        ("HELLO_SECRET_ID", "secret-1"),
    ]);
    resolve_for_environment(&release, &env, &login)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let state = vault.state();
    assert_eq!(
        state.renewed,
        vec!["approle-token".to_string()],
        "renewed once for the concurrent reads"
    );
    assert_eq!(state.revoked, vec!["approle-token".to_string()]);
}

#[tokio::test]
async fn a_soft_deleted_latest_version_is_told_apart_from_a_missing_path_fake_vault() {
    let vault = seeded(2).await;
    vault.state().secrets.insert(
        "dev/hello/api".into(),
        vec![Some(json!({ "token": API })), None],
    );
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let text = err.to_string();
    assert!(
        text.contains("path kv/dev/hello/api, key token: version 2 of this secret was deleted (404): `vault kv undelete -versions=N` brings it back"),
        "{text}"
    );
}

#[tokio::test]
async fn unreachable_vault_is_exit_3_naming_the_address() {
    let repo = TestRepo::standard(1);
    let address = format!("http://127.0.0.1:{}", support::closed_port());
    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[("VAULT_ADDR", &address), ("VAULT_TOKEN", "t")],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.both());
    // The cause, not the client libraries' layers of wording.
    assert!(
        run.stderr.starts_with(&format!(
            "error: Vault at {address} is unreachable: connection refused (GET {address}/v1/auth/token/lookup-self)"
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn no_token_anywhere_is_a_configuration_error() {
    let repo = TestRepo::standard(1);
    let run = flotilla_with_only(
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
    let run = flotilla_with_only(
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
    let run = flotilla_with_only(
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
    let run = flotilla_with_only(
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
    let run = flotilla_with_only(
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

#[tokio::test]
async fn vault_skip_verify_that_is_not_a_go_boolean_is_bad_input_and_never_skips_fake_vault() {
    let vault = seeded(2).await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    for (value, ok) in [("yes", false), ("on", false), ("true", true), ("0", true)] {
        let vars = VaultEnv::from_vars([
            ("VAULT_ADDR", vault.address.as_str()),
            ("VAULT_TOKEN", "root-token"),
            ("VAULT_SKIP_VERIFY", value),
        ]);
        let answer = resolve_for_environment(&release, &env, &vars).await;
        match (answer, ok) {
            (Ok(_), true) => {}
            (Err(err), false) => {
                assert_eq!(err.exit_kind(), ExitKind::UserError, "{value}: {err}");
                assert!(
                    err.to_string()
                        .starts_with(&format!("VAULT_SKIP_VERIFY: {value:?} is not a boolean")),
                    "{value}: {err}"
                );
            }
            (answer, _) => panic!(
                "{value}: {:?}",
                answer.map(|_| ()).map_err(|e| e.to_string())
            ),
        }
    }
}
