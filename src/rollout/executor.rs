//! Runs a [`Plan`]: waves in order, the clusters of a wave at once (at most
//! `concurrency` in flight), the next wave only when every cluster of the previous one
//! is healthy. The first failure, or SIGINT/SIGTERM (the caller cancels `interrupt`),
//! stops the run: no cluster starts after it, clusters in flight stop at their next safe
//! point (between apply and wait, or during wait), and then, with `on_failure:
//! rollback`, every cluster this run changed is put back to the revision it had before
//! the run, in parallel, waiting for health, each within its own budget
//! (`rollout.rollback_timeout`). With `halt` they are left and the report says so. A
//! cluster lost after its first change is a changed cluster: it is restored like the
//! others, and when that fails too the report prints the command that finishes it. A
//! second signal abandons what is in flight and returns the partial report at once,
//! with a finish command for every cluster left unfinished. Secrets and rendering are done by the caller before `execute`: nothing here
//! can fail for a reason that was knowable before the first cluster was touched.

use super::gates::GateResult;
use super::leases::take_every_lease;
use super::plan::Plan;
use super::progress::{Phase, Reporter};
pub use super::report::RunInfo;
use super::report::{ClusterResult, FailedGate, Overall, Report, RevisionRef, RunResult};
pub use super::step::{ClusterSteps, LeaseWait, Soak, StepError, StepOutcome};
use crate::cluster::CancellationToken;
use crate::config::{Cluster, OnFailure, WaveSettings};
use futures::StreamExt;
use std::sync::atomic::{AtomicI32, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a run is stopped from outside: the first signal stops it and rolls back what it
/// changed ([`Interrupt::first`]); a second one abandons even that
/// ([`Interrupt::second`]) and the run returns its partial report at once.
#[derive(Clone, Default)]
pub struct Interrupt {
    first: CancellationToken,
    second: CancellationToken,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Signal `number` arrived (`SIGINT` 2, `SIGTERM` 15).
    pub fn signal(&self, number: i32) {
        self.signal.store(number, AtomicOrdering::SeqCst);
        if self.first.is_cancelled() {
            self.second.cancel();
        } else {
            self.first.cancel();
        }
    }

    pub fn first(&self) -> &CancellationToken {
        &self.first
    }

    pub fn second(&self) -> &CancellationToken {
        &self.second
    }

    /// SIGINT and SIGTERM for a run. The first: the run stops as on a failure and rolls
    /// back what it changed. The second: what is in flight (the rollback included) is
    /// abandoned, the partial report is printed with a finish command for every cluster
    /// left unfinished, and the command exits 128 + the signal (130, 143).
    pub fn on_signals() -> Interrupt {
        let interrupt = Interrupt::new();
        let notify = interrupt.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                let number = tokio::select! {
                    _ = int.recv() => 2,
                    _ = term.recv() => 15,
                };
                if notify.first().is_cancelled() {
                    crate::output::eprint_line("second signal: abandoning the run; the partial report follows with the commands that finish the job");
                    notify.signal(number);
                    return;
                }
                crate::output::eprint_line("signal received: stopping the run and rolling back what it changed (a second signal abandons the rollback)");
                notify.signal(number);
            }
        });
        interrupt
    }

    /// The number of the last signal, once there was one.
    pub fn last_signal(&self) -> Option<i32> {
        Some(self.signal.load(AtomicOrdering::SeqCst)).filter(|n| *n != 0)
    }
}

/// The command that finishes putting `context` back, once it is reachable.
pub fn finish_command(
    release: &str,
    env: &str,
    context: &str,
    before: Option<&RevisionRef>,
) -> String {
    finish_command_to(
        release,
        env,
        context,
        before.map(|b| b.deployment_id.as_str()),
    )
}

/// The command that puts `context` on deployment `to` (`None`: the release was not
/// installed there, so it is removed), once it is reachable: the target is decided, and
/// finishing later must not decide it again.
pub fn finish_command_to(release: &str, env: &str, context: &str, to: Option<&str>) -> String {
    match to {
        Some(id) => {
            format!("flotilla rollback {release} --env {env} --to {id} --clusters {context}")
        }
        None => format!("flotilla uninstall {release} --env {env} --cluster {context}"),
    }
}

