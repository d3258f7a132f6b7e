//! Secrets against a fake Vault API, for what RustyVault (the fleet's Vault) lacks: KV v2
//! with versions, ACL denials, Kubernetes auth, sealing, a token that stops working
//! mid-run. Every test that talks to the fake says `fake_vault` in its name.

#[path = "vault_support/mod.rs"]
mod support;

use flotilla::exit::{Classify, ExitKind};
use flotilla::vault::{
    resolve_for_environment, ReadProblem, SecretPlan, SecretReader, VaultEnv, VaultError,
    VaultSession,
};
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

fn values_of(resolution: &flotilla::vault::Resolution, context: &str) -> Vec<(String, String)> {
    resolution
        .secrets
        .exposed(context)
        .into_iter()
        .collect::<Vec<_>>()
}

#[tokio::test]
async fn kv2_resolves_default_and_own_context_entries_reading_each_path_once_fake_vault() {
    let vault = seeded(2).await;
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let resolution = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pair = |id: &str, v: &str| (id.to_string(), v.to_string());
    assert_eq!(
        values_of(&resolution, "dev-a"),
        vec![pair("api-token", API), pair("db-password", DB_V2)]
    );
    assert_eq!(
        values_of(&resolution, "dev-b"),
        values_of(&resolution, "dev-a")
    );
    assert_eq!(
        values_of(&resolution, "dev-dc"),
        vec![pair("api-token", API), pair("db-password", ONPREM)]
    );
    // Six mappings over three clusters, three distinct paths: three reads, counted at
    // the client and seen by the server.
    assert_eq!(resolution.reads, 3);
    let reads = vault.kv_reads();
    let mut paths: Vec<&str> = reads.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/v1/kv/data/dev/hello/api",
            "/v1/kv/data/dev/hello/db",
            "/v1/kv/data/dev/hello/db-onprem"
        ]
    );
}

#[tokio::test]
async fn kv2_pinned_version_is_read_at_that_version_fake_vault() {
    let vault = seeded(2).await;
    let release = support::RELEASE.replace(
        "  secrets:\n",
        "  secrets:\n    - secret_id: db-previous\n      contexts:\n        - name: default\n          vaultPath: kv/dev/hello/db\n          vaultKey: password\n          version: 1\n",
    );
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let resolution = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = resolution.secrets.exposed("dev-a");
    assert_eq!(a.get("db-previous").map(String::as_str), Some(DB_V1));
    assert_eq!(a.get("db-password").map(String::as_str), Some(DB_V2));
    // (path, version) is the unit: db at version 1 and db at latest are two reads.
    assert_eq!(resolution.reads, 4);
    let pinned: Vec<_> = vault
        .kv_reads()
        .into_iter()
        .filter(|r| r.query.as_deref() == Some("version=1"))
        .map(|r| r.path)
        .collect();
    assert_eq!(pinned, vec!["/v1/kv/data/dev/hello/db"]);
}

