//! `rollback --env` in the incidents it exists for, on a dedicated fleet of four real
//! kube-apiservers in two waves: the target is decided once for the environment, so
//! every cluster lands on the same release, the one that ran before the incident.
//!
//! Each test deploys A, B (and more) to every cluster, makes the incident happen for
//! real (a crashloop halted or rolled back, a run SIGKILLed while it waits for health),
//! runs `rollback hello --env prod`, and reads every cluster's records back.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use std::process::Output;

/// Runs `query` with a kube client of `context` in the fleet.
fn in_cluster<T, F, Fut>(context: &str, query: F) -> T
where
    F: FnOnce(flotilla::cluster::ClusterHandle) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    flotilla::install_tls_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let kubeconfig = flotilla::cluster::load_kubeconfig(Some(&fleet().kubeconfig())).unwrap();
        let handle = flotilla::cluster::ClusterHandle::connect(&kubeconfig, context)
            .await
            .unwrap();
        query(handle).await
    })
}

const PROD: &[(&str, u32)] = &[("i-eu", 0), ("i-us", 0), ("i-paris", 1), ("i-asia", 1)];

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["i-eu", "i-us", "i-paris", "i-asia"])
}

/// Deploys `version` (plus `extra` flags) and returns the run's deployment id.
fn deploy(repo: &TestRepo, version: &str, extra: &[&str]) -> (Output, String) {
    let mut args = vec![
        "deploy",
        "hello",
        "--env",
        "prod",
        "--version",
        version,
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = run(fleet(), repo, &args);
    let id = json(&out)["deployment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (out, id)
}

fn deployed_ok(repo: &TestRepo, version: &str) -> String {
    let (out, id) = deploy(repo, version, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    id
}

fn rollback(repo: &TestRepo) -> Output {
    run(
        fleet(),
        repo,
        &["rollback", "hello", "--env", "prod", "-o", "json"],
    )
}

/// Every cluster runs deployment `id` (its content, version `version`) as deployed.
fn assert_everywhere(repo: &TestRepo, id: &str, version: &str) {
    for (context, _) in PROD {
        let (_, content, app) = deployed(fleet(), repo, "prod", context)
            .unwrap_or_else(|| panic!("{context}: nothing deployed"));
        assert_eq!((content.as_str(), app.as_str()), (id, version), "{context}");
    }
}

fn set_on_failure(repo: &TestRepo, policy: &str) {
    let file = repo.root().join("environments/prod.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace("on_failure: rollback", &format!("on_failure: {policy}"));
    std::fs::write(file, text).unwrap();
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn halt_then_rollback_puts_every_cluster_on_what_ran_before() {
    let repo = repo("halt", &[("prod", PROD)], "60s");
    deployed_ok(&repo, "v1");
    let b = deployed_ok(&repo, "v2");
    set_on_failure(&repo, "halt");
    let (out, _) = deploy(&repo, "v3", &["--set", "breakIn=i-paris"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(json(&out)["overall"], "halted");

    // What on-call reads first: the crashlooping cluster is failing, with its reason,
    // and status exits 1; the others are healthy.
    let status = run(
        fleet(),
        &repo,
        &["status", "hello", "--env", "prod", "-o", "json"],
    );
    assert_eq!(status.status.code(), Some(1), "{}", describe(&status));
    let report = json(&status);
    assert_eq!(report["i-paris"]["health"], "failing", "{report:#}");
    let reason = report["i-paris"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("CrashLoopBackOff"), "{report:#}");
    for healthy in ["i-eu", "i-us"] {
        assert_eq!(report[healthy]["health"], "healthy", "{report:#}");
    }
    let table = run(fleet(), &repo, &["status", "hello", "--env", "prod"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("failing: pod "), "{text}");
    // The reason once: in the table, not again on the last line.
    assert_eq!(
        text.matches("CrashLoopBackOff").count(),
        2,
        "cell and details: {text}"
    );
    let stderr = String::from_utf8_lossy(&table.stderr);
    assert!(
        stderr.contains("error: hello is failing in i-paris (why: in the table above)")
            && !stderr.contains("CrashLoopBackOff"),
        "{}",
        describe(&table)
    );
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("hello is failing in i-paris: pod "),
        "with -o json, stderr says why: {}",
        describe(&status)
    );

    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["target"], b.as_str(), "{}", describe(&out));
    assert_everywhere(&repo, &b, "v2");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn automatic_rollback_then_rollback_goes_to_the_release_before() {
    let repo = repo("auto", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    let b = deployed_ok(&repo, "v2");
    // D is healthy in three clusters and crashloops in the fourth: the run puts all back.
    let (out, _) = deploy(&repo, "v3", &["--set", "breakIn=i-asia"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(json(&out)["overall"], "rolled-back");
    assert_everywhere(&repo, &b, "v2");

    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_everywhere(&repo, &a, "v1");
}

/// The on-call's most common sequence: A, a bad deploy undone at once in the canary
/// wave, a fix B, then B is bad too. The automatic restore brought A back, so A is the
/// target (it used to be marked rolled back, and the rollback found nothing).
#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_after_a_crash_undone_in_the_canary_wave_then_a_fix() {
    let repo = repo("canary-undone", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    let (out, _) = deploy(&repo, "v2", &["--set", "breakIn=i-eu"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(json(&out)["overall"], "rolled-back");
    assert_everywhere(&repo, &a, "v1");
    let b = deployed_ok(&repo, "v3");
    assert_everywhere(&repo, &b, "v3");

    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["target"], a.as_str(), "{}", describe(&out));
    assert_everywhere(&repo, &a, "v1");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_twice_steps_back_twice_and_a_third_has_nothing_to_go_to() {
    let repo = repo("twice", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    let b = deployed_ok(&repo, "v2");
    deployed_ok(&repo, "v3");
    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_everywhere(&repo, &b, "v2");
    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_everywhere(&repo, &a, "v1");
    // Never forward to what a rollback undid: nothing is left, nothing changes.
    let out = rollback(&repo);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no earlier complete deployment"),
        "{}",
        describe(&out)
    );
    assert_everywhere(&repo, &a, "v1");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_ci_rerun_of_identical_content_is_not_a_rollback_target() {
    let repo = repo("rerun", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    deployed_ok(&repo, "v2");
    deployed_ok(&repo, "v2");
    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_everywhere(&repo, &a, "v1");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn dry_run_names_the_target_per_cluster_and_changes_nothing() {
    let repo = repo("dry", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    let b = deployed_ok(&repo, "v2");
    let out = run(
        fleet(),
        &repo,
        &["rollback", "hello", "--env", "prod", "--dry-run"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("rollback to deployment {a}")),
        "{text}"
    );
    for (context, _) in PROD {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(context))
            .unwrap_or_else(|| panic!("no row for {context}: {text}"));
        assert!(row.contains(&b) && row.contains(&a), "{row}");
    }
    assert_everywhere(&repo, &b, "v2");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_sigkilled_deploy_then_rollback_returns_to_what_ran_before() {
    let repo = repo("killed", &[("prod", PROD)], "120s");
    deployed_ok(&repo, "v1");
    let b = deployed_ok(&repo, "v3");
    // The run waits for i-paris, whose pods never become ready; kill it there.
    let mut broken = spawn_broken_deploy(fleet(), &repo, "i-paris", "[i-paris] waiting");
    broken.child.kill().unwrap(); // SIGKILL
    let _ = broken.finish();

    // The killed run's lease in i-paris names a process of this host that is gone: the
    // rollback takes it over at once.
    let out = rollback(&repo);
    assert!(out.status.success(), "{}", describe(&out));
    assert_everywhere(&repo, &b, "v3");
}

/// Writes `value` as key `password` at `path` (KV v1) in the fleet's Vault.
fn vault_write(path: &str, value: &str) {
    let env = fleet().env();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", "-H"])
        .arg(format!("X-Vault-Token: {}", env["VAULT_TOKEN"]))
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(serde_json::json!({ "password": value }).to_string())
        .arg(format!("{}/v1/{path}", env["VAULT_ADDR"]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vault write {path}: {}",
        describe(&out)
    );
}

/// The data of Secret `hello-db` in `context`, decoded.
fn secret_data(repo: &TestRepo, context: &str) -> std::collections::BTreeMap<String, String> {
    in_cluster(context, |handle| async move {
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(handle.client(), &repo.namespace);
        let secret = secrets.get("hello-db").await.unwrap();
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect()
    })
}

fn edit(repo: &TestRepo, file: &str, from: &str, to: &str) {
    let path = repo.root().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file}: no {from:?} in {text}");
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_renders_the_recorded_chart_with_fresh_secrets_and_no_descriptor() {
    let repo = repo("records", &[("prod", PROD)], "60s");
    // A path of its own, so the rotation below concerns this test only.
    let path = format!("kv/prod/{}/db", repo.namespace);
    vault_write(&path, "first-value");
    edit(
        &repo,
        "releases/hello/release.yaml",
        "kv/{{global.env}}/hello/db",
        &path,
    );
    let a = deployed_ok(&repo, "v1");
    // B renames the Secret's key, then the credential is rotated, then the bad commit
    // breaks the descriptor.
    edit(
        &repo,
        "releases/hello/chart/templates/secret.yaml",
        "  password:",
        "  pw:",
    );
    deployed_ok(&repo, "v2");
    assert!(secret_data(&repo, "i-eu").contains_key("pw"));
    vault_write(&path, "rotated-value");
    let descriptor = repo.root().join("releases/hello/release.yaml");
    let good = std::fs::read_to_string(&descriptor).unwrap();
    std::fs::write(
        &descriptor,
        "apiVersion: flotilla/v1\nkind: Release\nmetadata: [broken\n",
    )
    .unwrap();

    // The namespace named (without it, the records' labels say where they are:
    // `records_fleet.rs`).
    let out = run(
        fleet(),
        &repo,
        &[
            "rollback",
            "hello",
            "--env",
            "prod",
            "--namespace",
            &repo.namespace,
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    // (`history`, which the checks below use, reads the descriptor.)
    std::fs::write(&descriptor, good).unwrap();
    assert_everywhere(&repo, &a, "v1");
    for (context, _) in PROD {
        let data = secret_data(&repo, context);
        // A's shape (the old key), with the value Vault holds now (the rotated one).
        assert_eq!(
            data.get("password").map(String::as_str),
            Some("rotated-value"),
            "{context}: {data:?}"
        );
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_with_vault_down_keeps_only_what_needs_its_secrets_live() {
    let repo = repo("vault-down", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    edit(
        &repo,
        "releases/hello/chart/templates/secret.yaml",
        "  password:",
        "  pw:",
    );
    deployed_ok(&repo, "v2");
    // Incidents do not wait for Vault: nothing listens at this address.
    let out = command(
        fleet(),
        &repo,
        &["rollback", "hello", "--env", "prod", "-o", "json"],
    )
    .env("VAULT_ADDR", "http://127.0.0.1:1")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Vault could not be read"), "{stderr}");
    assert!(
        stderr.contains("Secret") && stderr.contains("hello-db keeps its live values"),
        "{stderr}"
    );
    // The report says, per cluster and object, what was kept live and why.
    let report = json(&out);
    for (context, _) in PROD {
        let row = report["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cluster"] == *context)
            .unwrap();
        let kept: Vec<&str> = row["kept_live"]
            .as_array()
            .map(|k| k.iter().filter_map(|o| o["object"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            kept,
            [format!("Secret {}/hello-db", repo.namespace)],
            "{context}: {row:#}"
        );
        assert!(row["kept_live"][0]["why"]
            .as_str()
            .unwrap()
            .contains("Vault"));
    }
    // The Deployment went back to A; the Secret, which needs Vault, kept B's live data.
    assert_everywhere(&repo, &a, "v1");
    for (context, _) in PROD {
        let data = secret_data(&repo, context);
        assert!(data.contains_key("pw"), "{context}: {data:?}");
    }
}

/// Right after an automatic restore nothing of the failed revision is left: the
/// Secrets come from the restored revision's own record (values read again from
/// Vault), so `status` shows no drift and `diff --exit-code` finds nothing to change.
#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn after_an_automatic_restore_nothing_drifts_and_diff_finds_nothing() {
    let repo = repo("restore-clean", &[("prod", PROD)], "60s");
    let a = deployed_ok(&repo, "v1");
    // The failed version's Secret differs from A's in more than its values.
    edit(
        &repo,
        "releases/hello/chart/templates/secret.yaml",
        "  name: {{Release.Name}}-db\n",
        "  name: {{Release.Name}}-db\n  annotations:\n    shape: \"{{Release.Version}}\"\n",
    );
    let (out, _) = deploy(&repo, "v2", &["--set", "breakIn=i-asia"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_everywhere(&repo, &a, "v1");

    let status = run(
        fleet(),
        &repo,
        &["status", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(status.status.success(), "{}", describe(&status));
    let report = json(&status);
    for (context, _) in PROD {
        let objects = report[*context]["objects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!objects.is_empty(), "{context}: {}", describe(&status));
        for object in objects {
            let drift = object["drift"].as_array().cloned().unwrap_or_default();
            assert!(
                drift.is_empty(),
                "{context}: {object} drifted: {}",
                describe(&status)
            );
        }
    }
    // The checkout is back on what runs (the incident's fix: revert the bad commit).
    edit(
        &repo,
        "releases/hello/chart/templates/secret.yaml",
        "  name: {{Release.Name}}-db\n  annotations:\n    shape: \"{{Release.Version}}\"\n",
        "  name: {{Release.Name}}-db\n",
    );
    let diff = run(
        fleet(),
        &repo,
        &[
            "diff",
            "hello",
            "--env",
            "prod",
            "--version",
            "v1",
            "--exit-code",
        ],
    );
    assert_eq!(diff.status.code(), Some(0), "{}", describe(&diff));
}
