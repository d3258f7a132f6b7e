//! The rollback rule held against a reference model over random histories of incidents.
//!
//! A sequence of commands (deploys that succeed, crash in a cluster and are undone at
//! once or halted, deploys paused by `--until-wave` and resumed, rollbacks plain or
//! `--to`, rollbacks that fail in a cluster) runs through the real machinery on clusters
//! in memory: [`execute`] with its waves and coordinated restore, the per-cluster state
//! machine ([`deploy_with`], [`restore_with`]) on [`FakeKube`] and [`MemoryStore`], the
//! history limit, and the environment's decisions
//! ([`EnvironmentHistory::rollback_revisions`], [`EnvironmentHistory::resume_point`],
//! [`EnvironmentHistory::kept_by_history_limit`]). After every command the records and
//! the live objects are held against a model small enough to be obviously right:
//! - what each cluster runs (its records and its live objects);
//! - the state of every deployment id (complete, paused, or never a target again);
//! - the target a plain `rollback` picks, and whether a `rollback --to` may run;
//! - a paused deployment resumed is one id; no restore makes a deployment id of its own;
//! - the history limit never deletes what a rollback goes to next.
//!
//! Seeded and shrinking: a failure prints its seed and the smallest sequence found;
//! `FLOTILLA_MODEL_SEED=N` replays it, `FLOTILLA_MODEL_CASES=N` sets the number of
//! sequences (2,000 by default; `scripts/bench-model.sh` runs the long mode). Every
//! counterexample found so far is a named test at the end of this file.

use super::memory_fleet::{Fleet, Ran};
use crate::release::{DeploymentState, EnvironmentHistory};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::collections::BTreeSet;

/// One command of an on-call engineer's or a pipeline's day.
#[derive(Debug, Clone)]
enum Command {
    /// `deploy` of content `version` (a few versions, so that the same content comes
    /// again), crashing in cluster `crash`; `halt`: `on_failure: halt`; `pause`:
    /// `--until-wave 0`.
    Deploy {
        version: u8,
        crash: Option<usize>,
        halt: bool,
        pause: bool,
    },
    /// `deploy --resume` of the paused deployment (nothing when there is none),
    /// crashing in cluster `crash`.
    Resume { crash: Option<usize> },
    /// `rollback`, or `rollback --to` the deployment `to` places from the newest;
    /// failing in cluster `fail` (its apply refused), which puts every cluster back.
    Rollback {
        to: Option<usize>,
        fail: Option<usize>,
    },
}

/// An environment: `clusters` clusters, the first `canaries` of them in wave 0, the
/// others in wave 1; each cluster keeps at most `history_limit` revisions.
#[derive(Debug, Clone)]
struct Scenario {
    clusters: usize,
    canaries: usize,
    history_limit: usize,
    commands: Vec<Command>,
}

fn command(clusters: usize) -> impl Strategy<Value = Command> {
    let cluster = prop::option::weighted(0.4, 0..clusters);
    prop_oneof![
        5 => (0u8..3, cluster.clone(), any::<bool>(), prop::bool::weighted(0.2)).prop_map(
            |(version, crash, halt, pause)| Command::Deploy {
                version,
                crash,
                halt: halt && crash.is_some(),
                pause
            }
        ),
        1 => cluster.clone().prop_map(|crash| Command::Resume { crash }),
        3 => (prop::option::weighted(0.3, 0usize..6), prop::option::weighted(0.25, 0..clusters))
            .prop_map(|(to, fail)| Command::Rollback { to, fail }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        2usize..=5,
        1usize..=2,
        prop::sample::select(vec![3usize, 5, 100]),
    )
        .prop_flat_map(|(clusters, canaries, history_limit)| {
            let canaries = canaries.min(clusters - 1);
            prop::collection::vec(command(clusters), 1..=12).prop_map(move |commands| Scenario {
                clusters,
                canaries,
                history_limit,
                commands,
            })
        })
}

// ---------------------------------------------------------------------------------
// The model.

/// What a deployment id is to `rollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every cluster ran it healthy and nothing undid it: a rollback target.
    Complete,
    /// Paused by `--until-wave`, resumable.
    Paused,
    /// Failed, halted, undone or replaced by a rollback: never a target again.
    Never,
}

/// What a cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Runs {
    Nothing,
    /// The content of this deployment, healthy.
    Healthy(String),
    /// A failed revision of this deployment, left by a halted run, on top of the
    /// deployment it ran healthy before (if any).
    Failed(String, Option<String>),
}