pub async fn execute<S: ClusterSteps>(
    plan: &Plan,
    steps: &S,
    info: &RunInfo,
    interrupt: &Interrupt,
    reporter: &Reporter,
) -> Report {
    let started = Instant::now();
    let stop = interrupt.first().child_token();
    let abandon = interrupt.second();
    let mut results: Vec<ClusterResult> = Vec::new();
    let mut cause: Option<String> = None;

    // Every cluster's lease before any cluster is changed, one after the other in name
    // order: two runs never each hold a part of what the other needs, and a run that
    // cannot have them all changes nothing.
    if let Some(refused) = acquire_all(plan, steps, interrupt, reporter).await {
        steps.release().await;
        reporter.finish();
        return refused_report(plan, info, interrupt, reporter, refused, started);
    }

    let mut failed_gate: Option<FailedGate> = None;
    let mut paused_after_wave = None;
    for wave in &plan.waves {
        let Some(number) = wave.first().map(|c| c.wave) else {
            continue;
        };
        if plan.resume_after.is_some_and(|done| number <= done) {
            results.extend(wave.iter().map(|c| earlier_row(c, steps, reporter)));
            continue;
        }
        for cluster in wave {
            reporter.phase(&cluster.context, Phase::Queued);
        }
        let mut done: Vec<(usize, ClusterResult, bool)> =
            futures::stream::iter(wave.iter().enumerate())
                .map(|(i, cluster)| {
                    let stop = &stop;
                    async move {
                        let (row, own_fault) =
                            deploy_cluster(cluster, steps, stop, abandon, (plan, info), reporter)
                                .await;
                        (i, row, own_fault)
                    }
                })
                .buffer_unordered(plan.concurrency_of(number))
                .collect()
                .await;
        done.sort_by_key(|(i, ..)| *i);
        if cause.is_none() {
            // Those stopped by a failure report a cancellation: the cause is the other one.
            cause = done
                .iter()
                .find(|(_, _, own)| *own)
                .and_then(|(_, r, _)| r.error.clone());
        }
        let mut rows: Vec<ClusterResult> = done.into_iter().map(|(_, r, _)| r).collect();
        if !stop.is_cancelled() && !abandon.is_cancelled() {
            if let Some(settings) = plan.settings(number) {
                let concurrency = plan.concurrency_of(number);
                if let Some(gate) =
                    run_gates(settings, concurrency, &mut rows, steps, &stop, reporter).await
                {
                    cause.get_or_insert_with(|| gate.cause());
                    failed_gate = Some(gate);
                }
            }
        }
        results.extend(rows);
        if stop.is_cancelled() || abandon.is_cancelled() {
            break;
        }
        if plan.until_wave == Some(number) {
            // Stopping after the last wave is no pause: the deployment is complete.
            if results.len() < plan.clusters().count() {
                paused_after_wave = Some(number);
            }
            break;
        }
    }
    // Later waves never started.
    for cluster in plan.clusters().skip(results.len()) {
        if paused_after_wave.is_none() {
            reporter.phase(&cluster.context, Phase::Skipped);
        }
        results.push(ClusterResult::not_started(cluster));
    }

    let interrupted = interrupt.first().is_cancelled();
    let failed = interrupted || stop.is_cancelled();
    let overall = if !failed {
        if paused_after_wave.is_some() {
            Overall::Paused
        } else {
            Overall::Succeeded
        }
    } else {
        after_failure(plan, steps, info, &mut results, reporter, abandon).await
    };
    let overall = if results.iter().any(|r| r.result == RunResult::Abandoned) {
        Overall::RollbackIncomplete
    } else {
        overall
    };
    reporter.finish();
    steps.release().await;
    let aborted = abandon.is_cancelled();
    Report {
        overall,
        interrupted,
        signal: if aborted {
            interrupt.last_signal()
        } else {
            None
        },
        cause: if interrupted && cause.is_none() {
            Some("interrupted by a signal".into())
        } else {
            cause
        },
        duration: started.elapsed(),
        clusters: results,
        failed_gate,
        paused_after_wave: paused_after_wave.filter(|_| !failed),
        ..Report::new(info, &plan.environment)
    }
}

/// The report of a run refused before any change: the cluster that refused its lease
/// (`refused`), every other one not started.
fn refused_report(
    plan: &Plan,
    info: &RunInfo,
    interrupt: &Interrupt,
    reporter: &Reporter,
    refused: ClusterResult,
    started: Instant,
) -> Report {
    let cause = Some(refused.error.clone().unwrap_or_default());
    let clusters = plan
        .clusters()
        .map(|c| {
            if c.context == refused.context {
                refused.clone()
            } else {
                reporter.phase(&c.context, Phase::Skipped);
                ClusterResult::not_started(c)
            }
        })
        .collect();
    Report {
        overall: Overall::Refused,
        interrupted: interrupt.first().is_cancelled(),
        signal: interrupt
            .second()
            .is_cancelled()
            .then(|| interrupt.last_signal())
            .flatten(),
        cause,
        duration: started.elapsed(),
        clusters,
        ..Report::new(info, &plan.environment)
    }
}

/// One cluster's deploy in its wave: its row, and whether it failed of its own fault
/// (not stopped because another cluster failed). A failure stops the run (`stop`).
async fn deploy_cluster<S: ClusterSteps>(
    cluster: &Cluster,
    steps: &S,
    stop: &CancellationToken,
    abandon: &CancellationToken,
    (plan, info): (&Plan, &RunInfo),
    reporter: &Reporter,
) -> (ClusterResult, bool) {
    let mut row = ClusterResult::not_started(cluster);
    if stop.is_cancelled() || abandon.is_cancelled() {
        reporter.phase(&cluster.context, Phase::Skipped);
        return (row, false);
    }
    let t = Instant::now();
    let outcome = tokio::select! {
        outcome = steps.deploy(&cluster.context, stop, reporter) => Some(outcome),
        _ = abandon.cancelled() => None,
    };
    row.duration = t.elapsed();
    let Some(outcome) = outcome else {
        // Abandoned mid-step: it may have changed anything.
        row.before = steps.before(&cluster.context);
        row.result = RunResult::Abandoned;
        row.error = Some(abandoned(&cluster.context, "its deploy"));
        row.finish_with = Some(finish_command(
            &info.release,
            &plan.environment,
            &cluster.context,
            row.before.as_ref(),
        ));
        return (row, false);
    };
    let own_fault = record_outcome(&mut row, outcome);
    match &row.error {
        Some(err) => {
            reporter.phase(&cluster.context, Phase::Failed(err.clone()));
            stop.cancel();
        }
        None => reporter.phase(&cluster.context, Phase::Deployed),
    }
    (row, own_fault)
}

/// `outcome` in the cluster's row; whether it failed of its own fault.
fn record_outcome(row: &mut ClusterResult, outcome: StepOutcome) -> bool {
    match outcome {
        StepOutcome::Untouched(err) => {
            row.refused = err.environment;
            row.result = RunResult::FailedUnchanged;
            row.error = Some(err.message);
            !err.cancelled
        }
        StepOutcome::Changed {
            before,
            revision,
            error,
        } => {
            row.before = before;
            row.deployed = Some(revision);
            let Some(err) = error else {
                row.result = RunResult::Deployed;
                return false;
            };
            row.diagnosis = err.diagnosis;
            row.error = Some(if err.unreachable {
                format!("lost after it was changed: {}", err.message)
            } else {
                err.message
            });
            row.result = RunResult::LeftFailed;
            !err.cancelled
        }
    }
}

