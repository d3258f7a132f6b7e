//! What the multi-cluster commands (`deploy`, `rollback`, `history`, `promote`) share:
//! the environment and cluster selection on the command line, the signal that stops a
//! run, and printing a run's report. One cluster is `--clusters CTX`.

use super::EnvSelection;
use crate::cluster::{load_kubeconfig, CancellationToken};
use crate::config::{LoadedEnvironment, Repo};
use crate::output::OutputFormat;
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
    })
}

/// A token cancelled on SIGINT or SIGTERM: the run stops as on a failure and rolls back.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        eprintln!("signal received: stopping the run and rolling back what it changed");
        cancel.cancel();
    });
    token
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
        Ok(())
    } else {
        Err(crate::Error::Failed(failed.join("; ")))
    }
}
