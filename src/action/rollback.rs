//! `flotilla rollback RELEASE --env E [--to ID] [--clusters a,b] [--dry-run]`: every
//! cluster back to one deployment, decided once for the environment
//! ([`EnvironmentHistory::rollback_target`], or `--to ID`), each cluster finding its own
//! revision of it. The target revision is rendered again from its record (chart and
//! values as recorded) with its secrets read again at their recorded sources; what
//! cannot be read keeps its live value and the records say so. Needs the environment
//! file and the release's name and namespace, not a loadable descriptor. A cluster that
//! never ran the target is reported and nothing is changed.

use super::multi;
use super::EnvSelection;
use crate::cluster::ClusterError;
use crate::cluster::ObjectRef;
use crate::config::{Cluster, ConfigError, LoadedEnvironment, LoadedRelease};
use crate::engine::{Chart, Renderer};
use crate::ops::restore::objects_to_apply;
use crate::output::OutputFormat;
use crate::release::{
    check_record, content_digest_problem, describe_record, EnvironmentHistory, NextRun, NoRollback,
    RecordKey,
};
use crate::rollout::connect::{connect_each, Connected};
use crate::rollout::executor::finish_command_to;
use crate::rollout::executor::RunInfo;
use crate::rollout::kube_steps::{
    revision_ref, KubeSteps, Prepared, RecordedTarget, RestoreRenders, Target,
};
use crate::rollout::recorded::{read_secrets, rerender, Refreshed};
use crate::rollout::report::RevisionRef;
use crate::rollout::report::{ClusterResult, KeptLive, Overall, RunResult};
use crate::rollout::Reporter;
use crate::vault::{resolve_for_environment, ResolvedSecrets, SecretPlan, VaultEnv};
use crate::Result;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    pub release: String,
    pub env: EnvSelection,
    /// The deployment id to go back to (default: each cluster's previous deployment).
    pub to: Option<String>,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    pub timeout: Option<Duration>,
    /// Take fields that another field manager owns instead of failing.
    pub force_conflicts: bool,
    /// How long to wait for another run's lease (default: the lease duration plus a
    /// margin).
    pub lock_timeout: Option<Duration>,
    /// Print what each cluster runs and would go to; change nothing.
    pub dry_run: bool,
    /// The release namespace, when the descriptor cannot be loaded (or to override it).
    pub namespace: Option<String>,
    /// Where the run's summary goes for CI (`--summary`, `--junit`).
    pub report_files: crate::rollout::summary::ReportFiles,
    /// Use records whose MAC cannot be checked (Vault down) or does not verify, with a
    /// warning naming them; their digests and Vault paths are still checked.
    pub trust_records: bool,
    pub output: OutputFormat,
}