/// What a failed run does with the clusters it changed, as `on_failure` says: leaves
/// them (`halt`), or puts every one back.
async fn after_failure<S: ClusterSteps>(
    plan: &Plan,
    steps: &S,
    info: &RunInfo,
    results: &mut [ClusterResult],
    reporter: &Reporter,
    abandon: &CancellationToken,
) -> Overall {
    match plan.on_failure {
        OnFailure::Halt => {
            for r in results.iter_mut().filter(|r| r.deployed.is_some()) {
                r.result = if r.error.is_some() {
                    RunResult::LeftFailed
                } else {
                    RunResult::LeftDeployed
                };
                reporter.phase(&r.context, Phase::Left);
            }
            Overall::Halted
        }
        OnFailure::Rollback => restore_all(plan, steps, info, results, reporter, abandon).await,
    }
}

/// The row of a cluster an earlier part of this deployment deployed (`--resume`):
/// changed by this deployment, so put back like the others if this part fails.
fn earlier_row<S: ClusterSteps>(
    cluster: &Cluster,
    steps: &S,
    reporter: &Reporter,
) -> ClusterResult {
    let mut row = ClusterResult::not_started(cluster);
    row.earlier = true;
    if let Some((before, revision)) = steps.resumed(&cluster.context) {
        row.before = before;
        row.deployed = Some(revision);
        row.result = RunResult::Deployed;
        reporter.phase(&cluster.context, Phase::Deployed);
    }
    row
}

/// The gates of a healthy wave on each of its clusters (at most `concurrency` at once):
/// the soak, then each verify command in order. The first gate that fails stops the
/// run (`stop`), which ends the others' soaks and commands; it is returned, and its
/// cluster's row says why.
async fn run_gates<S: ClusterSteps>(
    settings: &WaveSettings,
    concurrency: usize,
    rows: &mut [ClusterResult],
    steps: &S,
    stop: &CancellationToken,
    reporter: &Reporter,
) -> Option<FailedGate> {
    if settings.soak.is_none() && settings.verify.is_empty() {
        return None;
    }
    let soak = settings.soak.map(|duration| Soak {
        duration,
        max_restarts: settings.max_restarts,
    });
    let gated: Vec<(usize, Vec<GateResult>)> = futures::stream::iter(
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.result == RunResult::Deployed),
    )
    .map(|(i, row)| {
        let soak = soak.as_ref();
        async move {
            let context = row.context.as_str();
            let mut gates = Vec::new();
            if let Some(soak) = soak {
                let soaked = steps.soak(context, soak, stop, reporter).await;
                let passed = soaked.is_ok();
                let gate = match soaked {
                    Ok(()) => GateResult::soak(
                        true,
                        format!("healthy for {}", humantime::format_duration(soak.duration)),
                    ),
                    Err(err) => GateResult {
                        stopped: err.cancelled,
                        ..GateResult::soak(false, err.message)
                    },
                };
                gates.push(gate);
                if !passed {
                    stop.cancel();
                    return (i, gates);
                }
            }
            for command in &settings.verify {
                if stop.is_cancelled() {
                    break;
                }
                reporter.phase(context, Phase::Verifying(command.run.clone()));
                let gate = steps.verify(context, command, stop).await;
                let passed = gate.passed;
                gates.push(gate);
                if !passed {
                    stop.cancel();
                    return (i, gates);
                }
            }
            if !stop.is_cancelled() {
                reporter.phase(context, Phase::GatesPassed);
            }
            (i, gates)
        }
    })
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await;
    let mut failed: Vec<(usize, FailedGate)> = Vec::new();
    for (i, gates) in gated {
        let Some(row) = rows.get_mut(i) else { continue };
        if let Some(gate) = gates.iter().find(|g| !g.passed) {
            // The live line right before this one named the command: said once there.
            let live = if gate.stopped {
                format!("{} stopped: the run was stopping", gate.gate)
            } else {
                format!("{} failed: {}", gate.gate, gate.detail)
            };
            reporter.phase(&row.context, Phase::Failed(live));
            row.error = Some(gate.failure());
            if !gate.stopped {
                failed.push((
                    i,
                    FailedGate {
                        cluster: row.context.clone(),
                        gate: gate.name(),
                        detail: gate.detail.clone(),
                        output: gate.output.clone(),
                    },
                ));
            }
        }
        row.gates = gates;
    }
    failed.sort_by_key(|(i, _)| *i);
    failed.into_iter().next().map(|(_, g)| g)
}

/// Every cluster's lease before any is changed ([`take_every_lease`]); the row of the
/// first cluster that refuses (or of the one a signal stopped), if any.
async fn acquire_all<S: ClusterSteps>(
    plan: &Plan,
    steps: &S,
    interrupt: &Interrupt,
    reporter: &Reporter,
) -> Option<ClusterResult> {
    let contexts: Vec<&str> = plan.clusters().map(|c| c.context.as_str()).collect();
    let (context, err, waited) = take_every_lease(
        &contexts,
        interrupt.first(),
        |context, wait| steps.acquire(context, wait, reporter),
        || steps.release(),
    )
    .await
    .err()?;
    let cluster = plan.clusters().find(|c| c.context == context)?;
    reporter.phase(&context, Phase::Failed(err.message.clone()));
    let mut row = ClusterResult::not_started(cluster);
    row.result = RunResult::FailedUnchanged;
    row.refused = err.environment;
    row.error = Some(err.message);
    row.duration = waited;
    Some(row)
}

fn abandoned(context: &str, what: &str) -> String {
    format!("cluster `{context}`: {what} was abandoned by a second signal; it may be half-done")
}

