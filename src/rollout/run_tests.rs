//! The multi-cluster run without a fleet: each command's [`super::run::Run`] of the
//! steps it runs on real clusters ([`super::kube_steps::KubeSteps`]: leases, records,
//! the per-cluster state machine, the coordinated restore) on clusters in memory
//! ([`super::memory_fleet`]). Waves, gates, a resume, the environment-wide rollback
//! target, a refused lease and a signal, each checked by what the clusters' records
//! and live objects say afterwards, not only by the report.

use super::gates::GateVars;
use super::kube_steps::GateSetup;
use super::memory_fleet::{Fleet, Ran};
use super::report::{Overall, Report, RunResult};
use crate::cluster::{PodSample, SoakSample};
use crate::config::{VerifyCommand, WaveSettings};
use crate::release::{DeploymentState, EnvironmentHistory, History};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Three clusters: `c0` the canary wave, `c1` and `c2` the wave after it.
fn fleet() -> Fleet {
    Fleet::new(3, 1, 10)
}

fn report(fleet: &Fleet) -> &Report {
    fleet.last.as_ref().expect("a run ran")
}

fn result(fleet: &Fleet, context: &str) -> RunResult {
    report(fleet)
        .clusters
        .iter()
        .find(|c| c.context == context)
        .map(|c| c.result)
        .unwrap_or_else(|| panic!("no row for {context}: {:?}", report(fleet)))
}

/// What each cluster runs: by its live objects, and the deployment by its records.
fn running(fleet: &Fleet) -> Vec<(Option<String>, Option<String>)> {
    fleet
        .histories()
        .iter()
        .enumerate()
        .map(|(i, (_, history))| {
            (
                fleet.live_version(i),
                history.runs_now().map(|r| r.content_id().to_owned()),
            )
        })
        .collect()
}

fn on(version: &str, id: &str) -> (Option<String>, Option<String>) {
    (Some(version.to_owned()), Some(id.to_owned()))
}

fn revisions(fleet: &Fleet) -> Vec<usize> {
    fleet
        .histories()
        .iter()
        .map(|(_, h)| h.records().len())
        .collect()
}

#[tokio::test]
async fn a_deploy_changes_the_canary_wave_before_the_wave_after_it() {
    let mut fleet = fleet();
    let later_wave = fleet.clusters[1].kube.clone();
    let seen_then = Arc::new(Mutex::new(None));
    let seen = seen_then.clone();
    fleet.clusters[0]
        .kube
        .during_next_wait(move || *seen.lock().unwrap() = Some(later_wave.live_names()));
    let id = fleet.deploy(1, None, false, false).await;
    assert_eq!(report(&fleet).overall, Overall::Succeeded);
    assert_eq!(report(&fleet).version.as_deref(), Some("1"));
    assert_eq!(running(&fleet), vec![on("1", &id); 3]);
    assert_eq!(
        *seen_then.lock().unwrap(),
        Some(Vec::new()),
        "the wave after the canary is untouched while the canary rolls out"
    );
}

#[tokio::test]
async fn a_crash_in_the_canary_wave_puts_it_back_and_never_touches_the_next_wave() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    fleet.deploy(2, Some(0), false, false).await;
    let report = report(&fleet);
    assert_eq!(report.overall, Overall::RolledBack, "{report:?}");
    assert_eq!(result(&fleet, "c0"), RunResult::RolledBack);
    let diagnosis = report.clusters[0].diagnosis.as_ref().expect("diagnosed");
    assert_eq!(diagnosis.pods[0].reason, "CrashLoopBackOff");
    for later in ["c1", "c2"] {
        assert_eq!(result(&fleet, later), RunResult::NotStarted);
    }
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
    // The canary: its deploy, the failed revision, the restore; the others untouched.
    assert_eq!(revisions(&fleet), [3, 1, 1]);
}

