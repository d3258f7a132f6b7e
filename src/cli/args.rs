//! Every clap definition of the command line (`Cli`, `Command`, the `*Args` structs) and
//! their conversion into the actions' plain option structs.

use super::complete;
use crate::action;
use crate::engine::ValueSource;
use crate::output::{OutputFormat, StatusFormat};
use crate::rollout::prepare::Overrides;
use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCompleter;
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
    #[arg(long, global = true, default_value = ".", env = complete::ROOT_ENV)]
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
    /// One line per deployment: when, version, its state, its clusters' states
    /// (`--wide`: a column per cluster; `history RELEASE ID`: one deployment's clusters).
    History(HistoryArgs),
    /// Deploy to an environment the version deployed in every cluster of another.
    Promote(PromoteArgs),
    /// Live health of the recorded revision and drift from it.
    Status(StatusArgs),
    /// Serve a read-only web page of every release in every cluster of the repository's
    /// environments: the matrix, each environment's deployments and rollback target.
    Dashboard(DashboardArgs),
    /// What a deploy would change (server-side dry run), secret values redacted.
    Diff(DiffArgs),
    /// Delete a release's objects and records from every cluster of an environment (or
    /// those of --clusters), all leases taken before anything is removed.
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
    /// Print the completion script of a shell (commands, flags, values). For release
    /// and environment names as well, source `COMPLETE=<shell> flotilla` instead (see
    /// docs/cli.md).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of release descriptors or environment files, for an
    /// editor's YAML language server (see docs/configuration.md).
    Schema {
        #[arg(value_enum)]
        file: SchemaFile,
    },
    /// Print the man page flotilla(1), or with `--out DIR` write one page per command
    /// (flotilla.1, flotilla-deploy.1, ...) into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Take over a Helm release in every cluster of an environment without restarting a
    /// pod: Helm's deployed revision becomes the release's first revision (docs/helm.md).
    AdoptHelm(AdoptHelmArgs),
    /// Freeze an environment: `deploy` and `promote` refuse there (exit 3) until
    /// `unfreeze` or `--until`; `rollback` is always allowed. Kept in every cluster.
    Freeze(FreezeArgs),
    /// End an environment's freeze, in every cluster.
    Unfreeze(UnfreezeArgs),
    /// What a recorded revision ran, per cluster, as Helm's `get`: its values or its
    /// objects (secrets as digests, never their values).
    #[command(subcommand)]
    Get(GetCommand),
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// The merged values each cluster's revision was rendered with (`Values.secrets`
    /// is never recorded).
    Values(GetArgs),
    /// The objects each cluster's revision applied, every secret as a digest.
    Manifest(GetArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    /// That revision number in each cluster asked (default: the deployed one).
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub revision: Option<u32>,
    /// Each cluster's revision of this deployment id.
    #[arg(long, value_name = "DEPLOYMENT_ID", add = ArgValueCompleter::new(complete::deployment_ids))]
    pub to: Option<String>,
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

impl GetCommand {
    pub fn args(&self) -> &GetArgs {
        match self {
            GetCommand::Values(a) | GetCommand::Manifest(a) => a,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct FreezeArgs {
    #[command(flatten)]
    pub env: EnvNameArgs,
    /// Why: every refused deploy says it, with who froze and when.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub reason: String,
    /// When it ends by itself: an RFC 3339 time (2026-12-24T18:00:00Z) or a duration
    /// from now (2h, 3d); default: at `unfreeze`.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct UnfreezeArgs {
    #[command(flatten)]
    pub env: EnvNameArgs,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// `--override-freeze --reason "…"` of `deploy` and `promote`.
#[derive(Debug, Clone, Args)]
pub struct FreezeOverrideArgs {
    /// Go through a freeze of the environment (and one that cannot be read); the
    /// freeze and --reason go into the run's audit (`history -o json`).
    #[arg(long, requires = "reason")]
    pub override_freeze: bool,
    /// Why the freeze is overridden (with --override-freeze).
    #[arg(long, requires = "override_freeze", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub reason: Option<String>,
}

impl From<FreezeOverrideArgs> for action::freeze::FreezeOverride {
    fn from(args: FreezeOverrideArgs) -> Self {
        action::freeze::FreezeOverride {
            reason: args.reason.filter(|_| args.override_freeze),
        }
    }
}

pub(super) fn env_selection(
    name: EnvNameArgs,
    kubeconfig: Option<PathBuf>,
) -> action::EnvSelection {
    let (env, branch) = name.resolve();
    action::EnvSelection {
        env,
        branch,
        clusters: None,
        kubeconfig,
        namespace: None,
    }
}

/// The file formats `flotilla schema` describes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaFile {
    /// `releases/<name>/release.yaml`.
    Release,
    /// `environments/<env>.yaml`.
    Environment,
}

#[derive(Debug, Clone, Args)]
pub struct AdoptHelmArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    #[command(flatten)]
    pub env: EnvArgs,
    /// The Helm release's name (default: the release's name).
    #[arg(long, value_name = "NAME")]
    pub helm_release: Option<String>,
    /// Delete Helm's revision Secrets once the takeover is recorded (`helm list` then
    /// forgets the release); kept by default.
    #[arg(long)]
    pub remove_helm_secrets: bool,
    /// Print, per cluster, what the takeover changes (ownership labels and annotations
    /// only); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
    /// Output format of the summary (or of the dry run's changes).
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

/// Where a run's result goes for CI, besides stdout (and `$GITHUB_STEP_SUMMARY`,
/// appended to whenever it is set).
#[derive(Debug, Clone, Args)]
pub struct ReportFilesArgs {
    /// Write a Markdown summary of the run to FILE (per cluster: revision from → to,
    /// result, duration; the cause, the failed gate or pods, the next commands).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Write a JUnit XML report of the run to FILE: a test case per cluster and per
    /// gate, as GitLab and Jenkins display them.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

impl From<ReportFilesArgs> for crate::rollout::summary::ReportFiles {
    fn from(args: ReportFilesArgs) -> Self {
        crate::rollout::summary::ReportFiles::new(args.summary, args.junit)
    }
}

/// Helm's `--wait` and `--atomic`, accepted so that ported scripts run: flotilla always
/// does what they ask for, and says so in one line.
#[derive(Debug, Clone, Args)]
pub struct HelmHabitArgs {
    /// Accepted for Helm's scripts: flotilla always waits until every cluster is healthy.
    #[arg(long)]
    pub wait: bool,
    /// Accepted for Helm's scripts: a failure puts every changed cluster back, as the
    /// environment's `rollout.on_failure: rollback` says (its default).
    #[arg(long)]
    pub atomic: bool,
}

impl HelmHabitArgs {
    /// The one-line note for each of them given.
    pub fn note(&self) {
        if self.wait {
            crate::output::eprint_line(
                "note: --wait is how flotilla always works: it waits until every cluster is healthy (rollout.timeout, --timeout)",
            );
        }
        if self.atomic {
            crate::output::eprint_line(
                "note: --atomic is how flotilla always works: a failure puts every changed cluster back (rollout.on_failure: rollback, the default)",
            );
        }
    }
}

/// Which environment a command works on: by name or by git branch.
#[derive(Debug, Clone, Args)]
pub struct EnvNameArgs {
    /// The environment (environments/<ENV>.yaml); without --env and --branch,
    /// $FLOTILLA_ENV.
    #[arg(long, add = ArgValueCompleter::new(complete::environment_names))]
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
    /// Only these clusters (kube contexts of the environment), comma-separated
    /// (`--cluster` and Helm's `--kube-context` say the same).
    #[arg(
        long,
        alias = "cluster",
        alias = "kube-context",
        value_name = "CTX,CTX",
        add = ArgValueCompleter::new(complete::cluster_names)
    )]
    pub clusters: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The release's namespace instead of its descriptor's `metadata.namespace`, as
    /// Helm's `-n` (for `rollback`, also where its records are when the descriptor does
    /// not load).
    #[arg(short = 'n', long, value_name = "NS", value_parser = namespace_arg)]
    pub namespace: Option<String>,
}

/// `-n/--namespace`: a DNS-1123 label, as `metadata.namespace` must be.
fn namespace_arg(text: &str) -> Result<String, String> {
    match crate::config::dns_label_problem(text, 63) {
        Some(problem) => Err(problem),
        None => Ok(text.to_owned()),
    }
}

/// A release and the environment (and clusters) a command reads it in.
#[derive(Debug, Clone, Args)]
pub struct ReleaseEnvArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    #[command(flatten)]
    pub env: EnvArgs,
}

/// Values and version a render may override. Precedence, as in Helm: the `-f` files in
/// order, then `--set-json`, `--set`, `--set-string`; later wins; all of them above the
/// descriptor's and the environment's values.
#[derive(Debug, Clone, Args)]
pub struct ValuesArgs {
    /// A YAML file of values (repeatable; a later file wins).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Set values as Helm does: `--set a.b=1,c[0]=x,d={x,y}` (integers, true, false and
    /// null typed; `1.10` stays a string; `\,` and `\.` escape).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Set values that are always strings: `--set-string image.tag=1.10`.
    #[arg(long = "set-string", value_name = "KEY=VALUE")]
    pub set_string: Vec<String>,
    /// Set values written as JSON: `--set-json 'ports=[80,443]'`.
    #[arg(long = "set-json", value_name = "KEY=JSON")]
    pub set_json: Vec<String>,
}

impl ValuesArgs {
    pub(super) fn sources(self) -> Vec<ValueSource> {
        let files = self.values.into_iter().map(ValueSource::File);
        let json = self.set_json.into_iter().map(ValueSource::SetJson);
        let set = self.set.into_iter().map(ValueSource::Set);
        let string = self.set_string.into_iter().map(ValueSource::SetString);
        files.chain(json).chain(set).chain(string).collect()
    }
}

/// Values and version a render may override.
#[derive(Debug, Clone, Args)]
pub struct OverrideArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
    /// Use this application version instead of the descriptor's.
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(required_unless_present = "all", add = ArgValueCompleter::new(complete::release_names))]
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
    #[arg(long, value_parser = crate::config::parse_duration, default_value = "30s")]
    pub transient_grace: Duration,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
    /// Revisions kept per release and cluster.
    #[arg(long, default_value_t = crate::storage::DEFAULT_HISTORY_LIMIT)]
    pub history_max: usize,
    /// How long to wait for a lease another run holds before refusing (exit 3); a lease
    /// not renewed for its duration is taken over before (default: 21s).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Print the plan (waves, clusters, revision from → to, the Vault paths it would
    /// read, never values); change nothing, contact no Vault.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop once wave N succeeded, its gates included; the deployment is then
    /// partial-by-request until `--resume` goes on with it.
    #[arg(long, value_name = "N")]
    pub until_wave: Option<u32>,
    /// Go on with deployment ID, paused by `--until-wave`, from its next wave (the same
    /// deployment id; its clusters, not `--clusters`).
    #[arg(long, value_name = "DEPLOYMENT_ID", conflicts_with_all = ["all", "clusters"])]
    pub resume: Option<String>,
    #[command(flatten)]
    pub helm: HelmHabitArgs,
    #[command(flatten)]
    pub report_files: ReportFilesArgs,
    #[command(flatten)]
    pub freeze: FreezeOverrideArgs,
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    #[command(flatten)]
    pub env: EnvArgs,
    /// The deployment id to go back to (default: the newest complete deployment that is
    /// not what every cluster runs now; see above).
    #[arg(long, value_name = "DEPLOYMENT_ID", add = ArgValueCompleter::new(complete::deployment_ids))]
    pub to: Option<String>,
    /// Print, per cluster, what runs now and what it would go to; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on when the records' MACs cannot be checked (Vault down: the record key
    /// cannot be read) or a MAC is missing or does not verify, with a warning naming
    /// each record; their digests and Vault paths are still checked.
    #[arg(long)]
    pub trust_records: bool,
    /// Per-cluster wait for health (default: the environment's rollout.timeout).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
    /// Take fields that another field manager owns instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
    /// How long to wait for a lease another run holds before refusing (exit 3); a lease
    /// not renewed for its duration is taken over before (default: 21s).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub lock_timeout: Option<Duration>,
    #[command(flatten)]
    pub helm: HelmHabitArgs,
    #[command(flatten)]
    pub report_files: ReportFilesArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
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
    /// Only this deployment: one line per cluster, every revision it recorded.
    #[arg(value_name = "DEPLOYMENT_ID")]
    pub deployment_id: Option<String>,
    /// A column per cluster with each revision it recorded, who ran each run and from
    /// which commit (default: one line per deployment, its clusters counted by state).
    #[arg(long)]
    pub wide: bool,
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    /// The environment whose running artifact is promoted (default: the target's
    /// `promotion.from`).
    #[arg(long, add = ArgValueCompleter::new(complete::environment_names))]
    pub from: Option<String>,
    /// The environment to deploy to (environments/<ENV>.yaml).
    #[arg(
        long,
        visible_alias = "env",
        required_unless_present = "branch",
        add = ArgValueCompleter::new(complete::environment_names)
    )]
    pub to: Option<String>,
    /// Or the environment whose `branch` is this git branch.
    #[arg(long, conflicts_with = "to")]
    pub branch: Option<String>,
    /// Only these clusters of the target (kube contexts), comma-separated.
    #[arg(
        long,
        alias = "cluster",
        alias = "kube-context",
        value_name = "CTX,CTX",
        add = ArgValueCompleter::new(complete::cluster_names)
    )]
    pub clusters: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Show per target cluster what the promotion would change; change nothing.
    #[arg(long, conflicts_with = "check")]
    pub dry_run: bool,
    /// Compare the checkout's chart, version and spec.values with what --from runs:
    /// exit 0 when the same, 1 when they differ; change nothing.
    #[arg(long)]
    pub check: bool,
    /// With --check: the --set a deploy of the checkout would be given.
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "check")]
    pub set: Vec<String>,
    /// With --check: the application version a deploy of the checkout would be given.
    #[arg(long, requires = "check")]
    pub version: Option<String>,
    /// Create the release namespace where it does not exist.
    #[arg(long)]
    pub create_namespace: bool,
    /// Per-cluster wait for health (default: the target environment's rollout.timeout).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub helm: HelmHabitArgs,
    #[command(flatten)]
    pub report_files: ReportFilesArgs,
    #[command(flatten)]
    pub freeze: FreezeOverrideArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    /// `html`: the dashboard's matrix as one self-contained page (a CI artifact).
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: StatusFormat,
    /// Read again every --interval until Ctrl-C: redrawn in place on a terminal,
    /// appended with a time line in a pipe; exits with the code of the last state.
    #[arg(short, long)]
    pub watch: bool,
    /// How often --watch reads the clusters again.
    #[arg(long, default_value = "5s", value_parser = crate::config::parse_duration, requires = "watch")]
    pub interval: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct DashboardArgs {
    /// Only this environment (default: every environment of the repository).
    #[arg(long, add = ArgValueCompleter::new(complete::environment_names))]
    pub env: Option<String>,
    /// The address to serve on. Beyond loopback, --token-env is required.
    #[arg(long, default_value = "127.0.0.1:8470")]
    pub listen: std::net::SocketAddr,
    /// The variable holding the bearer token every request must carry
    /// (`Authorization: Bearer TOKEN`).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// How often the fleet is read again and every open page shows it (Server-Sent
    /// Events): at most one `status` of every release per interval, whatever the
    /// number of viewers.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "FLOTILLA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: ReleaseEnvArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Exit 0 when nothing would change, 1 when something would (as `git diff
    /// --exit-code`); errors keep their codes (2 bad input, 3 unreachable), for CI.
    #[arg(long)]
    pub exit_code: bool,
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct UninstallArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    /// Every cluster of the environment, or those of --clusters.
    #[command(flatten)]
    pub env: EnvArgs,
    /// How long to wait for a lease another run holds before refusing (exit 3, nothing
    /// removed anywhere).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Print, per cluster, what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation on a terminal (scripts never are asked).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Keep the release's records, the deployed revision marked `uninstalled`, as Helm's
    /// `--keep-history` does: `flotilla rollback` brings the release back.
    #[arg(long)]
    pub keep_history: bool,
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct TemplateArgs {
    /// The release: its folder name under releases/, or the path of its release.yaml.
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    /// The environment (environments/<ENV>.yaml).
    #[arg(long, env = ENV_VAR, add = ArgValueCompleter::new(complete::environment_names))]
    pub env: String,
    /// Only these clusters (kube contexts of the environment), comma-separated; one
    /// cluster's objects print without a `cluster:` header.
    #[arg(
        long = "clusters",
        alias = "cluster",
        alias = "kube-context",
        value_name = "CTX,CTX",
        add = ArgValueCompleter::new(complete::cluster_names)
    )]
    pub cluster: Option<String>,
    /// The release's namespace instead of its descriptor's, as Helm's `-n`.
    #[arg(short = 'n', long, value_name = "NS", value_parser = namespace_arg)]
    pub namespace: Option<String>,
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
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: Option<String>,
    /// Only against this environment.
    #[arg(long, conflicts_with = "branch", add = ArgValueCompleter::new(complete::environment_names))]
    pub env: Option<String>,
    /// Only against the environment this git branch deploys to.
    #[arg(long)]
    pub branch: Option<String>,
    /// Warnings are errors (exit 2): a secret that lands outside a Secret, say.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub values: ValuesArgs,
    /// Output format.
    #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Read every secret mapping for every cluster of the environment and report whether
    /// it resolves (path, key; values never shown). Exit 3 when any does not.
    Check {
        #[command(flatten)]
        target: SecretsTarget,
        #[arg(short, long, value_enum, env = "FLOTILLA_OUTPUT", default_value_t = OutputFormat::Table)]
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
    #[arg(add = ArgValueCompleter::new(complete::release_names))]
    pub release: String,
    /// The environment (environments/<ENV>.yaml).
    #[arg(long, env = ENV_VAR, add = ArgValueCompleter::new(complete::environment_names))]
    pub env: String,
}

pub use super::complete::ENV_VAR;

impl EnvNameArgs {
    /// (environment, branch): the command line's, else `$FLOTILLA_ENV`.
    fn resolve(self) -> (Option<String>, Option<String>) {
        match (self.env, self.branch) {
            (None, None) => (std::env::var(ENV_VAR).ok().filter(|e| !e.is_empty()), None),
            given => given,
        }
    }
}

impl From<EnvArgs> for action::EnvSelection {
    fn from(args: EnvArgs) -> action::EnvSelection {
        let (env, branch) = args.name.resolve();
        action::EnvSelection {
            env,
            branch,
            clusters: args.clusters,
            kubeconfig: args.kubeconfig,
            namespace: args.namespace,
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
            values: args.values.sources(),
            version: args.version,
            ..Overrides::default()
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
