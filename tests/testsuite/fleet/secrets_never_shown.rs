//! Known secret values (and the credentials that read them) never appear in what flotilla
//! prints: stdout, stderr, logs at every verbosity, on success and on every error path.
//! `template --show-secrets` is the one place values are asked for, and the control that
//! shows the values were really read. The cluster commands (deploy, diff, history,
//! status) join this list as they land.
//!
//! The Vault here is a real HashiCorp Vault of the test's own (`support::real_vault`):
//! an ACL policy denies a read, a token with a use limit stops working mid-run, and the
//! last case seals it.

use crate::support::vault as support;

use base64::Engine;
use serde_json::json;
use support::real_vault::{RealVault, READER};
use support::{flotilla_with_only, Run, TestRepo};

const DB: &str = "Zq8-db-value-never-printed";
const ONPREM: &str = "Yx3-onprem-value-never-printed";
const API: &str = "Wk5-api-value-never-printed";
// Vault refuses a custom token id with a `.` in it (so no `hvs.` prefix).
const TOKEN: &str = "read-token-never-printed";
const SHORT_TOKEN: &str = "short-token-never-printed";
const DENIED_TOKEN: &str = "denied-token-never-printed";
const SECRET_ID: &str = "approle-secret-id-never-printed";

/// Every form a value could leak in: as is, base64 (a Secret's `data`), JSON-escaped.
fn forbidden() -> Vec<String> {
    let mut all = Vec::new();
    for value in [DB, ONPREM, API, TOKEN, SHORT_TOKEN, DENIED_TOKEN, SECRET_ID] {
        all.push(value.to_string());
        all.push(base64::engine::general_purpose::STANDARD.encode(value));
        // A distinctive inner piece, so a truncated or reformatted value is caught too.
        all.push(value[..12].to_string());
    }
    all
}

fn assert_clean(what: &str, run: &Run) {
    for value in forbidden() {
        assert!(
            !run.stdout.contains(&value) && !run.stderr.contains(&value),
            "{what}: {value:?} appears in the output:\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout,
            run.stderr
        );
    }
}

async fn vault() -> RealVault {
    let vault = RealVault::start(2).await;
    vault
        .put("dev/hello/db", json!({ "password": DB, "port": 5432 }))
        .await;
    vault
        .put("dev/hello/db-onprem", json!({ "password": ONPREM }))
        .await;
    vault.put("dev/hello/api", json!({ "token": API })).await;
    vault
        .policy(
            "db-only",
            "path \"kv/data/dev/hello/db\" {\n  capabilities = [\"read\"]\n}\n",
        )
        .await;
    vault.token(&[READER], json!({ "id": TOKEN })).await;
    vault
        .token(&["db-only"], json!({ "id": DENIED_TOKEN }))
        .await;
    // Two uses: flotilla's lookup-self at login, then one read; Vault revokes it then.
    vault
        .token(&[READER], json!({ "id": SHORT_TOKEN, "num_uses": 2 }))
        .await;
    vault.approle("hello", &[READER], "role-1", SECRET_ID).await;
    vault
}

