//! `flotilla uninstall RELEASE --env E [--clusters a,b]`: the release removed from every
//! cluster of the environment (or the named ones), coordinated as a deploy is. Every
//! cluster is connected and its records read, then the lease of every cluster that has
//! the release is taken, one after the other in name order, before anything is
//! removed: an unreachable cluster or a lease another run holds stops the run with
//! nothing removed anywhere (exit 3). Then wave by wave, the clusters of a wave at once
//! (bounded by `concurrency`): the objects flotilla owns are deleted (those annotated
//! `flotilla.dev/resource-policy: keep` or `helm.sh/resource-policy: keep`, and
//! Namespaces, CRDs, PVCs and PVs without opt-in, are kept and reported), then the
//! records, then the lease. A cluster that fails stops the next waves; the report says
//! what each cluster did (exit 1). The environment's `notify` webhooks hear of the start
//! (every lease taken) and of the end, under the id of this run.

use super::EnvSelection;
use crate::cluster::{ClusterHandle, Event, Kept, ObjectRef};
use crate::config::NotifyEvent;
use crate::notify::{ClusterNotice, Notice, Notifier};
use crate::ops;
use crate::output::OutputFormat;
use crate::rollout::connect::{connect_all, Connected};
use crate::rollout::leases::Leases;
use crate::Result;
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct UninstallOptions {
    pub release: String,
    pub env: EnvSelection,
    /// How long to wait for a lease another run holds (default: the lease duration
    /// plus a margin).
    pub lock_timeout: Option<Duration>,
    /// Print what would be removed; change nothing.
    pub dry_run: bool,
    /// `--yes`: no question asked on a terminal.
    pub confirmed: bool,
    /// Keep the records, the deployed revision marked `uninstalled` (`--keep-history`).
    pub keep_history: bool,
    pub output: OutputFormat,
}

/// What uninstall did in one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct UninstallResult {
    #[serde(rename = "cluster")]
    pub context: String,
    pub wave: u32,
    /// `uninstalled`, `not-installed`, `failed`, `not-started`.
    pub result: &'static str,
    pub deleted: Vec<String>,
    /// What it left in place, and why.
    pub kept: Vec<Kept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UninstallReport {
    pub release: String,
    pub namespace: String,
    pub environment: String,
    pub succeeded: bool,
    pub clusters: Vec<UninstallResult>,
}

#[derive(tabled::Tabled)]
struct Row {
    #[tabled(rename = "CLUSTER")]
    cluster: String,
    #[tabled(rename = "WAVE")]
    wave: u32,
    #[tabled(rename = "RESULT")]
    result: String,
    #[tabled(rename = "DELETED")]
    deleted: usize,
    #[tabled(rename = "KEPT")]
    kept: usize,
}

impl UninstallReport {
    /// What the environment's webhooks hear once it is over: `succeeded`, or `failed`
    /// with the first cluster's error (scrubbed).
    fn notice(&self, run_id: &str) -> Notice {
        let (event, overall) = if self.succeeded {
            (NotifyEvent::Succeeded, "succeeded")
        } else {
            (NotifyEvent::Failed, "failed")
        };
        Notice {
            event,
            operation: "uninstall".into(),
            release: self.release.clone(),
            environment: self.environment.clone(),
            deployment_id: run_id.to_owned(),
            version: None,
            overall: Some(overall.into()),
            cause: self
                .clusters
                .iter()
                .find_map(|c| c.error.as_deref())
                .map(crate::redact::scrub),
            clusters: self
                .clusters
                .iter()
                .map(|c| ClusterNotice {
                    context: c.context.clone(),
                    result: c.result.to_owned(),
                    revision: None,
                })
                .collect(),
        }
    }

    pub fn text(&self) -> String {
        let rows = self.clusters.iter().map(|c| Row {
            cluster: c.context.clone(),
            wave: c.wave,
            result: c.result.to_owned(),
            deleted: c.deleted.len(),
            kept: c.kept.len(),
        });
        let mut out = format!(
            "uninstall {} (namespace {}) from {}: {}\n{}",
            self.release,
            self.namespace,
            self.environment,
            if self.succeeded {
                "succeeded"
            } else {
                "FAILED"
            },
            crate::output::table_text(tabled::Table::new(rows))
        );
        for c in &self.clusters {
            for kept in &c.kept {
                out.push_str(&format!("{}: kept {kept}\n", c.context));
            }
            if let Some(err) = &c.error {
                out.push_str(&format!("{}: {err}\n", c.context));
            }
        }
        out
    }
}

