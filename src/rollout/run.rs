//! One multi-cluster run as the commands start it: its plan and name, the signal that
//! stops it, where its progress goes, and the webhooks that hear of its start and end.
//! [`Run::execute`] wraps [`execute`] with those notices, so that every command that
//! changes clusters tells the same story.

use super::executor::{execute, ClusterSteps, Interrupt, RunInfo};
use super::plan::Plan;
use super::progress::Reporter;
use super::report::{revision_text, Overall, Report};
use crate::config::NotifyEvent;
use crate::notify::{ClusterNotice, Notice, Notifier};
use crate::ops::RunOptions;
use std::time::Duration;

/// How a run changes each cluster, as the command line sets it for `deploy`,
/// `promote`, `rollback`, `adopt-helm` and `uninstall`: mapped onto the per-cluster
/// [`RunOptions`] in one place ([`RunSettings::options`]).
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Per-cluster wait for health (default: the environment's `rollout.timeout`).
    pub timeout: Option<Duration>,
    /// Take fields that another field manager owns instead of failing.
    pub force_conflicts: bool,
    /// Take over objects that exist without being the release's (`--adopt`).
    pub adopt: bool,
    /// Create the release namespace where missing (`--create-namespace`).
    pub create_namespace: bool,
    /// How long ErrImagePull or CreateContainerConfigError may last.
    pub transient_grace: Duration,
    /// Revisions kept per release and cluster.
    pub history_max: usize,
    /// How long to wait for another run's lease (default: the lease duration plus a
    /// margin).
    pub lock_timeout: Option<Duration>,
}

impl Default for RunSettings {
    fn default() -> RunSettings {
        RunSettings {
            timeout: None,
            force_conflicts: false,
            adopt: false,
            create_namespace: false,
            transient_grace: crate::cluster::DEFAULT_TRANSIENT_GRACE,
            history_max: crate::storage::DEFAULT_HISTORY_LIMIT,
            lock_timeout: None,
        }
    }
}

impl RunSettings {
    /// The per-cluster options of a run of `plan` with these settings: the plan's
    /// timeouts unless overridden, every cluster of the plan as the run's targets.
    pub fn options(&self, plan: &Plan) -> RunOptions {
        let mut options = RunOptions::new(self.timeout.unwrap_or(plan.timeout));
        options.force_conflicts = self.force_conflicts;
        options.adopt = self.adopt;
        options.create_namespace = self.create_namespace;
        options.transient_grace = self.transient_grace;
        options.history_limit = self.history_max.max(1);
        options.restore_timeout = plan.rollback_timeout.unwrap_or(options.timeout);
        if let Some(wait) = self.lock_timeout {
            options.lock.wait = wait;
        }
        options.targets = plan.contexts();
        options
    }
}

/// A run of one release on the clusters of a plan.
pub struct Run<'a> {
    pub plan: &'a Plan,
    pub info: RunInfo,
    pub interrupt: &'a Interrupt,
    pub reporter: Reporter,
    pub notifier: &'a Notifier,
    /// The application version it puts in place, for the notices and the report.
    pub version: Option<String>,
}

impl Run<'_> {
    /// Tells the webhooks the run starts, runs `steps` on every cluster of the plan,
    /// lets `amend` add what the command knows of the clusters the steps never saw
    /// (a rollback's unreachable ones), then tells the webhooks how it ended.
    pub async fn execute<S: ClusterSteps>(
        &self,
        steps: &S,
        amend: impl FnOnce(&mut Report),
    ) -> Report {
        self.notifier
            .send(&started_notice(
                self.plan,
                &self.info.operation,
                &self.info.release,
                &self.info.deployment_id,
                self.version.clone(),
            ))
            .await;
        let mut report =
            execute(self.plan, steps, &self.info, self.interrupt, &self.reporter).await;
        amend(&mut report);
        report.version = self.version.clone();
        self.notifier
            .send(&finished_notice(&report, self.version.clone()))
            .await;
        report
    }
}

/// What the webhooks hear when a run is about to change its clusters.
pub fn started_notice(
    plan: &Plan,
    operation: &str,
    release: &str,
    deployment_id: &str,
    version: Option<String>,
) -> Notice {
    Notice {
        event: NotifyEvent::Started,
        operation: operation.to_owned(),
        release: release.to_owned(),
        environment: plan.environment.clone(),
        deployment_id: deployment_id.to_owned(),
        version,
        overall: None,
        cause: None,
        clusters: plan
            .clusters()
            .map(|c| ClusterNotice {
                context: c.context.clone(),
                result: "pending".into(),
                revision: None,
            })
            .collect(),
    }
}

