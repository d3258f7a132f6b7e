//! Failure diagnostics on the shared fleet: the report of a crashlooping, of a
//! pull-failing and of a timed-out (never ready) deploy names the pod, the container,
//! the reason, the restart count, the Events of the failing objects, and the last log
//! lines of the failing container, which the API server reads from the simulated
//! kubelet (the crashed run's for a crashloop; for a container waiting for its image,
//! the kubelet's word that there are none); all gathered before the restore, so they
//! describe the failing revision.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use rollout_support::*;

/// A first good deploy, then one that breaks in the first cluster with `tag`, each
/// cluster waiting up to `timeout` for health.
fn broken_deploy(
    test: &str,
    tag: &str,
    json_output: bool,
    timeout: &str,
) -> (TestRepo, String, std::process::Output) {
    let fleet = Fleet::shared();
    let list = fleet_waves(fleet, false);
    let repo = repo(test, &[("prod", &as_env(&list))], timeout);
    let good = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    assert!(good.status.success(), "{}", describe(&good));
    let broken = &list[0].0;
    let mut args = vec![
        "deploy".to_owned(),
        "hello".into(),
        "--env".into(),
        "prod".into(),
        "--version".into(),
        "v2".into(),
        "--set".into(),
        format!("breakIn={broken}"),
        "--set".into(),
        format!("breakTag={tag}"),
    ];
    if json_output {
        args.extend(["-o".into(), "json".into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(fleet, &repo, &args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    (repo, broken.clone(), out)
}

/// The first failing pod's line of cluster `broken` in a text report, and the pod's name.
fn pod_line<'a>(text: &'a str, broken: &str, namespace: &str) -> (&'a str, &'a str) {
    let prefix = format!("{broken}:   pod {namespace}/");
    text.lines()
        .find_map(|l| Some((l, l.strip_prefix(&prefix)?.split_whitespace().next()?)))
        .unwrap_or_else(|| panic!("no pod line:\n{text}"))
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_crashlooping_deploy_reports_pod_container_reason_restarts_events_and_logs() {
    let (repo, broken, out) = broken_deploy("diag-crash", "crashloop", true, "60s");
    let report = json(&out);
    let cluster = cluster_in(&report, &broken);
    assert_eq!(cluster["result"], "rolled-back", "{report:#}");
    let diagnosis = &cluster["diagnosis"];
    let pod = &diagnosis["pods"][0];
    assert_eq!(pod["namespace"], repo.namespace.as_str(), "{diagnosis:#}");
    assert!(
        pod["pod"].as_str().unwrap().starts_with("hello-web-"),
        "{diagnosis:#}"
    );
    assert_eq!(pod["container"], "web", "{diagnosis:#}");
    assert_eq!(pod["reason"], "CrashLoopBackOff", "{diagnosis:#}");
    assert!(pod["restarts"].as_i64().is_some(), "{diagnosis:#}");
    // The crashed run's log, read through the API server from the simulated kubelet.
    let pod_name = pod["pod"].as_str().unwrap();
    assert!(pod.get("logs_unavailable").is_none(), "{diagnosis:#}");
    let logs: Vec<&str> = pod["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logs: {diagnosis:#}"))
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        logs.first().is_some_and(
            |l| l.starts_with(&format!("starting container web of pod {pod_name} (image "))
        ),
        "{diagnosis:#}"
    );
    assert_eq!(
        logs.last().copied().unwrap_or_default(),
        format!("simulated crash: container web of pod {pod_name} exited 1 (fake kubelet)"),
        "{diagnosis:#}"
    );
    let events = diagnosis["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["reason"] == "BackOff"
            && e["object"] == format!("Pod {}/{pod_name}", repo.namespace)
            && e["type"] == "Warning"),
        "{diagnosis:#}"
    );
    // The Deployment's own Events, from the controller-manager.
    assert!(
        events
            .iter()
            .any(|e| e["object"] == format!("Deployment {}/hello-web", repo.namespace)),
        "{diagnosis:#}"
    );
    // The clusters that did not fail have no diagnosis.
    for other in report["clusters"].as_array().unwrap() {
        if other["cluster"] != broken.as_str() {
            assert!(other.get("diagnosis").is_none(), "{other:#}");
        }
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("fake-prod-hello-db-password"));
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_crashlooping_deploy_shows_the_crashed_runs_log_lines_in_the_text_report() {
    let (repo, broken, out) = broken_deploy("diag-crash-text", "crashloop", false, "60s");
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, pod) = pod_line(&text, &broken, &repo.namespace);
    assert!(pod.starts_with("hello-web-"), "{text}");
    assert!(
        text.contains(&format!("{broken}:     last log lines:")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{broken}:       simulated crash: container web of pod {pod} exited 1 (fake kubelet)"
        )),
        "{text}"
    );
    assert!(!text.contains("not served"), "{text}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_pull_failing_deploy_reports_its_pod_and_events_in_the_text_report() {
    let (repo, broken, out) = broken_deploy("diag-pull", "pullfail", false, "60s");
    let text = String::from_utf8_lossy(&out.stdout);
    let ns = &repo.namespace;
    let (pod_line, pod) = pod_line(&text, &broken, ns);
    assert!(pod.starts_with("hello-web-"), "{text}");
    assert!(
        pod_line.contains("container web: ImagePullBackOff, 0 restarts"),
        "{text}"
    );
    // No run, no log: the kubelet says why, as it would to `kubectl logs`.
    assert!(
        text.contains(&format!(
            "{broken}:     logs: none: container \"web\" in pod \"{pod}\" is waiting to start: trying and failing to pull image"
        )),
        "{text}"
    );
    assert!(!text.contains("not served"), "{text}");
    assert!(text.contains(&format!("{broken}:   events:")), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with(&format!("{broken}:     Warning Pod {ns}/hello-web-"))
                && l.contains("Failed: Error: ImagePullBackOff")
        ),
        "{text}"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_deploy_that_times_out_names_the_container_that_never_became_ready() {
    let (_repo, broken, out) = broken_deploy("diag-never", "never", true, "4s");
    let report = json(&out);
    let cluster = cluster_in(&report, &broken);
    assert!(
        cluster["error"]
            .as_str()
            .unwrap()
            .contains("not healthy after 4s"),
        "{cluster:#}"
    );
    let pod = &cluster["diagnosis"]["pods"][0];
    assert_eq!(pod["container"], "web", "{cluster:#}");
    assert_eq!(pod["reason"], "not ready", "{cluster:#}");
    // The running container's log, last line first in mind: why it is not ready.
    let last = pod["logs"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l.as_str())
        .unwrap_or_default();
    assert_eq!(
        last, "waiting for a dependency that never answers (simulated: never ready)",
        "{cluster:#}"
    );
}