pub async fn run(root: &Path, args: &UninstallOptions) -> Result<()> {
    let configured = crate::rollout::configure(root, &args.env)?;
    let release = configured.repo.release(&args.release)?;
    configured.repo.check_release(&release, &configured.env)?;
    let selected = configured.with_kubeconfig()?;
    let (name, namespace) = (
        release.descriptor.metadata.name.clone(),
        release.descriptor.metadata.namespace.clone(),
    );
    // Every cluster reached and its records read before anything is removed: an
    // unreachable one stops here (exit 3).
    let connected = connect_all(&selected.plan, &selected.kubeconfig, &namespace, &name).await?;
    let installed: Vec<&Connected> = connected.iter().filter(|c| !c.history.is_empty()).collect();
    if installed.is_empty() {
        return Err(crate::Error::Reported(format!(
            "uninstall {name}: release `{name}` is not installed in namespace `{namespace}` of any cluster of {} ({}); nothing changed",
            selected.plan.environment,
            selected.plan.contexts().join(", ")
        )));
    }
    let plan = removal_plan(&installed, args.keep_history);
    if args.dry_run {
        return print_plan(
            &name,
            &namespace,
            &selected.plan.environment,
            &plan,
            args.output,
        );
    }
    if !args.confirmed && confirmation_possible() {
        confirm(&name, &selected.plan.environment, &plan, args.keep_history)?;
    }
    let settings = crate::rollout::run::RunSettings {
        lock_timeout: args.lock_timeout,
        ..Default::default()
    };
    let mut opts = settings.options(&selected.plan);
    opts.keep_history = args.keep_history;
    let kept: Arc<Mutex<HashMap<String, Vec<Kept>>>> = Arc::default();
    let seen = kept.clone();
    opts.progress = Arc::new(move |context, event| match event {
        Event::Pruned(id) => crate::output::eprint_line(&format!("[{context}] deleted {id}")),
        Event::Kept(k) => {
            crate::output::eprint_line(&format!("[{context}] kept {k}"));
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(context.to_owned())
                .or_default()
                .push(k);
        }
        Event::Applied(_) | Event::KeptLive(_) | Event::Ready(_) | Event::Waiting { .. } => {}
    });

    // The lease of every cluster before anything is removed: two runs never each hold
    // a part of what the other needs; on a refusal, those taken are given back and
    // nothing was removed (exit 3).
    let leases: Leases = Leases::new(false);
    let handles: Vec<&ClusterHandle> = installed.iter().map(|c| &c.handle).collect();
    let reporter = crate::rollout::Reporter::plain();
    leases
        .take_every(&handles, &namespace, &name, &opts.lock, &reporter)
        .await
        .map_err(|err| {
            crate::Error::Refused(format!(
                "uninstall {name}: {}; nothing was removed in any cluster",
                err.message
            ))
        })?;
    let run_id = crate::rollout::new_deployment_id();
    let notifier = Notifier::new(&selected.env.environment.notify);
    notifier
        .send(&crate::rollout::run::started_notice(
            &selected.plan,
            "uninstall",
            &name,
            &run_id,
            None,
        ))
        .await;
    let mut results = Vec::new();
    let mut failed = false;
    for wave in &selected.plan.waves {
        let done: Vec<UninstallResult> = futures::stream::iter(wave)
            .map(|cluster| {
                let (opts, namespace, name) = (&opts, &namespace, &name);
                let found = installed
                    .iter()
                    .find(|c| c.cluster.context == cluster.context);
                let read = leases.seen_read(&cluster.context);
                async move {
                    let mut row = UninstallResult {
                        context: cluster.context.clone(),
                        wave: cluster.wave,
                        result: "not-installed",
                        deleted: Vec::new(),
                        kept: Vec::new(),
                        error: None,
                    };
                    let (Some(found), Some(read)) = (found, read) else {
                        return row;
                    };
                    if failed {
                        row.result = "not-started";
                        return row;
                    }
                    // The records as read under the lease: a change by another writer
                    // since is a conflict, never overwritten.
                    let store = read.store();
                    let removed = ops::uninstall::remove(
                        &found.handle,
                        &store,
                        namespace,
                        name,
                        crate::cluster::Removal::Uninstall,
                        opts,
                    );
                    match removed.await {
                        Ok(deleted) => {
                            row.result = "uninstalled";
                            row.deleted = deleted.iter().map(ObjectRef::to_string).collect();
                        }
                        Err(err) => {
                            row.result = "failed";
                            row.error = Some(err.to_string());
                        }
                    }
                    row
                }
            })
            .buffered(selected.plan.concurrency.max(1))
            .collect()
            .await;
        failed |= done.iter().any(|r| r.result == "failed");
        results.extend(done);
    }
    leases.release_all().await;
    {
        let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
        for row in &mut results {
            row.kept = kept.remove(&row.context).unwrap_or_default();
        }
    }
    let report = UninstallReport {
        release: name,
        namespace,
        environment: selected.plan.environment.clone(),
        succeeded: !failed,
        clusters: results,
    };
    notifier.send(&report.notice(&run_id)).await;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => crate::output::print_json(&report)?,
        OutputFormat::Table => crate::output::print(&report.text())?,
    }
    if failed {
        let causes: Vec<String> = report
            .clusters
            .iter()
            .filter_map(|c| c.error.clone())
            .collect();
        return Err(crate::Error::Failed(format!(
            "uninstall {}: {}",
            report.release,
            causes.join("; ")
        )));
    }
    Ok(())
}