/// What each case's output must say, so a case cannot pass by failing early for
/// another reason.
fn expected(what: &str) -> &'static str {
    let table = [
        ("missing key", "the secret has no such key"),
        ("not a string", "is a number, not a string"),
        (
            "permission denied",
            "permission denied: the token's policies do not allow",
        ),
        ("refused token", "refused the token credentials"),
        ("expiring mid-run", "expired or was revoked during the run"),
        ("approle refused", "refused the approle credentials"),
        ("template error", "Values.nope"),
        ("secrets policy", "capabilities = [\"read\"]"),
        ("template", "kind: Secret"),
        ("secrets check", "dev-dc"),
    ];
    table
        .iter()
        .find(|(case, _)| what.contains(case))
        .map(|(_, text)| *text)
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn secret_values_never_appear_in_output_or_logs() {
    let vault = vault().await;
    let addr = vault.address.as_str();
    let good = TestRepo::standard(2);
    let missing_key = TestRepo::new(
        2,
        support::ENVIRONMENT,
        &support::RELEASE.replace("vaultKey: token", "vaultKey: tokn"),
    );
    let not_string = TestRepo::new(
        2,
        support::ENVIRONMENT,
        &support::RELEASE.replace(
            "vaultPath: kv/dev/hello/db-onprem\n          vaultKey: password",
            "vaultPath: kv/dev/hello/db\n          vaultKey: port",
        ),
    );
    let approle = TestRepo::new(
        2,
        &support::ENVIRONMENT.replace(
            "auth: { method: token }",
            "auth: { method: approle, role_id_env: ROLE, secret_id_env: SECRET }",
        ),
        support::RELEASE,
    );
    let broken_chart = TestRepo::standard(2);
    std::fs::write(
        broken_chart.file("releases/hello/chart/templates/broken.yaml"),
        "kind: ConfigMap\nmetadata:\n  name: {{Values.secrets.[db-password]}}-{{Values.nope}}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let token = [("VAULT_ADDR", addr), ("VAULT_TOKEN", TOKEN)];
    let loud = [
        ("VAULT_ADDR", addr),
        ("VAULT_TOKEN", TOKEN),
        ("FLOTILLA_LOG", "trace"),
    ];
    let check = ["secrets", "check", "hello", "--env", "dev"];
    let check_json = ["secrets", "check", "hello", "--env", "dev", "-o", "json"];
    let check_loud = ["-vvv", "secrets", "check", "hello", "--env", "dev"];
    let template = ["template", "hello", "--env", "dev"];
    let template_one = ["template", "hello", "--env", "dev", "--cluster", "dev-dc"];
    let show = [
        "-vvv",
        "template",
        "hello",
        "--env",
        "dev",
        "--show-secrets",
    ];

    // (what, repo, args, vars, expected exit code); the case's name is also what the
    // output must show happened (see `expected` below).
    type Case<'a> = (
        &'a str,
        &'a TestRepo,
        &'a [&'a str],
        Vec<(&'a str, &'a str)>,
        i32,
    );
    let cases: Vec<Case> = vec![
        ("secrets check", &good, &check, token.to_vec(), 0),
        (
            "secrets check -o json",
            &good,
            &check_json,
            token.to_vec(),
            0,
        ),
        (
            "secrets check -vvv, trace log",
            &good,
            &check_loud,
            loud.to_vec(),
            0,
        ),
        (
            "secrets policy",
            &good,
            &["secrets", "policy", "hello", "--env", "dev"],
            token.to_vec(),
            0,
        ),
        ("template", &good, &template, token.to_vec(), 0),
        (
            "template --cluster",
            &good,
            &template_one,
            token.to_vec(),
            0,
        ),
        (
            "secrets check, missing key",
            &missing_key,
            &check_loud,
            loud.to_vec(),
            3,
        ),
        (
            "secrets check, not a string",
            &not_string,
            &check_json,
            token.to_vec(),
            3,
        ),
        (
            "template --show-secrets, missing key",
            &missing_key,
            &show,
            loud.to_vec(),
            3,
        ),
        (
            "template --show-secrets, not a string",
            &not_string,
            &show,
            loud.to_vec(),
            3,
        ),
        (
            "secrets check, permission denied",
            &good,
            &check_loud,
            vec![
                ("VAULT_ADDR", addr),
                ("VAULT_TOKEN", DENIED_TOKEN),
                ("FLOTILLA_LOG", "trace"),
            ],
            3,
        ),
        (
            "template --show-secrets, permission denied",
            &good,
            &show,
            vec![("VAULT_ADDR", addr), ("VAULT_TOKEN", DENIED_TOKEN)],
            3,
        ),
        (
            "secrets check, refused token",
            &good,
            &check_loud,
            vec![
                ("VAULT_ADDR", addr),
                ("VAULT_TOKEN", "hvs.unknown-token-never-printed"),
                ("FLOTILLA_LOG", "trace"),
            ],
            3,
        ),
        (
            "template --show-secrets, token expiring mid-run",
            &good,
            &show,
            vec![
                ("VAULT_ADDR", addr),
                ("VAULT_TOKEN", SHORT_TOKEN),
                ("FLOTILLA_LOG", "trace"),
            ],
            3,
        ),
        (
            "secrets check, approle refused",
            &approle,
            &check_loud,
            vec![
                ("VAULT_ADDR", addr),
                ("ROLE", "role-2"),
                ("SECRET", SECRET_ID),
                ("FLOTILLA_LOG", "trace"),
            ],
            3,
        ),
        (
            "secrets check, approle",
            &approle,
            &check_loud,
            vec![
                ("VAULT_ADDR", addr),
                ("ROLE", "role-1"),
                ("SECRET", SECRET_ID),
                ("FLOTILLA_LOG", "trace"),
            ],
            0,
        ),
        (
            "template --show-secrets, template error after reading the secrets",
            &broken_chart,
            &show,
            loud.to_vec(),
            2,
        ),
    ];
    for (what, repo, args, vars, code) in &cases {
        let run = flotilla_with_only(repo.root(), args, vars).await;
        assert_eq!(run.code, Some(*code), "{what}: {}", run.both());
        assert!(
            run.both().contains(expected(what)),
            "{what}: {}",
            run.both()
        );
        assert_clean(what, &run);
    }

    // The sealed path last: it seals this Vault for good.
    vault.seal().await;
    let run = flotilla_with_only(good.root(), &check_loud, &loud).await;
    assert_eq!(run.code, Some(3), "sealed: {}", run.both());
    assert_clean("secrets check, sealed", &run);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn template_shows_the_values_only_when_asked() {
    let vault = vault().await;
    let repo = TestRepo::standard(2);
    let vars = [
        ("VAULT_ADDR", vault.address.as_str()),
        ("VAULT_TOKEN", TOKEN),
    ];

    let plain =
        flotilla_with_only(repo.root(), &["template", "hello", "--env", "dev"], &vars).await;
    assert_eq!(plain.code, Some(0), "{}", plain.both());
    assert!(
        plain.stdout.contains("password: <secret:db-password>"),
        "{}",
        plain.stdout
    );
    assert!(
        vault.read_paths().is_empty(),
        "template without --show-secrets read Vault"
    );

    let shown = flotilla_with_only(
        repo.root(),
        &[
            "template",
            "hello",
            "--env",
            "dev",
            "--cluster",
            "dev-dc",
            "--show-secrets",
        ],
        &vars,
    )
    .await;
    assert_eq!(shown.code, Some(0), "{}", shown.both());
    assert!(
        shown.stdout.contains(&format!("password: {ONPREM}\n")),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains(&format!("token: {API}\n")),
        "{}",
        shown.stdout
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(ONPREM);
    assert!(shown.stdout.contains(&encoded), "{}", shown.stdout);
    assert!(!shown.stdout.contains(DB), "dev-dc takes its own db entry");
    assert!(shown.stderr.is_empty(), "{}", shown.stderr);

    // Only the cluster shown was resolved: db-onprem and api, not db.
    assert_eq!(
        vault.read_paths(),
        vec!["kv/data/dev/hello/api", "kv/data/dev/hello/db-onprem"]
    );

    // With every log on, the values are on stdout (asked for) and nowhere in the log.
    let mut loud = vars.to_vec();
    loud.push(("FLOTILLA_LOG", "trace"));
    let logged = flotilla_with_only(
        repo.root(),
        &[
            "-vvv",
            "template",
            "hello",
            "--env",
            "dev",
            "--show-secrets",
        ],
        &loud,
    )
    .await;
    assert_eq!(logged.code, Some(0), "{}", logged.both());
    assert!(logged.stdout.contains(DB), "{}", logged.stdout);
    assert!(!logged.stderr.is_empty(), "no log at trace level");
    for value in forbidden() {
        assert!(
            !logged.stderr.contains(&value),
            "{value:?} logged:\n{}",
            logged.stderr
        );
    }
}
