//! Clusters in memory and the commands on them, as the commands set their runs up:
//! each cluster a [`FakeKube`] (its records in a `MemoryStore`), each command a
//! [`Run`] of the steps every command runs on real clusters ([`KubeSteps`]), its
//! decisions taken by the environment's history as the commands take them. What the
//! rollback model and the run's own unit tests drive.

use super::executor::{Interrupt, RunInfo};
use super::kube_steps::{KubeSteps, Leases, Prepared, RecordedTarget, Target};
use super::plan::{tests::env, Plan};
use super::report::{Report, RevisionRef};
use super::run::Run;
use super::Reporter;
use crate::config::OnFailure;
use crate::notify::Notifier;
use crate::ops::fake::{FakeKube, Wait};
use crate::ops::{PackedRender, Rendered, RunOptions};
use crate::release::{self, ChartRef, EnvironmentHistory, History, NextRun, NoRollback, UntilWave};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

pub(super) const RELEASE: &str = "hello";
pub(super) const NAMESPACE: &str = "ns";

pub(super) struct Cluster {
    pub context: String,
    pub kube: FakeKube,
}

/// `clusters` clusters `c0`, `c1`…, the first `canaries` of them in wave 0, the
/// others in wave 1, each keeping at most `history_limit` revisions.
pub(super) struct Fleet {
    pub clusters: Vec<Cluster>,
    pub canaries: usize,
    history_limit: usize,
    runs: usize,
    /// How the next run is stopped from outside (a new one for each run).
    pub interrupt: Interrupt,
    /// The report of the last run.
    pub last: Option<Report>,
}

/// What a command did, as far as the model can tell from outside.
#[derive(Debug, PartialEq)]
pub(super) enum Ran {
    Ran,
    Refused(String),
}

/// Content `version` of the release: a ConfigMap that says it, a Secret, a
/// Deployment of its image.
pub(super) fn rendered(version: u8) -> Rendered {
    let objects = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"},
               "data": {"version": version.to_string()}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
               "data": {"password": "aHVudGVyMg=="}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "web", "image": format!("app:{version}")}]}}}}),
    ];
    Rendered {
        hooks: Vec::new(),
        release: RELEASE.into(),
        namespace: NAMESPACE.into(),
        chart: ChartRef {
            name: RELEASE.into(),
            version: "0.1.0".into(),
        },
        app_version: version.to_string(),
        stored: release::redact_manifest(&objects),
        objects,
        values: json!({"log": "info"}),
        source: None,
    }
}

impl Fleet {
    pub fn new(clusters: usize, canaries: usize, history_limit: usize) -> Fleet {
        Fleet {
            clusters: (0..clusters)
                .map(|i| {
                    let context = format!("c{i}");
                    Cluster {
                        kube: FakeKube::named(&context),
                        context,
                    }
                })
                .collect(),
            canaries,
            history_limit,
            runs: 0,
            interrupt: Interrupt::new(),
            last: None,
        }
    }

