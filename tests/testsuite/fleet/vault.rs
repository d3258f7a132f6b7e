//! Secrets against HashiCorp Vault: each test runs its own server (the fleet's Vault
//! binary in dev mode, `support::real_vault`), seeded with `fleet/vault-seed.yaml`, with
//! real ACL policies, KV v1 and v2 mounts, AppRole, token TTLs and use limits, sealing;
//! and Kubernetes auth against the shared fleet's Vault and apiserver.

use crate::support::vault as support;

use flotilla::exit::{Classify, ExitKind};
use flotilla::vault::{
    resolve_for_environment, SecretPlan, SecretReader, VaultEnv, VaultError, VaultSession,
};
use support::real_vault::RealVault;
use support::{flotilla_with_only, TestRepo};

const DEV_DB: &str = "fake-dev-hello-db-password-1111";
const DEV_ONPREM: &str = "fake-dev-hello-db-onprem-password-2222";
const DEV_API: &str = "fake-dev-hello-api-token-3333";

fn approle_env() -> String {
    support::ENVIRONMENT.replace(
        "auth: { method: token }",
        "auth: { method: approle, role_id_env: VAULT_ROLE_ID, secret_id_env: VAULT_SECRET_ID }",
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn token_and_approle_resolve_default_and_own_context_entries_once_per_path() {
    let vault = RealVault::start(1).await;
    let pair = |id: &str, v: &str| (id.to_string(), v.to_string());

    // Token auth.
    let repo = TestRepo::standard(1);
    let (release, env) = repo.load();
    let vars = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", vault.root_token.as_str()),
    ]);
    let resolution = resolve_for_environment(&release, &env, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for context in ["dev-a", "dev-b"] {
        assert_eq!(
            resolution
                .secrets
                .exposed(context)
                .into_iter()
                .collect::<Vec<_>>(),
            vec![pair("api-token", DEV_API), pair("db-password", DEV_DB)],
            "{context}"
        );
    }
    assert_eq!(
        resolution
            .secrets
            .exposed("dev-dc")
            .into_iter()
            .collect::<Vec<_>>(),
        vec![pair("api-token", DEV_API), pair("db-password", DEV_ONPREM)]
    );
    // 2 secrets × 3 clusters = 6 mappings over 3 distinct paths: 3 reads.
    assert_eq!(resolution.plan.entries.len(), 6);
    assert_eq!(resolution.reads, 3);

    // AppRole, ids from the variables the environment names.
    let repo = TestRepo::new(1, &approle_env(), support::RELEASE);
    let (release, env) = repo.load();
    let vars = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_ROLE_ID", vault.role_id.as_str()),
        ("VAULT_SECRET_ID", vault.secret_id.as_str()),
    ]);
    let by_approle = resolve_for_environment(&release, &env, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by_approle.reads, 3);
    assert_eq!(
        by_approle.secrets.exposed("dev-dc"),
        resolution.secrets.exposed("dev-dc")
    );

    // AppRole, ids from files.
    let role_file = repo.file("role-id");
    let secret_file = repo.file("secret-id");
    std::fs::write(&role_file, format!("{}\n", vault.role_id)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&secret_file, &vault.secret_id).unwrap_or_else(|e| panic!("{e}"));
    let from_files = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        &format!(
            "auth: {{ method: approle, role_id_file: {}, secret_id_file: {} }}",
            role_file.display(),
            secret_file.display()
        ),
    );
    let repo = TestRepo::new(1, &from_files, support::RELEASE);
    let (release, env) = repo.load();
    let vars = VaultEnv::from_vars([("VAULT_ADDR", vault.address.as_str())]);
    let by_files = resolve_for_environment(&release, &env, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        by_files.secrets.exposed("dev-a"),
        resolution.secrets.exposed("dev-a")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn two_releases_in_one_run_read_a_shared_path_once() {
    let vault = RealVault::start(1).await;
    let repo = TestRepo::standard(1);
    let (first, env) = repo.load();
    // A second release mapping one of the same paths and one of its own.
    let mut second = first.clone();
    second.descriptor.metadata.name = "hello-worker".into();
    second.descriptor.spec.secrets.truncate(1);
    second.descriptor.spec.secrets[0].contexts.truncate(1);
    let vars = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", vault.root_token.as_str()),
    ]);
    let config = env
        .environment
        .vault
        .clone()
        .unwrap_or_else(|| panic!("no vault"));
    let session = VaultSession::connect(&config, &env.file, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reader = SecretReader::new(&session);
    let plan = |r| SecretPlan::build(r, &env).unwrap_or_else(|e| panic!("{e}"));
    reader
        .resolve(&plan(&first))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(session.read_count(), 3);
    let worker = reader
        .resolve(&plan(&second))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(session.read_count(), 3, "kv/dev/hello/db was read again");
    assert_eq!(
        worker
            .exposed("dev-dc")
            .get("db-password")
            .map(String::as_str),
        Some(DEV_DB)
    );
}

