//! The whole command-line surface: every clap definition, logging set-up, and the
//! dispatch that turns parsed flags into the plain option structs of
//! [`crate::action`]. Parsing only: no action sees a clap type, and every decision
//! lives in the actions.
//!
//! Flag conventions, the same in every command: a release is a positional argument
//! (its folder name under releases/, or the path of its release.yaml); `--env` or
//! `--branch` picks the environment; multi-cluster commands take `--clusters a,b`
//! (`--cluster` is an alias), single-cluster ones `--cluster CTX`; read commands take
//! `-o table|json`.

use crate::action;
use crate::output::OutputFormat;
use crate::rollout::prepare::Overrides;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

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
    Deploy(DeployArgs),
    /// Put every cluster back on one deployment: the previous complete one (or `--to
    /// ID`), decided once for the environment; each cluster finds its own revision.
    #[command(long_about = ROLLBACK_ABOUT)]
    Rollback(RollbackArgs),
    /// Deployment ids × clusters: what each cluster recorded for each run.
    History(HistoryArgs),
    /// Deploy to an environment the version deployed in every cluster of another.
    Promote(PromoteArgs),
    /// Live health of the recorded revision and drift from it.
    Status(StatusArgs),
    /// What a deploy would change (server-side dry run), secret values redacted.
    Diff(DiffArgs),
    /// Delete a release's objects and records from a cluster.
    Uninstall(UninstallArgs),
    /// Render a release locally for the clusters of an environment (no cluster, no
    /// Vault): multi-document YAML on stdout, secrets as placeholders.
    Template(TemplateArgs),
    /// Check every environment file and release descriptor, and each release against
    /// each environment; prints what was checked, exits 2 on any problem.
    Lint(LintArgs),
    /// The Vault secrets of a release: check that they resolve, print the policy they need.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

/// Which environment a command works on: by name or by git branch.
#[derive(Debug, Clone, Args)]
pub struct EnvNameArgs {
    /// The environment (environments/<ENV>.yaml).
    #[arg(long, required_unless_present = "branch")]
    pub env: Option<String>,
    /// Pick the environment whose `branch` is this git branch.
    #[arg(long, conflicts_with = "env")]
    pub branch: Option<String>,
}

/// Which environment and clusters a multi-cluster command works on.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub name: EnvNameArgs,
    /// Only these clusters (kube contexts of the environment), comma-separated.
    #[arg(long, alias = "cluster", value_name = "CTX,CTX")]
    pub clusters: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// A release and the environment (and clusters) a command reads it in.
#[derive(Debug, Clone, Args)]
pub struct ReleaseEnvArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    pub release: String,
    #[command(flatten)]
    pub env: EnvArgs,
}

/// Values and version a render may override.
#[derive(Debug, Clone, Args)]
pub struct OverrideArgs {
    /// Override a value: `--set image.pullPolicy=Always` (numbers and booleans typed).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Use this application version instead of the descriptor's.
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(required_unless_present = "all")]
    pub release: Option<String>,
    /// Every release under releases/, releases in parallel.
    #[arg(long, conflicts_with = "release")]
    pub all: bool,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Take fields that another field manager owns instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take over objects that exist without being this release's (made with kubectl,
    /// by Helm or by another release); without it the deploy refuses them, exit 3.
    #[arg(long)]
    pub adopt: bool,
    /// Create the release namespace where it does not exist.
    #[arg(long)]
    pub create_namespace: bool,
    /// How long ErrImagePull or CreateContainerConfigError may last before the cluster
    /// fails (CrashLoopBackOff and ImagePullBackOff fail at once).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub transient_grace: Duration,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Revisions kept per release and cluster.
    #[arg(long, default_value_t = crate::storage::DEFAULT_HISTORY_LIMIT)]
    pub history_max: usize,
    /// How long to wait for a lease another run holds before refusing (exit 3); a lease
    /// not renewed for its duration is taken over before (default: 21s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Stop once wave N succeeded, its gates included; the deployment is then
    /// partial-by-request until `--resume` goes on with it.
    #[arg(long, value_name = "N")]
    pub until_wave: Option<u32>,
    /// Go on with deployment ID, paused by `--until-wave`, from its next wave (the same
    /// deployment id; its clusters, not `--clusters`).
    #[arg(long, value_name = "DEPLOYMENT_ID", conflicts_with_all = ["all", "clusters"])]
    pub resume: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    pub release: String,
    #[command(flatten)]
    pub env: EnvArgs,
    /// The deployment id to go back to (default: the newest complete deployment that is
    /// not what every cluster runs now; see above).
    #[arg(long, value_name = "DEPLOYMENT_ID")]
    pub to: Option<String>,
    /// Print, per cluster, what runs now and what it would go to; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The release namespace: lets a rollback run from the records alone when the
    /// release's descriptor does not load (the bad commit of an incident).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Take fields that another field manager owns instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
    /// How long to wait for a lease another run holds before refusing (exit 3); a lease
    /// not renewed for its duration is taken over before (default: 21s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

