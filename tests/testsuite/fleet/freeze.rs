//! Change freezes on the shared fleet: `freeze` keeps one in every cluster of the
//! environment, `deploy` and `promote` refuse (exit 3, nothing changed, who/when/why
//! said), `--override-freeze` goes through and is in `history`'s audit, `rollback` is
//! allowed, `status` and `history` say it, `unfreeze` ends it; a window of the
//! environment file freezes too, a cluster whose freeze cannot be read refuses, a
//! release added to the repo after the freeze is frozen as well, and another release's
//! namespace that the deployer may not read refuses nothing.
//! Each test's environment has a name of its own, and its release a namespace of its
//! own, where the freeze is kept: no other test sees it.

use crate::support::rollout as support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::core::v1::ConfigMap;
use std::process::Output;
use support::{deployed, describe, json, kubeconfig_with_unreachable, repo, run, TestRepo};

/// A repo whose environment `name` (clusters `clusters`, wave 0) reads the `dev`
/// secrets of the fleet's Vault.
fn freeze_repo(test: &str, name: &str, clusters: &[String]) -> TestRepo {
    let list: Vec<(&str, u32)> = clusters.iter().map(|c| (c.as_str(), 0)).collect();
    let repo = repo(test, &[(name, &list)], "60s");
    let file = repo.root().join(format!("environments/{name}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace(&format!("env: {name},"), "env: dev,"))
        .unwrap_or_else(|e| panic!("{e}"));
    repo
}

/// An environment name no other test uses.
fn env_name(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The freeze a cluster keeps in the release's namespace.
async fn freeze_object(
    fleet: &Fleet,
    context: &str,
    repo: &TestRepo,
    env: &str,
) -> Option<ConfigMap> {
    let api: kube::Api<ConfigMap> =
        kube::Api::namespaced(fleet.client(context).await, &repo.namespace);
    api.get_opt(&format!("flotilla.freeze.{env}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_frozen_environment_refuses_deploy_and_promote_allows_rollback_and_records_an_override() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    assert!(clusters.len() >= 3, "the shared fleet has 3 clusters");
    let env = env_name("frz");
    let source = env_name("src");
    let target: Vec<String> = clusters[..2].to_vec();
    let repo = freeze_repo("freeze", &env, &target);
    // The environment promoted from: the third cluster, its own file in the same repo.
    let other = freeze_repo("freeze_src", &source, &clusters[2..3]);
    std::fs::copy(
        other.root().join(format!("environments/{source}.yaml")),
        repo.root().join(format!("environments/{source}.yaml")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", describe(&out));
        out
    };
    let first = support::deploy_ok(fleet, &repo, &env, "v1");
    support::deploy_ok(fleet, &repo, &source, "v2");

    // Frozen from one runner: kept in every cluster of the environment.
    let out = ok(run(
        fleet,
        &repo,
        &[
            "freeze",
            "--env",
            &env,
            "--reason",
            "incident 4711",
            "--until",
            "2h",
        ],
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("(2 clusters: {}, {})", target[0], target[1])),
        "{}",
        describe(&out)
    );
    for context in &target {
        assert!(
            freeze_object(fleet, context, &repo, &env).await.is_some(),
            "{context}"
        );
    }

    // Seen by another runner: another user, with a checkout and a home (flotilla's
    // cache) of its own: deploy and promote refused, exit 3, who/when/why named,
    // nothing changed.
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let runner = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let checkout = runner.path().join("checkout");
    support::copy_dir(repo.root(), &checkout);
    let home = runner.path().join("home");
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
    // Its CI shows the refusal: the job's summary and a JUnit report with its one
    // failed case (the run had no report of its own to write).
    let step_summary = runner.path().join("step-summary.md");
    let (summary, junit) = (
        runner.path().join("summary.md"),
        runner.path().join("junit.xml"),
    );
    for args in [
        vec!["deploy", "hello", "--env", &env, "--version", "v2"],
        vec!["promote", "hello", "--from", &source, "--to", &env],
    ] {
        let mut cmd = crate::support::flotilla();
        cmd.arg("--root")
            .arg(&checkout)
            .args(&args)
            .arg("--summary")
            .arg(&summary)
            .arg("--junit")
            .arg(&junit)
            .envs(fleet.env())
            .env("USER", "another-runner")
            .env("HOME", &home)
            .env("GITHUB_STEP_SUMMARY", &step_summary)
            .env_remove("XDG_CACHE_HOME");
        let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
        let markdown = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            markdown.starts_with(&format!(
                "### flotilla {} hello to {env}: REFUSED, nothing changed (exit 3)\n",
                args[0]
            )) && markdown.contains("\"incident 4711\""),
            "{args:?}: {markdown}"
        );
        let xml = std::fs::read_to_string(&junit).unwrap_or_else(|e| panic!("{e}"));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        let failures: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("failure"))
            .filter_map(|n| n.attribute("message"))
            .collect();
        assert!(
            failures.len() == 1 && failures[0].contains(&format!("{env} is frozen by {user}@")),
            "{args:?}: {xml}"
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", describe(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!(
                "{} refused, nothing changed: {env} is frozen by {user}@",
                args[0]
            )) && text.contains("since ")
                && text.contains(" until ")
                && text.contains("\"incident 4711\""),
            "{args:?}: {text}"
        );
        for context in &target {
            assert_eq!(
                deployed(fleet, &repo, &env, context).map(|d| (d.1, d.2)),
                Some((first.clone(), "v1".to_string())),
                "{args:?}: {context} changed"
            );
        }
    }

    let step = std::fs::read_to_string(&step_summary).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        step.matches("REFUSED, nothing changed (exit 3)").count(),
        2,
        "{step}"
    );

    // The dry runs say what the real run would meet (the same who/when/why) and exit
    // as without a freeze: a deploy plan 0, a promotion check by its comparison. They
    // are no run: no summary of theirs reaches the job's page.
    let refused_line = |operation: &str| {
        format!(
            "{operation} would be refused (exit 3), nothing changed: {env} is frozen by {user}@"
        )
    };
    let mut cmd = support::command(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            &env,
            "--version",
            "v2",
            "--dry-run",
        ],
    );
    let out = ok(cmd
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        std::fs::read_to_string(&step_summary).unwrap_or_else(|e| panic!("{e}")),
        step
    );
    assert!(
        stderr(&out).contains(&refused_line("deploy"))
            && stderr(&out).contains("\"incident 4711\""),
        "{}",
        describe(&out)
    );
    let plan = json(&ok(run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", &env, "--dry-run", "-o", "json"],
    )));
    assert!(
        plan["freeze"]
            .as_str()
            .is_some_and(|f| f.starts_with(&refused_line("deploy"))),
        "{plan:#}"
    );
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            &env,
            "--dry-run",
            "--override-freeze",
            "--reason",
            "hotfix",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out).contains("deploy would go through the freeze (--override-freeze): ")
            && stderr(&out).contains("overridden: \"hotfix\""),
        "{}",
        describe(&out)
    );
    let mut cmd = support::command(
        fleet,
        &repo,
        &[
            "promote", "hello", "--from", &source, "--to", &env, "--check", "-o", "json",
        ],
    );
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    let check = json(&out);
    let same = check["same"]
        .as_bool()
        .unwrap_or_else(|| panic!("{check:#}"));
    assert_eq!(
        out.status.code(),
        Some(if same { 0 } else { 1 }),
        "{}",
        describe(&out)
    );
    assert!(
        check["freeze"]
            .as_str()
            .is_some_and(|f| f.starts_with(&refused_line("promote")))
            && stderr(&out).contains(&refused_line("promote")),
        "{}",
        describe(&out)
    );
    let mut cmd = support::command(
        fleet,
        &repo,
        &[
            "promote",
            "hello",
            "--from",
            &source,
            "--to",
            &env,
            "--dry-run",
        ],
    );
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&refused_line("promote")),
        "{}",
        describe(&out)
    );
    for context in &target {
        assert_eq!(
            deployed(fleet, &repo, &env, context).map(|d| (d.1, d.2)),
            Some((first.clone(), "v1".to_string())),
            "a dry run changed {context}"
        );
    }

    // `status` and `history` say it.
    for args in [
        vec!["status", "hello", "--env", &env],
        vec!["history", "hello", "--env", &env],
    ] {
        let out = ok(run(fleet, &repo, &args));
        assert!(
            stderr(&out).contains(&format!("freeze: {env} is frozen by {user}@")),
            "{args:?}: {}",
            describe(&out)
        );
    }

    // Overridden: it goes through, and the run's audit says which freeze and why.
    let out = ok(run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            &env,
            "--version",
            "v2",
            "--override-freeze",
            "--reason",
            "hotfix for incident 4711",
            "-o",
            "json",
        ],
    ));
    let second = json(&out)["deployment_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let out = ok(run(
        fleet,
        &repo,
        &["history", "hello", "--env", &env, "-o", "json"],
    ));
    let rows = json(&out);
    let row = rows
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["deployment_id"] == second.as_str())
        .unwrap_or_else(|| panic!("no row {second}: {rows:#}"));
    for context in &target {
        let note = row["clusters"][context.as_str()][0]["audit"]["freeze_override"]
            .as_str()
            .unwrap_or_default();
        assert!(
            note.contains("\"incident 4711\"")
                && note.contains("overridden: \"hotfix for incident 4711\""),
            "{context}: {row:#}"
        );
    }

    // Rollback is always allowed, and its summary is where CI shows it: a row and a
    // passed JUnit case per cluster.
    let (summary_arg, junit_arg) = (summary.display().to_string(), junit.display().to_string());
    ok(run(
        fleet,
        &repo,
        &[
            "rollback",
            "hello",
            "--env",
            &env,
            "--summary",
            &summary_arg,
            "--junit",
            &junit_arg,
        ],
    ));
    for context in &target {
        assert_eq!(
            deployed(fleet, &repo, &env, context).map(|d| d.1),
            Some(first.clone()),
            "{context}"
        );
    }
    let markdown = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        markdown.starts_with(&format!("### flotilla rollback hello to {env}: ")),
        "{markdown}"
    );
    let rows: Vec<&str> = markdown.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), target.len(), "{markdown}");
    for (row, context) in rows.iter().zip(&target) {
        assert!(row.starts_with(&format!("| `{context}` |")), "{markdown}");
    }
    let xml = std::fs::read_to_string(&junit).unwrap_or_else(|e| panic!("{e}"));
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let cases: Vec<(&str, bool)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            (
                n.attribute("name").unwrap_or_default(),
                n.children().any(|c| c.has_tag_name("failure")),
            )
        })
        .collect();
    assert_eq!(
        cases,
        target
            .iter()
            .map(|c| (c.as_str(), false))
            .collect::<Vec<_>>(),
        "{xml}"
    );

    // Unfrozen: gone from every cluster, and a deploy goes on.
    ok(run(fleet, &repo, &["unfreeze", "--env", &env]));
    for context in &target {
        assert!(
            freeze_object(fleet, context, &repo, &env).await.is_none(),
            "{context}"
        );
    }
    // A freeze whose `--until` has passed (kept as another runner's `freeze --until 1h`
    // leaves it an hour later) no longer holds: the deploy goes on, `status` is quiet.
    let api: kube::Api<ConfigMap> =
        kube::Api::namespaced(fleet.client(&target[0]).await, &repo.namespace);
    let now = chrono::Utc::now();
    let ended = serde_json::json!({
        "environment": env,
        "reason": "ended window",
        "user": "bob",
        "host": "laptop",
        "since": (now - chrono::Duration::hours(2)).to_rfc3339(),
        "until": (now - chrono::Duration::hours(1)).to_rfc3339(),
    });
    let map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("flotilla.freeze.{env}")},
        "data": {"freeze": ended.to_string()},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    api.create(&Default::default(), &map)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    support::deploy_ok(fleet, &repo, &env, "v3");
    let out = ok(run(fleet, &repo, &["status", "hello", "--env", &env]));
    assert!(!stderr(&out).contains("freeze:"), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_freeze_window_and_an_unreadable_cluster_refuse_a_deploy() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let env = env_name("win");
    let repo = freeze_repo("freeze_window", &env, &clusters[..1]);
    let file = repo.root().join(format!("environments/{env}.yaml"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    // A weekly window around now: an hour either side.
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%a %H:%M").to_string().to_lowercase();
    let now = chrono::Utc::now();
    let window = format!(
        "freeze:\n  windows:\n    - {{ reason: \"quarter close\", from: \"{}\", to: \"{}\" }}\nclusters:\n",
        day(now - chrono::Duration::hours(1)),
        day(now + chrono::Duration::hours(1))
    );
    std::fs::write(&file, text.replacen("clusters:\n", &window, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run(fleet, &repo, &["deploy", "hello", "--env", &env]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("{env} is in the freeze window "))
            && stderr(&out).contains("\"quarter close\""),
        "{}",
        describe(&out)
    );
    assert_eq!(deployed(fleet, &repo, &env, &clusters[0]), None);

    // No window, one cluster that cannot be read: a freeze may be kept there.
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &file,
        format!(
            "{text}  - context: frz-gone\n    wave: 0\n    global: {{ cloud: true, env: dev, region: r, clusterName: frz-gone }}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = kubeconfig_with_unreachable(fleet, &repo, "frz-gone");
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            &env,
            "--kubeconfig",
            &kubeconfig.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "deploy refused, nothing changed: cannot tell whether {env} is frozen (a freeze that cannot be seen may exist): cluster frz-gone: "
        )),
        "{}",
        describe(&out)
    );
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(fleet.client(&clusters[0]).await, &repo.namespace);
    assert!(
        api.get_opt("hello-web")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "a refused deploy changed {}",
        clusters[0]
    );
}

/// A release `name` in `namespace` added to `repo`: hello's chart and secrets.
fn add_release(repo: &TestRepo, name: &str, namespace: &str) {
    let hello = repo.root().join("releases/hello");
    let added = repo.root().join("releases").join(name);
    std::fs::create_dir_all(added.join("chart/templates")).unwrap_or_else(|e| panic!("{e}"));
    for file in [
        "chart/Chart.yaml",
        "chart/values.yaml",
        "chart/templates/deployment.yaml",
    ] {
        std::fs::copy(hello.join(file), added.join(file)).unwrap_or_else(|e| panic!("{e}"));
    }
    let descriptor = std::fs::read_to_string(hello.join("release.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("name: hello", &format!("name: {name}"))
        .replace(
            &format!("namespace: {}", repo.namespace),
            &format!("namespace: {namespace}"),
        );
    std::fs::write(added.join("release.yaml"), descriptor).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_release_added_after_the_freeze_is_frozen_too() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let env = env_name("late");
    let target: Vec<String> = clusters[..2].to_vec();
    let repo = freeze_repo("freeze_late", &env, &target);
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", describe(&out));
        out
    };
    ok(run(
        fleet,
        &repo,
        &["freeze", "--env", &env, "--reason", "holiday freeze"],
    ));

    // After the freeze, a release in a namespace of its own joins the repo: no copy of
    // the freeze is kept there, the environment is frozen for it all the same.
    let late_namespace = format!("{}-late", repo.namespace);
    add_release(&repo, "late", &late_namespace);
    let deploy = ["deploy", "late", "--env", &env];
    let out = run(fleet, &repo, &deploy);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!(
            "deploy refused, nothing changed: {env} is frozen by "
        )) && stderr(&out).contains("\"holiday freeze\""),
        "{}",
        describe(&out)
    );
    for context in &target {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(fleet.client(context).await);
        assert!(
            namespaces
                .get_opt(&late_namespace)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none(),
            "{context}: the refused deploy created {late_namespace}"
        );
    }
    // `status` of the new release says it too.
    let out = run(fleet, &repo, &["status", "late", "--env", &env]);
    assert!(
        stderr(&out).contains(&format!("freeze: {env} is frozen by ")),
        "{}",
        describe(&out)
    );

    // Unfrozen everywhere it was kept: the new release deploys.
    ok(run(fleet, &repo, &["unfreeze", "--env", &env]));
    ok(run(fleet, &repo, &deploy));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_deployer_that_may_not_read_another_releases_namespace_is_not_refused_for_it() {
    let fleet = Fleet::shared();
    let cluster = fleet.clusters()[0].clone();
    let deployer = format!("{cluster}-deployer");
    let env = env_name("rbac");
    let repo = freeze_repo("freeze_rbac", &env, std::slice::from_ref(&deployer));
    // hello where the deployer may deploy; another team's release where it may not
    // even read.
    let theirs = format!("{}-theirs", repo.namespace);
    support::create_namespace(&fleet.client(&cluster).await, &theirs).await;
    add_release(&repo, "theirs", &theirs);
    let own = fleet.namespace("frz-own").await;
    let descriptor = repo.root().join("releases/hello/release.yaml");
    let text = std::fs::read_to_string(&descriptor).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &descriptor,
        text.replace(
            &format!("namespace: {}", repo.namespace),
            &format!("namespace: {own}"),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Its freeze cannot be read there (403): not a reason to refuse hello's deploy,
    // whose own namespace says the environment is not frozen.
    let out = run(fleet, &repo, &["deploy", "hello", "--env", &env]);
    assert!(out.status.success(), "{}", describe(&out));
    // Its own namespace unreadable would refuse (a freeze may be kept there): the
    // release of the other team, deployed with the deployer's token, is refused so.
    let out = run(fleet, &repo, &["deploy", "theirs", "--env", &env]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("cannot tell whether {env} is frozen")),
        "{}",
        describe(&out)
    );
}
