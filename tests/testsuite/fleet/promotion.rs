//! Promotion of the exact artifact, on a dedicated fleet of four real kube-apiservers
//! (two dev clusters, two prod clusters; simulated kubelet, real Vault): prod gets the
//! chart and values dev ran, not an edited checkout; disagreeing or unhealthy sources
//! are refused; `promote --check` exit codes; a promotion chain's gate; provenance in
//! `history`.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rollout_support::*;
use std::collections::BTreeMap;

const DEV: &[(&str, u32)] = &[("p-dev1", 0), ("p-dev2", 0)];
const PROD: &[(&str, u32)] = &[("p-prod1", 0), ("p-prod2", 0)];

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["p-dev1", "p-dev2", "p-prod1", "p-prod2"])
}

/// The test repo with a ConfigMap that shows each layer of the values: the chart's
/// (`edition`), the environment override (`tier`), the command line (`fromSet`) and
/// the cluster's globals (`env`).
fn promotion_repo(test: &str) -> TestRepo {
    let repo = repo(test, &[("dev", DEV), ("prod", PROD)], "60s");
    write(
        &repo,
        "releases/hello/chart/templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{Release.Name}}-config\ndata:\n  edition: \"{{Values.edition}}\"\n  tier: \"{{Values.tier}}\"\n  fromSet: \"{{default \"none\" Values.fromSet}}\"\n  env: \"{{Values.global.env}}\"\n",
    );
    append(
        &repo,
        "releases/hello/chart/values.yaml",
        "edition: one\ntier: plain\n",
    );
    append(
        &repo,
        "releases/hello/release.yaml",
        "  environments:\n    dev: { values: { tier: bronze } }\n    prod: { values: { tier: gold } }\n",
    );
    repo
}

fn write(repo: &TestRepo, path: &str, text: &str) {
    std::fs::write(repo.root().join(path), text).unwrap();
}

fn append(repo: &TestRepo, path: &str, text: &str) {
    let file = repo.root().join(path);
    let mut content = std::fs::read_to_string(&file).unwrap();
    content.push_str(text);
    std::fs::write(file, content).unwrap();
}

/// An edit of the chart in the checkout without a version bump.
fn edit_chart(repo: &TestRepo) {
    let file = repo
        .root()
        .join("releases/hello/chart/templates/config.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        file,
        text.replace("{{Values.edition}}", "{{Values.edition}}-edited"),
    )
    .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// The live ConfigMap `hello-config` of `context`.
fn config(repo: &TestRepo, context: &str) -> BTreeMap<String, String> {
    runtime().block_on(async {
        let client = fleet().client(context).await;
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &repo.namespace);
        api.get("hello-config")
            .await
            .unwrap()
            .data
            .unwrap_or_default()
    })
}

/// The password the live Secret `hello-db` of `context` holds.
fn password(repo: &TestRepo, context: &str) -> String {
    runtime().block_on(async {
        let client = fleet().client(context).await;
        let api: kube::Api<Secret> = kube::Api::namespaced(client, &repo.namespace);
        let secret = api.get("hello-db").await.unwrap();
        let data = secret.data.unwrap_or_default();
        String::from_utf8(data["password"].0.clone()).unwrap()
    })
}

/// `promote hello --from dev --to prod` and `extra`.
fn promote(repo: &TestRepo, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["promote", "hello", "--from", "dev", "--to", "prod"];
    args.extend_from_slice(extra);
    run(fleet(), repo, &args)
}

/// `deploy hello --env dev` and `extra`.
fn deploy_dev(repo: &TestRepo, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["deploy", "hello", "--env", "dev"];
    args.extend_from_slice(extra);
    run(fleet(), repo, &args)
}

fn deployment_id(out: &std::process::Output) -> String {
    json(out)["deployment_id"].as_str().unwrap().to_owned()
}

