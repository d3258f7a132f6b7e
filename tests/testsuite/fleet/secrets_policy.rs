//! `secrets policy` proven on the fleet: the policy flotilla prints for `hello` in `dev`
//! is written to the fleet's HashiCorp Vault as it is; an AppRole role and a token bound
//! only to it deploy the example release to every dev cluster; and a read of any path
//! outside it is denied by Vault (403).

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use flotilla_fleet::vault::{Api, Method};
use rollout_support::{at_root, copy_of_this_repo as repo, ok};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

/// flotilla with the fleet's KUBECONFIG and VAULT_ADDR, and only the Vault credentials
/// given (none of the fleet's root token or AppRole).
fn with_vault_login(fleet: &Fleet, root: &Path, args: &[&str], vault: &[(&str, &str)]) -> Output {
    at_root(fleet, root, args)
        .env_remove("VAULT_ROLE_ID")
        .env_remove("VAULT_SECRET_ID")
        .envs(vault.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_token_and_an_approle_bound_only_to_the_generated_policy_deploy() {
    let fleet = Fleet::shared();
    assert_eq!(
        fleet.vault_kind(),
        flotilla_fleet::state::VaultKind::HashiCorp,
        "this test needs the fleet's HashiCorp Vault (RustyVault, the fallback, has no ACL)"
    );
    let namespace = fleet.namespace("policy").await;
    let repo = repo(&namespace);
    let root = repo.path();
    let address = fleet.vault_addr();
    let admin = Api::new(&address, Some(fleet.vault_token()));

    let policy = ok(with_vault_login(
        fleet,
        root,
        &["secrets", "policy", "hello", "--env", "dev"],
        &[],
    ));
    let name = format!("hello-dev-{namespace}");
    admin
        .call(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": policy })),
        )
        .await
        .unwrap();
    let (role_id, secret_id) = (format!("{name}-role"), format!("{name}-secret"));
    for (path, body) in [
        (
            format!("auth/approle/role/{name}"),
            json!({ "token_policies": [name], "secret_id_num_uses": 0 }),
        ),
        (
            format!("auth/approle/role/{name}/role-id"),
            json!({ "role_id": role_id }),
        ),
        (
            format!("auth/approle/role/{name}/custom-secret-id"),
            json!({ "secret_id": secret_id }),
        ),
    ] {
        admin.call(Method::POST, &path, Some(body)).await.unwrap();
    }

    // The example's dev environment logs in with AppRole from these variables.
    ok(with_vault_login(
        fleet,
        root,
        &["deploy", "hello", "--env", "dev"],
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &secret_id)],
    ));

    // A token with only that policy (and `default`) deploys too.
    let created: Value = admin
        .call(
            Method::POST,
            "auth/token/create",
            Some(json!({ "policies": [name], "ttl": "10m" })),
        )
        .await
        .unwrap();
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let dev = root.join("environments/dev.yaml");
    let text = std::fs::read_to_string(&dev).unwrap();
    let with_token = text.replace(
        "auth: { method: approle, role_id_env: VAULT_ROLE_ID, secret_id_env: VAULT_SECRET_ID }",
        "auth: { method: token }",
    );
    assert_ne!(
        text, with_token,
        "environments/dev.yaml changed its auth line"
    );
    std::fs::write(&dev, with_token).unwrap();
    ok(with_vault_login(
        fleet,
        root,
        &["deploy", "hello", "--env", "dev", "--version", "1.1.0"],
        &[("VAULT_TOKEN", &token)],
    ));
    let history = ok(with_vault_login(
        fleet,
        root,
        &["history", "hello", "--env", "dev", "-o", "json"],
        &[("VAULT_TOKEN", &token)],
    ));
    assert!(history.contains("1.1.0"), "{history}");

    // Outside the policy: another environment's secrets, another release's, a sibling.
    let as_token = Api::new(&address, Some(&token));
    for path in [
        "kv/prod/hello/db",
        "kv/staging/hello/api",
        "kv/dev/other/db",
        "kv/dev/hello/other",
        "kv2/data/dev/hello/db",
    ] {
        let err = as_token
            .call(Method::GET, path, None)
            .await
            .err()
            .unwrap_or_else(|| panic!("{path} was readable with the release's policy"));
        assert!(err.to_string().contains("403 Forbidden"), "{path}: {err}");
    }
}
