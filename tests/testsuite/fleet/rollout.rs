//! Every cluster at once, on a dedicated fleet of five real kube-apiservers (simulated
//! kubelet, real Vault API): waves, a crashloop that rolls every changed cluster back
//! while a later wave stays untouched, `rollback --to`, promotion, SIGINT.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;

const PROD: &[(&str, u32)] = &[
    ("r-eu", 0),
    ("r-us", 0),
    ("r-paris", 1),
    ("r-asia", 1),
    ("r-late", 2),
];

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["r-eu", "r-us", "r-paris", "r-asia", "r-late"])
}

fn deploy(repo: &TestRepo, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["deploy", "hello", "--env", "prod", "-o", "json"];
    args.extend_from_slice(extra);
    run(fleet(), repo, &args)
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn all_clusters_succeed_in_waves_with_one_deployment_id() {
    let repo = repo("all-ok", &[("prod", PROD)], "60s");
    let out = deploy(&repo, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["overall"], "succeeded", "{report:#}");
    let id = report["deployment_id"].as_str().unwrap().to_owned();
    for (context, _) in PROD {
        assert_eq!(result_of(&report, context), "deployed");
        assert_eq!(
            deployed(fleet(), &repo, "prod", context),
            Some((1, id.clone(), "v1".into()))
        );
    }
    // Waves in order: no wave-1 cluster started before every wave-0 cluster was healthy.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last_w0 = ["r-eu", "r-us"]
        .iter()
        .map(|c| stderr.find(&format!("[{c}] deployed")).unwrap())
        .max()
        .unwrap();
    let first_w1 = ["r-paris", "r-asia"]
        .iter()
        .map(|c| stderr.find(&format!("[{c}] apply")).unwrap())
        .min()
        .unwrap();
    assert!(last_w0 < first_w1, "{stderr}");
    // Secret values never show.
    assert!(!stderr.contains("fake-prod-hello-db-password"), "{stderr}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn crashloop_in_wave_one_rolls_back_every_changed_cluster_and_never_touches_wave_two() {
    let repo = repo("crash", &[("prod", PROD)], "60s");
    let first = deploy(&repo, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    let good = json(&first)["deployment_id"].as_str().unwrap().to_owned();

    let out = deploy(&repo, &["--version", "v2", "--set", "breakIn=r-paris"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["overall"], "rolled-back", "{report:#}");
    assert!(
        report["cause"]
            .as_str()
            .unwrap()
            .contains("CrashLoopBackOff"),
        "{report:#}"
    );
    for context in ["r-eu", "r-us", "r-paris", "r-asia"] {
        assert_eq!(result_of(&report, context), "rolled-back", "{context}");
        // Back on the good deployment, as a revision of its own (1 good, 2 failed, 3 restore).
        assert_eq!(
            deployed(fleet(), &repo, "prod", context),
            Some((3, good.clone(), "v1".into())),
            "{context}"
        );
    }
    assert_eq!(result_of(&report, "r-late"), "not-started");
    let late: Vec<_> = history(fleet(), &repo, "prod")
        .into_iter()
        .filter(|r| r.0 == "r-late")
        .collect();
    assert_eq!(late.len(), 1, "wave 2 was touched: {late:?}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn rollback_to_an_older_deployment_id_finds_each_clusters_revision() {
    let repo = repo("to-id", &[("prod", PROD)], "60s");
    let mut ids = Vec::new();
    for version in ["v1", "v2", "v3"] {
        let out = deploy(&repo, &["--version", version]);
        assert!(out.status.success(), "{}", describe(&out));
        ids.push(json(&out)["deployment_id"].as_str().unwrap().to_owned());
    }
    let out = run(
        fleet(),
        &repo,
        &[
            "rollback", "hello", "--env", "prod", "--to", &ids[0], "-o", "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    for (context, _) in PROD {
        assert_eq!(
            deployed(fleet(), &repo, "prod", context),
            Some((4, ids[0].clone(), "v1".into())),
            "{context}"
        );
    }
    // An id a cluster never had is reported, not guessed, and nothing changes.
    let out = run(
        fleet(),
        &repo,
        &[
            "rollback",
            "hello",
            "--env",
            "prod",
            "--to",
            "20200101T000000Z-0000",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("r-late: never ran deployment 20200101T000000Z-0000 healthy"),
        "{stderr}"
    );
    assert_eq!(
        deployed(fleet(), &repo, "prod", "r-eu"),
        Some((4, ids[0].clone(), "v1".into()))
    );
    // History: one line per deployment id; --wide a column per cluster; one
    // deployment's clusters one per line.
    let out = run(fleet(), &repo, &["history", "hello", "--env", "prod"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} is not in the history:\n{table}"))
            .to_owned()
    };
    assert!(line(&ids[2]).contains("rolled back"), "{table}");
    assert!(
        line(&ids[0]).contains(&ids[0]) && line(&ids[1]).contains("v2"),
        "{table}"
    );
    let out = run(
        fleet(),
        &repo,
        &["history", "hello", "--env", "prod", "--wide"],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("r-paris") && table.contains(&ids[1]),
        "{table}"
    );
    let out = run(
        fleet(),
        &repo,
        &["history", "hello", &ids[1], "--env", "prod"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("deployment {}", ids[1]))
            && ["r-eu", "r-us", "r-paris"]
                .iter()
                .all(|c| text.lines().any(|l| l.trim_start().starts_with(c))),
        "{text}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn promote_deploys_what_every_dev_cluster_runs() {
    let prod: &[(&str, u32)] = &[("r-eu", 0), ("r-us", 1), ("r-paris", 1)];
    let dev: &[(&str, u32)] = &[("r-asia", 0), ("r-late", 0)];
    let repo = repo("promote", &[("prod", prod), ("dev", dev)], "60s");
    let out = run(
        fleet(),
        &repo,
        &["deploy", "hello", "--branch", "dev", "--version", "v7"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(
        fleet(),
        &repo,
        &[
            "promote", "hello", "--from", "dev", "--env", "prod", "-o", "json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    for (context, _) in prod {
        let (_, _, version) = deployed(fleet(), &repo, "prod", context).unwrap();
        assert_eq!(version, "v7", "{context}");
    }
    // Dev disagreeing: refused, nothing changed in prod.
    let out = run(
        fleet(),
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "dev",
            "--version",
            "v8",
            "--clusters",
            "r-asia",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(
        fleet(),
        &repo,
        &["promote", "hello", "--from", "dev", "--env", "prod"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("disagree"),
        "{}",
        describe(&out)
    );
    assert_eq!(deployed(fleet(), &repo, "prod", "r-eu").unwrap().2, "v7");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn sigint_during_a_deploy_rolls_back_what_it_changed() {
    let repo = repo("sigint", &[("prod", PROD)], "90s");
    let first = deploy(&repo, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    let good = json(&first)["deployment_id"].as_str().unwrap().to_owned();

    // r-eu waits on its never-ready pod (bounded by the 90 s rollout timeout).
    let broken = spawn_broken_deploy(fleet(), &repo, "r-eu", "[r-eu] waiting");
    let pid = broken.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let report = json(&out);
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert_eq!(report["overall"], "rolled-back", "{report:#}");
    for context in ["r-eu", "r-us"] {
        assert_eq!(result_of(&report, context), "rolled-back");
        assert_eq!(
            deployed(fleet(), &repo, "prod", context),
            Some((3, good.clone(), "v1".into()))
        );
    }
    for context in ["r-paris", "r-asia", "r-late"] {
        assert_eq!(result_of(&report, context), "not-started");
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn deploy_all_deploys_every_release_with_one_deployment_id() {
    let repo = repo("all-releases", &[("prod", PROD)], "60s");
    add_release(&repo, "world");
    let out = run(
        fleet(),
        &repo,
        &["deploy", "--all", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let reports = json(&out);
    let reports = reports.as_array().unwrap();
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["release"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "world"]);
    assert_eq!(reports[0]["deployment_id"], reports[1]["deployment_id"]);
    for report in reports {
        for (context, _) in PROD {
            assert_eq!(result_of(report, context), "deployed", "{report:#}");
        }
    }
}
