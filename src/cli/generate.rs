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
/// Every page ends with an EXIT STATUS section, the table of [`crate::exit`].
pub fn man(out: Option<&Path>) -> crate::Result<()> {
    match out {
        None => {
            let page = page(&clap_mangen::Man::new(Cli::command()))?;
            crate::output::print(&String::from_utf8_lossy(&page))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            // As clap_mangen::generate_to, each page with its EXIT STATUS.
            let mut command = Cli::command().disable_help_subcommand(true);
            command.build();
            write_pages(command, dir)?;
        }
    }
    Ok(())
}

fn write_pages(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir)?;
    }
    let man = clap_mangen::Man::new(command);
    std::fs::write(dir.join(man.get_filename()), page(&man)?)
}

/// A page in roff: clap_mangen's sections, then EXIT STATUS.
fn page(man: &clap_mangen::Man) -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render(&mut page)?;
    page.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    for (code, meaning) in crate::exit::EXIT_STATUS {
        page.extend_from_slice(format!(".TP\n\\fB{code}\\fR\n{meaning}\n").as_bytes());
    }
    Ok(page)
}

/// Answers a dynamic completion request (`COMPLETE=<shell>` set) and exits; otherwise
/// returns and the command runs.
pub fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var("COMPLETE")
        .complete();
}