/// The error of resolving `release` in `environment` with `vars`.
async fn resolve(release: String, vars: Vec<(&str, &str)>, environment: String) -> VaultError {
    let repo = TestRepo::new(1, &environment, &release);
    let (release, env) = repo.load();
    resolve_for_environment(&release, &env, &VaultEnv::from_vars(vars))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn each_error_names_secret_id_context_path_and_key() {
    let vault = RealVault::start(1).await;
    vault
        .put("dev/hello/numeric", serde_json::json!({ "password": 5432 }))
        .await;
    let token = [
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", vault.root_token.as_str()),
    ];
    let env = support::ENVIRONMENT.to_string();

    let missing_path = resolve(
        support::RELEASE.replace("kv/dev/hello/db-onprem", "kv/dev/hello/db-offprem"),
        token.to_vec(),
        env.clone(),
    )
    .await;
    assert_eq!(missing_path.exit_kind(), ExitKind::Environment);
    assert_eq!(
        missing_path.to_string(),
        "secret_id db-password, context dev-dc, path kv/dev/hello/db-offprem, key password: no secret at this path (404)"
    );

    let missing_key = resolve(
        support::RELEASE.replace("vaultKey: token", "vaultKey: tokens"),
        token.to_vec(),
        env.clone(),
    )
    .await;
    assert_eq!(
        missing_key.to_string(),
        "secret_id api-token, contexts dev-a, dev-b, dev-dc, path kv/dev/hello/api, key tokens: the secret has no such key (its keys: token)"
    );

    let not_string = resolve(
        support::RELEASE.replace("kv/dev/hello/db-onprem", "kv/dev/hello/numeric"),
        token.to_vec(),
        env.clone(),
    )
    .await;
    assert_eq!(
        not_string.to_string(),
        "secret_id db-password, context dev-dc, path kv/dev/hello/numeric, key password: the value under this key is a number, not a string"
    );

    let bad_token = resolve(
        support::RELEASE.to_string(),
        vec![
            ("VAULT_ADDR", &vault.address),
            ("VAULT_TOKEN", "not-a-token"),
        ],
        env.clone(),
    )
    .await;
    assert_eq!(bad_token.exit_kind(), ExitKind::Environment);
    assert!(
        matches!(
            bad_token,
            VaultError::Login {
                method: "token",
                ..
            }
        ),
        "{bad_token}"
    );
    assert!(
        bad_token
            .to_string()
            .contains("refused the token credentials (VAULT_TOKEN)"),
        "{bad_token}"
    );

    let bad_secret_id = resolve(
        support::RELEASE.to_string(),
        vec![
            ("VAULT_ADDR", &vault.address),
            ("VAULT_ROLE_ID", &vault.role_id),
            ("VAULT_SECRET_ID", "00000000-0000-0000-0000-000000000000"),
        ],
        approle_env(),
    )
    .await;
    assert_eq!(bad_secret_id.exit_kind(), ExitKind::Environment);
    assert!(
        bad_secret_id.to_string().contains("refused the approle credentials (auth/approle login, role id VAULT_ROLE_ID, secret id VAULT_SECRET_ID)"),
        "{bad_secret_id}"
    );
}

/// A token that expires at its TTL: it works at login and has stopped working when the
/// reads come.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_token_expiring_mid_run_is_said_so() {
    let vault = RealVault::start(1).await;
    let token = vault
        .token(
            &[support::real_vault::READER],
            serde_json::json!({"ttl": "3s"}),
        )
        .await;
    let repo = TestRepo::standard(1);
    let (release, env) = repo.load();
    let vars = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", token.as_str()),
    ]);
    let config = env
        .environment
        .vault
        .clone()
        .unwrap_or_else(|| panic!("no vault"));
    let session = VaultSession::connect(&config, &env.file, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait (bounded) until Vault refuses the token's own lookup.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let probe = crate::support::rollout::vault_client(&vault.address, &token);
    loop {
        // Refused (403), not an answer vaultrs cannot parse (RustyVault's lookup body).
        let refused = match vaultrs::token::lookup_self(&probe).await {
            Err(vaultrs::error::ClientError::APIError { code, .. }) => code == 403,
            Err(vaultrs::error::ClientError::RestClientError {
                source: rustify::errors::ClientError::ServerResponseError { code, .. },
            }) => code == 403,
            _ => false,
        };
        if refused {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let plan = SecretPlan::build(&release, &env).unwrap_or_else(|e| panic!("{e}"));
    let err = SecretReader::new(&session)
        .resolve(&plan)
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved with an expired token"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    assert!(
        err.to_string().ends_with("the Vault token (VAULT_TOKEN) expired or was revoked during the run; log in again and rerun"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn secrets_check_with_the_fleet_env_variables() {
    let vault = RealVault::start(1).await;
    let repo = TestRepo::new(1, &approle_env(), support::RELEASE);
    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[
            ("VAULT_ADDR", &vault.address),
            ("VAULT_ROLE_ID", &vault.role_id),
            ("VAULT_SECRET_ID", &vault.secret_id),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.both());
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.trim_end().ends_with(" yes"))
            .count(),
        6,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "6 of 6 mappings resolve in dev (3 reads from {})",
            vault.address
        )),
        "{}",
        run.stdout
    );
    for value in [DEV_DB, DEV_ONPREM, DEV_API, vault.secret_id.as_str()] {
        assert!(!run.both().contains(value), "{value} shown");
    }
}

