//! The completers that offer the repo's release, environment and cluster names to dynamic
//! completion (`COMPLETE=bash flotilla`, see docs/cli.md): they see only the word being
//! completed, and read the repo that `FLOTILLA_ROOT` names.

use clap_complete::CompletionCandidate;
use std::ffi::OsStr;
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

/// The kube contexts of every environment of the repo, for `--clusters a,b`: the name
/// after the last comma is completed, what comes before it kept. Environment files that
/// do not load offer nothing.
pub fn cluster_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let before = typed.rsplit_once(',').map(|(done, _)| format!("{done},"));
    let mut names: Vec<String> = crate::config::Repo::open(&completion_root())
        .and_then(|repo| repo.each_environment())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, loaded)| loaded.ok())
        .flat_map(|env| env.environment.clusters.into_iter().map(|c| c.context))
        .map(|context| format!("{}{context}", before.as_deref().unwrap_or_default()))
        .collect();
    names.sort();
    names.dedup();
    candidates(current, names)
}
