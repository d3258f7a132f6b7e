//! What flotilla generates from its own clap definitions: shell completion scripts
//! (clap_complete) and man pages (clap_mangen), and the completers that offer the
//! repo's release and environment names to dynamic completion (`COMPLETE=bash
//! flotilla`, see docs/cli.md).

use super::Cli;
use clap::CommandFactory;
use clap_complete::CompletionCandidate;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable that names the deployment repo for `--root` and for the
/// completers, which see only the word being completed, not the rest of the line.
pub const ROOT_ENV: &str = "FLOTILLA_ROOT";

/// The static completion script of a shell: commands, flags and fixed values.
pub fn completions(shell: clap_complete::Shell) -> crate::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "flotilla", &mut script);
    crate::output::print(&String::from_utf8_lossy(&script))?;
    Ok(())
}

/// `flotilla(1)` on stdout, or with `out`, one page per command and subcommand
/// (`flotilla.1`, `flotilla-deploy.1`, `flotilla-secrets-check.1`, ...) in that folder.
pub fn man(out: Option<&Path>) -> crate::Result<()> {
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            crate::output::print(&String::from_utf8_lossy(&page))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(Cli::command(), dir)?;
        }
    }
    Ok(())
}

/// Answers a dynamic completion request (`COMPLETE=<shell>` set) and exits; otherwise
/// returns and the command runs.
pub fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var("COMPLETE")
        .complete();
}

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