fn ok(out: std::process::Output) -> std::process::Output {
    assert!(out.status.success(), "{}", describe(&out));
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn prod_gets_the_chart_and_values_dev_ran_not_the_edited_checkout() {
    let repo = promotion_repo("promote-exact");
    let dev = ok(run(
        fleet(),
        &repo,
        &[
            "deploy",
            "hello",
            "--branch",
            "dev",
            "--set",
            "fromSet=yes",
            "-o",
            "json",
        ],
    ));
    let dev_id = deployment_id(&dev);
    edit_chart(&repo);
    append(&repo, "releases/hello/chart/values.yaml", "unused: added\n");

    // --check: the checkout is not what dev runs; what differs is named.
    let check = promote(&repo, &["--check"]);
    assert_eq!(check.status.code(), Some(1), "{}", describe(&check));
    let text = String::from_utf8_lossy(&check.stdout);
    for part in [
        "chart file templates/config.yaml: differs",
        "chart file values.yaml: differs",
        "command-line values (--set): {\"fromSet\":\"yes\"}",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }

    // --dry-run: per prod cluster what would be created; nothing changes.
    let dry = ok(promote(&repo, &["--dry-run", "-o", "json"]));
    let plan = json(&dry);
    for (context, _) in PROD {
        let changes = plan[*context]
            .as_array()
            .unwrap_or_else(|| panic!("{plan:#}"));
        assert!(
            changes
                .iter()
                .any(|c| c["object"]["name"] == "hello-config" && c["action"] == "create"),
            "{context}: {plan:#}"
        );
        assert_eq!(deployed(fleet(), &repo, "prod", context), None);
    }

    let promoted = ok(promote(&repo, &["-o", "json"]));
    let prod_id = deployment_id(&promoted);
    for (context, _) in PROD {
        let data = config(&repo, context);
        // Dev's chart and command line; prod's own override, globals and secret.
        assert_eq!(data["edition"], "one", "{context}: {data:?}");
        assert_eq!(data["fromSet"], "yes", "{context}: {data:?}");
        assert_eq!(data["tier"], "gold", "{context}: {data:?}");
        assert_eq!(data["env"], "prod", "{context}: {data:?}");
        assert_eq!(password(&repo, context), "fake-prod-hello-db-password-7777");
    }
    let dev_config = config(&repo, "p-dev1");
    assert_eq!(
        (dev_config["edition"].as_str(), dev_config["tier"].as_str()),
        ("one", "bronze")
    );
    // The objects that do not depend on the environment are the same in both.
    runtime().block_on(async {
        let spec = |context: &'static str| {
            let namespace = repo.namespace.clone();
            async move {
                let client = fleet().client(context).await;
                let api: kube::Api<Deployment> = kube::Api::namespaced(client, &namespace);
                api.get("hello-web").await.unwrap().spec.template
            }
        };
        assert_eq!(spec("p-dev1").await, spec("p-prod1").await);
    });

    // Provenance: history of prod names dev and its deployment id, and the artifact
    // is the one dev recorded.
    let history = ok(run(
        fleet(),
        &repo,
        &["history", "hello", "--env", "prod", "-o", "json"],
    ));
    let dev_history = ok(run(
        fleet(),
        &repo,
        &["history", "hello", "--env", "dev", "-o", "json"],
    ));
    let dev_artifact = json(&dev_history)[0]["clusters"]["p-dev1"][0]["artifact"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(dev_artifact.starts_with("sha256:"), "{dev_artifact}");
    let rows = json(&history);
    let row = &rows[0];
    assert_eq!(row["deployment_id"], prod_id.as_str());
    for (context, _) in PROD {
        let cell = &row["clusters"][*context][0];
        assert_eq!(cell["promoted_from"]["environment"], "dev", "{rows:#}");
        assert_eq!(cell["promoted_from"]["deploymentId"], dev_id.as_str());
        assert_eq!(cell["artifact"], dev_artifact.as_str(), "{rows:#}");
    }
    let table_run = ok(run(
        fleet(),
        &repo,
        &["history", "hello", "--env", "prod", "--wide"],
    ));
    let table = String::from_utf8_lossy(&table_run.stdout);
    assert!(
        table.contains(&format!(
            "{prod_id} was promoted from dev (deployment {dev_id})"
        )) && table.contains(&dev_artifact[..19]),
        "{table}"
    );
    // No secret value of either environment in anything promote or history printed.
    use base64::Engine;
    for value in [
        "fake-prod-hello-db-password-7777",
        "fake-dev-hello-db-password-1111",
    ] {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for out in [&check, &dry, &promoted, &history, &table_run] {
            let text = describe(out);
            assert!(
                !text.contains(value) && !text.contains(&encoded),
                "{value} shown:\n{text}"
            );
        }
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn disagreeing_or_unhealthy_dev_clusters_are_refused_and_check_exits_0_when_the_same() {
    let repo = promotion_repo("promote-refused");
    ok(run(fleet(), &repo, &["deploy", "hello", "--branch", "dev"]));
    let check = ok(promote(&repo, &["--check"]));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("the checkout is what dev ("),
        "{}",
        describe(&check)
    );

    // One dev cluster on another deployment: the clusters disagree.
    ok(deploy_dev(
        &repo,
        &["--version", "v2", "--clusters", "p-dev1"],
    ));
    let out = promote(&repo, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains("the clusters disagree")
            && text.contains("DEPLOYMENT ID")
            && text.contains("p-dev1")
            && text.contains("p-dev2"),
        "{text}"
    );
    let check = promote(&repo, &["--check"]);
    assert_eq!(check.status.code(), Some(3), "{}", describe(&check));

    // Both on v2 again, then one of them loses its Deployment: not healthy.
    ok(deploy_dev(&repo, &["--version", "v2"]));
    // The checkout says v1; CI that deploys with --version says so to --check.
    let check = promote(&repo, &["--check"]);
    assert_eq!(check.status.code(), Some(1), "{}", describe(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("version: v2 in dev ("),
        "{}",
        describe(&check)
    );
    ok(promote(
        &repo,
        &["--check", "--version", "v2", "-o", "json"],
    ));
    runtime().block_on(async {
        let client = fleet().client("p-dev2").await;
        let api: kube::Api<Deployment> = kube::Api::namespaced(client, &repo.namespace);
        api.delete("hello-web", &Default::default()).await.unwrap();
    });
    let out = promote(&repo, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains("p-dev2: not healthy"),
        "{}",
        describe(&out)
    );

    // A dev cluster that cannot be reached: refused, and the table names it.
    let kubeconfig = kubeconfig_with_unreachable(fleet(), &repo, "p-gone");
    append(
        &repo,
        "environments/dev.yaml",
        "  - context: p-gone\n    wave: 0\n    global: { cloud: true, env: dev, region: r, clusterName: p-gone }\n",
    );
    let out = promote(&repo, &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains("p-gone: unreachable"),
        "{}",
        describe(&out)
    );
    for (context, _) in PROD {
        assert_eq!(deployed(fleet(), &repo, "prod", context), None);
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_chain_refuses_an_artifact_dev_never_ran_or_ran_too_briefly() {
    let repo = promotion_repo("promote-chain");
    append(
        &repo,
        "environments/prod.yaml",
        "promotion:\n  from: dev\n  min_soak: 0s\n",
    );
    // Nothing ran in dev yet: a deploy to prod is refused, nothing changed.
    let out = run(fleet(), &repo, &["deploy", "hello", "--branch", "prod"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains("dev/p-dev1: never ran this artifact healthy")
            && text.contains("dev/p-dev2: never ran this artifact healthy"),
        "{text}"
    );
    assert_eq!(deployed(fleet(), &repo, "prod", "p-prod1"), None);

    // Once dev runs it healthy, the same checkout may go to prod.
    ok(run(fleet(), &repo, &["deploy", "hello", "--branch", "dev"]));
    ok(run(
        fleet(),
        &repo,
        &["deploy", "hello", "--branch", "prod"],
    ));

    // An edited chart dev never ran is refused, and so is a --set dev never had.
    edit_chart(&repo);
    let out = run(fleet(), &repo, &["deploy", "hello", "--branch", "prod"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stderr(&out).contains("never ran this artifact healthy"));

    // A soak longer than dev has run: promote (without --from: promotion.from) refused.
    let prod_file = repo.root().join("environments/prod.yaml");
    let text = std::fs::read_to_string(&prod_file).unwrap();
    std::fs::write(&prod_file, text.replace("min_soak: 0s", "min_soak: 1h")).unwrap();
    let out = run(fleet(), &repo, &["promote", "hello", "--to", "prod"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains("dev/p-dev1: ran it healthy") && text.contains("of the 1h required"),
        "{text}"
    );
    let dry = ok(run(
        fleet(),
        &repo,
        &["promote", "hello", "--to", "prod", "--dry-run"],
    ));
    assert!(
        stderr(&dry).contains("promote would be refused"),
        "{}",
        describe(&dry)
    );
    // Prod still runs the one deploy that passed the gate.
    let (revision, _, _) = deployed(fleet(), &repo, "prod", "p-prod1").unwrap();
    assert_eq!(revision, 1);
}

/// `edit` on the newest record of every dev cluster, as a dev-namespace writer could.
fn tamper_dev(repo: &TestRepo, edit: impl Fn(&mut serde_json::Value)) -> u32 {
    let mut revision = 0;
    for (context, _) in DEV {
        revision = tamper_record(fleet(), repo, context, None, &edit).0;
    }
    revision
}

/// Prod has nothing of the release and no intruder.
fn prod_untouched(repo: &TestRepo) {
    for (context, _) in PROD {
        assert!(!intruder_bound(fleet(), repo, context), "{context}");
        assert_eq!(deployed(fleet(), repo, "prod", context), None, "{context}");
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_cluster_admin_binding_forged_into_dev_records_never_reaches_prod() {
    let repo = promotion_repo("promote-forged");
    let keys = [
        sign_records(fleet(), &repo, "dev"),
        sign_records(fleet(), &repo, "prod"),
    ];
    let dev_id = deployment_id(&ok(deploy_dev(&repo, &["-o", "json"])));
    let binding = intruder_binding(&repo);
    // As it was found: a ClusterRoleBinding added to the recorded chart, nothing else.
    let revision = tamper_dev(&repo, |r| {
        r["source"]["chart"]["templates/zz-admin.yaml"] = binding.clone().into();
    });
    let mut shown = Vec::new();
    for extra in [&[][..], &["--dry-run"], &["--check"]] {
        let out = promote(&repo, extra);
        assert_eq!(out.status.code(), Some(3), "{extra:?}: {}", describe(&out));
        let text = stderr(&out);
        for (context, _) in DEV {
            assert!(
                text.contains(&format!(
                    "revision {revision} of hello (deployment {dev_id}) in cluster {context}: its artifact digest says sha256:"
                )) && text.contains("nothing changed"),
                "{extra:?}: {text}"
            );
        }
        shown.push(out);
    }
    prod_untouched(&repo);

    // A careful forger recomputes the digests too: the MAC, made with a key the
    // namespace writer cannot read, still refuses it.
    tamper_dev(&repo, recompute_digests);
    let out = promote(&repo, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "revision {revision} of hello (deployment {dev_id}) in cluster p-dev1: its keyed digest (mac) does not verify"
        )) && !text.contains("its artifact digest says"),
        "{text}"
    );
    prod_untouched(&repo);
    shown.push(out);
    for out in &shown {
        let text = describe(out);
        assert!(!keys.iter().any(|k| text.contains(k.as_str())), "{text}");
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn without_a_record_key_a_forged_chart_is_refused_by_its_digest() {
    let repo = promotion_repo("promote-unsigned");
    let dev_id = deployment_id(&ok(deploy_dev(&repo, &["-o", "json"])));
    let binding = intruder_binding(&repo);
    let revision = tamper_dev(&repo, |r| {
        r["source"]["chart"]["templates/zz-admin.yaml"] = binding.clone().into();
    });
    let out = promote(&repo, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "revision {revision} of hello (deployment {dev_id}) in cluster p-dev2: its artifact digest says"
        )) && text.contains("names no vault.record_key"),
        "{text}"
    );
    prod_untouched(&repo);
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_dev_record_with_another_vault_path_or_digest_is_refused_and_put_back_it_promotes() {
    let repo = promotion_repo("promote-tampered");
    sign_records(fleet(), &repo, "dev");
    sign_records(fleet(), &repo, "prod");
    let dev_id = deployment_id(&ok(deploy_dev(&repo, &["-o", "json"])));
    // Signed records that nobody changed verify.
    ok(promote(&repo, &["--check"]));

    // One dev cluster's record now reads another team's secret.
    let (revision, before) = tamper_record(fleet(), &repo, "p-dev2", None, |r| {
        r["source"]["secrets"][0]["path"] = "kv/other-team/db".into();
        r["source"]["secrets"][0]["relative"] = "other-team/db".into();
    });
    let out = promote(&repo, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "revision {revision} of hello (deployment {dev_id}) in cluster p-dev2: its keyed digest (mac) does not verify"
        )),
        "{}",
        describe(&out)
    );
    tamper_record(fleet(), &repo, "p-dev2", None, |r| *r = before.clone());

    // Another's content digest.
    let (revision, before) = tamper_record(fleet(), &repo, "p-dev1", None, |r| {
        r["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    });
    let out = promote(&repo, &["--check"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "revision {revision} of hello (deployment {dev_id}) in cluster p-dev1: its content digest says sha256:000"
        )),
        "{}",
        describe(&out)
    );
    prod_untouched(&repo);
    tamper_record(fleet(), &repo, "p-dev1", None, |r| *r = before.clone());

    // Put back as they were, the records verify and the promotion goes as before,
    // writing signed records in prod.
    let prod_id = deployment_id(&ok(promote(&repo, &["-o", "json"])));
    for (context, _) in PROD {
        let (_, content, _) = deployed(fleet(), &repo, "prod", context).unwrap();
        assert_eq!(content, prod_id, "{context}");
        let (_, record) = tamper_record(fleet(), &repo, context, None, |_| {});
        assert!(
            record["mac"].as_str().unwrap().starts_with("hmac-sha256:"),
            "{record:#}"
        );
        assert!(!intruder_bound(fleet(), &repo, context));
    }
}