impl Runs {
    /// What a cluster runs once a failed run put it back: what it last ran healthy,
    /// or nothing (a restore to "no healthy revision" removes the release).
    fn restored(&self) -> Runs {
        match self {
            Runs::Healthy(id) | Runs::Failed(_, Some(id)) => Runs::Healthy(id.clone()),
            Runs::Nothing | Runs::Failed(_, None) => Runs::Nothing,
        }
    }

    /// The deployment it last ran healthy.
    fn healthy(&self) -> Option<String> {
        match self {
            Runs::Healthy(id) | Runs::Failed(_, Some(id)) => Some(id.clone()),
            Runs::Nothing | Runs::Failed(_, None) => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Deployment {
    id: String,
    version: u8,
    kind: Kind,
}

#[derive(Debug, Clone)]
struct Model {
    canaries: usize,
    deployments: Vec<Deployment>,
    runs: Vec<Runs>,
    /// The deployments each cluster ran healthy at some time.
    ran: Vec<BTreeSet<String>>,
    /// The paused deployment, and what its canaries ran before it.
    paused: Option<(String, Vec<Runs>)>,
}

impl Model {
    fn new(clusters: usize, canaries: usize) -> Model {
        Model {
            canaries,
            deployments: Vec::new(),
            runs: vec![Runs::Nothing; clusters],
            ran: vec![BTreeSet::new(); clusters],
            paused: None,
        }
    }

    fn deployment(&mut self, id: &str) -> Option<&mut Deployment> {
        self.deployments.iter_mut().find(|d| d.id == id)
    }

    fn version_of(&self, id: &str) -> Option<u8> {
        self.deployments
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.version)
    }

    /// The newest complete deployment (of those `judged`) that not every cluster runs,
    /// and whose content is not what every cluster runs now.
    fn rollback_target(&self, judged: impl Fn(&str) -> bool) -> Option<&str> {
        self.deployments
            .iter()
            .rev()
            .filter(|d| judged(&d.id))
            .find(|d| {
                let everyone_runs = self.runs.iter().all(|r| *r == Runs::Healthy(d.id.clone()));
                let same_content = self.runs.iter().all(|r| match r {
                    Runs::Healthy(now) => self.version_of(now) == Some(d.version),
                    _ => false,
                });
                d.kind == Kind::Complete && !everyone_runs && !same_content
            })
            .map(|d| d.id.as_str())
    }

    /// The deployment `rollback --to` names: `back` places from the newest.
    fn nth_newest(&self, back: usize) -> Option<&str> {
        self.deployments
            .iter()
            .rev()
            .nth(back)
            .map(|d| d.id.as_str())
    }

    fn deployed(&mut self, id: &str, version: u8, kind: Kind) {
        self.deployments.push(Deployment {
            id: id.to_owned(),
            version,
            kind,
        });
    }

    fn runs_healthy(&mut self, cluster: usize, id: &str) {
        self.runs[cluster] = Runs::Healthy(id.to_owned());
        self.ran[cluster].insert(id.to_owned());
    }

    /// Every cluster on `target`: what ran before it anywhere is undone, the failed
    /// revision a halted run left and the deployment under it included.
    fn rolled_back_to(&mut self, target: &str) {
        for cluster in 0..self.runs.len() {
            let undone = match self.runs[cluster].clone() {
                Runs::Nothing => vec![],
                Runs::Healthy(now) => vec![now],
                Runs::Failed(now, before) => std::iter::once(now).chain(before).collect(),
            };
            for id in undone.iter().filter(|id| *id != target) {
                if let Some(d) = self.deployment(id) {
                    d.kind = Kind::Never;
                }
            }
            self.runs_healthy(cluster, target);
        }
    }
}

// ---------------------------------------------------------------------------------
// One scenario: each command on the fleet and on the model, then the invariants.

async fn play(scenario: &Scenario) -> Result<(), String> {
    let mut fleet = Fleet::new(scenario.clusters, scenario.canaries, scenario.history_limit);
    let mut model = Model::new(scenario.clusters, scenario.canaries);
    let mut pruned = BTreeSet::new();
    for (step, command) in scenario.commands.iter().enumerate() {
        let at = |why: String| format!("after command {} ({command:?}): {why}", step + 1);
        let target_before = model.rollback_target(|_| true).map(str::to_owned);
        match command {
            Command::Deploy {
                version,
                crash,
                halt,
                pause,
            } => {
                // A crash in a wave the run never reaches is no crash; a halted run
                // stops in the canary wave only when it is one cluster (with two, the
                // other canary's end is a race the model does not guess).
                let crash = crash.filter(|c| !*pause || *c < model.canaries);
                let halt = *halt && crash == Some(0) && model.canaries == 1;
                let id = fleet.deploy(*version, crash, halt, *pause).await;
                model.paused = None;
                match crash {
                    None if *pause => {
                        let before = model.runs[..model.canaries].to_vec();
                        model.deployed(&id, *version, Kind::Paused);
                        for c in 0..model.canaries {
                            model.runs_healthy(c, &id);
                        }
                        model.paused = Some((id, before));
                    }
                    None => {
                        model.deployed(&id, *version, Kind::Complete);
                        for c in 0..model.runs.len() {
                            model.runs_healthy(c, &id);
                        }
                    }
                    Some(c) if halt => {
                        model.deployed(&id, *version, Kind::Never);
                        model.runs[c] = Runs::Failed(id, model.runs[c].healthy());
                    }
                    Some(_) => {
                        model.deployed(&id, *version, Kind::Never);
                        // The canary wave was changed and is put back on what it ran
                        // healthy; a failed revision left there is no such thing.
                        for c in 0..model.canaries {
                            model.runs[c] = model.runs[c].restored();
                        }
                    }
                }
            }
            Command::Resume { crash } => {
                let Some((id, before)) = model.paused.clone() else {
                    continue;
                };
                let version = model.version_of(&id).unwrap_or_default();
                let crash = crash.filter(|c| *c >= model.canaries);
                let ran = fleet.resume(&id, version, crash).await;
                if ran != Ran::Ran {
                    return Err(at(format!(
                        "the paused deployment {id} was refused: {ran:?}"
                    )));
                }
                model.paused = None;
                match crash {
                    None => {
                        for c in 0..model.runs.len() {
                            model.runs_healthy(c, &id);
                        }
                        if let Some(d) = model.deployment(&id) {
                            d.kind = Kind::Complete;
                        }
                    }
                    Some(_) => {
                        for (c, runs) in before.into_iter().enumerate() {
                            model.runs[c] = runs.restored();
                        }
                        if let Some(d) = model.deployment(&id) {
                            d.kind = Kind::Never;
                        }
                    }
                }
            }
            Command::Rollback { to, fail } => {
                let target = match to {
                    Some(back) => model.nth_newest(*back).map(str::to_owned),
                    None => model
                        .rollback_target(|id| !pruned.contains(id))
                        .map(str::to_owned),
                };
                let Some(target) = target else {
                    // Nothing to go back to (or `--to` of nothing): refused, nothing changed.
                    let explicit = to.map(|_| "run-none");
                    let ran = fleet.rollback(explicit, *fail).await;
                    if ran == Ran::Ran {
                        return Err(at("a rollback ran with no target in the model".into()));
                    }
                    continue;
                };
                let may_run = model.ran.iter().all(|ran| ran.contains(&target));
                let ran = fleet.rollback(to.map(|_| target.as_str()), *fail).await;
                match (&ran, may_run) {
                    (Ran::Ran, true) => {
                        model.paused = None;
                        match fail {
                            None => model.rolled_back_to(&target),
                            // Every changed cluster is put back on what it ran healthy
                            // (the canary wave always changed).
                            Some(_) => {
                                for c in 0..model.canaries {
                                    model.runs[c] = model.runs[c].restored();
                                }
                            }
                        }
                    }
                    // `--to` a deployment the history limit deleted somewhere.
                    (Ran::Refused(why), true)
                        if pruned.contains(&target) && why.starts_with("never ran") => {}
                    (Ran::Refused(why), true) => {
                        return Err(at(format!("rollback to {target} was refused: {why}")))
                    }
                    (Ran::Ran, false) => {
                        return Err(at(format!(
                            "rollback to {target} ran, but a cluster never ran it healthy"
                        )))
                    }
                    (Ran::Refused(_), false) => {}
                }
            }
        }
        let newly_pruned = prunings(&fleet, &model, &pruned);
        // The history limit may delete old deployments, never what a rollback goes to
        // next, nor what it went to before this command when it is still the target.
        let target_now = model.rollback_target(|_| true).map(str::to_owned);
        for id in &newly_pruned {
            if Some(id) == target_now.as_ref() && !pruned.contains(id) {
                let kept_before = target_before.as_ref() != Some(id) || target_now == target_before;
                if kept_before {
                    return Err(at(format!(
                        "the history limit deleted the records of {id}, the rollback target"
                    )));
                }
            }
        }
        pruned.extend(newly_pruned);
        check(&fleet, &model, &pruned).await.map_err(at)?;
    }
    Ok(())
}

/// The complete deployments whose deploy record a cluster that ran them no longer has:
/// the history limit deleted them there.
fn prunings(fleet: &Fleet, model: &Model, pruned: &BTreeSet<String>) -> Vec<String> {
    let histories = fleet.histories();
    model
        .deployments
        .iter()
        .filter(|d| !pruned.contains(&d.id))
        .filter(|d| {
            histories.iter().enumerate().any(|(c, (_, h))| {
                model.ran[c].contains(&d.id)
                    && !h.iter().any(|r| r.deployment_id == d.id && r.is_deploy())
            })
        })
        .map(|d| d.id.clone())
        .collect()
}

/// The invariants, after every command.
async fn check(fleet: &Fleet, model: &Model, pruned: &BTreeSet<String>) -> Result<(), String> {
    let histories = fleet.histories();
    let env = EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
    for (i, (context, history)) in histories.iter().enumerate() {
        let recorded = history.runs_now().map(|r| r.content_id().to_owned());
        let expected = match &model.runs[i] {
            Runs::Healthy(id) => Some(id.clone()),
            Runs::Nothing | Runs::Failed(..) => None,
        };
        if recorded != expected {
            return Err(format!(
                "cluster {context} runs {recorded:?} by its records, the model says {:?} (records: {})",
                model.runs[i],
                history.summary()
            ));
        }
        let live = fleet.live_version(i);
        let expected = match &model.runs[i] {
            Runs::Healthy(id) | Runs::Failed(id, _) => model.version_of(id).map(|v| v.to_string()),
            Runs::Nothing => None,
        };
        if live != expected {
            return Err(format!(
                "cluster {context} has version {live:?} live, the model says {expected:?}"
            ));
        }
    }
    let known: BTreeSet<&str> = model.deployments.iter().map(|d| d.id.as_str()).collect();
    if let Some(stray) = env.deployments().into_iter().find(|id| !known.contains(id)) {
        return Err(format!(
            "deployment {stray} is in the records but was never deployed (a resume or a restore made an id of its own)"
        ));
    }
    for d in model.deployments.iter().filter(|d| !pruned.contains(&d.id)) {
        let state = env.state(&d.id);
        let agrees = match d.kind {
            Kind::Complete => state == Some(DeploymentState::Complete),
            Kind::Paused => state == Some(DeploymentState::PartialByRequest),
            Kind::Never => !matches!(
                state,
                Some(DeploymentState::Complete | DeploymentState::PartialByRequest)
            ),
        };
        if !agrees {
            return Err(format!(
                "deployment {} is {state:?} by the records, the model says {:?} ({})",
                d.id,
                d.kind,
                env.summary()
            ));
        }
    }
    let target = env.rollback_target();
    let expected = model.rollback_target(|id| !pruned.contains(id));
    if target != expected {
        return Err(format!(
            "rollback would go to {target:?}, the model says {expected:?} (deployments: {}; runs: {:?})",
            env.summary(),
            model.runs
        ));
    }
    Ok(())
}

fn play_now(scenario: &Scenario) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(play(scenario))
}

/// Random histories: `FLOTILLA_MODEL_CASES` sequences (2,000 by default) from
/// `FLOTILLA_MODEL_SEED` (else one from the clock, printed to replay).
#[test]
fn rollback_holds_the_model_over_random_histories() {
    let cases = std::env::var("FLOTILLA_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let seed: u64 = std::env::var("FLOTILLA_MODEL_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("rollback model: {cases} sequences, FLOTILLA_MODEL_SEED={seed}");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4_096,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    match runner.run(&scenario(), |scenario| {
        play_now(&scenario).map_err(TestCaseError::fail)
    }) {
        Ok(()) => {}
        Err(TestError::Fail(why, scenario)) => panic!(
            "FLOTILLA_MODEL_SEED={seed}: the smallest history that breaks the rule:\n{scenario:#?}\n{why}"
        ),
        Err(TestError::Abort(why)) => panic!("FLOTILLA_MODEL_SEED={seed}: aborted: {why}"),
    }
}

// ---------------------------------------------------------------------------------
// Counterexamples, each a named history.

fn deploy(version: u8) -> Command {
    Command::Deploy {
        version,
        crash: None,
        halt: false,
        pause: false,
    }
}

fn crash_in(version: u8, cluster: usize) -> Command {
    Command::Deploy {
        version,
        crash: Some(cluster),
        halt: false,
        pause: false,
    }
}

fn rollback() -> Command {
    Command::Rollback {
        to: None,
        fail: None,
    }
}

fn holds(clusters: usize, canaries: usize, history_limit: usize, commands: Vec<Command>) {
    let scenario = Scenario {
        clusters,
        canaries,
        history_limit,
        commands,
    };
    if let Err(why) = play_now(&scenario) {
        panic!("{why}");
    }
}

/// The on-call sequence: A complete, a crash undone in the canary wave, B complete,
/// rollback. The automatic restore marked A, the content it brought back, rolled back,
/// and the rollback found nothing to go back to.
#[test]
fn rollback_after_a_crash_undone_in_the_canary_wave_then_a_fix() {
    holds(
        4,
        1,
        100,
        vec![deploy(0), crash_in(1, 0), deploy(2), rollback()],
    );
}

fn halted_in(version: u8, cluster: usize) -> Command {
    Command::Deploy {
        version,
        crash: Some(cluster),
        halt: true,
        pause: false,
    }
}

fn paused(version: u8) -> Command {
    Command::Deploy {
        version,
        crash: None,
        halt: false,
        pause: true,
    }
}

fn resume_crashing_in(cluster: usize) -> Command {
    Command::Resume {
        crash: Some(cluster),
    }
}

fn rollback_failing_in(cluster: usize) -> Command {
    Command::Rollback {
        to: None,
        fail: Some(cluster),
    }
}

fn rollback_to_newest(back: usize) -> Command {
    Command::Rollback {
        to: Some(back),
        fail: None,
    }
}

/// A rollback that failed in the second wave put the canary back on B: B was marked
/// rolled back by the canary's first step, so the next rollback skipped it.
#[test]
fn a_failed_rollback_leaves_what_it_put_back_a_target() {
    holds(
        2,
        1,
        100,
        vec![
            deploy(0),
            deploy(1),
            rollback_failing_in(1),
            deploy(2),
            rollback(),
        ],
    );
}

/// A halted first install, then another failed deploy: the release is removed from
/// the canary (it never ran healthy there).
#[test]
fn a_halted_first_install_then_a_crash_leaves_nothing() {
    holds(2, 1, 3, vec![halted_in(0, 0), crash_in(0, 0)]);
}

/// The history limit deleted A's deploy record in the canary (its restore was the
/// per-cluster target), and A was no longer complete: nothing to roll back to.
#[test]
fn the_history_limit_keeps_the_deploy_record_of_the_content_a_restore_brought_back() {
    holds(2, 1, 3, vec![deploy(0), crash_in(0, 0), deploy(1)]);
}

/// The only mark that B was undone was on a restore of it, which the history limit
/// deleted: B looked complete again, a target to go forward to.
#[test]
fn an_undone_content_stays_undone_when_the_history_limit_prunes_its_restore() {
    holds(
        2,
        1,
        3,
        vec![deploy(2), deploy(0), crash_in(0, 1), rollback()],
    );
}

/// Redeploys of the same content make the target older than one cluster's records can
/// tell; the limit deleted it.
#[test]
fn the_history_limit_keeps_the_target_behind_redeploys_of_the_same_content() {
    holds(
        2,
        1,
        3,
        vec![deploy(2), crash_in(0, 0), deploy(0), deploy(0), deploy(0)],
    );
    holds(2, 1, 3, vec![deploy(0), deploy(1), paused(0), deploy(1)]);
    holds(
        2,
        1,
        3,
        vec![deploy(1), deploy(0), halted_in(0, 0), deploy(0)],
    );
}

/// A failed run that put a halted canary back on its deployed revision changed the
/// target; the limit had deleted it.
#[test]
fn the_history_limit_keeps_the_target_after_a_failed_run() {
    holds(
        2,
        1,
        3,
        vec![deploy(0), deploy(2), halted_in(0, 0), crash_in(0, 1)],
    );
    holds(
        3,
        1,
        3,
        vec![
            deploy(2),
            crash_in(0, 1),
            deploy(0),
            paused(1),
            resume_crashing_in(2),
        ],
    );
}

/// A rollback over a halted canary undoes the paused deployment under the failed one.
#[test]
fn a_rollback_undoes_what_a_halted_run_left_under_its_failure() {
    holds(
        2,
        1,
        3,
        vec![deploy(0), paused(0), halted_in(0, 0), rollback()],
    );
}

/// A rollback that failed in a halted canary puts it back on its deployed revision.
#[test]
fn a_rollback_failing_in_a_halted_canary_puts_it_on_its_deployed_revision() {
    holds(
        2,
        1,
        3,
        vec![deploy(0), halted_in(0, 0), rollback_failing_in(0)],
    );
}

/// `rollback --to` what already runs everywhere, then a plain rollback.
#[test]
fn rollback_to_what_runs_then_rollback() {
    holds(
        2,
        1,
        3,
        vec![
            deploy(0),
            deploy(2),
            deploy(0),
            rollback_to_newest(0),
            rollback(),
        ],
    );
}