pub async fn run(root: &Path, args: &RollbackOptions) -> Result<()> {
    let configured = crate::rollout::configure(root, &args.env)?;
    let identified = identify(&configured, args)?;
    let selected = configured.with_kubeconfig()?;
    let (name, namespace, release) = match identified {
        Identified::Known(name, namespace, release) => (name, namespace, release.map(|r| *r)),
        Identified::Unloadable { name, error } => {
            let namespace = namespace_from_records(&selected, &name, &error).await?;
            (name, namespace, None)
        }
    };
    // An incident does not wait for every region: clusters that cannot be reached now
    // are reported with the command that finishes them later; the others go back.
    let mut unreachable = Vec::new();
    let mut connected = Vec::new();
    for (cluster, found) in
        connect_each(&selected.plan, &selected.kubeconfig, &namespace, &name).await
    {
        match found {
            Ok(c) => connected.push(c),
            // Unreachable, or its records cannot be read (the storage layer reports a
            // refused connection that way too).
            Err(
                err @ (ClusterError::Unreachable { .. }
                | ClusterError::Records { .. }
                | ClusterError::Api { .. }),
            ) => unreachable.push((cluster, err)),
            Err(err) => return Err(err.into()),
        }
    }

    // Nothing to decide from: said as what it is, an environment problem (exit 3).
    if connected.is_empty() && !unreachable.is_empty() {
        return Err(crate::Error::Refused(format!(
            "rollback {name} in {}: nothing changed: no cluster could be reached:\n  {}",
            selected.plan.environment,
            unreachable
                .iter()
                .map(|(c, err)| format!("{}: {err}", c.context))
                .collect::<Vec<_>>()
                .join("\n  ")
        )));
    }
    // No record at all where the rollback looked: a wrong namespace, or a release never
    // deployed here; said so, with where its records are when a cluster knows.
    if connected
        .iter()
        .all(|c| c.history.is_empty() && c.history.skipped().is_empty())
    {
        return Err(no_records(&name, &namespace, &selected.plan.environment, &connected).await);
    }
    // A record that cannot be read and may be what runs (or what a killed run left)
    // stops the rollback before anything is decided: nothing changed.
    let unreadable: Vec<String> = connected
        .iter()
        .filter_map(|c| {
            let why = c.history.check_skipped().err()?;
            Some(format!("{}: {why}", c.cluster.context))
        })
        .collect();
    if !unreadable.is_empty() {
        return Err(crate::Error::Reported(format!(
            "rollback {name} in {}: nothing changed, because\n  {}\n(limit the run with --clusters to roll back the others)",
            selected.plan.environment,
            unreadable.join("\n  ")
        )));
    }
    // Without --to, the target is chosen by comparing the records' content digests:
    // each must be the digest of its record's content.
    if args.to.is_none() {
        let forged: Vec<String> = connected
            .iter()
            .flat_map(|c| {
                let context = &c.cluster.context;
                c.history.records().iter().filter_map(move |r| {
                    let problem = content_digest_problem(r)?;
                    Some(format!("{}: {problem}", describe_record(r, context)))
                })
            })
            .collect();
        if !forged.is_empty() {
            return Err(crate::Error::Untrusted(format!(
                "rollback {name} in {}: refused, nothing changed: the target is chosen by comparing the records' content digests, and a record does not verify:\n  {}\n(name the target with --to DEPLOYMENT_ID; its records are checked then)",
                selected.plan.environment,
                forged.join("\n  ")
            )));
        }
    }
    // One target for the whole environment, then each cluster's own revision of it.
    let env = EnvironmentHistory::new(
        connected
            .iter()
            .map(|c| (c.cluster.context.as_str(), &c.history)),
    );
    let decided = env.rollback_revisions(args.to.as_deref()).map(|r| {
        let revisions: HashMap<String, RevisionRef> = r
            .revisions
            .iter()
            .map(|(context, record)| ((*context).to_owned(), revision_ref(record)))
            .collect();
        // What the history limit must keep, asked of the same histories.
        let keep = env.kept_by_history_limit(&NextRun::Rollback(r.target.to_owned()));
        (r.target.to_owned(), revisions, keep)
    });
    let (target, mut revisions, keep) = match decided {
        Ok(decided) => decided,
        Err(NoRollback::NoTarget { deployments }) => {
            return Err(crate::Error::Reported(format!(
                "rollback {name} in {}: nothing changed: there is no earlier complete deployment to go back to (deployments, newest first: {deployments})",
                selected.plan.environment
            )))
        }
        Err(NoRollback::NeverRan { target, missing }) => {
            return Err(crate::Error::Reported(format!(
                "rollback {name} in {} to deployment {target}: nothing changed, because\n  {}\n(limit the run with --clusters to roll back the others)",
                selected.plan.environment,
                missing.join("\n  ")
            )))
        }
    };
    let targets: Vec<(Connected, RevisionRef)> = connected
        .into_iter()
        .filter_map(|found| {
            let to = revisions.remove(&found.cluster.context)?;
            Some((found, to))
        })
        .collect();
    // Before a record's content or Vault plan is used: its digests, its Vault paths and
    // (not for --dry-run, which reads no Vault) its MAC. The key also signs the
    // restores this run records.
    let key = if args.dry_run {
        None
    } else {
        key_for_rollback(&selected.env, &namespace, args.trust_records).await?
    };
    check_targets(
        &selected.env,
        release.as_ref(),
        &targets,
        key.as_deref(),
        args.trust_records || args.dry_run,
    )
    .map_err(|problems| {
        crate::Error::Untrusted(format!(
            "rollback {name} in {} to deployment {target}: refused, nothing changed: a record it would use does not verify:\n  {}\n{}",
            selected.plan.environment,
            problems.join("\n  "),
            TRUST_HINT
        ))
    })?;
    if args.dry_run {
        print_plan(&target, &targets, &unreachable, args.output)?;
        return match unreachable.is_empty() {
            true => Ok(()),
            false => Err(crate::Error::Refused(format!(
                "rollback {name} in {}: {} cannot be reached (the plan above leaves {} out)",
                selected.plan.environment,
                unreachable
                    .iter()
                    .map(|(c, _)| c.context.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if unreachable.len() == 1 { "it" } else { "them" }
            ))),
        };
    }

    let mut refreshed = refresh(&selected.env, release.as_ref(), &name, &namespace, &targets).await;
    let mut clusters = HashMap::new();
    let mut kept_live = HashMap::new();
    for (
        Connected {
            cluster,
            handle,
            history,
        },
        to,
    ) in targets
    {
        let Refreshed { fresh, unreadable } =
            refreshed.remove(&cluster.context).unwrap_or_default();
        if let Some(record) = history.get(to.revision) {
            kept_live.insert(
                cluster.context.clone(),
                kept_live_of(&record.manifest, &fresh, &unreadable, &namespace),
            );
        }
        let target = RecordedTarget {
            namespace: namespace.clone(),
            release: name.clone(),
            to,
            fresh,
            unreadable,
        };
        clusters.insert(
            cluster.context.clone(),
            Prepared {
                handle,
                history,
                target: Target::Revision(target),
            },
        );
    }
    let settings = crate::rollout::run::RunSettings {
        timeout: args.timeout,
        force_conflicts: args.force_conflicts,
        lock_timeout: args.lock_timeout,
        ..Default::default()
    };
    let mut options = settings.options(&selected.plan);
    options.history_keep = keep;
    options.audit = Some(crate::rollout::audit::collect(selected.repo.root()));
    options.record_key = key;
    options.trust_records = args.trust_records;
    let run_id = crate::rollout::new_deployment_id();
    let mut steps = KubeSteps::new(clusters, &run_id, options, Default::default());
    // A failure puts every cluster back on what it ran, rendered again from its record
    // as the automatic restore of a deploy does.
    steps.restore_renders = Some(RestoreRenders::new(
        &selected.env,
        selected.plan.clusters().cloned(),
    ));
    // A rollback never waits on a soak or runs a verify command.
    let mut plan = selected.plan.clone().without_gates();
    for wave in &mut plan.waves {
        wave.retain(|c| !unreachable.iter().any(|(u, _)| u.context == c.context));
    }
    plan.waves.retain(|w| !w.is_empty());
    let notifier = crate::notify::Notifier::new(&selected.env.environment.notify);
    let run = crate::rollout::Run {
        plan: &plan,
        info: RunInfo {
            operation: "rollback".into(),
            release: name,
            deployment_id: run_id,
            target: Some(target.clone()),
        },
        interrupt: &crate::rollout::Interrupt::on_signals(),
        reporter: Reporter::for_stderr(),
        notifier: &notifier,
        version: steps.clusters.values().find_map(Prepared::app_version),
    };
    let report = run
        .execute(&steps, |report| {
            for row in &mut report.clusters {
                if let Some(kept) = kept_live.remove(&row.context) {
                    row.kept_live = kept;
                }
            }
            if !unreachable.is_empty() && report.cause.is_none() {
                report.cause = Some(format!(
                    "not reached, nothing changed there: {}",
                    unreachable
                        .iter()
                        .map(|(c, _)| c.context.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for (cluster, err) in unreachable {
                report.overall = Overall::RollbackIncomplete;
                // The target is decided: finishing later must not decide it again.
                let mut row = ClusterResult::not_started(&cluster);
                row.result = RunResult::FailedUnchanged;
                row.error = Some(err.to_string());
                row.finish_with = Some(finish_command_to(
                    &report.release,
                    &report.environment,
                    &cluster.context,
                    Some(target.as_str()),
                ));
                row.refused = true;
                report.clusters.push(row);
            }
        })
        .await;
    multi::finish(&[report], args.output, &args.report_files)
}

/// Who the release is, as far as the checkout says.
enum Identified {
    /// Its name and namespace, and its descriptor when it loads.
    Known(String, String, Option<Box<LoadedRelease>>),
    /// The descriptor does not load and no `--namespace` was given: its namespace is
    /// where its records are.
    Unloadable { name: String, error: String },
}

/// What a refusal says an operator may do about it.
const TRUST_HINT: &str = "(a digest or a Vault path that does not verify means the record was changed after flotilla wrote it: find out who may write Secrets in the namespace. A MAC that is missing or does not verify, and only that, is accepted with --trust-records, with a warning: records written before vault.record_key was set, or with a key rotated since)";

/// The environment's record key for a rollback: `None` when it names none (said once),
/// or when it cannot be read and the operator said `--trust-records` (said too: the
/// records are then used unchecked and this rollback's own are written unsigned).
/// Otherwise a key that cannot be read refuses the rollback, nothing changed (exit 3).
async fn key_for_rollback(
    env: &LoadedEnvironment,
    namespace: &str,
    trust_records: bool,
) -> Result<Option<std::sync::Arc<RecordKey>>> {
    let named = env
        .environment
        .vault
        .as_ref()
        .is_some_and(|v| v.record_key.is_some());
    if !named {
        crate::rollout::signing::warn_unsigned(env, namespace);
        return Ok(None);
    }
    match crate::rollout::signing::record_key(env).await {
        Ok(key) => Ok(key),
        Err(err) if trust_records => {
            crate::output::eprint_line(&format!(
                "warning: {err}; --trust-records: the records' MACs are not checked (their digests and Vault paths are), and this rollback's own records are written unsigned"
            ));
            Ok(None)
        }
        Err(err) => Err(crate::Error::Untrusted(format!(
            "rollback in {}: refused, nothing changed: the records cannot be checked: {err}\n(with Vault down, --trust-records rolls back from the records as they are: their digests and Vault paths are still checked, their MACs are not, and this rollback's own records are written unsigned)",
            env.environment.name
        ))),
    }
}

/// Every target record checked before it is used, one line per problem naming the
/// record and its cluster: its digests recomputed from its content; its MAC with `key`
/// (a warning instead with `trust_records`, which `--dry-run` implies: it reads no
/// Vault); each Vault path it reads, as the
/// descriptor's paths are checked (inside the KV mount, no `.` or `..`), and, when the
/// descriptor loads, one its mappings give that cluster (a signed record may read a
/// path the mappings no longer give: said, not refused).
fn check_targets(
    env: &LoadedEnvironment,
    release: Option<&LoadedRelease>,
    targets: &[(Connected, RevisionRef)],
    key: Option<&RecordKey>,
    trust_records: bool,
) -> std::result::Result<(), Vec<String>> {
    let mappings = release.and_then(|release| {
        SecretPlan::build(release, env)
            .map_err(|err| {
                tracing::warn!("the release's mappings do not load, recorded Vault paths are checked against the mount only: {err}")
            })
            .ok()
    });
    let kv = env.environment.vault.as_ref().map(|v| &v.kv);
    let mut problems = Vec::new();
    for (connected, to) in targets {
        let Some(record) = connected.history.get(to.revision) else {
            continue;
        };
        let context = &connected.cluster.context;
        let what = describe_record(record, context);
        let trust = check_record(record, context, key);
        problems.extend(trust.content.iter().map(|p| format!("{what}: {p}")));
        match &trust.signature {
            Some(problem) if trust_records => crate::output::eprint_line(&format!(
                "warning: {what}: {problem}; used as it is (--trust-records)"
            )),
            Some(problem) => problems.push(format!("{what}: {problem}")),
            None => {}
        }
        // Signed, or (--trust-records, --dry-run) taken as such.
        let signed = trust.signature.is_none() && (key.is_some() || trust_records);
        for secret in record.source.iter().flat_map(|s| &s.secrets) {
            let named = format!("{what}: secret {}", secret.secret_id);
            if let Some(kv) = kv {
                if let Err(problem) = crate::vault::check_recorded_path(
                    &secret.path,
                    &secret.relative,
                    kv,
                    &env.environment.name,
                ) {
                    problems.push(format!("{named}: {problem}"));
                    continue;
                }
            }
            let Some(plan) = &mappings else { continue };
            let mut given: Vec<&str> = plan.for_context(context).map(|e| e.path.as_str()).collect();
            if given.contains(&secret.path.as_str()) {
                continue;
            }
            given.sort_unstable();
            given.dedup();
            let problem = format!(
                "{named} is read from {:?}, which the release's mappings never give cluster {context} (they give {})",
                secret.path,
                if given.is_empty() { "no path".to_owned() } else { given.join(", ") }
            );
            if signed {
                crate::output::eprint_line(&format!(
                    "warning: {problem}; read as recorded, since the record is signed"
                ));
            } else {
                problems.push(problem);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The release's name and namespace, and its descriptor when it loads. A rollback
/// works from the records: an invalid `release.yaml` in the checkout (the bad commit
/// of the incident) must not stop it.
fn identify(
    selected: &crate::rollout::selection::Configured,
    args: &RollbackOptions,
) -> Result<Identified> {
    Ok(
        match (selected.repo.release(&args.release), &args.namespace) {
            (Ok(release), namespace) => {
                let name = release.descriptor.metadata.name.clone();
                let namespace = namespace
                    .clone()
                    .unwrap_or_else(|| release.descriptor.metadata.namespace.clone());
                Identified::Known(name, namespace, Some(Box::new(release)))
            }
            (Err(err), Some(namespace)) => {
                let name = release_name(&args.release);
                crate::output::eprint_line(&format!(
                "the descriptor of {name} does not load ({err}); rolling back from the records in namespace {namespace}"
            ));
                Identified::Known(name, namespace.clone(), None)
            }
            // No such release at all (no folder, no release.yaml): a typo, said before
            // any cluster is asked. A descriptor that exists and does not load is the
            // incident's broken checkout: its records are looked for.
            (Err(err @ ConfigError::UnknownRelease { .. }), None) => return Err(err.into()),
            (Err(err), None) => Identified::Unloadable {
                name: release_name(&args.release),
                error: err.to_string(),
            },
        },
    )
}

/// Where the records of `name` are, when the descriptor that says it does not load:
/// every cluster of the plan asked at once for the namespaces holding them (by their
/// labels, in every namespace). One namespace is the answer, with a warning; none, or
/// several, is an error that asks for `--namespace`. A cluster whose credentials may not
/// list Secrets in every namespace is asked about the namespace its kube context names;
/// a cluster that cannot answer is left out of the search (the rollback reports it as
/// unreachable, as it would anyway).
async fn namespace_from_records(
    selected: &crate::rollout::Selected,
    name: &str,
    error: &str,
) -> Result<String> {
    let asked = crate::rollout::connect::on_each(
        &selected.plan,
        &selected.kubeconfig,
        |cluster, handle| async move {
            match crate::storage::namespaces_with_records(&handle, name).await {
                // A deployer limited to its namespaces: the records may be in the one
                // its kube context names.
                Err(denied @ ClusterError::Denied { .. }) => {
                    let Some(namespace) = context_namespace(selected, &cluster.context) else {
                        return Err(denied);
                    };
                    let store = crate::storage::SecretStore::new(&handle, &namespace, name);
                    let history = crate::storage::RecordStore::history(&store).await?;
                    let held = !history.is_empty() || !history.skipped().is_empty();
                    Ok(held.then_some(namespace).into_iter().collect())
                }
                other => other,
            }
        },
    )
    .await;
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut unanswered = Vec::new();
    let asked_count = asked.len();
    for (cluster, answer) in asked {
        let context = cluster.context;
        match answer {
            Ok(namespaces) => {
                for namespace in namespaces {
                    found.entry(namespace).or_default().push(context.clone());
                }
            }
            Err(err) => unanswered.push(err.to_string()),
        }
    }
    if asked_count > 0 && unanswered.len() == asked_count {
        return Err(crate::Error::Refused(format!(
            "rollback {name} in {}: nothing changed: no cluster could be reached to find the release's records ({error}):\n  {}",
            selected.plan.environment,
            unanswered.join("\n  ")
        )));
    }
    let give = "give --namespace NS to roll back from the records in that namespace";
    let unanswered = if unanswered.is_empty() {
        String::new()
    } else {
        format!("; not searched: {}", unanswered.join("; "))
    };
    match found.len() {
        1 => {
            let (namespace, clusters) = found.into_iter().next().unwrap_or_default();
            crate::output::eprint_line(&format!(
                "warning: the descriptor of {name} does not load ({error}); rolling back from the records, found in namespace {namespace} (in {}){unanswered}",
                clusters.join(", ")
            ));
            Ok(namespace)
        }
        0 => Err(crate::Error::Reported(format!(
            "{error}\n(the descriptor does not load, and no records of release `{name}` were found in any namespace of environment {}{unanswered}: {give})",
            selected.plan.environment
        ))),
        _ => Err(crate::Error::Reported(format!(
            "{error}\n(the descriptor does not load, and records of release `{name}` are in more than one namespace: {}: {give})",
            found
                .iter()
                .map(|(namespace, clusters)| format!("{namespace} (in {})", clusters.join(", ")))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The namespace `context` of the kubeconfig names, if any.
fn context_namespace(selected: &crate::rollout::Selected, context: &str) -> Option<String> {
    selected
        .kubeconfig
        .config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
}

/// `hello`, `releases/hello` or `releases/hello/release.yaml` → `hello`.
fn release_name(arg: &str) -> String {
    let path = Path::new(arg);
    let path = if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    path.file_name()
        .map_or_else(|| arg.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The objects a restore of `manifest` keeps as they are live (by the rule of
/// [`objects_to_apply`]), and why, for the report.
fn kept_live_of(
    manifest: &[serde_json::Value],
    fresh: &[serde_json::Value],
    unreadable: &[ObjectRef],
    namespace: &str,
) -> Vec<KeptLive> {
    let Ok(objects) = objects_to_apply(manifest, fresh, unreadable, namespace) else {
        return Vec::new();
    };
    manifest
        .iter()
        .zip(objects)
        .filter(|(_, applied)| applied.is_none())
        .filter_map(|(recorded, _)| ObjectRef::of(recorded).ok())
        .map(|mut id| {
            // Recorded objects are namespaced to the release unless they say otherwise.
            id.namespace.get_or_insert_with(|| namespace.to_owned());
            id
        })
        .map(|id| KeptLive {
            why: if unreadable.iter().any(|u| {
                let mut u = u.clone();
                u.namespace.get_or_insert_with(|| namespace.to_owned());
                u == id
            }) {
                "its secrets could not be read from Vault now".into()
            } else {
                "its values are never recorded and it could not be rendered again".into()
            },
            object: id.to_string(),
        })
        .collect()
}

/// Every cluster's target revision rendered again from its record, with its secrets
/// read at their recorded sources now (each path once for all clusters). Records
/// written before they kept their chart fall back to the checkout's chart for their
/// Secrets, when the descriptor loads; otherwise the live Secrets are kept.
async fn refresh(
    env: &LoadedEnvironment,
    release: Option<&LoadedRelease>,
    name: &str,
    namespace: &str,
    targets: &[(Connected, RevisionRef)],
) -> HashMap<String, Refreshed> {
    let recorded: Vec<(&Connected, &crate::release::ReleaseRecord)> = targets
        .iter()
        .filter_map(|(c, to)| Some((c, c.history.get(to.revision)?)))
        .collect();
    let resolved = read_secrets(
        env,
        name,
        recorded
            .iter()
            .filter_map(|(c, r)| Some((c.cluster.context.as_str(), r.source.as_ref()?))),
    )
    .await;
    let mut legacy = None;
    let mut out = HashMap::new();
    for (connected, record) in recorded {
        let context = &connected.cluster.context;
        // The key `secretsum` was rendered with: without it the checksums would differ.
        let key = crate::storage::checksum_key(&connected.handle, namespace, name, false, false)
            .await
            .map_err(|e| tracing::warn!("{e}"))
            .ok()
            .flatten();
        let key = key.as_deref().map(|k| k.as_slice());
        let refreshed = match &record.source {
            Some(source) if source.imported.is_some() => {
                crate::output::eprint_line(&format!(
                    "[{context}] revision {} was imported ({}): its recorded objects are applied, its Secrets kept as they are live",
                    record.revision,
                    source.imported.as_deref().unwrap_or_default()
                ));
                Ok(Refreshed::default())
            }
            Some(source) => rerender(
                record,
                source,
                &connected.cluster,
                &resolved,
                name,
                namespace,
                key,
            ),
            None => {
                if legacy.is_none() {
                    legacy = Some(match release {
                        Some(release) => legacy_fresh_secrets(env, release).await,
                        None => None,
                    });
                }
                let fresh = match legacy.as_ref().and_then(Option::as_ref) {
                    Some((chart, secrets)) => render_secrets(
                        chart,
                        release,
                        env,
                        &connected.cluster,
                        secrets,
                        &record.app_version,
                        key,
                    ),
                    None => Vec::new(),
                };
                Ok(Refreshed {
                    fresh,
                    unreadable: Vec::new(),
                })
            }
        };
        match refreshed {
            Ok(refreshed) => {
                for id in &refreshed.unreadable {
                    crate::output::eprint_line(&format!(
                        "[{context}] {id} keeps its live values: its secrets could not be read"
                    ));
                }
                out.insert(context.clone(), refreshed);
            }
            Err(err) => {
                crate::output::eprint_line(&format!("[{context}] revision {} not rendered again ({err}); its recorded objects are applied and its Secrets kept live", record.revision));
            }
        }
    }
    out
}

/// For records written before they kept their chart: the checkout's chart and every
/// cluster's secrets read now, or `None` when Vault (or the chart) cannot be read.
async fn legacy_fresh_secrets(
    env: &LoadedEnvironment,
    release: &LoadedRelease,
) -> Option<(Chart, ResolvedSecrets)> {
    let chart = Chart::for_release(release)
        .map_err(|e| tracing::warn!("chart not loaded, live secrets are kept: {e}"))
        .ok()?;
    match resolve_for_environment(release, env, &VaultEnv::from_process()).await {
        Ok(resolution) => Some((chart, resolution.secrets)),
        Err(err) => {
            crate::output::eprint_line(&format!(
                "Vault could not be read ({err}); the live secrets are kept"
            ));
            None
        }
    }
}

/// Only the `Secret` objects of the release for one cluster, with fresh values, from
/// the checkout's chart (records without their own chart).
fn render_secrets(
    chart: &Chart,
    release: Option<&LoadedRelease>,
    env: &LoadedEnvironment,
    cluster: &Cluster,
    resolved: &ResolvedSecrets,
    app_version: &str,
    checksum_key: Option<&[u8]>,
) -> Vec<serde_json::Value> {
    let Some(release) = release else {
        return Vec::new();
    };
    let mut release = release.clone();
    release.descriptor.spec.version = app_version.to_owned();
    let secrets = resolved.exposed(&cluster.context);
    let rendered = Renderer::for_release(
        chart,
        &release,
        &env.environment.name,
        &Default::default(),
        0,
    )
    .and_then(|r| r.with_checksum_key(checksum_key).render(cluster, &secrets));
    match rendered {
        Ok(manifest) => manifest
            .objects
            .into_iter()
            .map(|o| o.object)
            .filter(crate::release::is_secret)
            .collect(),
        Err(err) => {
            tracing::warn!(
                "{}: secrets not re-rendered, live ones are kept: {err}",
                cluster.context
            );
            Vec::new()
        }
    }
}

/// The error of a rollback that found no record of `name` in `namespace` in any
/// cluster it reached, naming the namespaces that do hold its records.
async fn no_records(
    name: &str,
    namespace: &str,
    environment: &str,
    connected: &[Connected],
) -> crate::Error {
    let asked = futures::future::join_all(
        connected
            .iter()
            .map(|c| crate::storage::namespaces_with_records(&c.handle, name)),
    )
    .await;
    let elsewhere: std::collections::BTreeSet<String> =
        asked.into_iter().flatten().flatten().collect();
    let hint = if elsewhere.is_empty() {
        String::new()
    } else {
        format!("; {}", super::every_cluster::records_elsewhere(elsewhere))
    };
    crate::Error::Reported(format!(
        "rollback {name} in {environment}: nothing changed: no cluster holds a record of release `{name}` in namespace {namespace} (asked: {}){hint}",
        connected
            .iter()
            .map(|c| c.cluster.context.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// One cluster of `rollback --dry-run`, as the table shows it.
#[derive(tabled::Tabled)]
struct PlanRow {
    #[tabled(rename = "CLUSTER")]
    cluster: String,
    #[tabled(rename = "RUNS NOW")]
    now: String,
    #[tabled(rename = "WOULD GO TO")]
    to: String,
}

/// One cluster of `rollback --dry-run -o json`: the table's row as fields.
#[derive(serde::Serialize)]
struct PlanCluster {
    cluster: String,
    reachable: bool,
    /// What runs there now; `null` when not installed or not reachable.
    now: Option<super::dry_run::RunsNow>,
    /// The revision it would go back to; `null` when not reachable.
    to: Option<GoesTo>,
    /// Why the cluster could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct GoesTo {
    revision: u32,
    deployment_id: String,
    app_version: String,
}

fn print_plan(
    target: &str,
    targets: &[(Connected, RevisionRef)],
    unreachable: &[(Cluster, ClusterError)],
    output: OutputFormat,
) -> Result<()> {
    let mut rows = Vec::new();
    let mut clusters = Vec::new();
    for (c, to) in targets {
        let app_version = c
            .history
            .iter()
            .find(|r| r.revision == to.revision)
            .map(|r| r.app_version.clone())
            .unwrap_or_default();
        rows.push(PlanRow {
            cluster: c.cluster.context.clone(),
            now: super::dry_run::runs_now(&c.history),
            to: format!("{} {} {app_version}", to.revision, to.deployment_id),
        });
        clusters.push(PlanCluster {
            cluster: c.cluster.context.clone(),
            reachable: true,
            now: super::dry_run::RunsNow::of(&c.history),
            to: Some(GoesTo {
                revision: to.revision,
                deployment_id: to.deployment_id.clone(),
                app_version,
            }),
            error: None,
        });
    }
    let mut notes = Vec::new();
    for (cluster, err) in unreachable {
        rows.push(PlanRow {
            cluster: cluster.context.clone(),
            now: "unreachable".into(),
            to: "-".into(),
        });
        clusters.push(PlanCluster {
            cluster: cluster.context.clone(),
            reachable: false,
            now: None,
            to: None,
            error: Some(err.to_string()),
        });
        notes.push(format!("{}: {err}", cluster.context));
    }
    let mut fields = serde_json::Map::new();
    fields.insert("target".into(), target.into());
    super::dry_run::print_plan_with(
        &format!("rollback to deployment {target}"),
        &rows,
        &clusters,
        fields,
        &notes,
        output,
    )
}