const ROLLBACK_ABOUT: &str = "\
Put every cluster of the environment back on one deployment, with one command.

The target is decided once for the whole environment, from every cluster's records:
each deployment id is complete (its run succeeded and every targeted cluster recorded
it healthy), failed, partial (killed or halted part-way) or rolled back (undone by an
automatic restore or by an earlier rollback). Without --to, the target is the newest
complete deployment that is not already what every cluster runs healthy, skipping
rolled-back ones and ones whose content equals what runs now. So: after a failed,
halted or killed deploy, rollback returns to what ran before it; after a clean deploy,
to the one before; a second rollback steps back once more.

Each cluster then finds its own revision of the target. A cluster that never ran it is
named and nothing changes (exit 2), unless --clusters leaves it out. Clusters that
cannot be reached are reported with the exact command that finishes the job.";

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    pub release: String,
    /// The environment whose deployed version is promoted.
    #[arg(long)]
    pub from: String,
    /// The environment to deploy to (its `--clusters` may limit it).
    #[command(flatten)]
    pub to: EnvArgs,
    /// Create the release namespace where it does not exist.
    #[arg(long)]
    pub create_namespace: bool,
    /// Per-cluster wait for health (default: the target environment's rollout.timeout).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct UninstallArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    pub release: String,
    #[command(flatten)]
    pub env: EnvNameArgs,
    /// The cluster (kube context of the environment); needed when it has several.
    #[arg(long)]
    pub cluster: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TemplateArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    pub release: String,
    /// The environment (environments/<ENV>.yaml).
    #[arg(long)]
    pub env: String,
    /// Only this cluster (kube context); prints its objects and nothing else.
    #[arg(long)]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Read the secrets from Vault and show them (needs Vault).
    #[arg(long)]
    pub show_secrets: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Only this release: its folder name under releases/, or the path of its
    /// release.yaml.
    pub release: Option<String>,
    /// Only against this environment.
    #[arg(long, conflicts_with = "branch")]
    pub env: Option<String>,
    /// Only against the environment this git branch deploys to.
    #[arg(long)]
    pub branch: Option<String>,
    /// Warnings are errors (exit 2): a secret that lands outside a Secret, say.
    #[arg(long)]
    pub strict: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Read every secret mapping for every cluster of the environment and report whether
    /// it resolves (path, key; values never shown). Exit 3 when any does not.
    Check {
        #[command(flatten)]
        target: SecretsTarget,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Print the minimal Vault policy (HCL) the release needs in the environment: `read`
    /// on exactly the paths it resolves to. No Vault is contacted.
    Policy {
        #[command(flatten)]
        target: SecretsTarget,
    },
}

#[derive(Debug, Clone, Args)]
pub struct SecretsTarget {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    pub release: String,
    /// The environment (environments/<ENV>.yaml).
    #[arg(long)]
    pub env: String,
}

impl From<EnvArgs> for action::EnvSelection {
    fn from(args: EnvArgs) -> action::EnvSelection {
        action::EnvSelection {
            env: args.name.env,
            branch: args.name.branch,
            clusters: args.clusters,
            kubeconfig: args.kubeconfig,
        }
    }
}

impl From<ReleaseEnvArgs> for action::ReleaseSelection {
    fn from(args: ReleaseEnvArgs) -> action::ReleaseSelection {
        action::ReleaseSelection {
            release: args.release,
            env: args.env.into(),
        }
    }
}

impl From<OverrideArgs> for Overrides {
    fn from(args: OverrideArgs) -> Overrides {
        Overrides {
            sets: args.set,
            version: args.version,
        }
    }
}

impl From<SecretsTarget> for action::secrets::SecretsOptions {
    fn from(args: SecretsTarget) -> action::secrets::SecretsOptions {
        action::secrets::SecretsOptions {
            release: args.release,
            env: args.env,
        }
    }
}

