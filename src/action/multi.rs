//! What the multi-cluster commands (`deploy`, `rollback`, `history`, `promote`) share:
//! the environment and cluster selection on the command line, the signal that stops a
//! run, and printing a run's report. One cluster is `--clusters CTX`.

use super::EnvSelection;
use crate::cluster::load_kubeconfig;
use crate::cluster::LoadedKubeconfig;
use crate::config::NotifyEvent;
use crate::config::{LoadedEnvironment, Repo};
use crate::notify::{ClusterNotice, Notice};
use crate::output::OutputFormat;
use crate::rollout::executor::Interrupt;
use crate::rollout::plan::{parse_limit, select_environment};
use crate::rollout::report::{revision_text, Overall};
use crate::rollout::summary::ReportFiles;
use crate::rollout::{Plan, Report};
use crate::Result;
use std::path::{Path, PathBuf};

/// The environment and the plan, chosen from the repo alone.
pub struct Configured {
    pub repo: Repo,
    pub env: LoadedEnvironment,
    pub plan: Plan,
    kubeconfig_file: Option<PathBuf>,
}

/// [`Configured`] with the kubeconfig read: ready to connect.
pub struct Selected {
    pub repo: Repo,
    pub env: LoadedEnvironment,
    pub plan: Plan,
    pub kubeconfig: LoadedKubeconfig,
    /// `--kubeconfig`, when given.
    pub kubeconfig_path: Option<PathBuf>,
}

/// Loads the environment and the plan; nothing is contacted and the kubeconfig is not
/// read yet: a command checks what it needs of the repo (the release) first, since a
/// typo there is the likelier mistake and needs no cluster.
pub fn configure(root: &Path, args: &EnvSelection) -> Result<Configured> {
    let repo = Repo::open(root)?;
    let env = select_environment(&repo, args.env.as_deref(), args.branch.as_deref())?;
    let limit = args.clusters.as_deref().map(parse_limit);
    let plan = Plan::new(&env, limit.as_deref())?;
    Ok(Configured {
        repo,
        env,
        plan,
        kubeconfig_file: args.kubeconfig.clone(),
    })
}

impl Configured {
    /// Reads the kubeconfig; still nothing is contacted.
    pub fn with_kubeconfig(self) -> Result<Selected> {
        let kubeconfig = load_kubeconfig(self.kubeconfig_file.as_deref())?;
        Ok(Selected {
            repo: self.repo,
            env: self.env,
            plan: self.plan,
            kubeconfig,
            kubeconfig_path: self.kubeconfig_file,
        })
    }
}

/// SIGINT and SIGTERM for a run. The first: the run stops as on a failure and rolls
/// back what it changed. The second: what is in flight (the rollback included) is
/// abandoned, the partial report is printed with a finish command for every cluster
/// left unfinished, and the command exits 128 + the signal (130, 143).
pub fn interrupt_token() -> Interrupt {
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

/// Prints the reports (table and notes, or one JSON document) on stdout; any run that
/// did not succeed is exit code 1.
pub fn finish(reports: &[Report], output: OutputFormat, files: &ReportFiles) -> Result<()> {
    files.write(reports);
    match output {
        OutputFormat::Json => match reports {
            [one] => crate::output::print_json(one)?,
            many => crate::output::print_json(&many)?,
        },
        OutputFormat::Table => {
            let text: Vec<String> = reports.iter().map(Report::text).collect();
            crate::output::print(&text.join("\n"))?;
        }
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.succeeded())
        .map(|r| {
            format!(
                "{} {}: {}",
                r.operation,
                r.release,
                r.cause.clone().unwrap_or_default()
            )
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let message = failed.join("; ");
    if let Some(signal) = reports.iter().find_map(|r| r.signal) {
        return Err(crate::Error::Abandoned { signal, message });
    }
    if reports
        .iter()
        .all(|r| r.succeeded() || r.refused_before_any_change())
    {
        return Err(crate::Error::Refused(format!(
            "{message} (nothing was changed)"
        )));
    }
    Err(crate::Error::Failed(message))
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
        Report {
            operation: operation.into(),
            release: "hello".into(),
            environment: "prod".into(),
            deployment_id: "d2".into(),
            target: None,
            overall,
            interrupted: false,
            signal: None,
            cause: None,
            duration: Duration::from_secs(1),
            clusters: vec![ClusterResult {
                context: "eu".into(),
                wave: 0,
                before: None,
                deployed: Some(1),
                restored: None,
                result: RunResult::Deployed,
                duration: Duration::from_secs(1),
                error: None,
                finish_with: None,
                refused: false,
                kept_live: Vec::new(),
                diagnosis: None,
                gates: Vec::new(),
                earlier: false,
            }],
            failed_gate: None,
            version: None,
            paused_after_wave: None,
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
}