/// What the webhooks hear when a run is over: succeeded; rolled back (a failed run
/// whose changed clusters are all back, or a `rollback` that succeeded); else failed.
pub fn finished_notice(report: &Report, version: Option<String>) -> Notice {
    let event = match report.overall {
        Overall::Succeeded if report.operation == "rollback" => NotifyEvent::RolledBack,
        // A run paused by `--until-wave` did all it was asked.
        Overall::Succeeded | Overall::Paused => NotifyEvent::Succeeded,
        Overall::RolledBack => NotifyEvent::RolledBack,
        Overall::RollbackIncomplete | Overall::Halted | Overall::Refused => NotifyEvent::Failed,
    };
    let overall = serde_json::to_value(report.overall)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    Notice {
        event,
        operation: report.operation.clone(),
        release: report.release.clone(),
        environment: report.environment.clone(),
        deployment_id: report.deployment_id.clone(),
        version,
        overall,
        cause: report.cause.as_deref().map(crate::redact::scrub),
        clusters: report
            .clusters
            .iter()
            .map(|c| ClusterNotice {
                context: c.context.clone(),
                result: serde_json::to_value(c.result)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                revision: Some(revision_text(c)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::report::{ClusterResult, RunResult};
    use std::time::Duration;

    fn report(operation: &str, overall: Overall) -> Report {
        let info = RunInfo {
            operation: operation.into(),
            release: "hello".into(),
            deployment_id: "d2".into(),
            target: None,
        };
        Report {
            overall,
            duration: Duration::from_secs(1),
            clusters: vec![ClusterResult {
                deployed: Some(1),
                result: RunResult::Deployed,
                duration: Duration::from_secs(1),
                ..ClusterResult::new("eu", 0)
            }],
            ..Report::new(&info, "prod")
        }
    }

    #[test]
    fn a_finished_run_is_told_as_succeeded_rolled_back_or_failed() {
        let event =
            |operation: &str, overall| finished_notice(&report(operation, overall), None).event;
        assert_eq!(event("deploy", Overall::Succeeded), NotifyEvent::Succeeded);
        assert_eq!(event("promote", Overall::Succeeded), NotifyEvent::Succeeded);
        assert_eq!(
            event("rollback", Overall::Succeeded),
            NotifyEvent::RolledBack
        );
        assert_eq!(
            event("deploy", Overall::RolledBack),
            NotifyEvent::RolledBack
        );
        for overall in [
            Overall::RollbackIncomplete,
            Overall::Halted,
            Overall::Refused,
        ] {
            assert_eq!(event("deploy", overall), NotifyEvent::Failed);
        }
        let notice = finished_notice(&report("deploy", Overall::Halted), Some("v2".into()));
        assert_eq!(notice.overall.as_deref(), Some("halted"));
        assert_eq!(notice.clusters[0].result, "deployed");
        assert_eq!(notice.clusters[0].revision.as_deref(), Some("- → 1"));
    }

    #[test]
    fn run_settings_map_onto_every_per_cluster_option_once() {
        let env = crate::rollout::plan::tests::env(&[("eu", 0), ("us", 1)], 2);
        let plan = Plan::new(&env, None).unwrap();
        let defaults = RunSettings::default().options(&plan);
        assert_eq!(defaults.timeout, plan.timeout);
        assert_eq!(
            defaults.restore_timeout,
            plan.rollback_timeout.unwrap_or(plan.timeout)
        );
        assert_eq!(defaults.targets, ["eu", "us"]);
        assert!(!defaults.force_conflicts && !defaults.adopt && !defaults.create_namespace);
        let given = RunSettings {
            timeout: Some(Duration::from_secs(7)),
            force_conflicts: true,
            adopt: true,
            create_namespace: true,
            transient_grace: Duration::from_secs(3),
            history_max: 0,
            lock_timeout: Some(Duration::from_secs(9)),
        }
        .options(&plan);
        assert_eq!(given.timeout, Duration::from_secs(7));
        assert!(given.force_conflicts && given.adopt && given.create_namespace);
        assert_eq!(given.transient_grace, Duration::from_secs(3));
        // At least one revision is always kept: the one that runs.
        assert_eq!(given.history_limit, 1);
        assert_eq!(given.lock.wait, Duration::from_secs(9));
    }
}
