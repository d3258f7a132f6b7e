//! `flotilla secrets check RELEASE --env E [-o json]`: does every mapping resolve in every
//! cluster (values never shown)? `flotilla secrets policy RELEASE --env E`: the minimal
//! Vault policy the release needs there (and, for a `jwt` login, the role to bind it to).

use crate::config::{LoadedEnvironment, LoadedRelease, Repo};
use crate::output::OutputFormat;
use crate::vault::{
    check_failures, CheckRow, SecretFailure, SecretPlan, SecretReader, VaultEnv, VaultError,
    VaultSession,
};
use crate::Result;
use serde::Serialize;
use std::path::Path;
use tabled::{Table, Tabled};

#[derive(Debug, Clone)]
pub struct SecretsOptions {
    pub release: String,
    pub env: String,
}

fn load(root: &Path, args: &SecretsOptions) -> Result<(LoadedRelease, LoadedEnvironment)> {
    let repo = Repo::open(root)?;
    let env = repo.environment(&args.env)?;
    let release = repo.release(&args.release)?;
    repo.check_release(&release, &env)?;
    Ok((release, env))
}

/// The policy on stdout. No Vault: the paths come from the descriptor and the globals.
pub fn policy(root: &Path, args: &SecretsOptions) -> Result<()> {
    let (release, env) = load(root, args)?;
    let plan = SecretPlan::build(&release, &env)?;
    let mut text = plan.policy();
    // The name docs/secrets.md writes the policy under.
    let policy_name = format!("{}-{}", args.release, args.env);
    if let Some(role) = crate::vault::jwt_role_for_policy(&env.environment, &env.file, &policy_name)
    {
        text.push_str(&role);
    }
    crate::output::print(&text)?;
    Ok(())
}

/// The check report, as printed and as `-o json` gives it.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub release: String,
    pub environment: String,
    /// The Vault address asked; `None` when the release maps no secrets.
    pub vault: Option<String>,
    /// KV reads made: one per distinct (path, version).
    pub reads: usize,
    pub secrets: Vec<CheckLine>,
    /// The lines that do not resolve, grouped (one per secret_id, path, key and problem).
    #[serde(skip)]
    pub failures: Vec<SecretFailure>,
}

#[derive(Debug, Serialize)]
pub struct CheckLine {
    pub secret_id: String,
    pub cluster: String,
    pub path: String,
    pub key: String,
    pub version: Option<u64>,
    pub resolves: bool,
    /// A short label (`missing key`, `permission denied`...) when it does not resolve.
    pub problem: Option<String>,
    pub detail: Option<String>,
}

impl From<CheckRow> for CheckLine {
    fn from(row: CheckRow) -> Self {
        let (problem, detail) = match &row.outcome {
            Ok(()) => (None, None),
            Err(problem) => (Some(problem.label().to_string()), Some(problem.to_string())),
        };
        CheckLine {
            secret_id: row.entry.secret_id,
            cluster: row.entry.context,
            path: row.entry.path,
            key: row.entry.key,
            version: row.entry.version,
            resolves: row.outcome.is_ok(),
            problem,
            detail,
        }
    }
}

/// Reads every mapping of the release for every cluster of the environment, prints the
/// report, and fails (exit 3) when any does not resolve.
pub async fn check(root: &Path, args: &SecretsOptions, output: OutputFormat) -> Result<()> {
    let (release, env) = load(root, args)?;
    let report = check_report(&release, &env, &VaultEnv::from_process()).await?;
    match output {
        OutputFormat::Json | OutputFormat::Yaml => crate::output::print_json(&report)?,
        OutputFormat::Table => crate::output::print(&table(&report))?,
    }
    let failed = report.secrets.iter().filter(|l| !l.resolves).count();
    if failed > 0 {
        return Err(VaultError::CheckFailed {
            failed,
            total: report.secrets.len(),
        }
        .into());
    }
    Ok(())
}

/// The report without printing it. Vault is asked only when the release maps secrets.
pub async fn check_report(
    release: &LoadedRelease,
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<CheckReport> {
    let plan = SecretPlan::build(release, env)?;
    let mut report = CheckReport {
        release: plan.release.clone(),
        environment: plan.environment.clone(),
        vault: None,
        reads: 0,
        secrets: Vec::new(),
        failures: Vec::new(),
    };
    let Some(config) = env
        .environment
        .vault
        .as_ref()
        .filter(|_| !plan.entries.is_empty())
    else {
        return Ok(report);
    };
    let session = VaultSession::connect(config, &env.file, vars).await?;
    let rows = SecretReader::new(&session).check(&plan).await;
    report.vault = Some(session.address().to_string());
    report.reads = session.read_count();
    session.close().await;
    let rows = rows?;
    report.failures = check_failures(&rows);
    report.secrets = rows.into_iter().map(CheckLine::from).collect();
    Ok(report)
}

#[derive(Tabled)]
struct TableRow<'a> {
    #[tabled(rename = "SECRET_ID")]
    secret_id: &'a str,
    #[tabled(rename = "CLUSTER")]
    cluster: &'a str,
    #[tabled(rename = "PATH")]
    path: String,
    #[tabled(rename = "KEY")]
    key: &'a str,
    #[tabled(rename = "RESOLVES")]
    resolves: String,
}

fn table(report: &CheckReport) -> String {
    if report.secrets.is_empty() {
        return format!(
            "release {} maps no secrets: nothing to check in {}\n",
            report.release, report.environment
        );
    }
    let rows = report.secrets.iter().map(|line| TableRow {
        secret_id: &line.secret_id,
        cluster: &line.cluster,
        path: match line.version {
            Some(v) => format!("{} (version {v})", line.path),
            None => line.path.clone(),
        },
        key: &line.key,
        resolves: match &line.problem {
            None => "yes".to_string(),
            Some(problem) => format!("NO: {problem}"),
        },
    });
    let mut text = crate::output::table_text(Table::new(rows));
    let failed = report.secrets.iter().filter(|l| !l.resolves).count();
    text.push_str(&format!(
        "{} of {} mappings resolve in {} ({} reads from {})\n",
        report.secrets.len() - failed,
        report.secrets.len(),
        report.environment,
        report.reads,
        report.vault.as_deref().unwrap_or("Vault"),
    ));
    for failure in &report.failures {
        text.push_str(&format!("  {failure}\n"));
    }
    text
}