#[tokio::test]
async fn kv2_missing_or_deleted_version_names_secret_context_path_and_key_fake_vault() {
    let vault = seeded(2).await;
    vault.state().secrets.insert(
        "dev/hello/api".into(),
        vec![None, Some(json!({ "token": API }))],
    );
    let release = support::RELEASE
        .replace(
            "vaultPath: \"kv/{{global.env}}/hello/api\"\n          vaultKey: token\n",
            "vaultPath: \"kv/{{global.env}}/hello/api\"\n          vaultKey: token\n          version: 1\n",
        )
        .replace("vaultPath: kv/dev/hello/db-onprem", "vaultPath: kv/dev/hello/db-gone");
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .err()
        .unwrap_or_else(|| panic!("resolved"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let text = err.to_string();
    assert!(
        text.contains("secret_id api-token, contexts dev-a, dev-b, dev-dc, path kv/dev/hello/api (version 1), key token: version 1 of this secret was deleted (404)"),
        "{text}"
    );
    assert!(
        text.contains("secret_id db-password, context dev-dc, path kv/dev/hello/db-gone, key password: no secret at this path (404)"),
        "{text}"
    );
}

#[tokio::test]
async fn missing_key_and_non_string_values_are_named_without_values_fake_vault() {
    let vault = seeded(2).await;
    let release = support::RELEASE
        .replace("vaultKey: token", "vaultKey: port")
        .replace(
            "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: password",
            "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: passwd",
        );
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
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
    for value in [DB_V1, DB_V2, ONPREM, API, "8443"] {
        assert!(!text.contains(value), "{value} in {text}");
    }
}

#[tokio::test]
async fn permission_denied_names_the_path_a_policy_must_allow_fake_vault() {
    let vault = seeded(2).await;
    vault.token(
        "ci-token",
        Token {
            readable: Some(vec![
                "kv/data/dev/hello/db".into(),
                "kv/data/dev/hello/db-onprem".into(),
            ]),
            kv_reads_left: None,
            ..Token::default()
        },
    );
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let err = resolve_for_environment(&release, &env, &vars(&vault, "ci-token"))
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
        matches!(&failures[0].problem, ReadProblem::PermissionDenied { api_path, .. } if api_path == "kv/data/dev/hello/api"),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "permission denied: the token's policies do not allow `read` on kv/data/dev/hello/api"
        ),
        "{err}"
    );

    // The policy command prints exactly what was missing.
    let run = flotilla(
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

#[tokio::test]
async fn kubernetes_login_sends_the_jwt_file_and_role_fake_vault() {
    let vault = seeded(2).await;
    let repo = TestRepo::standard(2);
    let jwt_file = repo.file("sa-token");
    std::fs::write(&jwt_file, "eyJhbGciOiJSUzI1NiJ9.sa.sig\n").unwrap_or_else(|e| panic!("{e}"));
    let environment = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        &format!(
            "auth: {{ method: kubernetes, role: hello-dev, jwt_file: {} }}",
            jwt_file.display()
        ),
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    let vars = VaultEnv::from_vars([("VAULT_ADDR", vault.address.as_str())]);

    // Not yet known to Vault: refused, exit 3, the role and the file named.
    let err = resolve_for_environment(&release, &env, &vars)
        .await
        .err()
        .unwrap_or_else(|| panic!("logged in"));
    assert_eq!(err.exit_kind(), ExitKind::Environment);
    let text = err.to_string();
    assert!(
        text.contains(
            "refused the kubernetes credentials (auth/kubernetes login, role hello-dev, JWT from "
        ) && text.contains("HTTP 403: permission denied"),
        "{text}"
    );
    assert!(!text.contains("eyJhbGci"), "{text}");

    vault.state().kubernetes.insert(
        ("hello-dev".into(), "eyJhbGciOiJSUzI1NiJ9.sa.sig".into()),
        "k8s-issued-token".into(),
    );
    vault.token("k8s-issued-token", Token::default());
    let resolution = resolve_for_environment(&release, &env, &vars)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        resolution
            .secrets
            .exposed("dev-dc")
            .get("db-password")
            .map(String::as_str),
        Some(ONPREM)
    );
    let state = vault.state();
    let reads: Vec<_> = state
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/v1/kv/"))
        .collect();
    assert!(
        reads
            .iter()
            .all(|r| r.token.as_deref() == Some("k8s-issued-token")),
        "{reads:?}"
    );
}

#[tokio::test]
async fn approle_login_failure_is_exit_3_naming_the_variables_fake_vault() {
    let vault = seeded(2).await;
    let environment = support::ENVIRONMENT.replace(
        "auth: { method: token }",
        "auth: { method: approle, role_id_env: HELLO_ROLE_ID, secret_id_env: HELLO_SECRET_ID }",
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    vault
        .state()
        .approles
        .insert(("role-1".into(), "secret-1".into()), "approle-token".into());
    vault.token("approle-token", Token::default());

    let wrong = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("HELLO_ROLE_ID", "role-1"),
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
        ("HELLO_ROLE_ID", "role-1"),
        ("HELLO_SECRET_ID", "secret-1"),
    ]);
    let resolution = resolve_for_environment(&release, &env, &right)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resolution.reads, 3);
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
async fn a_token_that_expires_mid_run_is_said_so_fake_vault() {
    let vault = seeded(2).await;
    vault.token(
        "short-lived",
        Token {
            readable: None,
            kv_reads_left: Some(1),
            ..Token::default()
        },
    );
    let repo = TestRepo::standard(2);
    let (release, env) = repo.load();
    let session = VaultSession::connect(
        env.environment
            .vault
            .as_ref()
            .unwrap_or_else(|| panic!("vault")),
        &env.file,
        &vars(&vault, "short-lived"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = SecretPlan::build(&release, &env).unwrap_or_else(|e| panic!("{e}"));
    // One read at a time, so the first succeeds and the second meets the expiry.
    let first = session.read("dev/hello/api", None).await;
    assert!(first.is_ok(), "{first:?}");
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

#[tokio::test]
async fn a_sealed_vault_is_an_environment_error_fake_vault() {
    let vault = seeded(2).await;
    vault.state().sealed = true;
    let repo = TestRepo::standard(2);
    let run = flotilla(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[
            ("VAULT_ADDR", &vault.address),
            ("VAULT_TOKEN", "root-token"),
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

#[tokio::test]
async fn namespace_from_the_variable_overrides_the_file_fake_vault() {
    let vault = seeded(2).await;
    let environment = support::ENVIRONMENT.replace(
        "  auth: { method: token }",
        "  namespace: team-a\n  auth: { method: token }",
    );
    let repo = TestRepo::new(2, &environment, support::RELEASE);
    let (release, env) = repo.load();
    resolve_for_environment(&release, &env, &vars(&vault, "root-token"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let with_variable = VaultEnv::from_vars([
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", "root-token"),
        ("VAULT_NAMESPACE", "team-b"),
    ]);
    resolve_for_environment(&release, &env, &with_variable)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let namespaces: Vec<Option<String>> =
        vault.kv_reads().into_iter().map(|r| r.namespace).collect();
    assert_eq!(namespaces.len(), 6);
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

#[tokio::test]
async fn secrets_check_reports_every_mapping_as_table_and_json_fake_vault() {
    let vault = seeded(2).await;
    let release = support::RELEASE.replace(
        "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: password",
        "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: passwd",
    );
    let repo = TestRepo::new(2, support::ENVIRONMENT, &release);
    let vars = [
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", "root-token"),
    ];
    let run = flotilla(
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

    let run = flotilla(
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

#[tokio::test]
async fn secrets_check_passes_when_every_mapping_resolves_fake_vault() {
    let vault = seeded(1).await;
    let repo = TestRepo::standard(1);
    let run = flotilla(
        repo.root(),
        &["secrets", "check", "hello", "--env", "dev"],
        &[
            ("VAULT_ADDR", &vault.address),
            ("VAULT_TOKEN", "root-token"),
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
async fn the_token_file_in_home_is_used_when_vault_token_is_unset_fake_vault() {
    let vault = seeded(1).await;
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(home.path().join(".vault-token"), "root-token\n")
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
