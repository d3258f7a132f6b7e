//! What the multi-cluster commands (`deploy`, `rollback`, `history`, `promote`) share:
//! the environment and cluster selection on the command line, the signal that stops a
//! run, and printing a run's report. One cluster is `--clusters CTX`.

use super::EnvSelection;
use crate::cluster::load_kubeconfig;
use crate::config::{LoadedEnvironment, Repo};
use crate::output::OutputFormat;
use crate::rollout::executor::Interrupt;
use crate::rollout::plan::{parse_limit, select_environment};
use crate::rollout::{Plan, Report};
use crate::Result;
use kube::config::Kubeconfig;
use std::path::Path;

pub struct Selected {
    pub repo: Repo,
    pub env: LoadedEnvironment,
    pub plan: Plan,
    pub kubeconfig: Kubeconfig,
    /// `--kubeconfig`, when given.
    pub kubeconfig_path: Option<std::path::PathBuf>,
}

/// Loads the environment and the plan; nothing is contacted.
pub fn select(root: &Path, args: &EnvSelection) -> Result<Selected> {
    let repo = Repo::open(root)?;
    let env = select_environment(&repo, args.env.as_deref(), args.branch.as_deref())?;
    let limit = args.clusters.as_deref().map(parse_limit);
    let plan = Plan::new(&env, limit.as_deref())?;
    let kubeconfig = load_kubeconfig(args.kubeconfig.as_deref())?;
    Ok(Selected {
        repo,
        env,
        plan,
        kubeconfig,
        kubeconfig_path: args.kubeconfig.clone(),
    })
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
pub fn finish(reports: &[Report], output: OutputFormat) -> Result<()> {
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