    pub fn plan(&self) -> Plan {
        let waves: Vec<(&str, u32)> = self
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.context.as_str(), u32::from(i >= self.canaries)))
            .collect();
        Plan::new(&env(&waves, 10), None).expect("the model's plan is valid")
    }

    pub fn histories(&self) -> Vec<(String, History)> {
        self.clusters
            .iter()
            .map(|c| (c.context.clone(), History::new(c.kube.records.records())))
            .collect()
    }

    /// A new run id: sortable by when the run started, as real ids are.
    pub fn next_id(&mut self) -> String {
        self.runs += 1;
        format!("run-{:03}", self.runs)
    }

    /// The run's options, as the commands set them: the history limit keeps what the
    /// environment may roll back to afterwards.
    pub fn options(&self, plan: &Plan, next: &NextRun) -> RunOptions {
        let histories = self.histories();
        let env = EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
        let mut options = RunOptions::new(Duration::from_secs(5));
        options.history_limit = self.history_limit;
        options.history_keep = env.kept_by_history_limit(next);
        options.targets = plan.contexts();
        options
    }

    /// A deploy of `version` to every cluster, going on with `resuming`.
    pub fn deploying(&self, version: u8, resuming: Option<&str>) -> NextRun {
        let digest = rendered(version).content_digest();
        NextRun::Deploy {
            digests: self
                .clusters
                .iter()
                .map(|c| (c.context.clone(), digest.clone()))
                .collect(),
            resuming: resuming.map(str::to_owned),
        }
    }

    /// The steps of run `id` putting each cluster on its target, as the commands build
    /// them: every cluster's history as prepared, the run's options.
    pub fn steps(
        &self,
        id: &str,
        mut target: impl FnMut(&str) -> Option<Target>,
        options: RunOptions,
    ) -> KubeSteps<FakeKube> {
        let clusters = self
            .clusters
            .iter()
            .filter_map(|c| {
                let prepared = Prepared {
                    handle: c.kube.clone(),
                    history: History::new(c.kube.records.records()),
                    target: target(&c.context)?,
                };
                Some((c.context.clone(), prepared))
            })
            .collect();
        KubeSteps::new(clusters, id, options, Leases::new(false))
    }

    /// Runs `steps` as a command's [`Run`]; the faults scripted for it end with it (a
    /// crash in a wave the run never reached does not wait for the next run).
    pub async fn run(&mut self, plan: &Plan, steps: &KubeSteps<FakeKube>, operation: &str) {
        let notifier = Notifier::new(&[]);
        let run = Run {
            plan,
            info: RunInfo {
                operation: operation.into(),
                release: RELEASE.into(),
                deployment_id: steps.deployment_id.clone(),
                target: None,
            },
            interrupt: &std::mem::take(&mut self.interrupt),
            reporter: Reporter::silent(),
            notifier: &notifier,
            version: steps.clusters.values().find_map(Prepared::app_version),
        };
        self.last = Some(run.execute(steps, |_| {}).await);
        self.end_faults();
    }

    /// The faults scripted for a run end with it, run or refused.
    fn end_faults(&self) {
        for c in &self.clusters {
            c.kube.set_wait(Wait::Healthy);
            c.kube.reject(None);
        }
    }

    /// `version` rendered for every cluster, `crash` crashing on it once.
    pub fn deploy_steps(
        &self,
        id: &str,
        version: u8,
        crash: Option<usize>,
        options: RunOptions,
    ) -> KubeSteps<FakeKube> {
        if let Some(c) = crash.and_then(|i| self.clusters.get(i)) {
            c.kube.next_wait(Wait::Crash);
        }
        let render = |_: &str| Some(Target::Render(PackedRender::pack(rendered(version))));
        self.steps(id, render, options)
    }

    pub async fn deploy(
        &mut self,
        version: u8,
        crash: Option<usize>,
        halt: bool,
        pause: bool,
    ) -> String {
        let id = self.next_id();
        let mut plan = self.plan();
        if halt {
            plan.on_failure = OnFailure::Halt;
        }
        let mut options = self.options(&plan, &self.deploying(version, None));
        if pause {
            plan.until(0).expect("wave 0 exists");
            options.until_wave = Some(UntilWave {
                wave: 0,
                clusters: self.clusters[..self.canaries]
                    .iter()
                    .map(|c| c.context.clone())
                    .collect(),
            });
        }
        let steps = self.deploy_steps(&id, version, crash, options);
        self.run(&plan, &steps, "deploy").await;
        id
    }

    /// `deploy --resume id`, as the deploy command sets it up.
    pub async fn resume(&mut self, id: &str, version: u8, crash: Option<usize>) -> Ran {
        let mut plan = self.plan();
        let options = self.options(&plan, &self.deploying(version, Some(id)));
        let mut steps = self.deploy_steps(id, version, crash, options);
        if let Err(why) = steps.resume_deployment(&mut plan, id, None) {
            self.end_faults();
            return Ran::Refused(why);
        }
        self.run(&plan, &steps, "deploy").await;
        Ran::Ran
    }

    /// `rollback [--to ID]`, as the rollback command decides it; `fail`'s apply is
    /// refused.
    pub async fn rollback(&mut self, to: Option<&str>, fail: Option<usize>) -> Ran {
        let histories = self.histories();
        let env = EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
        let (target, revisions) = match env.rollback_revisions(to) {
            Ok(r) => (
                r.target.to_owned(),
                r.revisions
                    .iter()
                    .map(|(context, record)| ((*context).to_owned(), record.revision))
                    .collect::<HashMap<String, u32>>(),
            ),
            Err(NoRollback::NoTarget { deployments }) => {
                return Ran::Refused(format!("no target: {deployments}"))
            }
            Err(NoRollback::NeverRan { missing, .. }) => {
                return Ran::Refused(format!("never ran: {}", missing.join("; ")))
            }
        };
        let run_id = self.next_id();
        let plan = self.plan().without_gates();
        let options = self.options(&plan, &NextRun::Rollback(target.clone()));
        let steps = self.steps(
            &run_id,
            |context| {
                let revision = *revisions.get(context)?;
                Some(Target::Revision(RecordedTarget {
                    namespace: NAMESPACE.into(),
                    release: RELEASE.into(),
                    to: RevisionRef {
                        revision,
                        deployment_id: target.clone(),
                    },
                    fresh: Vec::new(),
                    unreadable: Vec::new(),
                }))
            },
            options,
        );
        if let Some(c) = fail.and_then(|i| self.clusters.get(i)) {
            c.kube.reject_next("web");
        }
        self.run(&plan, &steps, "rollback").await;
        Ran::Ran
    }

    /// The version cluster `cluster` runs by its live objects.
    pub fn live_version(&self, cluster: usize) -> Option<String> {
        let live = self.clusters[cluster].kube.live.lock().ok()?;
        live.iter()
            .find(|(id, _)| id.kind == "ConfigMap" && id.name == "config")
            .and_then(|(_, object)| object["data"]["version"].as_str().map(str::to_owned))
    }
}
