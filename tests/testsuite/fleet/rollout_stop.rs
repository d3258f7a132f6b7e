//! A cluster stopped in the middle of a run (fleet `stop-cluster`, its API refuses
//! connections) cannot be rolled back: the report names it with the exact command that
//! finishes the job, and that command does, once the cluster is back; a `rollback` run
//! while it is down goes on with the others and reports it the same way. A dedicated fleet:
//! stopping a cluster would disturb other tests.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_cluster_stopped_mid_run_is_reported_with_the_command_that_finishes_the_job() {
    let fleet = Fleet::dedicated(&["s-a", "s-b"]);
    let repo = repo("stop", &[("prod", &[("s-a", 0), ("s-b", 1)])], "20s");
    let out = run(
        &fleet,
        &repo,
        &["deploy", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let good = json(&out)["deployment_id"].as_str().unwrap().to_owned();

    // s-b never gets ready: the run fails at its 20 s timeout, after s-a is stopped.
    let broken = spawn_broken_deploy(&fleet, &repo, "s-b", "[s-b] apply");
    assert!(broken.seen.contains("[s-a] deployed"), "{}", broken.seen);
    fleet.stop_cluster("s-a");
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let report = json(&out);
    assert_eq!(report["overall"], "rollback-incomplete", "{report:#}");
    assert_eq!(result_of(&report, "s-b"), "rolled-back");
    assert_eq!(result_of(&report, "s-a"), "rollback-failed");
    let command_line = format!("flotilla rollback hello --env prod --to {good} --clusters s-a");
    let s_a = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == "s-a")
        .unwrap();
    assert_eq!(s_a["finish_with"], command_line.as_str(), "{report:#}");

    // On-call rolls back while s-a is still down: s-b goes back, s-a is reported with
    // the same command, and the run says it is incomplete.
    let out = run(
        &fleet,
        &repo,
        &[
            "rollback", "hello", "--env", "prod", "--to", &good, "-o", "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["overall"], "rollback-incomplete", "{report:#}");
    assert_eq!(result_of(&report, "s-b"), "deployed");
    let s_a = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == "s-a")
        .unwrap();
    assert_eq!(s_a["finish_with"], command_line.as_str(), "{report:#}");

    // The cluster is back: the printed command finishes the job.
    fleet.start_cluster("s-a");
    let args: Vec<&str> = command_line.split(' ').skip(1).collect();
    let out = run(&fleet, &repo, &args);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        deployed(&fleet, &repo, "prod", "s-a").map(|d| (d.1, d.2)),
        Some((good, "v1".to_owned()))
    );
}