pub fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        // Colour codes only for a person at a terminal, not in CI logs or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Every log line is scrubbed of every secret value read so far, at any verbosity.
        .with_writer(crate::redact::ScrubbingWriter::stderr)
        .with_filter(filter)
        // Libraries that log what passes through them: vaultrs and rustify log every
        // failed request at ERROR and each request at trace; handlebars logs every
        // helper's parameters at DEBUG, secret values included. A filter of its own,
        // after FLOTILLA_LOG's: no directive (`handlebars::render=debug`, a span filter)
        // can turn them back on, as a more specific directive would in one EnvFilter.
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !is_silenced_target(meta.target())
        }));
    tracing_subscriber::registry().with(fmt).init();
}

/// The crates whose logs are never shown, at any level, whatever `FLOTILLA_LOG` says.
pub const SILENCED_CRATES: &[&str] = &["vaultrs", "rustify", "handlebars"];

/// Whether a log target belongs to one of [`SILENCED_CRATES`] (`handlebars`,
/// `handlebars::render`, ...), not to a crate whose name only starts the same way.
pub fn is_silenced_target(target: &str) -> bool {
    SILENCED_CRATES.iter().any(|krate| {
        target == *krate
            || target
                .strip_prefix(krate)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

pub async fn run(cli: Cli) -> crate::Result<()> {
    let root = &cli.root;
    match cli.command {
        Command::Deploy(args) => {
            let opts = action::deploy::DeployOptions {
                release: args.release,
                all: args.all,
                env: args.env.into(),
                overrides: args.overrides.into(),
                force_conflicts: args.force_conflicts,
                adopt: args.adopt,
                create_namespace: args.create_namespace,
                transient_grace: args.transient_grace,
                timeout: args.timeout,
                history_max: args.history_max,
                lock_timeout: args.lock_timeout,
                until_wave: args.until_wave,
                resume: args.resume,
                output: args.output,
            };
            action::deploy::run(root, &opts).await
        }
        Command::Rollback(args) => {
            let opts = action::rollback::RollbackOptions {
                release: args.release,
                env: args.env.into(),
                to: args.to,
                timeout: args.timeout,
                force_conflicts: args.force_conflicts,
                lock_timeout: args.lock_timeout,
                dry_run: args.dry_run,
                namespace: args.namespace,
                output: args.output,
            };
            action::rollback::run(root, &opts).await
        }
        Command::History(args) => {
            action::history::run(root, &args.target.into(), args.output).await
        }
        Command::Promote(args) => {
            let opts = action::promote::PromoteOptions {
                release: args.release,
                from: args.from,
                to: args.to.into(),
                create_namespace: args.create_namespace,
                timeout: args.timeout,
                output: args.output,
            };
            action::promote::run(root, &opts).await
        }
        Command::Status(args) => action::status::run(root, &args.target.into(), args.output).await,
        Command::Diff(args) => {
            let target = args.target.into();
            action::diff::run(root, &target, &args.overrides.into(), args.output).await
        }
        Command::Uninstall(args) => {
            let opts = action::uninstall::UninstallOptions {
                release: args.release,
                env: args.env.env,
                branch: args.env.branch,
                cluster: args.cluster,
                kubeconfig: args.kubeconfig,
            };
            action::uninstall::run(root, &opts).await
        }
        Command::Template(args) => {
            let opts = action::template::TemplateOptions {
                release: args.release,
                env: args.env,
                cluster: args.cluster,
                overrides: args.overrides.into(),
                show_secrets: args.show_secrets,
            };
            action::template::run(root, &opts).await
        }
        Command::Secrets(SecretsCommand::Check { target, output }) => {
            action::secrets::check(root, &target.into(), output).await
        }
        Command::Secrets(SecretsCommand::Policy { target }) => {
            action::secrets::policy(root, &target.into())
        }
        Command::Lint(args) => {
            let scope = action::lint::LintScope {
                release: args.release,
                env: args.env,
                branch: args.branch,
            };
            action::lint::run(root, &scope, args.strict, args.output)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_silenced_target;

    #[test]
    fn secret_bearing_crates_are_silenced_in_every_module() {
        for target in [
            "handlebars",
            "handlebars::render",
            "handlebars::helpers::helper_extras",
            "vaultrs::api",
            "rustify::endpoint",
        ] {
            assert!(is_silenced_target(target), "{target}");
        }
        for target in [
            "flotilla::vault",
            "kube_client",
            "handlebarsx",
            "vaultrsync",
        ] {
            assert!(!is_silenced_target(target), "{target}");
        }
    }
}
