//! What flotilla generates from its own clap definitions: shell completion scripts
//! (clap_complete), man pages (clap_mangen), and the answer to a dynamic completion
//! request (`COMPLETE=bash flotilla`, see docs/cli.md).

use super::args::Cli;
use clap::CommandFactory;
use std::path::Path;

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