/// Puts every cluster this run changed back, in parallel (bounded like the deploy),
/// each within its own budget (the steps' `rollback_timeout`). The first
/// signal does not stop it (that would leave clusters half-restored); a second one
/// abandons it, and every cluster not yet back gets its finish command.
async fn restore_all<S: ClusterSteps>(
    plan: &Plan,
    steps: &S,
    info: &RunInfo,
    results: &mut [ClusterResult],
    reporter: &Reporter,
    abandon: &CancellationToken,
) -> Overall {
    let restored: Vec<(usize, Result<Option<u32>, StepError>, Duration)> = futures::stream::iter(
        results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.deployed.is_some()),
    )
    .map(|(i, r)| async move {
        reporter.phase(&r.context, Phase::RollingBack);
        let t = Instant::now();
        let result = tokio::select! {
            result = steps.restore(&r.context, r.before.as_ref(), reporter) => result,
            _ = abandon.cancelled() => Err(StepError::new(abandoned(&r.context, "its restore"))),
        };
        match &result {
            Ok(_) => reporter.phase(&r.context, Phase::RolledBack),
            Err(err) => reporter.phase(&r.context, Phase::RollbackFailed(err.message.clone())),
        }
        (i, result, t.elapsed())
    })
    .buffer_unordered(plan.concurrency.max(1))
    .collect()
    .await;
    let mut overall = Overall::RolledBack;
    for (i, result, took) in restored {
        let Some(r) = results.get_mut(i) else {
            continue;
        };
        r.duration += took;
        match result {
            Ok(revision) => {
                r.result = RunResult::RolledBack;
                r.restored = revision;
            }
            Err(err) => {
                overall = Overall::RollbackIncomplete;
                r.result = RunResult::RollbackFailed;
                r.error = Some(match r.error.take() {
                    Some(first) => format!("{first}; rollback: {}", err.message),
                    None => format!("rollback: {}", err.message),
                });
                r.finish_with = Some(finish_command(
                    &info.release,
                    &plan.environment,
                    &r.context,
                    r.before.as_ref(),
                ));
            }
        }
    }
    overall
}

#[cfg(test)]
mod tests {
    //! The executor against scripted clusters: no Kubernetes here, only the ordering,
    //! stopping and restoring decisions.
    use super::*;
    use crate::config::VerifyCommand;
    use crate::rollout::plan::tests::env;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[derive(Clone, Copy)]
    enum Script {
        Healthy,
        /// Changed, then unhealthy (a crashloop).
        Crash,
        /// Refused before changing anything.
        Refuse,
        /// Changed, then waits until stopped.
        Hang,
        /// Changed, then lost (unreachable) before it recorded how it ended.
        Lost,
        /// Refused before any change for a reason of the environment (lock, reach).
        Locked,
    }

    #[derive(Default)]
    struct Scripted {
        scripts: HashMap<String, Script>,
        /// Contexts whose restore fails as unreachable.
        unreachable_on_restore: Vec<String>,
        /// A fresh install (no revision before) in these.
        fresh: Vec<String>,
        /// Contexts whose restore never ends (until abandoned).
        hang_on_restore: Vec<String>,
        /// Cancelled when a restore that never ends starts.
        restoring: CancellationToken,
        /// Contexts whose lease another run holds.
        held_by_another: Vec<String>,
        /// Contexts whose lease another run holds at the first attempt only (it gives
        /// it back while this run waits).
        taken_by_another_then_given_back: Vec<String>,
        acquiring: AtomicUsize,
        most_acquiring: AtomicUsize,
        /// Cancelled when a Hang cluster starts waiting (lets a test send the signal then).
        hanging: CancellationToken,
        log: Mutex<Vec<String>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        /// Contexts whose soak finds a crashloop.
        soak_fails: Vec<String>,
        /// Contexts whose verify commands fail.
        verify_fails: Vec<String>,
        /// Contexts an earlier part of the deployment changed (`--resume`).
        earlier: Vec<String>,
    }

    impl Scripted {
        fn new(scripts: &[(&str, Script)]) -> Scripted {
            Scripted {
                scripts: scripts.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect(),
                ..Scripted::default()
            }
        }
        fn log(&self, line: String) {
            self.log.lock().unwrap().push(line);
        }
        fn logged(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
        fn before(&self, context: &str) -> Option<RevisionRef> {
            (!self.fresh.iter().any(|f| f == context)).then(|| RevisionRef {
                revision: 3,
                deployment_id: "20261101T000000Z-0001".into(),
            })
        }
    }

