//! A deploy SIGKILLed between apply and record leaves a `pending` record and a lease
//! nobody renews; the next deploy is refused while the lease is fresh, then takes it
//! over, repairs the record and completes. The holder here names another host
//! (`test@host`), so staleness decides (as observed by this process, 3 s leases); a dead
//! holder of this host is taken over at once (`tests/testsuite/fleet/sigkill_trials.rs`).
//!
//! The child process deploys a revision whose pods never become ready (the simulated
//! kubelet's `never` image tag), so it sits in its health wait with everything applied
//! and its record `pending`; the parent SIGKILLs it there.

use crate::support::cluster as support;

use flotilla::cluster::ClusterError;
use flotilla::ops;
use flotilla::release::Status;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use std::time::{Duration, Instant};
use support::{cluster, cluster_in, rendered, run_options};

const CHILD: &str = "FLOTILLA_TEST_KILLED_CHILD";
/// The test's name as the harness knows it (`fleet::killed_run::...`, without the
/// crate's name), for the child to run it alone with `--exact`.
fn test_name() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::a_deploy_killed_between_apply_and_record_is_repaired_by_the_next")
}

/// In the child process: deploy revision 2, whose pods never become ready, and wait for
/// health until killed.
async fn child(namespace: &str) {
    let t = cluster_in(namespace).await;
    let mut opts = run_options();
    opts.timeout = Duration::from_secs(600);
    let _ = ops::deploy(
        &t.handle,
        &rendered(namespace, "never", 1, true),
        "d2",
        &opts,
    )
    .await;
    panic!("the deploy of a revision that never becomes ready ended before it was killed");
}

/// Whether the child has applied everything: the Deployment (applied last) runs its
/// image.
async fn child_applied(t: &support::TestCluster) -> bool {
    let deployments: Api<Deployment> = Api::namespaced(t.handle.client(), &t.namespace);
    let Ok(Some(web)) = deployments.get_opt("app1-web").await else {
        return false;
    };
    let image = web
        .spec
        .template
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .unwrap_or_default();
    image.ends_with(":never")
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_deploy_killed_between_apply_and_record_is_repaired_by_the_next() {
    if let Ok(namespace) = std::env::var(CHILD) {
        return child(&namespace).await;
    }
    let t = cluster("killed").await;
    let opts = run_options();
    let first = ops::deploy(
        &t.handle,
        &rendered(&t.namespace, "1", 1, false),
        "d1",
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(first.status, Status::Deployed);

    // `--include-ignored`: this test is ignored without a fleet, and the child must run it.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(test_name())
        .args([
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &t.namespace)
        .env("FLOTILLA_FLEET_DIR", support::fleet_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Polls the cluster for the state the child must reach, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !child_applied(&t).await {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child deploy ended before applying"
        );
        assert!(Instant::now() < deadline, "the child deploy never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|r| (r.revision, r.status))
            .collect::<Vec<_>>(),
        vec![(1, Status::Deployed), (2, Status::Pending)]
    );
    let cms: Api<ConfigMap> = Api::namespaced(t.handle.client(), &t.namespace);
    assert!(
        cms.get_opt("app1-extra").await.unwrap().is_some(),
        "the child applied revision 2"
    );

    // While the killed run's lease is fresh, the next deploy is refused; once stale, it
    // takes over.
    let v3 = rendered(&t.namespace, "3", 1, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = false;
    let outcome = loop {
        match ops::deploy(&t.handle, &v3, "d3", &opts).await {
            Ok(outcome) => break outcome,
            Err(ClusterError::Locked { holder, .. }) => {
                assert_eq!(holder, format!("test@host pid {}", child.id()));
                refused = true;
                assert!(
                    Instant::now() < deadline,
                    "the stale lease was never taken over"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert!(refused, "a fresh lease must refuse the next deploy");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(
        (outcome.revision, outcome.status, outcome.repaired.clone()),
        (3, Status::Deployed, vec![2])
    );
    assert!(
        cms.get_opt("app1-extra").await.unwrap().is_none(),
        "what the killed run applied is pruned"
    );

    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let statuses: Vec<_> = history.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (1, Status::Superseded),
            (2, Status::Failed),
            (3, Status::Deployed)
        ]
    );
    assert!(
        history[1].description.starts_with("interrupted"),
        "{}",
        history[1].description
    );
}
