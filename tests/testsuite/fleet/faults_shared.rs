//! Faults that need no stopped cluster, on the shared fleet (each test in a namespace of
//! its own): two deploys of one release at once from two processes, a second Ctrl-C,
//! the exit codes of a run refused everywhere before any change (every lease held,
//! permission denied, an exec-plugin credential that fails), and a health wait whose
//! `watch pods` RBAC refuses, which fails at once naming verb and resource.

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use rollout_support::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn contexts(fleet: &Fleet) -> Vec<(String, u32)> {
    fleet.clusters().into_iter().map(|c| (c, 0)).collect()
}

fn env_of(list: &[(String, u32)]) -> Vec<(&str, u32)> {
    list.iter().map(|(c, w)| (c.as_str(), *w)).collect()
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// `(revision, deployment id)` of every record of `context`, in revision order.
fn ids_in(fleet: &Fleet, repo: &TestRepo, context: &str) -> Vec<String> {
    history(fleet, repo, "prod")
        .into_iter()
        .filter(|r| r.0 == context)
        .map(|r| r.3)
        .collect()
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn two_deploys_at_once_one_waits_then_runs_another_is_refused_naming_the_holder_never_interleaved()
{
    let fleet = Fleet::shared();
    let list = contexts(fleet);
    let repo = repo("concurrent", &[("prod", &env_of(&list))], "60s");
    let first = run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(first.status.success(), "{}", describe(&first));
    let first_id = json(&first)["deployment_id"].as_str().unwrap().to_owned();

    // A: pods ready 3 s after they start, so it holds the leases for a while.
    let mut a = command(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "slow-3",
            "-o",
            "json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut a_err = BufReader::new(a.stderr.take().unwrap());
    let mut line = String::new();
    // A applies only once it holds every lease.
    while !line.contains("apply") {
        line.clear();
        assert!(a_err.read_line(&mut line).unwrap() > 0, "A ended early");
    }

    // B does not wait: refused at once, naming A's lease holder, nothing changed (exit 3).
    let b = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v-b",
            "--lock-timeout",
            "0s",
            "-o",
            "json",
        ],
    );
    assert_eq!(b.status.code(), Some(3), "{}", describe(&b));
    let b_log = String::from_utf8_lossy(&b.stderr);
    assert!(
        b_log.contains(&format!("pid {} run ", a.id())),
        "B names A as the holder: {b_log}"
    );
    assert_eq!(json(&b)["overall"], "refused");

    // C waits for A (saying so), then runs.
    let c = command(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v-c",
            "-o",
            "json",
        ],
    )
    .output();
    let a_out = a.wait_with_output().unwrap();
    assert!(a_out.status.success(), "A: {}", describe(&a_out));
    let a_id = json(&a_out)["deployment_id"].as_str().unwrap().to_owned();
    let c = c.unwrap();
    assert!(c.status.success(), "C: {}", describe(&c));
    let c_log = String::from_utf8_lossy(&c.stderr);
    assert!(
        c_log.contains("is locked by") && c_log.contains("waiting up to"),
        "C says whom it waits for: {c_log}"
    );
    let c_id = json(&c)["deployment_id"].as_str().unwrap().to_owned();

    // Never interleaved: in every cluster, A's revision then C's, nothing of B.
    for (context, _) in &list {
        assert_eq!(
            ids_in(fleet, &repo, context),
            [first_id.clone(), a_id.clone(), c_id.clone()],
            "{context}"
        );
        assert_eq!(
            deployed(fleet, &repo, "prod", context).map(|d| d.2),
            Some("v-c".to_owned())
        );
    }
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_second_ctrl_c_prints_the_partial_report_with_finish_commands_and_exits_130() {
    let fleet = Fleet::shared();
    let list = contexts(fleet);
    let repo = repo("ctrl-c", &[("prod", &env_of(&list))], "60s");
    // The good revision's pods take 4 s to be ready: a restore to it is slow enough to
    // be interrupted.
    let good = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "slow-4",
            "-o",
            "json",
        ],
    );
    assert!(good.status.success(), "{}", describe(&good));
    let good_id = json(&good)["deployment_id"].as_str().unwrap().to_owned();

    let broken_in = &list[0].0;
    let mut broken =
        spawn_broken_deploy(fleet, &repo, broken_in, &format!("[{broken_in}] waiting"));
    let pid = broken.child.id();
    signal(pid, "INT");
    broken.read_until("rolling back");
    let t = Instant::now();
    signal(pid, "INT");
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(130), "{log}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(log.contains("second signal: abandoning the run"), "{log}");
    let report = json(&out);
    assert_eq!(report["signal"], 2, "{report:#}");
    assert_eq!(report["overall"], "rollback-incomplete", "{report:#}");
    let finish: Vec<String> = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["finish_with"].as_str().map(str::to_owned))
        .collect();
    assert!(!finish.is_empty(), "{report:#}");

    // The printed commands finish the job, at once: the abandoned run gave its leases back
    // (or its process is gone).
    for command_line in &finish {
        assert!(
            command_line.contains(&format!("--to {good_id}")),
            "{command_line}"
        );
        let args: Vec<&str> = command_line.split(' ').skip(1).collect();
        let out = run(fleet, &repo, &args);
        assert!(out.status.success(), "{command_line}: {}", describe(&out));
    }
    for (context, _) in &list {
        assert_eq!(
            deployed(fleet, &repo, "prod", context).map(|d| (d.1, d.2)),
            Some((good_id.clone(), "slow-4".to_owned())),
            "{context}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn every_lease_held_by_a_live_run_is_exit_3_naming_the_holder_and_nothing_changes() {
    let fleet = Fleet::shared();
    let list = contexts(fleet);
    let repo = repo("all-locked", &[("prod", &env_of(&list))], "60s");
    for (context, _) in &list {
        let client = fleet.client(context).await;
        create_namespace(&client, &repo.namespace).await;
        // A live holder elsewhere: a lease of an hour, renewed just now.
        hold_lease(client, &repo.namespace, "hello").await;
    }
    let t = Instant::now();
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--lock-timeout",
            "2s",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("waiting up to 2s") && log.contains("bob@ci-elsewhere pid 4242"),
        "{log}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let report = json(&out);
    assert_eq!(report["overall"], "refused", "{report:#}");
    assert!(
        history(fleet, &repo, "prod").is_empty(),
        "no record anywhere"
    );
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn permission_denied_is_exit_3_before_any_change() {
    let fleet = Fleet::shared();
    // The deployer token may only work in its own namespaces: not in this one.
    let deployer = format!("{}-deployer", fleet.clusters()[0]);
    let repo = repo("denied", &[("prod", &[(deployer.as_str(), 0)])], "60s");
    let out = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("permission denied"), "{log}");
    assert!(log.contains("403"), "{log}");
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn an_exec_plugin_that_gives_no_credential_is_exit_3() {
    let fleet = Fleet::shared();
    let mut config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(fleet.kubeconfig()).unwrap()).unwrap();
    let cluster = fleet.clusters()[0].clone();
    let users = config["users"].as_sequence_mut().unwrap();
    users.push(
        serde_yaml_ng::from_str(
            "name: exec-fails\nuser:\n  exec:\n    apiVersion: client.authentication.k8s.io/v1beta1\n    command: \"false\"\n    interactiveMode: Never\n",
        )
        .unwrap(),
    );
    let contexts = config["contexts"].as_sequence_mut().unwrap();
    contexts.push(
        serde_yaml_ng::from_str(&format!(
            "name: exec-fails\ncontext:\n  cluster: {cluster}\n  user: exec-fails\n"
        ))
        .unwrap(),
    );
    let repo = repo("exec", &[("prod", &[("exec-fails", 0)])], "60s");
    let kubeconfig = repo.root().join("kubeconfig");
    std::fs::write(&kubeconfig, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let out = command(fleet, &repo, &["deploy", "hello", "--env", "prod"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("exec-fails"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_health_wait_without_watch_on_pods_fails_at_once_naming_verb_and_resource() {
    let fleet = Fleet::shared();
    let cluster = fleet.clusters()[0].clone();
    let deployer = format!("{cluster}-deployer");
    let repo = repo("no-watch", &[("prod", &[(deployer.as_str(), 0)])], "60s");
    let client = fleet.client(&cluster).await;
    create_namespace(&client, &repo.namespace).await;
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let subject = Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "User".into(),
        name: "deployer".into(),
        ..Default::default()
    };
    let reader = format!("{}-namespace-reader", repo.namespace);
    let params = PostParams::default();
    Api::<ClusterRole>::all(client.clone())
        .create(
            &params,
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(reader.clone()),
                    ..Default::default()
                },
                rules: Some(vec![rule(&[""], &["namespaces"], &["get"])]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(
            &params,
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(reader.clone()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: reader.clone(),
                },
                subjects: Some(vec![subject.clone()]),
            },
        )
        .await
        .unwrap();
    // Everything a deploy needs in the namespace, except `watch` on pods.
    Api::<Role>::namespaced(client.clone(), &repo.namespace)
        .create(
            &params,
            &Role {
                metadata: ObjectMeta {
                    name: Some("deployer".into()),
                    ..Default::default()
                },
                rules: Some(vec![
                    rule(
                        &["", "apps", "coordination.k8s.io"],
                        &[
                            "secrets",
                            "configmaps",
                            "services",
                            "deployments",
                            "replicasets",
                            "leases",
                        ],
                        &["*"],
                    ),
                    rule(&[""], &["pods"], &["get", "list"]),
                ]),
            },
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &repo.namespace)
        .create(
            &params,
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("deployer".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "deployer".into(),
                },
                subjects: Some(vec![subject]),
            },
        )
        .await
        .unwrap();

    // Pods that never become ready: only the refused pod watch can end the wait, and
    // it must do so long before the 60 s timeout (a quick Deployment could otherwise
    // be healthy before the watch's refusal arrives).
    let break_in = format!("breakIn={deployer}");
    let t = Instant::now();
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--set",
            &break_in,
            "--set",
            "breakTag=never",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "failed at once, not at the 60s timeout: {:?}",
        t.elapsed()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("permission denied: cannot watch")
            && text.contains("cannot watch resource \\\"pods\\\""),
        "{}",
        describe(&out)
    );
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(&reader, &Default::default())
        .await;
    let _ = Api::<ClusterRole>::all(client)
        .delete(&reader, &Default::default())
        .await;
}

#[test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
fn a_run_that_waited_for_another_goes_back_to_what_that_one_deployed() {
    let fleet = Fleet::shared();
    let list = contexts(fleet);
    let repo = repo("waited", &[("prod", &env_of(&list))], "60s");
    let first = run(fleet, &repo, &["deploy", "hello", "--env", "prod"]);
    assert!(first.status.success(), "{}", describe(&first));
    let a = spawn_run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "slow-3",
            "-o",
            "json",
        ],
        &[],
        "apply",
    );
    // C is prepared while A runs, waits for A's leases, then fails in one cluster.
    let c = command(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v-c",
            "--set",
            &format!("breakIn={}", list[0].0),
            "--set",
            "breakTag=crashloop",
            "-o",
            "json",
        ],
    )
    .output()
    .unwrap();
    let (a_out, a_log) = a.finish();
    assert!(a_out.status.success(), "{a_log}");
    let a_id = json(&a_out)["deployment_id"].as_str().unwrap().to_owned();
    assert_eq!(c.status.code(), Some(1), "{}", describe(&c));
    assert_eq!(json(&c)["overall"], "rolled-back", "{}", describe(&c));
    // Back to A's deployment, not to what ran when C was prepared.
    for (context, _) in &list {
        assert_eq!(
            deployed(fleet, &repo, "prod", context).map(|d| (d.1, d.2)),
            Some((a_id.clone(), "slow-3".to_owned())),
            "{context}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_run_whose_lease_another_takes_stops_there_and_never_restores_over_it() {
    let fleet = Fleet::shared();
    let list = contexts(fleet);
    let repo = repo("taken", &[("prod", &env_of(&list))], "60s");
    let good = run(
        fleet,
        &repo,
        &["deploy", "hello", "--env", "prod", "-o", "json"],
    );
    assert!(good.status.success(), "{}", describe(&good));
    let good_id = json(&good)["deployment_id"].as_str().unwrap().to_owned();
    let lost = list[0].0.clone();
    let broken = spawn_broken_deploy(fleet, &repo, &lost, &format!("[{lost}] waiting"));

    // Another holder takes the lease (as a run that saw it stale would).
    let leases: Api<Lease> = Api::namespaced(fleet.client(&lost).await, &repo.namespace);
    let mut lease = leases.get("flotilla.hello").await.unwrap();
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("bob@ci-elsewhere pid 7 run 0000beef".into()),
        lease_duration_seconds: Some(3600),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..Default::default()
    });
    leases
        .replace("flotilla.hello", &PostParams::default(), &lease)
        .await
        .unwrap();

    let t = Instant::now();
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    // The renewal (every 5 s) sees it: not the 60 s health timeout.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let report = json(&out);
    assert_eq!(result_of(&report, &lost), "rollback-failed", "{report:#}");
    let row = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == lost.as_str())
        .unwrap();
    let error = row["error"].as_str().unwrap();
    assert!(
        error.contains("lost the lock") && error.contains("not restored"),
        "{error}"
    );
    for (context, _) in list.iter().skip(1) {
        assert_eq!(result_of(&report, context), "rolled-back", "{report:#}");
    }
    // The taker's lease is untouched (release is compare-and-swap), and this run wrote
    // nothing after it lost the lease: its record stays pending for the taker to repair.
    let held = leases.get("flotilla.hello").await.unwrap();
    assert_eq!(
        held.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("bob@ci-elsewhere pid 7 run 0000beef")
    );
    let rows = history(fleet, &repo, "prod");
    assert!(
        rows.iter().any(|r| r.0 == lost && r.2 == "pending"),
        "{rows:?}"
    );

    // Once the other holder is gone, the printed command finishes the job.
    leases
        .delete("flotilla.hello", &Default::default())
        .await
        .unwrap();
    let command_line = row["finish_with"].as_str().unwrap();
    assert_eq!(
        command_line,
        format!("flotilla rollback hello --env prod --to {good_id} --clusters {lost}")
    );
    let args: Vec<&str> = command_line.split(' ').skip(1).collect();
    let out = run(fleet, &repo, &args);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        deployed(fleet, &repo, "prod", &lost).map(|d| d.1),
        Some(good_id)
    );
}