    impl ClusterSteps for Scripted {
        async fn deploy(
            &self,
            context: &str,
            stop: &CancellationToken,
            _: &Reporter,
        ) -> StepOutcome {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            self.log(format!("deploy {context}"));
            // Let the other clusters of the wave start before this one ends.
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            let changed = |error: Option<&str>| StepOutcome::Changed {
                before: self.before(context),
                revision: 4,
                error: error.map(StepError::new),
            };
            let outcome = match self
                .scripts
                .get(context)
                .copied()
                .unwrap_or(Script::Healthy)
            {
                Script::Healthy => changed(None),
                Script::Crash => changed(Some("Deployment web failed: CrashLoopBackOff")),
                Script::Refuse => StepOutcome::Untouched(StepError::new("locked by someone")),
                Script::Locked => StepOutcome::Untouched(StepError {
                    environment: true,
                    ..StepError::new(format!("cluster `{context}`: locked by bob"))
                }),
                Script::Lost => StepOutcome::Changed {
                    before: self.before(context),
                    revision: 4,
                    error: Some(StepError {
                        unreachable: true,
                        ..StepError::new(format!("cluster `{context}` is unreachable: no answer"))
                    }),
                },
                Script::Hang => {
                    self.hanging.cancel();
                    stop.cancelled().await;
                    StepOutcome::Changed {
                        before: self.before(context),
                        revision: 4,
                        error: Some(StepError::cancelled(context)),
                    }
                }
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            outcome
        }

        async fn restore(
            &self,
            context: &str,
            before: Option<&RevisionRef>,
            _: &Reporter,
        ) -> Result<Option<u32>, StepError> {
            self.log(format!(
                "restore {context} to {}",
                before.map_or("nothing".into(), |b| b.revision.to_string())
            ));
            if self.hang_on_restore.iter().any(|c| c == context) {
                self.restoring.cancel();
                std::future::pending::<()>().await;
            }
            if self.unreachable_on_restore.iter().any(|c| c == context) {
                return Err(StepError {
                    message: format!("cluster `{context}` is unreachable: connection refused"),
                    unreachable: true,
                    environment: true,
                    ..StepError::new(String::new())
                });
            }
            Ok(before.map(|_| 5))
        }

        fn before(&self, context: &str) -> Option<RevisionRef> {
            Scripted::before(self, context)
        }

        async fn acquire(
            &self,
            context: &str,
            wait: LeaseWait,
            _: &Reporter,
        ) -> Result<(), StepError> {
            self.log(format!("acquire {context}"));
            let now = self.acquiring.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_acquiring.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            self.acquiring.fetch_sub(1, Ordering::SeqCst);
            if wait == LeaseWait::No
                && self
                    .taken_by_another_then_given_back
                    .iter()
                    .any(|c| c == context)
            {
                return Err(StepError {
                    environment: true,
                    ..StepError::new(format!("cluster `{context}`: locked by bob@ci-2"))
                });
            }
            if self.held_by_another.iter().any(|c| c == context) {
                return Err(StepError {
                    environment: true,
                    ..StepError::new(format!("cluster `{context}`: locked by bob@ci-2"))
                });
            }
            Ok(())
        }

        async fn release(&self) {
            self.log("release".into());
        }

        async fn soak(
            &self,
            context: &str,
            soak: &Soak,
            stop: &CancellationToken,
            _: &Reporter,
        ) -> Result<(), StepError> {
            self.log(format!("soak {context} {}s", soak.duration.as_secs()));
            if self.soak_fails.iter().any(|c| c == context) {
                return Err(StepError::new(format!(
                    "cluster `{context}`: pod web-1 container web: CrashLoopBackOff"
                )));
            }
            // A soak lasts until its time is up: here, until the run stops.
            stop.cancelled().await;
            Err(StepError::cancelled(context))
        }

        async fn verify(
            &self,
            context: &str,
            command: &VerifyCommand,
            _: &CancellationToken,
        ) -> GateResult {
            self.log(format!("verify {context} {}", command.run));
            // A real command takes a while: the wave's other commands start meanwhile.
            tokio::task::yield_now().await;
            let passed = !self.verify_fails.iter().any(|c| c == context);
            GateResult {
                gate: "verify".into(),
                command: Some(command.run.clone()),
                passed,
                detail: if passed { "exit code 0" } else { "exit code 1" }.into(),
                output: vec!["checking".into(), "503 from /healthz".into()],
                stopped: false,
            }
        }

        fn resumed(&self, context: &str) -> Option<(Option<RevisionRef>, u32)> {
            self.earlier
                .iter()
                .any(|c| c == context)
                .then(|| (Scripted::before(self, context), 4))
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            operation: "deploy".into(),
            release: "hello".into(),
            deployment_id: "20261123T172800Z-3f9a".into(),
            target: None,
        }
    }

    async fn run(plan: &Plan, steps: &Scripted) -> Report {
        execute(plan, steps, &info(), &Interrupt::new(), &Reporter::silent()).await
    }

    fn four_in_two_waves() -> Plan {
        Plan::new(&env(&[("a", 0), ("b", 0), ("c", 1), ("d", 1)], 10), None).unwrap()
    }

    fn result_of(report: &Report, context: &str) -> RunResult {
        report
            .clusters
            .iter()
            .find(|c| c.context == context)
            .unwrap()
            .result
    }

    #[tokio::test]
    async fn all_succeed_wave_after_wave_scripted_clusters() {
        let steps = Scripted::new(&[]);
        let report = run(&four_in_two_waves(), &steps).await;
        assert_eq!(report.overall, Overall::Succeeded);
        let log = steps.logged();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(
            pos("deploy a").max(pos("deploy b")) < pos("deploy c").min(pos("deploy d")),
            "{log:?}"
        );
        assert!(!log.iter().any(|l| l.starts_with("restore")), "{log:?}");
        assert_eq!(steps.max_in_flight.load(Ordering::SeqCst), 2);
        assert!(report
            .clusters
            .iter()
            .all(|c| c.result == RunResult::Deployed));
        assert!(report.table().contains("3 → 4"), "{}", report.table());
    }