#[tokio::test]
async fn a_failing_verify_gate_fails_its_wave_and_puts_it_back() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    let id = fleet.next_id();
    let mut plan = fleet.plan();
    plan.wave_settings = vec![WaveSettings {
        wave: 0,
        concurrency: None,
        soak: None,
        max_restarts: 0,
        verify: vec![VerifyCommand {
            run: "echo \"smoke test of $FLOTILLA_VERSION failed\"; exit 3".into(),
            helm_tests: false,
            timeout: Duration::from_secs(30),
        }],
    }];
    let options = fleet.options(&plan, &fleet.deploying(2, None));
    let mut steps = fleet.deploy_steps(&id, 2, None, options);
    steps.gates = Some(GateSetup {
        vars: GateVars {
            release: "hello".into(),
            environment: "prod".into(),
            deployment_id: id.clone(),
            version: String::new(),
            kubeconfig: Default::default(),
            hidden: Vec::new(),
        },
        root: std::env::temp_dir(),
    });
    fleet.run(&plan, &steps, "deploy").await;
    let report = report(&fleet);
    assert_eq!(report.overall, Overall::RolledBack, "{report:?}");
    let gate = report.failed_gate.as_ref().expect("the gate is named");
    assert_eq!(gate.cluster, "c0");
    let canary = &report.clusters[0];
    assert!(
        canary.gates[0]
            .output
            .iter()
            .any(|l| l.contains("smoke test of 2 failed")),
        "the command saw the version it gates: {:?}",
        canary.gates
    );
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
    assert_eq!(revisions(&fleet), [3, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_soak_that_sees_a_crashloop_fails_the_wave_and_puts_it_back() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    let pod = |stuck: Option<&str>| SoakSample {
        pods: vec![PodSample {
            name: "web-1".into(),
            restarts: u32::from(stuck.is_some()),
            stuck: stuck.map(str::to_owned),
        }],
        workloads: Vec::new(),
    };
    fleet.clusters[0]
        .kube
        .script_samples(vec![pod(None), pod(Some("CrashLoopBackOff"))]);
    let id = fleet.next_id();
    let mut plan = fleet.plan();
    plan.wave_settings = vec![WaveSettings {
        wave: 0,
        concurrency: None,
        soak: Some(Duration::from_secs(300)),
        max_restarts: 0,
        verify: Vec::new(),
    }];
    let options = fleet.options(&plan, &fleet.deploying(2, None));
    let steps = fleet.deploy_steps(&id, 2, None, options);
    fleet.run(&plan, &steps, "deploy").await;
    let report = report(&fleet);
    assert_eq!(report.overall, Overall::RolledBack, "{report:?}");
    let cause = report.cause.as_deref().unwrap_or_default();
    assert!(cause.contains("CrashLoopBackOff"), "{cause}");
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
    assert_eq!(
        fleet.clusters[1].kube.samples_taken(),
        0,
        "wave 1 never soaked"
    );
    // The soak's time is in the record of the run it judged (the run's picture).
    let soaked = fleet.clusters[0].kube.records.records();
    let judged = soaked
        .iter()
        .find(|r| r.deployment_id == id && r.rollback_of.is_none())
        .map(|r| r.phases.iter().map(|p| p.phase).collect::<Vec<_>>());
    assert!(
        judged.is_some_and(|phases| phases.contains(&crate::release::Phase::Soak)),
        "{soaked:?}"
    );
}

#[tokio::test]
async fn a_paused_deployment_resumed_is_one_deployment_on_every_wave() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    let id = fleet.deploy(2, None, false, true).await;
    assert_eq!(report(&fleet).overall, Overall::Paused);
    assert_eq!(
        running(&fleet),
        [on("2", &id), on("1", &first), on("1", &first)]
    );
    assert_eq!(fleet.resume(&id, 2, None).await, Ran::Ran);
    assert_eq!(report(&fleet).overall, Overall::Succeeded);
    assert_eq!(report(&fleet).deployment_id, id, "the same deployment id");
    assert_eq!(running(&fleet), vec![on("2", &id); 3]);
    let histories = fleet.histories();
    let env = EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
    assert_eq!(env.state(&id), Some(DeploymentState::Complete));
    // Once complete, there is nothing left to resume.
    let again = fleet.resume(&id, 2, None).await;
    assert!(matches!(again, Ran::Refused(_)), "{again:?}");
}

#[tokio::test]
async fn a_resume_whose_later_wave_crashes_puts_every_wave_back() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    let id = fleet.deploy(2, None, false, true).await;
    assert_eq!(fleet.resume(&id, 2, Some(2)).await, Ran::Ran);
    assert_eq!(report(&fleet).overall, Overall::RolledBack);
    // The canary, changed by the first part, goes back with the rest.
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
}

#[tokio::test]
async fn rollback_puts_every_cluster_on_the_environment_wide_target() {
    let mut fleet = fleet();
    fleet.deploy(1, None, false, false).await;
    let second = fleet.deploy(2, None, false, false).await;
    // A crash undone in the canary, then a fix: the target is what ran before the fix.
    fleet.deploy(3, Some(0), false, false).await;
    fleet.deploy(4, None, false, false).await;
    assert_eq!(fleet.rollback(None, None).await, Ran::Ran);
    let report = report(&fleet);
    assert_eq!(report.operation, "rollback");
    assert_eq!(report.overall, Overall::Succeeded, "{report:?}");
    assert_eq!(running(&fleet), vec![on("2", &second); 3]);
}

#[tokio::test]
async fn a_lease_held_by_another_run_refuses_the_run_before_any_change() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    fleet.clusters[2].kube.hold_lease(Some("bob@laptop pid 22"));
    fleet.deploy(2, None, false, false).await;
    let report = report(&fleet);
    assert_eq!(report.overall, Overall::Refused, "{report:?}");
    let row = report.clusters.iter().find(|c| c.context == "c2").unwrap();
    assert_eq!(row.result, RunResult::FailedUnchanged);
    assert!(row.refused);
    let error = row.error.as_deref().unwrap_or_default();
    assert!(error.contains("bob@laptop pid 22"), "{error}");
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
    assert_eq!(revisions(&fleet), [1, 1, 1], "no record written anywhere");
    // Once the other run is over, the same deploy goes through.
    fleet.clusters[2].kube.hold_lease(None);
    let id = fleet.deploy(2, None, false, false).await;
    assert_eq!(running(&fleet), vec![on("2", &id); 3]);
}

