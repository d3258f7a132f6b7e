//! Secrets against the fleet's Vault: a real RustyVault (KV v1, token and AppRole auth)
//! behind the fleet's envelope-normalising proxy, seeded with `fleet/vault-seed.yaml`.

#[path = "vault_support/mod.rs"]
mod support;

use flotilla::exit::{Classify, ExitKind};
use flotilla::vault::{
    resolve_for_environment, SecretPlan, SecretReader, VaultEnv, VaultError, VaultSession,
};
use std::collections::HashMap;
use support::rusty_vault::RustyVault;
use support::{flotilla, TestRepo};

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
    let vault = RustyVault::start().await;
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
    let vault = RustyVault::start().await;
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
    let vault = RustyVault::start().await;
    let admin = vault.admin();
    let mut numbers = HashMap::new();
    numbers.insert("password", serde_json::json!(5432));
    vaultrs::kv1::set(&admin, "kv", "dev/hello/numeric", &numbers)
        .await
        .unwrap_or_else(|e| panic!("writing a test secret: {e}"));
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

/// RustyVault cannot revoke a token (`auth/token/revoke` is not there), but it expires
/// one at its TTL: the token works at login and has stopped working when the reads come.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_token_expiring_mid_run_is_said_so() {
    let vault = RustyVault::start().await;
    let admin = vault.admin();
    let mut short = vaultrs::api::token::requests::CreateTokenRequest::builder();
    short.policies(vec!["default".to_string()]).ttl("3s");
    let child = vaultrs::token::new(&admin, Some(&mut short))
        .await
        .unwrap_or_else(|e| panic!("creating a token: {e}"));
    let repo = TestRepo::standard(1);
    let (release, env) = repo.load();
    let vars = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", child.client_token.as_str()),
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
    let probe = {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(vault.address.as_str())
            .token(child.client_token.as_str())
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        vaultrs::client::VaultClient::new(settings).unwrap_or_else(|e| panic!("{e}"))
    };
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
    let vault = RustyVault::start().await;
    let repo = TestRepo::new(1, &approle_env(), support::RELEASE);
    let run = flotilla(
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
