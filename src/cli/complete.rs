//! The completers that offer the repo's release, environment and cluster names, and the
//! deployment ids of a release's records, to dynamic completion (`COMPLETE=bash
//! flotilla`, see docs/cli.md). clap hands a completer only the word being completed;
//! the rest of the line is in the process's arguments (after `--`), read where a
//! completer needs it (the release and environment of `--to`, the environment of
//! `--clusters`).

use clap_complete::CompletionCandidate;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// The environment variable that names the deployment repo for `--root` and for the
/// completers, which see only the word being completed, not the rest of the line.
pub const ROOT_ENV: &str = "FLOTILLA_ROOT";

/// The variable naming the environment when the command line names none (the
/// completers read it too). Not a clap `env` of `--env`: clap would count it as given,
/// and `--branch` on the command line would then conflict with a variable set for the
/// whole CI job.
pub const ENV_VAR: &str = "FLOTILLA_ENV";

fn completion_root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Names that start with what has been typed; nothing when the folder is no repo (a
/// completer has no way to report an error, and a wrong folder offers nothing).
fn candidates(current: &OsStr, names: Vec<String>) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    names
        .into_iter()
        .filter(|name| name.starts_with(typed.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// The release folder names of the repo.
pub fn release_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = crate::config::Repo::open(&completion_root())
        .and_then(|repo| repo.release_names())
        .unwrap_or_default();
    candidates(current, names)
}

/// The environment names of the repo.
pub fn environment_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = crate::config::Repo::open(&completion_root())
        .and_then(|repo| repo.environment_names())
        .unwrap_or_default();
    candidates(current, names)
}

/// The words of the command line being completed, the program's name first, as
/// clap_complete's `CompleteEnv` passes them (after `--`); none outside completion.
fn line_words() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.iter().position(|a| a == "--") {
        Some(at) => args[at + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// The value of one of `names` on the line (`--env dev`, `--env=dev`), if given.
fn flag_value(words: &[String], names: &[&str]) -> Option<String> {
    words.iter().enumerate().find_map(|(i, word)| {
        names.iter().find_map(|name| {
            match word
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
            {
                Some(value) => Some(value.to_owned()),
                None => (word == name).then(|| words.get(i + 1).cloned()).flatten(),
            }
        })
    })
}

fn as_text(words: &[OsString]) -> Vec<String> {
    words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect()
}

/// The value of `--env` on the line, if given.
fn env_on_the_line(words: &[OsString]) -> Option<String> {
    flag_value(&as_text(words), &["--env"])
}

/// The kube contexts of the environment `--env` names on the line, else of every
/// environment of the repo, for `--clusters a,b`: the name after the last comma is
/// completed, what comes before it kept. Environment files that do not load offer
/// nothing.
pub fn cluster_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let before = typed.rsplit_once(',').map(|(done, _)| format!("{done},"));
    let only = env_on_the_line(&line_words());
    let mut names: Vec<String> = crate::config::Repo::open(&completion_root())
        .and_then(|repo| repo.each_environment())
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| only.as_ref().is_none_or(|only| only == name))
        .filter_map(|(_, loaded)| loaded.ok())
        .flat_map(|env| env.environment.clusters.into_iter().map(|c| c.context))
        .map(|context| format!("{}{context}", before.as_deref().unwrap_or_default()))
        .collect();
    names.sort();
    names.dedup();
    candidates(current, names)
}

/// How long `--to`'s completer waits for the clusters: a shell's Tab must come back.
const RECORDS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The deployment ids of the release and environment the line names (`rollback hello
/// --env prod --to <Tab>`, `get values ... --to`), newest first, each with its state
/// for the environment: read from every cluster's records, as `history` reads them.
/// Nothing when the line before `--to` does not parse or no cluster answers in time.
pub fn deployment_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let words = as_text(&line_words());
    let Some((root, target)) = release_on_the_line(&words) else {
        return Vec::new();
    };
    crate::install_tls_provider();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let ids = runtime.block_on(async {
        tokio::time::timeout(RECORDS_WAIT, recorded_ids(&root, &target))
            .await
            .unwrap_or_default()
    });
    let typed = current.to_string_lossy();
    ids.into_iter()
        .filter(|(id, _)| id.starts_with(typed.as_ref()))
        .map(|(id, state)| CompletionCandidate::new(id).help(state.map(Into::into)))
        .collect()
}

/// The repo, release and environment selection of `rollback RELEASE ...` or `get
/// values|manifest RELEASE ...` on the line (the release right after the command, as
/// the usage writes it), with the flags and variables the command itself would read.
fn release_on_the_line(words: &[String]) -> Option<(PathBuf, crate::action::ReleaseSelection)> {
    let command = words
        .iter()
        .position(|w| w == "rollback" || w == "values" || w == "manifest")?;
    let release = words.get(command + 1).filter(|w| !w.starts_with('-'))?;
    let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let branch = flag_value(words, &["--branch"]);
    let env = flag_value(words, &["--env"])
        .or_else(|| branch.is_none().then(|| variable(ENV_VAR)).flatten());
    let root = flag_value(words, &["--root"])
        .map(PathBuf::from)
        .unwrap_or_else(completion_root);
    let selection = crate::action::ReleaseSelection {
        release: release.clone(),
        env: crate::action::EnvSelection {
            env,
            branch,
            clusters: flag_value(words, &["--clusters", "--cluster", "--kube-context"]),
            kubeconfig: flag_value(words, &["--kubeconfig"])
                .or_else(|| variable("FLOTILLA_KUBECONFIG"))
                .map(PathBuf::from),
            namespace: flag_value(words, &["--namespace", "-n"]),
        },
    };
    Some((root, selection))
}

/// Every deployment id of the release's records in the clusters that answer, newest
/// first, with its state (`complete`, `failed`, ...).
async fn recorded_ids(
    root: &std::path::Path,
    target: &crate::action::ReleaseSelection,
) -> Vec<(String, Option<String>)> {
    use crate::action::every_cluster;
    let Ok(opened) = every_cluster::open(root, target) else {
        return Vec::new();
    };
    let (namespace, name) = (opened.namespace(), opened.name());
    let answers = every_cluster::query_each(&opened, |_, handle| async move {
        Ok(crate::ops::history(&handle, namespace, name).await?)
    })
    .await;
    let histories: Vec<(String, crate::release::History)> = answers
        .into_iter()
        .filter_map(|(cluster, answer)| answer.ok().map(|h| (cluster.context, h)))
        .collect();
    let env =
        crate::release::EnvironmentHistory::new(histories.iter().map(|(c, h)| (c.as_str(), h)));
    env.deployments()
        .into_iter()
        .map(|id| (id.to_owned(), env.state(id).map(|s| s.to_string())))
        .collect()
}
