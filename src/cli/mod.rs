//! The whole command-line surface: every clap definition, logging set-up, and the
//! dispatch that turns parsed flags into the plain option structs of
//! [`crate::action`]. Parsing only: no action sees a clap type, and every decision
//! lives in the actions.
//!
//! Flag conventions, the same in every command: a release is a positional argument
//! (its folder name under releases/, or the path of its release.yaml); `--env` or
//! `--branch` picks the environment; multi-cluster commands take `--clusters a,b`
//! (`--cluster` is an alias), single-cluster ones `--cluster CTX`; read commands take
//! `-o table|json`. The common flags have `FLOTILLA_*` environment variables
//! (`FLOTILLA_ROOT`, `FLOTILLA_ENV`, `FLOTILLA_KUBECONFIG`, `FLOTILLA_OUTPUT`); a flag given
//! on the command line wins (docs/cli.md).

//!
//! The definitions are in `args.rs`, the completers of release and environment names
//! in `complete.rs`, what is generated from the definitions (completion scripts, man
//! pages) in `generate.rs`; this file sets logging up and dispatches.

use crate::action;
use crate::engine::ValueSource;
use crate::exit::{ExitScheme, Finished};
use crate::output::OutputFormat;
use crate::rollout::prepare::Overrides;

mod args;
pub mod complete;
pub mod generate;
pub use args::*;

pub fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        // kube's client logs every failed request at ERROR in its own words; flotilla
        // reports each failure itself, naming cluster, verb and object.
        0 => "warn,kube_client::client::builder=off",
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
            !is_silenced_target(meta.target()) && !is_cert_bypassed_line(meta)
        }));
    tracing_subscriber::registry().with(fmt).init();
}

