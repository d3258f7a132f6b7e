//! What the executor asks of each cluster ([`ClusterSteps`]: take its lease, put it on
//! its target, soak and verify it, put it back) and what a step answers: the contract
//! between the run and the clusters, scripted by the executor's tests and implemented
//! on real clusters by [`super::kube_steps::KubeSteps`].

use super::gates::GateResult;
use super::progress::Reporter;
use super::report::RevisionRef;
use crate::cluster::CancellationToken;
use crate::config::VerifyCommand;
use std::future::Future;
use std::time::Duration;

/// Why a step on one cluster failed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub message: String,
    /// The cluster could not be reached (its job can only be finished later).
    pub unreachable: bool,
    /// It stopped because the run was stopping, not for a fault of its own.
    pub cancelled: bool,
    /// Refused for a reason of the environment (lock held, unreachable, permission
    /// denied), not of the input.
    pub environment: bool,
    /// What the failing pods, their events and logs showed when it was judged failed.
    pub diagnosis: Option<Box<crate::cluster::Diagnosis>>,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            unreachable: false,
            cancelled: false,
            environment: false,
            diagnosis: None,
        }
    }

    /// What a cluster stopped at a safe point reports.
    pub fn cancelled(context: &str) -> StepError {
        StepError {
            message: format!(
                "cluster `{context}`: stopped at a safe point because the run was stopping"
            ),
            cancelled: true,
            ..StepError::new(String::new())
        }
    }
}

/// How a deploy on one cluster ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Refused before anything changed (lock held, cluster unreachable).
    Untouched(StepError),
    /// Something changed and `revision` was recorded; `error` when it is not healthy
    /// (or was stopped before it was).
    Changed {
        before: Option<RevisionRef>,
        revision: u32,
        error: Option<StepError>,
    },
}

/// The per-cluster steps the executor composes. Implemented on the cluster layer by
/// [`super::kube_steps::KubeSteps`]; the tests script it.
pub trait ClusterSteps {
    /// Deploys the prepared release to `context`. Must stop at a safe point once `stop`
    /// is cancelled, reporting the change it made as a failure.
    fn deploy(
        &self,
        context: &str,
        stop: &CancellationToken,
        reporter: &Reporter,
    ) -> impl Future<Output = StepOutcome>;

    /// Puts `context` back to `before` (a recorded revision; `None`: the release was not
    /// installed before, so remove it), waiting for health. The revision it recorded.
    fn restore(
        &self,
        context: &str,
        before: Option<&RevisionRef>,
        reporter: &Reporter,
    ) -> impl Future<Output = Result<Option<u32>, StepError>>;

    /// What `context` ran before this run (what a finish command goes back to).
    fn before(&self, context: &str) -> Option<RevisionRef>;

    /// Takes what the run holds in `context` for its whole length (its lease), waiting
    /// for another run as `wait` says. Called for every cluster before any is changed.
    fn acquire(
        &self,
        _context: &str,
        _wait: LeaseWait,
        _reporter: &Reporter,
    ) -> impl Future<Output = Result<(), StepError>> {
        async { Ok(()) }
    }

    /// The run is over, or its first attempt at the leases failed: give back what it
    /// holds for the whole run (the leases), and forget what it read under them.
    fn release(&self) -> impl Future<Output = ()> {
        async {}
    }

    /// Watches `context` for `soak` once its wave is healthy; fails when the release
    /// stops being healthy there. Stops, cancelled, once `stop` is. (A rollback's plan
    /// has no gates: it is never called there.)
    fn soak(
        &self,
        _context: &str,
        _soak: &Soak,
        _stop: &CancellationToken,
        _reporter: &Reporter,
    ) -> impl Future<Output = Result<(), StepError>> {
        async { Ok(()) }
    }

    /// Runs one verify command for `context`.
    fn verify(
        &self,
        context: &str,
        command: &VerifyCommand,
        _stop: &CancellationToken,
    ) -> impl Future<Output = GateResult> {
        let failed = GateResult {
            gate: "verify".into(),
            command: Some(command.run.clone()),
            passed: false,
            detail: format!("cluster `{context}`: verify commands do not run here"),
            output: Vec::new(),
            stopped: false,
        };
        async move { failed }
    }

    /// For a resumed deployment (`deploy --resume`): what an earlier part of it
    /// recorded in `context` (what ran before it, the revision it recorded), so that
    /// a failure now puts that cluster back too.
    fn resumed(&self, _context: &str) -> Option<(Option<RevisionRef>, u32)> {
        None
    }
}

/// The soak of a wave, for each of its clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct Soak {
    pub duration: Duration,
    pub max_restarts: u32,
}

/// Whether [`ClusterSteps::acquire`] may wait for a lease another run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseWait {
    /// Taken now or refused: the first attempt, every cluster at once.
    No,
    /// As long as the run's lock wait allows: the second attempt, one cluster after
    /// the other in name order.
    AsConfigured,
}
