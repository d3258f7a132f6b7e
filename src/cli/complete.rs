//! The completers that offer the repo's release, environment and cluster names, and the
//! deployment ids of a release's records, to dynamic completion (`COMPLETE=bash
//! flotilla`, see docs/cli.md). clap hands a completer only the word being completed;
//! the rest of the line is in the process's arguments (after `--`), read where a
//! completer needs it (the release and environment of `--to`, the environment of
//! `--clusters`).

use clap::Parser;
use clap_complete::CompletionCandidate;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// The environment variable that names the deployment repo for `--root` and for the
/// completers, which see only the word being completed, not the rest of the line.
pub const ROOT_ENV: &str = "FLOTILLA_ROOT";

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

/// The value of `--env` on the line (`--env dev`, `--env=dev`), if given.
fn env_on_the_line(words: &[OsString]) -> Option<String> {
    let words: Vec<String> = words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    words
        .iter()
        .enumerate()
        .find_map(|(i, word)| match word.strip_prefix("--env=") {
            Some(value) => Some(value.to_owned()),
            None => (word == "--env")
                .then(|| words.get(i + 1).cloned())
                .flatten(),
        })
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
    let words = line_words();
    let Some(flag) = words.iter().rposition(|w| {
        let w = w.to_string_lossy();
        w == "--to" || w.starts_with("--to=")
    }) else {
        return Vec::new();
    };
    // The line up to the flag being completed parses on its own.
    let Ok(cli) = super::Cli::try_parse_from(&words[..flag]) else {
        return Vec::new();
    };
    let target: crate::action::ReleaseSelection = match cli.command {
        super::Command::Rollback(args) => crate::action::ReleaseSelection {
            release: args.release,
            env: args.env.into(),
        },
        super::Command::Get(get) => get.args().target.clone().into(),
        _ => return Vec::new(),
    };
    crate::install_tls_provider();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let ids = runtime.block_on(async {
        tokio::time::timeout(RECORDS_WAIT, recorded_ids(&cli.root, &target))
            .await
            .unwrap_or_default()
    });
    let typed = current.to_string_lossy();
    ids.into_iter()
        .filter(|(id, _)| id.starts_with(typed.as_ref()))
        .map(|(id, state)| CompletionCandidate::new(id).help(state.map(Into::into)))
        .collect()
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