#[tokio::test]
async fn a_signal_during_the_canary_wave_stops_the_run_and_puts_the_canary_back() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    let interrupt = fleet.interrupt.clone();
    fleet.clusters[0]
        .kube
        .during_next_wait(move || interrupt.signal(15));
    fleet.deploy(2, None, false, false).await;
    let report = report(&fleet);
    assert!(report.interrupted);
    // The number is reported only when a second signal abandons the run.
    assert_eq!(report.cause.as_deref(), Some("interrupted by a signal"));
    assert_eq!(report.overall, Overall::RolledBack, "{report:?}");
    assert_eq!(result(&fleet, "c0"), RunResult::RolledBack);
    assert_eq!(result(&fleet, "c1"), RunResult::NotStarted);
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
}

#[tokio::test]
async fn a_halted_run_leaves_the_failed_canary_for_the_on_call_engineer() {
    let mut fleet = fleet();
    let first = fleet.deploy(1, None, false, false).await;
    let id = fleet.deploy(2, Some(0), true, false).await;
    let report = report(&fleet);
    assert_eq!(report.overall, Overall::Halted, "{report:?}");
    assert_eq!(result(&fleet, "c0"), RunResult::LeftFailed);
    assert_eq!(
        report.clusters[0]
            .before
            .as_ref()
            .map(|b| b.deployment_id.as_str()),
        Some(first.as_str())
    );
    let canary = History::new(fleet.clusters[0].kube.records.records());
    assert_eq!(
        canary.latest().map(|r| r.deployment_id.as_str()),
        Some(id.as_str())
    );
    assert_eq!(fleet.live_version(0).as_deref(), Some("2"));
    assert_eq!(running(&fleet)[1..], [on("1", &first), on("1", &first)]);
    // The rollback the report points at puts it back.
    assert_eq!(fleet.rollback(None, None).await, Ran::Ran);
    assert_eq!(running(&fleet), vec![on("1", &first); 3]);
}

#[tokio::test]
async fn uninstall_takes_every_lease_before_removing_anything_anywhere() {
    use super::leases::Leases;
    use super::memory_fleet::{NAMESPACE, RELEASE};
    use super::Reporter;
    use crate::cluster::Removal;
    use crate::ops::fake::FakeKube;
    let mut fleet = fleet();
    fleet.deploy(1, None, false, false).await;
    let kubes: Vec<&FakeKube> = fleet.clusters.iter().map(|c| &c.kube).collect();
    let opts = crate::ops::RunOptions::new(Duration::from_secs(5));
    let leases: Leases<FakeKube> = Leases::new(false);
    fleet.clusters[1].kube.hold_lease(Some("bob@laptop pid 22"));
    let refused = leases
        .take_every(&kubes, NAMESPACE, RELEASE, &opts.lock, &Reporter::silent())
        .await
        .unwrap_err();
    assert!(refused.message.contains("bob@laptop pid 22"), "{refused:?}");
    assert!(refused.environment, "a refusal of the environment: exit 3");
    assert!(
        leases.seen_read("c0").is_none(),
        "what was taken is given back"
    );

    fleet.clusters[1].kube.hold_lease(None);
    leases
        .take_every(&kubes, NAMESPACE, RELEASE, &opts.lock, &Reporter::silent())
        .await
        .unwrap();
    for c in &fleet.clusters {
        let read = leases.seen_read(&c.context).expect("read under the lease");
        crate::ops::uninstall::remove(
            &c.kube,
            &read.store(),
            NAMESPACE,
            RELEASE,
            Removal::Uninstall,
            &opts,
        )
        .await
        .unwrap();
        assert_eq!(c.kube.live_names(), Vec::<String>::new());
        assert!(c.kube.records.records().is_empty());
    }
    leases.release_all().await;
}

/// The round trips in sequence of one upgrade of one cluster, from its lease to its
/// lease given back, counted on the in-memory cluster with every request answered
/// after one (paused) round trip: a change that puts one more request on the critical
/// path fails here, whatever the machine. On a real cluster `prepare` takes the lease
/// (with the freeze and the checksum key in the same round) and reads the records and
/// the ownership under it, so the step does not read them again; the apply is one
/// round when what the workloads refer to is unchanged, and the health wait one
/// streaming watch: docs/benchmarks.md lists the whole chain.
#[tokio::test(start_paused = true)]
async fn one_upgrade_costs_its_round_trips_in_sequence_and_no_more() {
    const RTT: Duration = Duration::from_millis(100);
    let mut fleet = Fleet::new(1, 1, 10);
    fleet.deploy(1, None, false, false).await;
    fleet.clusters[0].kube.answer_after(RTT);
    let started = tokio::time::Instant::now();
    let id = fleet.deploy(2, None, false, false).await;
    let rounds = started.elapsed().as_millis() / RTT.as_millis();
    assert_eq!(running(&fleet), [on("2", &id)]);
    // The lease; the records under it; the ownership reads (every object at once); the
    // `pending` record; the apply; the health wait; the `deployed` record with the
    // marks of the revision it replaces, at once; the lease given back.
    assert_eq!(rounds, 8, "round trips in sequence");
}