/// What an uninstall would do in one cluster.
#[derive(Debug, Clone, Serialize, tabled::Tabled)]
struct PlannedRemoval {
    #[tabled(rename = "CLUSTER")]
    cluster: String,
    /// What runs there now.
    #[tabled(rename = "RUNS NOW")]
    runs_now: String,
    /// Objects any record lists: deleted, unless annotated keep or a Namespace, CRD,
    /// PVC or PV without opt-in.
    #[tabled(rename = "OBJECTS")]
    objects: usize,
    /// `deleted (N revisions)` or `kept, marked uninstalled`.
    #[tabled(rename = "HISTORY")]
    history: String,
}

fn removal_plan(installed: &[&Connected], keep_history: bool) -> Vec<PlannedRemoval> {
    installed
        .iter()
        .map(|c| PlannedRemoval {
            cluster: c.cluster.context.clone(),
            runs_now: super::dry_run::runs_now(&c.history),
            objects: c.history.every_object().len(),
            history: if keep_history {
                format!("kept ({} revisions), marked uninstalled", c.history.len())
            } else {
                format!(
                    "deleted ({} revisions): no rollback afterwards",
                    c.history.len()
                )
            },
        })
        .collect()
}

fn print_plan(
    release: &str,
    namespace: &str,
    environment: &str,
    plan: &[PlannedRemoval],
    output: OutputFormat,
) -> Result<()> {
    Ok(match output {
        OutputFormat::Json | OutputFormat::Yaml => crate::output::print_json(&serde_json::json!({
            "release": release,
            "namespace": namespace,
            "environment": environment,
            "dry_run": true,
            "clusters": plan,
        })),
        OutputFormat::Table => crate::output::print(&format!(
            "uninstall {release} (namespace {namespace}) from {environment}, dry run: nothing changed\n{}objects annotated keep (flotilla.dev/resource-policy or helm.sh/resource-policy), and Namespaces, CRDs, PVCs and PVs without opt-in, are kept\n",
            crate::output::table_text(tabled::Table::new(plan))
        )),
    }?)
}

/// Only a person at a terminal is asked: a script's stdin is not one.
fn confirmation_possible() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks on the terminal; anything but `y` or `yes` changes nothing.
fn confirm(
    release: &str,
    environment: &str,
    plan: &[PlannedRemoval],
    keep_history: bool,
) -> Result<()> {
    let clusters: Vec<&str> = plan.iter().map(|p| p.cluster.as_str()).collect();
    let objects: usize = plan.iter().map(|p| p.objects).sum();
    let history = if keep_history {
        "its history is kept (marked uninstalled): `flotilla rollback` brings it back"
    } else {
        "its history is deleted too: nothing can be rolled back afterwards (--keep-history keeps it)"
    };
    crate::output::eprint_line(&format!(
        "uninstall {release} from {environment}: {} cluster(s) ({}), up to {objects} object(s); {history}.",
        clusters.len(),
        clusters.join(", ")
    ));
    eprint!("Go on? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(crate::Error::Reported(format!(
            "uninstall {release}: not confirmed; nothing changed (--yes skips the question)"
        ))),
    }
}
