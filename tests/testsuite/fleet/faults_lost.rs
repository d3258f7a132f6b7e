//! A cluster lost after the run changed it is a changed cluster: an API server stopped
//! (`flotilla-fleet stop-cluster`) during apply, during the health wait and during a
//! restore, and one frozen by SIGSTOP (it accepts connections and never answers). Each
//! time the others are rolled back, the lost one is reported `rollback-failed` with the
//! exact command that finishes its job, the run says "rollback INCOMPLETE" and ends
//! within its bounds, and once the cluster is back the printed command finishes the job.
//! A dedicated fleet, the tests one at a time: they stop clusters.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;
use serde_json::Value;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const TIMEOUT: &str = "12s";

fn fleet() -> &'static Fleet {
    crate::support::dedicated_fleet(&["l-a", "l-b"])
}

/// One test at a time: each stops a cluster of the fleet.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn lost_repo(test: &str) -> TestRepo {
    repo(test, &[("prod", &[("l-a", 0), ("l-b", 0)])], TIMEOUT)
}

fn deploy_good(repo: &TestRepo, version: &str) -> String {
    deploy_ok(fleet(), repo, "prod", version)
}

fn cluster<'a>(report: &'a Value, context: &str) -> &'a Value {
    report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == context)
        .unwrap_or_else(|| panic!("no {context} in {report:#}"))
}

/// The report of a run that lost `l-a`: l-b rolled back, l-a changed and reported with
/// its finish command; that command, once l-a is back, puts it on `good`.
fn assert_lost_then_finished(
    repo: &TestRepo,
    report: &Value,
    good: &str,
    good_version: &str,
    back: impl FnOnce(),
) {
    assert_eq!(report["overall"], "rollback-incomplete", "{report:#}");
    assert_eq!(result_of(report, "l-b"), "rolled-back", "{report:#}");
    assert_eq!(result_of(report, "l-a"), "rollback-failed", "{report:#}");
    let l_a = cluster(report, "l-a");
    assert!(
        l_a["deployed"].as_u64().is_some(),
        "l-a is reported changed: {report:#}"
    );
    let command_line = format!("flotilla rollback hello --env prod --to {good} --clusters l-a");
    assert_eq!(l_a["finish_with"], command_line.as_str(), "{report:#}");

    back();
    let args: Vec<&str> = command_line.split(' ').skip(1).collect();
    let out = run(fleet(), repo, &args);
    assert!(out.status.success(), "{command_line}: {}", describe(&out));
    let rows = history(fleet(), repo, "prod");
    assert!(!rows.iter().any(|r| r.2 == "pending"), "{rows:?}");
    for context in ["l-a", "l-b"] {
        assert_eq!(
            deployed(fleet(), repo, "prod", context).map(|d| (d.1, d.2)),
            Some((good.to_owned(), good_version.to_owned())),
            "{context}: {rows:?}"
        );
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_api_server_stopped_during_the_health_wait_is_a_changed_cluster_with_its_finish_command() {
    let _one = serial();
    let repo = lost_repo("lost-wait");
    let good = deploy_good(&repo, "v1");
    let broken = spawn_broken_deploy(fleet(), &repo, "l-a", "[l-a] waiting");
    fleet().stop_cluster("l-a");
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let report = json(&out);
    let error = cluster(&report, "l-a")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("lost after it was changed"), "{error}");
    assert!(error.contains("unreachable"), "{error}");
    assert_lost_then_finished(&repo, &report, &good, "v1", || fleet().start_cluster("l-a"));
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_api_server_stopped_during_apply_is_a_changed_cluster_with_its_finish_command() {
    let _one = serial();
    let repo = lost_repo("lost-apply");
    // Many objects, so that the apply lasts long enough to be cut.
    for i in 0..300 {
        std::fs::write(
            repo.root()
                .join(format!("releases/hello/chart/templates/cm-{i}.yaml")),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{Release.Name}}}}-{i}\ndata:\n  version: \"{{{{Release.Version}}}}\"\n"
            ),
        )
        .unwrap();
    }
    let good = deploy_good(&repo, "v1");
    let broken = spawn_broken_deploy(fleet(), &repo, "l-a", "[l-a] apply 1/");
    fleet().stop_cluster("l-a");
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let report = json(&out);
    let error = cluster(&report, "l-a")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("lost after it was changed"), "{error}");
    // It was cut during its apply: it never reached its health wait.
    assert!(!log.contains("[l-a] waiting"), "{log}");
    assert_lost_then_finished(&repo, &report, &good, "v1", || fleet().start_cluster("l-a"));
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_api_server_stopped_during_a_restore_is_reported_with_its_finish_command() {
    let _one = serial();
    let repo = lost_repo("lost-restore");
    // Pods of the good revision are ready 5 s after they start: a restore to it lasts.
    let good = deploy_good(&repo, "slow-5");
    // l-b crashloops (fails at once); l-a deploys, then is restored, and is lost then.
    let broken = spawn_run(
        fleet(),
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v2",
            "--set",
            "breakIn=l-b",
            "--set",
            "breakTag=crashloop",
            "-o",
            "json",
        ],
        &[],
        "[l-a] rolling back",
    );
    fleet().stop_cluster("l-a");
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let report = json(&out);
    let error = cluster(&report, "l-a")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("rollback: "), "{error}");
    assert_lost_then_finished(&repo, &report, &good, "slow-5", || {
        fleet().start_cluster("l-a")
    });
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_api_server_frozen_mid_run_becomes_unreachable_within_the_bounds() {
    let _one = serial();
    let repo = lost_repo("frozen");
    let good = deploy_good(&repo, "v1");
    let pid_file = fleet().dir().join("pids/apiserver-l-a.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let request_timeout = 4;
    let t = Instant::now();
    let broken = spawn_run(
        fleet(),
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v2",
            "--set",
            "breakIn=l-a",
            "--set",
            "breakTag=never",
            "-o",
            "json",
        ],
        &[("FLOTILLA_REQUEST_TIMEOUT", &format!("{request_timeout}s"))],
        "[l-a] waiting",
    );
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    let (out, log) = broken.finish();
    let took = t.elapsed();
    signal("-CONT");
    eprintln!("frozen l-a: the run ended after {took:?}");
    assert_eq!(out.status.code(), Some(1), "{log}");
    // The health wait's timeout, then a few requests that each time out, and margin.
    let bound = Duration::from_secs(12 + 4 * request_timeout + 10);
    assert!(took < bound, "{took:?} (bound {bound:?}):\n{log}");
    let report = json(&out);
    let error = cluster(&report, "l-a")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("within 4s (request timeout)"), "{error}");
    assert_lost_then_finished(&repo, &report, &good, "v1", || {});
}