/// kube's `Server cert bypassed`, logged at every TLS handshake with a context that
/// sets `insecure-skip-tls-verify`: one line per connection, dozens a run. flotilla
/// says it once per run itself (`cluster::client`). The event is told from the other
/// warning of the same module (a CA bundle reload, which carries a `path`) by its
/// fields: a message and nothing else.
fn is_cert_bypassed_line(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_event()
        && meta.target().starts_with("kube_client::client::tls")
        && *meta.level() == tracing::Level::WARN
        && meta.fields().iter().all(|f| f.name() == "message")
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

/// `diff --exit-code` asks for the detailed exit codes; read from the raw arguments,
/// because a command line clap refuses needs its code too.
pub fn exit_scheme(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitScheme {
    if args.into_iter().any(|arg| arg == "--exit-code") {
        ExitScheme::Detailed
    } else {
        ExitScheme::Standard
    }
}

/// What a refused command line did not say: that the refused value of `--output`
/// came from `FLOTILLA_OUTPUT` (clap names only the flag), when the line gave none.
pub fn usage_note(err: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::InvalidValue {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let given_on_the_line = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "-o" || a.starts_with("--output") || (a.starts_with("-o") && !a.starts_with("--"))
    });
    let value = std::env::var("FLOTILLA_OUTPUT").ok()?;
    (arg.starts_with("--output") && !given_on_the_line).then(|| {
        format!("note: the value {value:?} comes from the variable FLOTILLA_OUTPUT (table, json or yaml)")
    })
}

/// Whether the command asked for `-o json` or `-o yaml` (what its errors print then,
/// too); `-o yaml` makes every document of the process YAML.
pub fn json_requested(cli: &Cli) -> bool {
    let output = match &cli.command {
        Command::Deploy(a) => a.output,
        Command::Rollback(a) => a.output,
        Command::History(a) => a.output,
        Command::Promote(a) => a.output,
        Command::Status(a) => a.output.document(),
        Command::Diff(a) => a.output,
        Command::Uninstall(a) => a.output,
        Command::AdoptHelm(a) => a.output,
        Command::Get(get) => get.args().output,
        Command::Lint(a) => a.output,
        Command::Secrets(SecretsCommand::Check { output, .. }) => *output,
        _ => OutputFormat::Table,
    };
    if output == OutputFormat::Yaml {
        crate::output::documents_as_yaml();
    }
    output.is_document()
}

pub async fn run(cli: Cli) -> crate::Result<Finished> {
    let root = &cli.root;
    match cli.command {
        Command::Diff(args) => diff(root, args).await,
        command => run_command(root, command).await.map(|()| Finished::Done),
    }
}

async fn diff(root: &std::path::Path, args: DiffArgs) -> crate::Result<Finished> {
    let target = args.target.into();
    let changes = action::diff::run(root, &target, &args.overrides.into(), args.output).await?;
    Ok(match changes {
        action::diff::Changes::Some if args.exit_code => Finished::Changes,
        _ => Finished::Done,
    })
}

/// `deploy hello to prod` (or `--branch prod`), as a run's summary heads an error.
fn run_title(operation: &str, release: &str, target: &action::EnvSelection) -> String {
    match (&target.env, &target.branch) {
        (Some(env), _) => format!("{operation} {release} to {env}"),
        (None, Some(branch)) => format!("{operation} {release} --branch {branch}"),
        (None, None) => format!("{operation} {release}"),
    }
}

/// A run that ended in an error before its report (a freeze, a refused Vault login,
/// bad input) leaves the error where CI shows the summary (`--summary`, `--junit`,
/// `$GITHUB_STEP_SUMMARY`); a run that wrote its report keeps it.
fn unreported(
    result: &crate::Result<()>,
    files: &crate::rollout::summary::ReportFiles,
    title: &str,
) {
    use crate::exit::Classify;
    if let Err(err) = result {
        files.write_unreported(title, &err.to_string(), err.exit_kind().code());
    }
}

async fn run_command(root: &std::path::Path, command: Command) -> crate::Result<()> {
    match command {
        Command::Deploy(args) => {
            args.helm.note();
            let opts = action::deploy::DeployOptions {
                release: args.release,
                all: args.all,
                env: args.env.into(),
                overrides: args.overrides.into(),
                run: crate::rollout::run::RunSettings {
                    timeout: args.timeout,
                    force_conflicts: args.force_conflicts,
                    adopt: args.adopt,
                    create_namespace: args.create_namespace,
                    transient_grace: args.transient_grace,
                    history_max: args.history_max,
                    lock_timeout: args.lock_timeout,
                },
                dry_run: args.dry_run,
                until_wave: args.until_wave,
                resume: args.resume,
                report_files: args.report_files.into(),
                freeze: args.freeze.into(),
                output: args.output,
            };
            let result = action::deploy::run(root, &opts).await;
            if !opts.dry_run {
                let release = opts.release.as_deref().filter(|_| !opts.all);
                let title = run_title("deploy", release.unwrap_or("--all"), &opts.env);
                unreported(&result, &opts.report_files, &title);
            }
            result
        }
        Command::Rollback(args) => {
            args.helm.note();
            let namespace = args.env.namespace.clone();
            let opts = action::rollback::RollbackOptions {
                release: args.release,
                env: args.env.into(),
                to: args.to,
                timeout: args.timeout,
                force_conflicts: args.force_conflicts,
                lock_timeout: args.lock_timeout,
                dry_run: args.dry_run,
                namespace,
                report_files: args.report_files.into(),
                trust_records: args.trust_records,
                output: args.output,
            };
            let result = action::rollback::run(root, &opts).await;
            if !opts.dry_run {
                let title = run_title("rollback", &opts.release, &opts.env);
                unreported(&result, &opts.report_files, &title);
            }
            result
        }
        Command::Get(get) => {
            let part = match &get {
                GetCommand::Values(_) => action::get::Part::Values,
                GetCommand::Manifest(_) => action::get::Part::Manifest,
            };
            let (GetCommand::Values(args) | GetCommand::Manifest(args)) = get;
            let opts = action::get::GetOptions {
                target: args.target.into(),
                revision: args.revision,
                to: args.to,
                output: args.output,
            };
            action::get::run(root, part, &opts).await
        }
        Command::History(args) => {
            action::history::run(
                root,
                &action::history::HistoryOptions {
                    target: args.target.into(),
                    deployment_id: args.deployment_id,
                    wide: args.wide,
                    output: args.output,
                },
            )
            .await
        }
        Command::Promote(args) => {
            args.helm.note();
            let mode = match (args.dry_run, args.check) {
                (true, _) => action::promote::PromoteMode::DryRun,
                (_, true) => action::promote::PromoteMode::Check,
                _ => action::promote::PromoteMode::Deploy,
            };
            let opts = action::promote::PromoteOptions {
                release: args.release,
                from: args.from,
                to: action::EnvSelection {
                    env: args.to,
                    branch: args.branch,
                    clusters: args.clusters,
                    kubeconfig: args.kubeconfig,
                    namespace: None,
                },
                mode,
                checkout: Overrides {
                    values: args.set.into_iter().map(ValueSource::Set).collect(),
                    version: args.version,
                    ..Overrides::default()
                },
                create_namespace: args.create_namespace,
                timeout: args.timeout,
                report_files: args.report_files.into(),
                freeze: args.freeze.into(),
                output: args.output,
            };
            let result = action::promote::run(root, &opts).await;
            if opts.mode == action::promote::PromoteMode::Deploy {
                let title = run_title("promote", &opts.release, &opts.to);
                unreported(&result, &opts.report_files, &title);
            }
            result
        }
        Command::Status(args) => {
            let target = args.target.into();
            match args.watch {
                true => action::status::watch(root, &target, args.output, args.interval).await,
                false => action::status::run(root, &target, args.output).await,
            }
        }
        Command::Dashboard(args) => {
            let opts = action::dashboard::DashboardRequest {
                env: args.env,
                listen: args.listen,
                token_env: args.token_env,
                interval: args.interval,
                kubeconfig: args.kubeconfig,
            };
            action::dashboard::run(root, opts).await
        }
        // `run` answers diff itself, for its outcome; this arm keeps the match whole.
        Command::Diff(args) => diff(root, args).await.map(|_| ()),
        Command::Uninstall(args) => {
            let opts = action::uninstall::UninstallOptions {
                release: args.release,
                env: args.env.into(),
                lock_timeout: args.lock_timeout,
                dry_run: args.dry_run,
                confirmed: args.yes,
                keep_history: args.keep_history,
                output: args.output,
            };
            action::uninstall::run(root, &opts).await
        }
        Command::Template(args) => {
            let opts = action::template::TemplateOptions {
                release: args.release,
                env: args.env,
                namespace: args.namespace,
                cluster: args.cluster,
                overrides: args.overrides.into(),
                show_secrets: args.show_secrets,
            };
            action::template::run(root, &opts).await
        }
        Command::Secrets(SecretsCommand::Check { target, output }) => {
            action::secrets::check(root, &target.into(), output).await
        }
        Command::AdoptHelm(args) => {
            let opts = action::adopt_helm::AdoptHelmOptions {
                release: args.release,
                env: args.env.into(),
                helm_release: args.helm_release,
                remove_helm_secrets: args.remove_helm_secrets,
                dry_run: args.dry_run,
                timeout: args.timeout,
                output: args.output,
            };
            action::adopt_helm::run(root, &opts).await
        }
        Command::Secrets(SecretsCommand::Policy { target }) => {
            action::secrets::policy(root, &target.into())
        }
        Command::Lint(args) => {
            let scope = action::lint::LintScope {
                release: args.release,
                env: args.env,
                branch: args.branch,
                values: args.values.sources(),
            };
            action::lint::run(root, &scope, args.strict, args.output)
        }
        Command::Completions { shell } => generate::completions(shell),
        Command::Schema { file } => {
            let kind = match file {
                SchemaFile::Release => crate::config::SchemaKind::Release,
                SchemaFile::Environment => crate::config::SchemaKind::Environment,
            };
            Ok(crate::output::print_json(&crate::config::schema(kind))?)
        }
        Command::Man { out } => generate::man(out.as_deref()),
        Command::Freeze(args) => {
            let opts = action::freeze::FreezeOptions {
                env: env_selection(args.env, args.kubeconfig),
                reason: args.reason,
                until: args.until,
            };
            action::freeze::freeze(root, &opts).await
        }
        Command::Unfreeze(args) => {
            action::freeze::unfreeze(root, &env_selection(args.env, args.kubeconfig)).await
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
