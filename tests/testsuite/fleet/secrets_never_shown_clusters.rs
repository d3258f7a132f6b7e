//! The cluster commands with known secret values, on the local fleet (its clusters and
//! its RustyVault): `deploy`, `diff`, `history` and `status`, and a deploy whose secret
//! does not resolve, never print a value, while the values do reach the clusters.
//! `tests/testsuite/fleet/secrets_never_shown.rs` covers `secrets` and `template`. The
//! secrets live under a path of this test's own, so rotating one does not disturb other
//! tests on a shared fleet.

use crate::support::vault as support;

use base64::Engine;
use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::core::v1::Secret;
use std::collections::HashMap;
use support::{flotilla_with_only, Run, TestRepo};

const DEV_DB: &str = "leak-test-db-password-never-printed-81c3";
const DEV_ONPREM: &str = "leak-test-onprem-password-never-printed-2a97";
const DEV_API: &str = "leak-test-api-token-never-printed-5e04";
const ROTATED_API: &str = "leak-test-rotated-token-never-printed-4d2f";

fn assert_clean(what: &str, run: &Run, secrets: &[&str]) {
    for value in secrets {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for form in [value.to_string(), encoded] {
            assert!(
                !run.both().contains(&form),
                "{what}: {form:?} appears in the output:\n{}",
                run.both()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn deploy_diff_history_status_never_show_secret_values() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let onprem = clusters.last().cloned().unwrap_or_default();
    let namespace = fleet.namespace("secrets").await;
    let mut environment = support::ENVIRONMENT
        .split("clusters:\n")
        .next()
        .unwrap_or_default()
        .replace(
            "auth: { method: token }",
            "auth: { method: approle, role_id_env: VAULT_ROLE_ID, secret_id_env: VAULT_SECRET_ID }",
        );
    environment.push_str("clusters:\n");
    for (i, cluster) in clusters.iter().enumerate() {
        environment.push_str(&format!(
            "  - context: {cluster}\n    global: {{ cloud: {}, env: dev, region: r{i}, clusterName: {cluster} }}\n",
            cluster != &onprem
        ));
    }
    let release = support::RELEASE
        .replace("name: dev-dc", &format!("name: {onprem}"))
        .replace("namespace: hello", &format!("namespace: {namespace}"))
        .replace("/hello/", &format!("/{namespace}/"));
    let repo = TestRepo::new(1, &environment, &release);
    let vars: Vec<(String, String)> = fleet.env().into_iter().collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut loud = vars.clone();
    loud.push(("FLOTILLA_LOG", "trace"));
    let forbidden = [
        DEV_DB,
        DEV_ONPREM,
        DEV_API,
        ROTATED_API,
        fleet.vault_token(),
        fleet.vault_secret_id(),
    ];
    let root = repo.root();
    let admin = crate::support::rollout::vault_admin(fleet);
    for (path, key, value) in [
        ("db", "password", DEV_DB),
        ("db-onprem", "password", DEV_ONPREM),
        ("api", "token", DEV_API),
    ] {
        vaultrs::kv1::set(
            &admin,
            "kv",
            &format!("dev/{namespace}/{path}"),
            &HashMap::from([(key, value)]),
        )
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }

    let run = flotilla_with_only(root, &["-vvv", "deploy", "hello", "--env", "dev"], &loud).await;
    assert_eq!(run.code, Some(0), "deploy: {}", run.both());
    assert_clean("deploy", &run, &forbidden);

    // The values did reach every cluster: the leak checks above are not vacuous.
    for cluster in &clusters {
        let secrets: kube::Api<Secret> =
            kube::Api::namespaced(fleet.client(cluster).await, &namespace);
        let secret = secrets
            .get("hello-credentials")
            .await
            .unwrap_or_else(|e| panic!("{cluster}: {e}"));
        let data: HashMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        let db = if cluster == &onprem {
            DEV_ONPREM
        } else {
            DEV_DB
        };
        assert_eq!(
            data.get("password").map(String::as_str),
            Some(db),
            "{cluster}"
        );
        assert_eq!(
            data.get("token").map(String::as_str),
            Some(DEV_API),
            "{cluster}"
        );
    }

    // Rotate a secret in Vault: the diff has a Secret to show, and must show neither the
    // value live in the cluster nor the new one.
    let rotated = HashMap::from([("token", ROTATED_API)]);
    vaultrs::kv1::set(&admin, "kv", &format!("dev/{namespace}/api"), &rotated)
        .await
        .unwrap_or_else(|e| panic!("rotating: {e}"));
    for cluster in &clusters {
        for args in [
            vec![
                "-vvv",
                "diff",
                "hello",
                "--env",
                "dev",
                "--cluster",
                cluster,
            ],
            vec![
                "diff",
                "hello",
                "--env",
                "dev",
                "--cluster",
                cluster,
                "-o",
                "json",
            ],
            vec![
                "-vvv",
                "status",
                "hello",
                "--env",
                "dev",
                "--cluster",
                cluster,
            ],
            vec![
                "status",
                "hello",
                "--env",
                "dev",
                "--cluster",
                cluster,
                "-o",
                "json",
            ],
        ] {
            let run = flotilla_with_only(root, &args, &loud).await;
            assert!(
                matches!(run.code, Some(0) | Some(1)),
                "{}: {}",
                args.join(" "),
                run.both()
            );
            assert_clean(&args.join(" "), &run, &forbidden);
        }
    }
    // The same on every cluster at once (secrets read once for all of them).
    for args in [
        vec!["-vvv", "diff", "hello", "--env", "dev"],
        vec!["diff", "hello", "--env", "dev", "-o", "json"],
        vec!["-vvv", "status", "hello", "--env", "dev"],
    ] {
        let run = flotilla_with_only(root, &args, &loud).await;
        assert!(
            matches!(run.code, Some(0) | Some(1)),
            "{}: {}",
            args.join(" "),
            run.both()
        );
        assert_clean(&args.join(" "), &run, &forbidden);
    }
    for args in [
        vec!["-vvv", "history", "hello", "--env", "dev"],
        vec!["history", "hello", "--env", "dev", "-o", "json"],
    ] {
        let run = flotilla_with_only(root, &args, &loud).await;
        assert_eq!(run.code, Some(0), "{}: {}", args.join(" "), run.both());
        assert_clean(&args.join(" "), &run, &forbidden);
    }

    // A deploy whose secret does not resolve: exit 3, named, nothing printed of values.
    let broken = TestRepo::new(
        1,
        &environment,
        &release.replace("vaultKey: token", "vaultKey: tokn"),
    );
    let run = flotilla_with_only(
        broken.root(),
        &["-vvv", "deploy", "hello", "--env", "dev"],
        &loud,
    )
    .await;
    assert_eq!(run.code, Some(3), "broken deploy: {}", run.both());
    assert!(
        run.stderr
            .contains("key tokn: the secret has no such key (its keys: token)"),
        "{}",
        run.stderr
    );
    assert_clean("deploy with a missing key", &run, &forbidden);
}
