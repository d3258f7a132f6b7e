//! A deploy SIGKILLed between apply and record leaves a `pending` record and a lease
//! nobody renews; the next deploy is refused while the lease is fresh, then takes it
//! over, repairs the record and completes.

mod support;

use flotilla::action::cluster_release as ops;
use flotilla::cluster::ClusterError;
use flotilla::release::Status;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{cluster, cluster_in, rendered, run_options};

const CHILD: &str = "FLOTILLA_TEST_KILLED_CHILD";
const TEST: &str = "a_deploy_killed_between_apply_and_record_is_repaired_by_the_next";

/// In the child process: deploy revision 2, and stop dead once everything is applied.
async fn child(spec: &str) {
    let (namespace, marker) = spec.split_once('|').expect("namespace|marker");
    let t = cluster_in(namespace).await;
    let mut opts = run_options();
    let marker = marker.to_owned();
    opts.after_apply = Some(Arc::new(move || {
        std::fs::write(&marker, b"applied").expect("write marker");
        // Blocks the (current-thread) runtime too: no lease renewal, no record update,
        // as if the process had frozen here; the parent SIGKILLs it.
        loop {
            std::thread::park();
        }
    }));
    let _ = ops::deploy(&t.handle, &rendered(namespace, "2", 1, true), "d2", &opts).await;
    unreachable!("the after_apply hook never returns");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_deploy_killed_between_apply_and_record_is_repaired_by_the_next() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec).await;
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

    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("applied");
    // `--include-ignored`: this test is ignored without a fleet, and the child must run it.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            TEST,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{}|{}", t.namespace, marker.display()))
        .env("FLOTILLA_FLEET_DIR", support::fleet_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
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