    #[tokio::test]
    async fn crash_in_wave_one_rolls_back_wave_zero_and_rest_of_wave_one_scripted_clusters() {
        let plan = Plan::new(
            &env(&[("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 2)], 10),
            None,
        )
        .unwrap();
        let steps = Scripted::new(&[("c", Script::Crash), ("d", Script::Hang)]);
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RolledBack);
        let log = steps.logged();
        for c in ["a", "b", "c", "d"] {
            assert!(log.contains(&format!("restore {c} to 3")), "{c}: {log:?}");
            assert_eq!(result_of(&report, c), RunResult::RolledBack);
        }
        assert!(
            !log.iter()
                .filter(|l| !l.starts_with("acquire"))
                .any(|l| l.ends_with(" e") || l.contains(" e ")),
            "{log:?}"
        );
        assert_eq!(result_of(&report, "e"), RunResult::NotStarted);
        assert_eq!(
            report.cause.as_deref(),
            Some("Deployment web failed: CrashLoopBackOff"),
            "the crash, not the cancellation it caused"
        );
        assert!(
            report.text().contains("3 → 4 → 5 (= 3)"),
            "{}",
            report.text()
        );
    }

    #[tokio::test]
    async fn concurrency_bound_holds_and_no_cluster_starts_after_a_failure_scripted_clusters() {
        let names: Vec<(String, u32)> = (0..6).map(|i| (format!("c{i}"), 0)).collect();
        let refs: Vec<(&str, u32)> = names.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let plan = Plan::new(&env(&refs, 2), None).unwrap();
        let steps = Scripted::new(&[]);
        run(&plan, &steps).await;
        assert_eq!(steps.max_in_flight.load(Ordering::SeqCst), 2);

        let plan = Plan::new(&env(&refs, 1), None).unwrap();
        let steps = Scripted::new(&[("c1", Script::Crash)]);
        let report = run(&plan, &steps).await;
        let started: Vec<_> = steps
            .logged()
            .into_iter()
            .filter(|l| l.starts_with("deploy"))
            .collect();
        assert_eq!(started, ["deploy c0", "deploy c1"]);
        for c in ["c2", "c3", "c4", "c5"] {
            assert_eq!(result_of(&report, c), RunResult::NotStarted);
        }
    }

    #[tokio::test]
    async fn halt_leaves_changed_clusters_and_says_so_scripted_clusters() {
        let mut e = env(&[("a", 0), ("b", 1), ("c", 1)], 10);
        e.environment.rollout.on_failure = OnFailure::Halt;
        let plan = Plan::new(&e, None).unwrap();
        let steps = Scripted::new(&[("b", Script::Crash)]);
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::Halted);
        assert!(!steps.logged().iter().any(|l| l.starts_with("restore")));
        assert_eq!(result_of(&report, "a"), RunResult::LeftDeployed);
        assert_eq!(result_of(&report, "b"), RunResult::LeftFailed);
        assert!(
            report.text().contains("left as they are"),
            "{}",
            report.text()
        );
    }

    #[tokio::test]
    async fn a_signal_stops_the_run_and_rolls_back_scripted_clusters() {
        let plan = four_in_two_waves();
        let steps = Scripted::new(&[("a", Script::Hang)]);
        let interrupt = Interrupt::new();
        let signal = {
            let interrupt = interrupt.clone();
            let hanging = steps.hanging.clone();
            async move {
                hanging.cancelled().await;
                interrupt.signal(2);
            }
        };
        let (info, reporter) = (info(), Reporter::silent());
        let (report, ()) =
            tokio::join!(execute(&plan, &steps, &info, &interrupt, &reporter), signal);
        assert!(report.interrupted);
        assert_eq!(
            report.signal, None,
            "one signal: rolled back, not abandoned"
        );
        assert_eq!(report.overall, Overall::RolledBack);
        assert_eq!(result_of(&report, "a"), RunResult::RolledBack);
        assert_eq!(result_of(&report, "b"), RunResult::RolledBack);
        assert_eq!(result_of(&report, "c"), RunResult::NotStarted);
    }

    #[tokio::test]
    async fn unreachable_during_rollback_gets_the_command_that_finishes_scripted_clusters() {
        let plan = four_in_two_waves();
        let mut steps = Scripted::new(&[("c", Script::Crash)]);
        steps.unreachable_on_restore = vec!["b".into()];
        steps.fresh = vec!["d".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RollbackIncomplete);
        assert_eq!(result_of(&report, "b"), RunResult::RollbackFailed);
        let text = report.text();
        assert!(
            text.contains(
                "flotilla rollback hello --env prod --to 20261101T000000Z-0001 --clusters b"
            ),
            "{text}"
        );
        // A first install is removed, not "rolled back" to nothing.
        assert!(steps.logged().contains(&"restore d to nothing".to_owned()));
        assert!(report.json().contains("\"finish_with\""));
    }

    #[tokio::test]
    async fn a_cluster_refused_before_any_change_is_not_restored_scripted_clusters() {
        let plan = four_in_two_waves();
        let steps = Scripted::new(&[("b", Script::Refuse)]);
        let report = run(&plan, &steps).await;
        assert_eq!(result_of(&report, "b"), RunResult::FailedUnchanged);
        assert_eq!(result_of(&report, "a"), RunResult::RolledBack);
        assert!(!steps.logged().iter().any(|l| l.starts_with("restore b")));
        assert_eq!(report.cause.as_deref(), Some("locked by someone"));
    }

    #[tokio::test]
    async fn a_cluster_lost_after_its_change_is_changed_and_gets_its_finish_command_scripted_clusters(
    ) {
        let plan = four_in_two_waves();
        let mut steps = Scripted::new(&[("b", Script::Lost)]);
        steps.unreachable_on_restore = vec!["b".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RollbackIncomplete);
        // It is tried like any changed cluster, then reported with its command.
        assert!(steps.logged().contains(&"restore b to 3".to_owned()));
        assert_eq!(result_of(&report, "b"), RunResult::RollbackFailed);
        assert_eq!(result_of(&report, "a"), RunResult::RolledBack);
        let text = report.text();
        assert!(text.contains("FAILED, rollback INCOMPLETE"), "{text}");
        assert!(text.contains("b: lost after it was changed"), "{text}");
        assert!(
            text.contains(
                "flotilla rollback hello --env prod --to 20261101T000000Z-0001 --clusters b"
            ),
            "{text}"
        );
        assert!(!report.refused_before_any_change());
    }

    #[tokio::test]
    async fn a_second_signal_abandons_the_rollback_with_finish_commands_scripted_clusters() {
        let plan = four_in_two_waves();
        let mut steps = Scripted::new(&[("b", Script::Crash)]);
        steps.hang_on_restore = vec!["a".into()];
        let interrupt = Interrupt::new();
        let signals = {
            let interrupt = interrupt.clone();
            let restoring = steps.restoring.clone();
            async move {
                restoring.cancelled().await;
                interrupt.signal(2);
                interrupt.signal(15);
            }
        };
        let (info, reporter) = (info(), Reporter::silent());
        let (report, ()) = tokio::join!(
            execute(&plan, &steps, &info, &interrupt, &reporter),
            signals
        );
        assert_eq!(report.signal, Some(15));
        assert_eq!(report.overall, Overall::RollbackIncomplete);
        assert_eq!(result_of(&report, "a"), RunResult::RollbackFailed);
        assert_eq!(result_of(&report, "b"), RunResult::RolledBack);
        let text = report.text();
        assert!(text.contains("abandoned by a second signal (15)"), "{text}");
        assert!(
            text.contains(
                "flotilla rollback hello --env prod --to 20261101T000000Z-0001 --clusters a"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_second_signal_after_the_first_abandons_what_is_in_flight_scripted_clusters() {
        // The first signal stops `a` at its safe point; the second abandons it there.
        let plan = four_in_two_waves();
        let mut steps = Scripted::new(&[("a", Script::Hang)]);
        steps.hang_on_restore = vec!["a".into()];
        let interrupt = Interrupt::new();
        let signals = {
            let interrupt = interrupt.clone();
            let hanging = steps.hanging.clone();
            let restoring = steps.restoring.clone();
            async move {
                hanging.cancelled().await;
                interrupt.signal(2);
                restoring.cancelled().await;
                interrupt.signal(2);
            }
        };
        let (info, reporter) = (info(), Reporter::silent());
        let (report, ()) = tokio::join!(
            execute(&plan, &steps, &info, &interrupt, &reporter),
            signals
        );
        assert_eq!(report.signal, Some(2));
        assert_eq!(result_of(&report, "c"), RunResult::NotStarted);
        assert!(report
            .clusters
            .iter()
            .filter(|c| c.result == RunResult::RollbackFailed)
            .all(|c| c.finish_with.is_some()));
    }

    #[tokio::test]
    async fn every_cluster_refused_before_a_change_is_a_refusal_not_a_failure_scripted_clusters() {
        let plan = Plan::new(&env(&[("a", 0), ("b", 0)], 10), None).unwrap();
        let steps = Scripted::new(&[("a", Script::Locked), ("b", Script::Locked)]);
        let report = run(&plan, &steps).await;
        assert!(report.refused_before_any_change(), "{}", report.text());
        // One refused, one changed: a failure (exit 1), not a refusal.
        let steps = Scripted::new(&[("a", Script::Locked)]);
        let report = run(&plan, &steps).await;
        assert!(!report.refused_before_any_change());
        // Refused for a reason of the input: not an environment refusal.
        let steps = Scripted::new(&[("a", Script::Refuse), ("b", Script::Refuse)]);
        let report = run(&plan, &steps).await;
        assert!(!report.refused_before_any_change());
    }

    #[tokio::test]
    async fn a_lease_another_run_gives_back_is_waited_for_one_cluster_after_the_other_scripted_clusters(
    ) {
        let plan = Plan::new(&env(&[("b", 0), ("c", 1), ("a", 1)], 10), None).unwrap();
        let mut steps = Scripted::new(&[]);
        steps.taken_by_another_then_given_back = vec!["b".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::Succeeded);
        let log = steps.logged();
        assert_eq!(
            log[..7],
            [
                "acquire a",
                "acquire b",
                "acquire c",
                "release",
                "acquire a",
                "acquire b",
                "acquire c"
            ],
            "{log:?}"
        );
        assert!(log.iter().any(|l| l.starts_with("deploy b")), "{log:?}");
    }

    #[tokio::test]
    async fn every_lease_is_taken_in_name_order_before_any_change_and_one_refusal_changes_nothing_scripted_clusters(
    ) {
        let plan = Plan::new(&env(&[("b", 0), ("c", 1), ("a", 1)], 10), None).unwrap();
        let steps = Scripted::new(&[]);
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::Succeeded);
        let log = steps.logged();
        assert_eq!(log[..3], ["acquire a", "acquire b", "acquire c"], "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("release"), "{log:?}");
        assert_eq!(
            steps.most_acquiring.load(Ordering::SeqCst),
            3,
            "the first attempt takes every lease at once"
        );

        let mut steps = Scripted::new(&[]);
        steps.held_by_another = vec!["b".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::Refused);
        assert!(report.refused_before_any_change());
        let log = steps.logged();
        assert!(!log.iter().any(|l| l.starts_with("deploy")), "{log:?}");
        // At once, refused in b: all given back, then again in name order, waiting,
        // up to the cluster that still refuses.
        assert_eq!(
            log,
            [
                "acquire a",
                "acquire b",
                "acquire c",
                "release",
                "acquire a",
                "acquire b",
                "release"
            ]
        );
        assert_eq!(result_of(&report, "b"), RunResult::FailedUnchanged);
        assert_eq!(result_of(&report, "a"), RunResult::NotStarted);
        assert!(
            report.text().contains("locked by bob@ci-2"),
            "{}",
            report.text()
        );
    }

    fn gated(plan: &mut Plan, wave: u32, soak: Option<u64>, verify: &[&str]) {
        plan.wave_settings.push(WaveSettings {
            wave,
            concurrency: None,
            soak: soak.map(Duration::from_secs),
            max_restarts: 0,
            verify: verify
                .iter()
                .map(|run| VerifyCommand {
                    run: (*run).into(),
                    helm_tests: false,
                    timeout: Duration::from_secs(60),
                })
                .collect(),
        });
    }

    #[tokio::test]
    async fn a_verify_failing_in_wave_one_rolls_back_both_waves_and_names_gate_cluster_and_output_scripted_clusters(
    ) {
        let mut plan = four_in_two_waves();
        gated(&mut plan, 0, None, &["./smoke.sh"]);
        gated(&mut plan, 1, None, &["./smoke.sh"]);
        let mut steps = Scripted::new(&[]);
        steps.verify_fails = vec!["d".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RolledBack);
        for c in ["a", "b", "c", "d"] {
            assert_eq!(result_of(&report, c), RunResult::RolledBack, "{c}");
        }
        let log = steps.logged();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(pos("verify a ./smoke.sh") < pos("deploy c"), "{log:?}");
        let gate = report.failed_gate.clone().unwrap();
        assert_eq!(
            (gate.cluster.as_str(), gate.gate.as_str()),
            ("d", "verify `./smoke.sh`")
        );
        let text = report.text();
        assert!(
            text.contains("gate verify `./smoke.sh` failed on d: exit code 1"),
            "{text}"
        );
        assert!(text.contains("  | 503 from /healthz"), "{text}");
        assert!(
            report.json().contains("\"failed_gate\""),
            "{}",
            report.json()
        );
    }

    #[tokio::test]
    async fn a_verify_failing_on_two_clusters_names_its_command_once_scripted_clusters() {
        let command = "curl -fsS http://web/healthz || { echo 'smoke test failed'; exit 7; }";
        let mut plan = four_in_two_waves();
        gated(&mut plan, 1, None, &[command]);
        let mut steps = Scripted::new(&[]);
        steps.verify_fails = vec!["c".into(), "d".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RolledBack);
        let failed = report.failed_gate.clone().expect("the gate is named");
        let other = if failed.cluster == "c" { "d" } else { "c" };
        let text = report.text();
        assert_eq!(text.matches(command).count(), 1, "{text}");
        assert!(
            text.contains(&format!(
                "cause: gate verify `{command}` failed on {}",
                failed.cluster
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("{other}: verify failed here too: exit code 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("last output on {}:\n  | checking", failed.cluster)),
            "{text}"
        );
        assert_eq!(report.failed_cluster(), Some(failed.cluster.as_str()));
        // The JSON keeps each cluster's whole error: a consumer reads rows one by one.
        let row = report.clusters.iter().find(|c| c.context == other).unwrap();
        assert_eq!(
            row.error.as_deref(),
            Some(format!("gate verify `{command}` failed: exit code 1").as_str())
        );
    }

    #[tokio::test]
    async fn a_soak_that_finds_a_crashloop_stops_the_run_before_the_next_wave_scripted_clusters() {
        let mut plan = four_in_two_waves();
        gated(&mut plan, 0, Some(600), &["./smoke.sh"]);
        let mut steps = Scripted::new(&[]);
        steps.soak_fails = vec!["b".into()];
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RolledBack);
        let log = steps.logged();
        assert!(log.contains(&"soak a 600s".to_owned()), "{log:?}");
        assert!(
            !log.iter()
                .any(|l| l.starts_with("deploy c") || l.starts_with("verify")),
            "{log:?}"
        );
        assert_eq!(result_of(&report, "a"), RunResult::RolledBack);
        assert_eq!(result_of(&report, "c"), RunResult::NotStarted);
        assert_eq!(
            report.failed_gate.as_ref().map(|g| g.cluster.as_str()),
            Some("b")
        );
        assert!(
            report
                .cause
                .as_deref()
                .is_some_and(|c| c.contains("gate soak failed on b")),
            "{:?}",
            report.cause
        );
    }

    #[tokio::test]
    async fn a_plan_without_gates_runs_no_soak_and_no_verify_scripted_clusters() {
        let mut plan = four_in_two_waves();
        gated(&mut plan, 0, Some(3600), &["false"]);
        let steps = Scripted::new(&[]);
        let report = run(&plan.without_gates(), &steps).await;
        assert_eq!(report.overall, Overall::Succeeded);
        assert!(!steps
            .logged()
            .iter()
            .any(|l| l.starts_with("soak") || l.starts_with("verify")));
    }

    #[tokio::test]
    async fn until_wave_pauses_after_it_and_resume_starts_after_it_and_restores_it_too_scripted_clusters(
    ) {
        let mut plan = four_in_two_waves();
        plan.until(0).unwrap();
        let steps = Scripted::new(&[]);
        let report = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::Paused);
        assert!(report.succeeded());
        assert_eq!(result_of(&report, "c"), RunResult::NotStarted);
        assert!(
            report.text().contains("--resume 20261123T172800Z-3f9a"),
            "{}",
            report.text()
        );
        assert!(plan.clone().until(7).is_err());
        let mut last = four_in_two_waves();
        last.until(1).unwrap();
        let report = run(&last, &Scripted::new(&[])).await;
        assert_eq!(
            report.overall,
            Overall::Succeeded,
            "nothing is left to resume"
        );
        assert_eq!(report.paused_after_wave, None);

        let mut plan = four_in_two_waves();
        plan.resume_after = Some(0);
        let mut steps = Scripted::new(&[("d", Script::Crash)]);
        steps.earlier = vec!["a".into(), "b".into()];
        let report = run(&plan, &steps).await;
        let log = steps.logged();
        assert!(!log.contains(&"deploy a".to_owned()), "{log:?}");
        assert!(log.contains(&"deploy c".to_owned()), "{log:?}");
        // The earlier part is this deployment too: it goes back with the rest.
        assert!(log.contains(&"restore a to 3".to_owned()), "{log:?}");
        assert_eq!(result_of(&report, "a"), RunResult::RolledBack);
    }

    #[tokio::test]
    async fn a_wave_of_its_own_concurrency_keeps_to_it_scripted_clusters() {
        let names: Vec<(String, u32)> = (0..6).map(|i| (format!("c{i}"), 0)).collect();
        let refs: Vec<(&str, u32)> = names.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        let mut plan = Plan::new(&env(&refs, 10), None).unwrap();
        plan.wave_settings.push(WaveSettings {
            wave: 0,
            concurrency: Some(2),
            soak: None,
            max_restarts: 0,
            verify: Vec::new(),
        });
        let steps = Scripted::new(&[]);
        run(&plan, &steps).await;
        assert_eq!(steps.max_in_flight.load(Ordering::SeqCst), 2);
    }
}
