//! The command-line surface: clap definitions and the dispatch to [`crate::action`].
//! Parsing only; every decision lives in the actions.

use crate::output::OutputFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "Release to every cluster of an environment at once"
)]
pub struct Cli {
    /// The deployment repo: the folder holding `releases/` and `environments/`.
    #[arg(long, global = true, default_value = ".")]
    pub root: PathBuf,
    /// More logging (repeat for more); logs go to stderr and never hold secret values.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy a release to every cluster of an environment at once (waves, concurrency),
    /// secrets from Vault first; roll every changed cluster back when one fails.
    Deploy(crate::action::deploy::DeployArgs),
    /// Put every cluster back on the previous deployment (or `--to ID`), each cluster
    /// finding its own revision.
    Rollback(crate::action::rollback::RollbackArgs),
    /// Deployment ids × clusters: what each cluster recorded for each run.
    History(crate::action::history::HistoryArgs),
    /// Deploy to an environment the version deployed in every cluster of another.
    Promote(crate::action::promote::PromoteArgs),
    /// Live health of the recorded revision and drift from it.
    Status(crate::action::status::StatusArgs),
    /// What a deploy would change (server-side dry run), secret values redacted.
    Diff(crate::action::diff::DiffArgs),
    /// Delete a release's objects and records from a cluster.
    Uninstall(crate::action::uninstall::UninstallArgs),
    /// Render a release locally for the clusters of an environment (no cluster, no
    /// Vault): multi-document YAML on stdout, secrets as placeholders.
    Template {
        /// The release: its folder name under releases/, or the path of its release.yaml.
        release: String,
        /// The environment (environments/<ENV>.yaml).
        #[arg(long)]
        env: String,
        /// Only this cluster (kube context); prints its objects and nothing else.
        #[arg(long)]
        cluster: Option<String>,
        /// Override a value: `--set image.pullPolicy=Always` (numbers and booleans typed).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Render this application version instead of the descriptor's.
        #[arg(long)]
        version: Option<String>,
        /// Read the secrets from Vault and show them (needs Vault).
        #[arg(long)]
        show_secrets: bool,
    },
    /// Check every environment file and release descriptor, and each release against
    /// each environment; prints what was checked, exits 2 on any problem.
    Lint {
        /// Only this release: its folder name under releases/, or the path of its
        /// release.yaml.
        release: Option<String>,
        /// Only against this environment.
        #[arg(long, conflicts_with = "branch")]
        env: Option<String>,
        /// Only against the environment this git branch deploys to.
        #[arg(long)]
        branch: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// The Vault secrets of a release: check that they resolve, print the policy they need.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Read every secret mapping for every cluster of the environment and report whether
    /// it resolves (path, key; values never shown). Exit 3 when any does not.
    Check {
        /// The release: its folder name under releases/, or the path of its release.yaml.
        release: String,
        /// The environment (environments/<ENV>.yaml).
        #[arg(long)]
        env: String,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Print the minimal Vault policy (HCL) the release needs in the environment: `read`
    /// on exactly the paths it resolves to. No Vault is contacted.
    Policy {
        /// The release: its folder name under releases/, or the path of its release.yaml.
        release: String,
        /// The environment (environments/<ENV>.yaml).
        #[arg(long)]
        env: String,
    },
}

pub fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Libraries that log what passes through them: vaultrs and rustify log every failed
    // request at ERROR (a 404 is an answer, not an error, to us) and more of each request
    // at trace; handlebars logs every helper's parameters at DEBUG, secret values
    // included. flotilla reports what matters itself. Added last, so FLOTILLA_LOG cannot
    // turn them on.
    for directive in ["vaultrs=off", "rustify=off", "handlebars=off"] {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal, not in CI logs or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

pub async fn run(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Deploy(args) => crate::action::deploy::run(&cli.root, &args).await,
        Command::Rollback(args) => crate::action::rollback::run(&cli.root, &args).await,
        Command::History(args) => crate::action::history::run(&cli.root, &args).await,
        Command::Promote(args) => crate::action::promote::run(&cli.root, &args).await,
        Command::Status(args) => crate::action::status::run(&cli.root, &args).await,
        Command::Diff(args) => crate::action::diff::run(&cli.root, &args).await,
        Command::Uninstall(args) => crate::action::uninstall::run(&cli.root, &args).await,
        Command::Template {
            release,
            env,
            cluster,
            set,
            version,
            show_secrets,
        } => {
            crate::action::template::run(
                &cli.root,
                &crate::action::template::TemplateArgs {
                    release,
                    env,
                    cluster,
                    set,
                    version,
                    show_secrets,
                },
            )
            .await
        }
        Command::Secrets(SecretsCommand::Check {
            release,
            env,
            output,
        }) => {
            crate::action::secrets::check(
                &cli.root,
                &crate::action::secrets::SecretsArgs { release, env },
                output,
            )
            .await
        }
        Command::Secrets(SecretsCommand::Policy { release, env }) => {
            crate::action::secrets::policy(
                &cli.root,
                &crate::action::secrets::SecretsArgs { release, env },
            )
        }
        Command::Lint {
            release,
            env,
            branch,
            output,
        } => {
            let scope = crate::action::lint::LintScope {
                release,
                env,
                branch,
            };
            crate::action::lint::run(&cli.root, &scope, output)
        }
    }
}