// ---- moved from the fake Vault: KV v2, ACL, AppRole, token and seal cases on a real server

const DB_V2: &str = "db-pass-version-two-7d1e";

fn token_vars(vault: &RealVault, token: &str) -> VaultEnv {
    VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", token),
    ])
}

fn root_vars(vault: &RealVault) -> VaultEnv {
    token_vars(vault, &vault.root_token)
}

fn values_of(resolution: &flotilla::vault::Resolution, context: &str) -> Vec<(String, String)> {
    resolution
        .secrets
        .exposed(context)
        .into_iter()
        .collect::<Vec<_>>()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn kv2_resolves_default_and_own_context_entries_reading_each_path_once() {
    let vault = RealVault::start(2).await;
    vault
        .put(
            "dev/hello/db",
            serde_json::json!({ "password": DB_V2, "user": "hello" }),
        )
        .await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let resolution = resolve_for_environment(&release, &env, &root_vars(&vault))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pair = |id: &str, v: &str| (id.to_string(), v.to_string());
    assert_eq!(
        values_of(&resolution, "dev-a"),
        vec![pair("api-token", DEV_API), pair("db-password", DB_V2)]
    );
    assert_eq!(
        values_of(&resolution, "dev-b"),
        values_of(&resolution, "dev-a")
    );
    assert_eq!(
        values_of(&resolution, "dev-dc"),
        vec![pair("api-token", DEV_API), pair("db-password", DEV_ONPREM)]
    );
    // Six mappings over three clusters, three distinct paths: three reads, counted at
    // the client and seen by the server (its audit log).
    assert_eq!(resolution.reads, 3);
    assert_eq!(
        vault.read_paths(),
        vec![
            "kv/data/dev/hello/api",
            "kv/data/dev/hello/db",
            "kv/data/dev/hello/db-onprem"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn kv2_pinned_version_is_read_at_that_version() {
    let vault = RealVault::start(2).await;
    vault
        .put("dev/hello/db", serde_json::json!({ "password": DB_V2 }))
        .await;
    let release = support::RELEASE.replace(
        "  secrets:\n",
        "  secrets:\n    - secret_id: db-previous\n      contexts:\n        - name: default\n          vaultPath: kv/dev/hello/db\n          vaultKey: password\n          version: 1\n",
    );
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let resolution = resolve_for_environment(&release, &env, &root_vars(&vault))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = resolution.secrets.exposed("dev-a");
    assert_eq!(a.get("db-previous").map(String::as_str), Some(DEV_DB));
    assert_eq!(a.get("db-password").map(String::as_str), Some(DB_V2));
    // (path, version) is the unit: db at version 1 and db at latest are two reads.
    assert_eq!(resolution.reads, 4);
    let db_reads = vault
        .read_paths()
        .into_iter()
        .filter(|p| p == "kv/data/dev/hello/db")
        .count();
    assert_eq!(db_reads, 2);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn kv2_missing_or_deleted_version_names_secret_context_path_and_key() {
    let vault = RealVault::start(2).await;
    // Version 2 of api, then version 1 soft-deleted.
    vault
        .put("dev/hello/api", serde_json::json!({ "token": DEV_API }))
        .await;
    vault
        .sys(
            flotilla_fleet::vault::Method::POST,
            "kv/delete/dev/hello/api",
            serde_json::json!({ "versions": [1] }),
        )
        .await;
    let release = support::RELEASE
        .replace(
            "vaultPath: \"kv/{{global.env}}/hello/api\"\n          vaultKey: token\n",
            "vaultPath: \"kv/{{global.env}}/hello/api\"\n          vaultKey: token\n          version: 1\n",
        )
        .replace("vaultPath: kv/dev/hello/db-onprem", "vaultPath: kv/dev/hello/db-gone");
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &root_vars(&vault))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let text = err.to_string();
    assert!(
        text.contains("secret_id api-token, contexts dev-a, dev-b, dev-dc, path kv/dev/hello/api (version 1), key token: version 1 of this secret was deleted (404): `vault kv undelete -versions=N` brings it back, or pin another"),
        "{text}"
    );
    assert!(
        text.contains("secret_id db-password, context dev-dc, path kv/dev/hello/db-gone, key password: no secret at this path (404)"),
        "{text}"
    );

    // Destroyed (not only deleted) is told apart: no undelete brings it back.
    vault
        .sys(
            flotilla_fleet::vault::Method::POST,
            "kv/destroy/dev/hello/api",
            serde_json::json!({ "versions": [1] }),
        )
        .await;
    let err = resolve_for_environment(&release, &env, &root_vars(&vault))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert!(
        err.to_string().contains("path kv/dev/hello/api (version 1), key token: version 1 of this secret was destroyed (404); write a new version, or pin another"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn missing_key_and_non_string_values_are_named_without_values() {
    let vault = RealVault::start(2).await;
    vault
        .put(
            "dev/hello/api",
            serde_json::json!({ "token": DEV_API, "port": 8443 }),
        )
        .await;
    let release = support::RELEASE
        .replace("vaultKey: token", "vaultKey: port")
        .replace(
            "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: password",
            "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: passwd",
        );
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &root_vars(&vault))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    let text = err.to_string();
    assert!(
        text.starts_with("2 secret mappings do not resolve:"),
        "{text}"
    );
    assert!(
        text.contains("secret_id api-token, contexts dev-a, dev-b, dev-dc, path kv/dev/hello/api, key port: the value under this key is a number, not a string"),
        "{text}"
    );
    assert!(
        text.contains("secret_id db-password, context dev-dc, path kv/dev/hello/db-onprem, key passwd: the secret has no such key (its keys: password)"),
        "{text}"
    );
    for value in [DEV_DB, DEV_ONPREM, DEV_API, "8443"] {
        assert!(!text.contains(value), "{value} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn permission_denied_names_the_path_a_policy_must_allow() {
    let vault = RealVault::start(2).await;
    vault
        .policy(
            "ci",
            "path \"kv/data/dev/hello/db\" {\n  capabilities = [\"read\"]\n}\npath \"kv/data/dev/hello/db-onprem\" {\n  capabilities = [\"read\"]\n}\n",
        )
        .await;
    let ci_token = vault.token(&["ci"], serde_json::json!({})).await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &token_vars(&vault, &ci_token))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let VaultError::Unresolved(failures) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].secret_id, "api-token");
    assert_eq!(failures[0].contexts, vec!["dev-a", "dev-b", "dev-dc"]);
    assert_eq!(failures[0].key, "token");
    assert!(
        matches!(&failures[0].problem, flotilla::vault::ReadProblem::PermissionDenied { api_path, .. } if api_path == "kv/data/dev/hello/api"),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "permission denied: the token's policies do not allow `read` on kv/data/dev/hello/api"
        ),
        "{err}"
    );

    // The policy command prints exactly what was missing.
    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "policy", "hello", "--env", "dev"],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.both());
    assert!(
        run.stdout.contains("path \"kv/data/dev/hello/api\" {"),
        "{}",
        run.stdout
    );
}

/// `secrets policy` is the least privilege that works: written to Vault as it is printed,
/// a token and an AppRole bound only to it resolve every mapping, and a read of any path
/// outside it is denied by Vault (403).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn the_generated_policy_is_enough_and_nothing_more() {
    for kv_version in [1u8, 2] {
        let vault = RealVault::start(kv_version).await;
        let repo = TestRepo::standard(kv_version);
        let run = flotilla_with_only(
            repo.root(),
            &["secrets", "policy", "hello", "--env", "dev"],
            &[],
        )
        .await;
        assert_eq!(run.code, Some(0), "{}", run.both());
        vault.policy("hello-dev", &run.stdout).await;
        let token = vault.token(&["hello-dev"], serde_json::json!({})).await;
        let (release, env) = repo.load();
        let resolution = resolve_for_environment(&release, &env, &token_vars(&vault, &token))
            .await
            .unwrap_or_else(|e| {
                panic!("KV v{kv_version}: the generated policy is not enough: {e}")
            });
        assert_eq!(resolution.reads, 3);

        // AppRole bound only to it.
        vault
            .approle(
                "hello-dev",
                &["hello-dev"],
                "hello-dev-role",
                "hello-dev-secret",
            )
            .await;
        let approle = TestRepo::new(kv_version, &approle_env(), support::RELEASE);
        let (release, env) = approle.load();
        let vars = VaultEnv::from_vars([
            ("VAULT_ADDR", vault.address.as_str()),
            ("VAULT_ROLE_ID", "hello-dev-role"),
            ("VAULT_SECRET_ID", "hello-dev-secret"),
        ]);
        resolve_for_environment(&release, &env, &vars)
            .await
            .unwrap_or_else(|e| panic!("KV v{kv_version}: AppRole with the policy: {e}"));

        // Outside it: another environment's secret, a sibling path, the metadata.
        let data = if kv_version == 2 { "kv/data" } else { "kv" };
        let mut outside = vec![
            format!("{data}/prod/hello/db"),
            format!("{data}/dev/hello/other"),
            format!("{data}/dev/other/db"),
        ];
        if kv_version == 2 {
            outside.push("kv/metadata/dev/hello/db".into());
        }
        let api = flotilla_fleet::vault::Api::new(&vault.address, Some(&token));
        for path in outside {
            let err = api
                .call(flotilla_fleet::vault::Method::GET, &path, None)
                .await
                .err()
                .unwrap_or_else(|| panic!("KV v{kv_version}: {path} was readable"));
            assert!(
                err.to_string().contains("403 Forbidden"),
                "KV v{kv_version}: {path}: {err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn approle_login_failure_is_exit_3_naming_the_variables() {
    let vault = RealVault::start(2).await;
    let environment = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        "auth: { method: approle, role_id_env: HELLO_ROLE_ID, secret_id_env: HELLO_SECRET_ID }",
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    let wrong = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("HELLO_ROLE_ID", vault.role_id.as_str()),
        ("HELLO_SECRET_ID", "not-the-secret-id"),
    ]);
    let err = resolve_for_environment(&release, &env, &wrong)
        .await
        .err()
        .unwrap_or_else(|| panic!("logged in"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    assert!(
        err.to_string().ends_with("refused the approle credentials (auth/approle login, role id HELLO_ROLE_ID, secret id HELLO_SECRET_ID): HTTP 400: invalid role or secret ID"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-secret-id"));

    let unset = VaultEnv::from_vars([("VAULT_ADDR", vault.address.as_str())]);
    let err = resolve_for_environment(&release, &env, &unset)
        .await
        .err()
        .unwrap_or_else(|| panic!("logged in"));
    assert_eq!(err.exit_kind(), ExitKind::UserError);
    assert!(
        err.to_string()
            .ends_with("dev.yaml: vault.auth.role_id_env: the variable HELLO_ROLE_ID is not set"),
        "{err}"
    );

    let right = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("HELLO_ROLE_ID", vault.role_id.as_str()),
        ("HELLO_SECRET_ID", vault.secret_id.as_str()),
    ]);
    let resolution = resolve_for_environment(&release, &env, &right)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolution.reads, 3);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_refused_token_is_a_credentials_error_once_every_read_is_denied() {
    let vault = RealVault::start(2).await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &token_vars(&vault, "revoked-token"))
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
    // A denied lookup-self does not decide (a token without the default policy is
    // denied it too): each path was tried once, and every read was denied.
    assert_eq!(
        vault.read_paths(),
        [
            "kv/data/dev/hello/api",
            "kv/data/dev/hello/db",
            "kv/data/dev/hello/db-onprem"
        ]
    );
}

/// Revoked by the operator after the run's first read.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_token_revoked_mid_run_is_said_so_once() {
    let vault = RealVault::start(2).await;
    let token = vault
        .token(&[support::real_vault::READER], serde_json::json!({}))
        .await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let config = env
        .environment
        .vault
        .clone()
        .unwrap_or_else(|| panic!("vault"));
    let session = VaultSession::connect(&config, &env.file, &token_vars(&vault, &token))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = SecretPlan::build(&release, &env).unwrap_or_else(|e| panic!("{e}"));
    let first = session.read("dev/hello/api", None).await;
    assert!(first.is_ok(), "{first:?}");
    vault
        .sys(
            flotilla_fleet::vault::Method::POST,
            "auth/token/revoke",
            serde_json::json!({ "token": token }),
        )
        .await;
    let err = SecretReader::new(&session)
        .resolve(&plan)
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let text = err.to_string();
    assert!(
        text.contains("the Vault token (VAULT_TOKEN) expired or was revoked during the run; log in again and rerun"),
        "{text}"
    );
    // Reported once, on the first read that met it, not once per path.
    assert_eq!(text.matches("expired").count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_sealed_vault_is_an_environment_error() {
    let vault = RealVault::start(2).await;
    vault.seal().await;
    let repo = TestRepo::standard(2);
    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[
            ("VAULT_ADDR", &vault.address),
            ("VAULT_TOKEN", &vault.root_token),
        ],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.both());
    assert_eq!(
        run.stderr.trim(),
        format!(
            "error: Vault at {} is sealed; unseal it and rerun",
            vault.address
        )
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn secrets_check_reports_every_mapping_as_table_and_json() {
    let vault = RealVault::start(2).await;
    let release = support::RELEASE.replace(
        "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: password",
        "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: passwd",
    );
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let vars = [
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", vault.root_token.as_str()),
    ];
    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &vars,
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.both());
    let lines: Vec<&str> = run.stdout.lines().map(str::trim_end).collect();
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["SECRET_ID", "CLUSTER", "PATH", "KEY", "RESOLVES"]),
        "{}",
        run.stdout
    );
    let row = |cells: &[&str]| {
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().starts_with(cells))
    };
    assert!(
        row(&["db-password", "dev-a", "kv/dev/hello/db", "password", "yes"]),
        "{}",
        run.stdout
    );
    assert!(
        row(&["api-token", "dev-dc", "kv/dev/hello/api", "token", "yes"]),
        "{}",
        run.stdout
    );
    assert!(
        row(&[
            "db-password",
            "dev-dc",
            "kv/dev/hello/db-onprem",
            "passwd",
            "NO:",
            "missing",
            "key"
        ]),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\n  secret_id db-password, context dev-dc, path kv/dev/hello/db-onprem, key passwd: the secret has no such key (its keys: password)\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("5 of 6 mappings resolve in dev (3 reads from http://127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr.trim(),
        "error: 1 of 6 secret mappings do not resolve (see the table above)"
    );

    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev", "-o", "json"],
        &vars,
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.both());
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(report["reads"], 3);
    assert_eq!(report["secrets"].as_array().map(Vec::len), Some(6));
    let failed: Vec<&serde_json::Value> = report["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["resolves"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["cluster"], "dev-dc");
    assert_eq!(failed[0]["problem"], "missing key");
    assert_eq!(failed[0]["path"], "kv/dev/hello/db-onprem");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn secrets_check_passes_when_every_mapping_resolves() {
    let vault = RealVault::start(1).await;
    let repo = TestRepo::standard(1);
    let run = flotilla_with_only(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[
            ("VAULT_ADDR", &vault.address),
            ("VAULT_TOKEN", &vault.root_token),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.both());
    assert!(
        run.stdout
            .contains("6 of 6 mappings resolve in dev (3 reads"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn the_token_file_in_home_is_used_when_vault_token_is_unset() {
    let vault = RealVault::start(1).await;
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        home.path().join(".vault-token"),
        format!("{}\n", vault.root_token),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let repo = TestRepo::standard(1);
    let (release, env) = repo.load();
    let home = home.path().to_string_lossy().into_owned();
    let vars = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("HOME", home.as_str()),
    ]);
    let resolution = resolve_for_environment(&release, &env, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolution.reads, 3);
}

/// Vault namespaces are an Enterprise feature: the open-source server serves every
/// request from the root namespace, but its audit log records the header sent.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn namespace_from_the_variable_overrides_the_file() {
    let vault = RealVault::start(2).await;
    let environment = support::ENVIRONMENT.replace(
        "  auth: { method: token }",
        "  namespace: team-a\n  auth: { method: token }",
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    resolve_for_environment(&release, &env, &root_vars(&vault))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let with_variable = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", vault.root_token.as_str()),
        ("VAULT_NAMESPACE", "team-b"),
    ]);
    resolve_for_environment(&release, &env, &with_variable)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let namespaces: Vec<Option<String>> = vault
        .kv_reads()
        .into_iter()
        .filter(|r| r.operation == "read")
        .map(|r| r.namespace)
        .collect();
    assert_eq!(namespaces.len(), 6, "{namespaces:?}");
    assert!(
        namespaces[..3]
            .iter()
            .all(|n| n.as_deref() == Some("team-a")),
        "{namespaces:?}"
    );
    assert!(
        namespaces[3..]
            .iter()
            .all(|n| n.as_deref() == Some("team-b")),
        "{namespaces:?}"
    );
}

/// Kubernetes auth on the shared fleet: its Vault reviews service-account tokens with
/// one of its apiservers (TokenReview), role `hello` binds service account `hello/hello`
/// with audience `vault`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn kubernetes_login_with_a_service_account_token() {
    use flotilla_fleet::testing::Fleet;
    let fleet = Fleet::shared();
    let Some(cluster) = fleet.kubernetes_auth_cluster().map(str::to_string) else {
        panic!("the fleet's Vault has no Kubernetes auth (RustyVault, the fallback, has none)")
    };
    let repo = TestRepo::standard(1);
    let jwt_file = repo.file("sa-token");
    let environment = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        &format!(
            "auth: {{ method: kubernetes, role: hello, jwt_file: {} }}",
            jwt_file.display()
        ),
    );
    let repo = TestRepo::new(1, &environment, support::RELEASE);
    let (release, env) = repo.load();
    let address = fleet.vault_addr();
    let vars = VaultEnv::from_vars([("VAULT_ADDR", address.as_str())]);
    let login_with = |jwt: String| {
        std::fs::write(&jwt_file, format!("{jwt}\n")).unwrap_or_else(|e| panic!("{e}"));
        jwt
    };

    // Refused: the right account with another audience; another account of the namespace.
    for (namespace, account, audience) in [
        ("hello", "hello", "not-vault"),
        ("hello", "default", "vault"),
    ] {
        let jwt = login_with(
            fleet
                .service_account_token(&cluster, namespace, account, audience, 600)
                .await,
        );
        let err = resolve_for_environment(&release, &env, &vars)
            .await
            .err()
            .unwrap_or_else(|| panic!("{namespace}/{account} ({audience}) logged in"));
        assert_eq!(err.exit_kind(), ExitKind::Environment);
        let text = err.to_string();
        assert!(
            text.contains(
                "refused the kubernetes credentials (auth/kubernetes login, role hello, JWT from "
            ),
            "{namespace}/{account} ({audience}): {text}"
        );
        assert!(!text.contains(&jwt), "the JWT is shown: {text}");
    }

    // Accepted: hello/hello for audience vault; the policy reads the seed.
    login_with(
        fleet
            .service_account_token(&cluster, "hello", "hello", "vault", 600)
            .await,
    );
    let resolution = resolve_for_environment(&release, &env, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        resolution
            .secrets
            .exposed("dev-dc")
            .get("db-password")
            .map(String::as_str),
        Some(DEV_ONPREM)
    );
}
