//! The command line as CI uses it, on a dedicated fleet of two real kube-apiservers
//! (simulated kubelet, real Vault API): `diff --exit-code` (0 no change, 1 changes, an
//! error 2 or 3 as every command, never 1), the audit fields every record carries and `history` shows, one vocabulary in
//! JSON and one header case in tables, and the TLS warning of a kubeconfig that skips
//! verification said once per run.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROD: &[(&str, u32)] = &[("cg-a", 0), ("cg-b", 0)];

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["cg-a", "cg-b"])
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// The fleet's kubeconfig with each cluster changed by `edit`, written into `dir`.
fn kubeconfig_with(dir: &Path, edit: impl Fn(&str, &mut Value)) -> PathBuf {
    let text = std::fs::read_to_string(fleet().kubeconfig()).unwrap();
    let mut config: Value = serde_yaml_ng::from_str(&text).unwrap();
    for entry in config["clusters"].as_array_mut().unwrap() {
        let name = entry["name"].as_str().unwrap().to_owned();
        edit(&name, &mut entry["cluster"]);
    }
    let file = dir.join("kubeconfig");
    std::fs::write(&file, serde_json::to_string(&config).unwrap()).unwrap();
    file
}

fn run_with(repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(fleet(), repo, args);
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn diff_exit_code_is_0_without_changes_1_with_changes_and_errors_keep_their_codes() {
    let repo = repo("diff-exit", &[("prod", PROD)], "60s");
    let diff = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["diff", "hello", "--env", "prod"];
        args.extend_from_slice(extra);
        run_with(&repo, &args, env)
    };
    let out = run(fleet(), &repo, &["deploy", "hello", "--env", "prod"]);
    assert!(out.status.success(), "{}", describe(&out));

    let out = diff(&["--exit-code"], &[]);
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    let out = diff(&["--exit-code", "--version", "v2", "-o", "json"], &[]);
    assert_eq!(code(&out), Some(1), "{}", describe(&out));
    let changed = json(&out);
    assert!(
        changed["cg-a"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["action"] == "update"),
        "{changed:#}"
    );
    // Without --exit-code, changes are success.
    let out = diff(&["--version", "v2"], &[]);
    assert_eq!(code(&out), Some(0), "{}", describe(&out));

    // A cluster that cannot be reached: 3 as without the flag, not "changes".
    let dir = tempfile::tempdir().unwrap();
    let unreachable = kubeconfig_with(dir.path(), |name, cluster| {
        if name == "cg-b" {
            cluster["server"] = "https://127.0.0.1:1".into();
        }
    });
    let unreachable = unreachable.to_string_lossy().into_owned();
    let env = [("KUBECONFIG", unreachable.as_str())];
    let out = diff(&["--exit-code"], &env);
    assert_eq!(code(&out), Some(3), "{}", describe(&out));
    let out = diff(&[], &env);
    assert_eq!(code(&out), Some(3), "{}", describe(&out));

    // Bad input and a refused command line are 2, as every command's (1 would read as
    // changes).
    let out = run(
        fleet(),
        &repo,
        &["diff", "hello", "--env", "nowhere", "--exit-code"],
    );
    assert_eq!(code(&out), Some(2), "{}", describe(&out));
    let out = run(
        fleet(),
        &repo,
        &[
            "diff",
            "hello",
            "--env",
            "prod",
            "--exit-code",
            "--no-such-flag",
        ],
    );
    assert_eq!(code(&out), Some(2), "{}", describe(&out));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const GITHUB: &[(&str, &str)] = &[
    ("GITHUB_SERVER_URL", "https://github.example"),
    ("GITHUB_REPOSITORY", "acme/deploy"),
    ("GITHUB_RUN_ID", "4242"),
    ("GITHUB_RUN_ATTEMPT", "1"),
    ("GITHUB_ACTOR", "alice"),
    ("USER", "release-bot"),
];

/// The line of a table that starts with `first` (its header).
fn header_of(table: &str, first: &str) -> String {
    table
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no line starting {first:?} in\n{table}"))
        .to_owned()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn history_shows_who_deployed_from_which_commit_and_json_says_cluster() {
    let repo = repo("audit", &[("prod", PROD)], "60s");
    let root = repo.root();
    git(root, &["init", "-q", "-b", "prod"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "hello v1"]);
    let commit = git(root, &["rev-parse", "HEAD"]);

    let out = run_with(&repo, &["deploy", "hello", "--env", "prod"], GITHUB);
    assert!(out.status.success(), "{}", describe(&out));
    let deploy_table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        header_of(&deploy_table, "CLUSTER")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["CLUSTER", "WAVE", "REVISION", "RESULT", "DURATION"]
    );

    // A second deploy from a dirty tree.
    std::fs::write(root.join("releases/hello/NOTES"), "not committed\n").unwrap();
    let out = run_with(
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v2",
            "-o",
            "json",
        ],
        GITHUB,
    );
    assert!(out.status.success(), "{}", describe(&out));
    let second = json(&out);
    let second_id = second["deployment_id"].as_str().unwrap().to_owned();
    assert_eq!(second["clusters"][0]["cluster"], "cg-a", "{second:#}");

    let out = run(
        fleet(),
        &repo,
        &["history", "hello", "--env", "prod", "--wide"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = header_of(&table, "DEPLOYMENT ID");
    assert!(
        header.contains("cg-a") && header.contains("BY") && header.contains("COMMIT"),
        "{table}"
    );
    let short = &commit[..7];
    assert!(
        table.contains("alice (release-bot@") && table.contains(&format!("{short} prod")),
        "{table}"
    );
    assert!(table.contains(&format!("{short}+dirty prod")), "{table}");

    let out = run(
        fleet(),
        &repo,
        &["history", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let history = json(&out);
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{history:#}");
    for row in rows {
        for cluster in ["cg-a", "cg-b"] {
            let cell = &row["clusters"][cluster][0];
            assert_eq!(cell["user"], "release-bot", "{cell:#}");
            let audit = &cell["audit"];
            assert_eq!(audit["git_commit"], commit.as_str(), "{cell:#}");
            assert_eq!(audit["git_branch"], "prod");
            assert_eq!(audit["ci_actor"], "alice");
            assert_eq!(
                audit["ci_job_url"],
                "https://github.example/acme/deploy/actions/runs/4242/attempts/1"
            );
            assert_eq!(audit["flotilla_version"], env!("CARGO_PKG_VERSION"));
            let dirty = row["deployment_id"] == second_id.as_str();
            assert_eq!(audit["git_dirty"], dirty, "{row:#}");
        }
    }

    // One vocabulary: `cluster`, never `context`, in every JSON; upper-case headers.
    let out = run(
        fleet(),
        &repo,
        &["status", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let status = json(&out);
    assert_eq!(status["cg-b"]["cluster"], "cg-b", "{status:#}");
    for doc in [&second, &history, &status] {
        assert!(!doc.to_string().contains("\"context\""), "{doc:#}");
    }
    let out = run(fleet(), &repo, &["status", "hello", "--env", "prod"]);
    let status_table = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = header_of(&status_table, "CLUSTER");
    assert_eq!(header, header.to_uppercase(), "{status_table}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_kubeconfig_that_skips_tls_verification_is_named_once_per_run() {
    let repo = repo("tls-once", &[("prod", PROD)], "60s");
    let dir = tempfile::tempdir().unwrap();
    let insecure = kubeconfig_with(dir.path(), |_, cluster| {
        let cluster = cluster.as_object_mut().unwrap();
        cluster.remove("certificate-authority-data");
        cluster.insert("insecure-skip-tls-verify".into(), true.into());
    });
    let insecure = insecure.to_string_lossy().into_owned();
    let env = [("KUBECONFIG", insecure.as_str())];
    for args in [
        &["deploy", "hello", "--env", "prod"][..],
        &["status", "hello", "--env", "prod"][..],
        &["diff", "hello", "--env", "prod", "--version", "v3"][..],
    ] {
        let out = run_with(&repo, args, &env);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("Server cert bypassed"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            stderr.matches("insecure-skip-tls-verify is set").count(),
            1,
            "{args:?}: {stderr}"
        );
    }
}
