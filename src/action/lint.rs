//! `flotilla lint`: every environment file and every release descriptor, and each release
//! against each environment, checked without a cluster or Vault.
//!
//! The configuration level lives here: each file on its own ([`crate::config`] loading),
//! then the checks that need a release and the environments together. Problems go to
//! stderr one per line; the table of what was checked goes to stdout.

use crate::config::{
    check_environments, check_release_contexts, check_release_for_environment, ConfigError, Repo,
};
use crate::output::OutputFormat;
use serde::Serialize;
use std::path::Path;
use tabled::Tabled;

/// One line of the report: a release checked against an environment (or a file that
/// could not be loaded, with `-` in the other column).
#[derive(Debug, Clone, Serialize, Tabled)]
pub struct LintRow {
    #[tabled(rename = "RELEASE")]
    pub release: String,
    #[tabled(rename = "ENVIRONMENT")]
    pub environment: String,
    #[tabled(rename = "CLUSTERS")]
    pub clusters: usize,
    #[tabled(rename = "RESULT")]
    pub result: String,
}

#[derive(Debug, Default, Serialize)]
pub struct LintReport {
    pub checks: Vec<LintRow>,
    /// Every problem found, one message each (file, field, value, line).
    pub problems: Vec<String>,
}

impl LintReport {
    /// Records the outcome of one check; returns whether it passed.
    fn record(&mut self, mut row: LintRow, outcome: Result<(), ConfigError>) -> bool {
        match outcome {
            Ok(()) => {
                row.result = "ok".to_string();
                self.checks.push(row);
                true
            }
            Err(err) => {
                let problems = err.problems();
                row.result = match problems.len() {
                    1 => "1 problem".to_string(),
                    n => format!("{n} problems"),
                };
                self.problems.extend(problems.iter().map(|p| p.to_string()));
                self.checks.push(row);
                false
            }
        }
    }
}

/// What `lint` looks at: everything, or one release and/or one environment (named, or
/// picked by branch as `deploy --branch` would).
#[derive(Debug, Clone, Default)]
pub struct LintScope {
    pub release: Option<String>,
    pub env: Option<String>,
    pub branch: Option<String>,
}

/// Every configuration check of the repo at `root` within `scope`. Every environment
/// file is loaded and checked whatever the scope: releases name contexts of all of them.
pub fn check_config(root: &Path, scope: &LintScope) -> Result<LintReport, ConfigError> {
    let repo = Repo::open(root)?;
    // A scope naming what does not exist is an error of the command line, not a finding.
    let only_env = match (&scope.env, &scope.branch) {
        (Some(name), _) => Some(repo.environment(name)?.environment.name),
        (None, Some(branch)) => Some(repo.environment_for_branch(branch)?.environment.name),
        (None, None) => None,
    };
    let releases = match &scope.release {
        Some(name) => {
            let release = repo.release(name)?;
            vec![(release.descriptor.metadata.name.clone(), Ok(release))]
        }
        None => repo.each_release()?,
    };

    let mut report = LintReport::default();
    let row = |release: &str, environment: &str, clusters: usize| LintRow {
        release: release.to_string(),
        environment: environment.to_string(),
        clusters,
        result: String::new(),
    };
    let mut environments = Vec::new();
    let mut all_environments_loaded = true;
    for (name, loaded) in repo.each_environment()? {
        match loaded {
            Ok(env) => environments.push(env),
            Err(err) => {
                all_environments_loaded = false;
                report.record(row("-", &name, 0), Err(err));
            }
        }
    }
    let together = check_environments(&environments);
    if together.is_err() {
        report.record(row("-", "*", 0), together);
    }
    for (name, loaded) in releases {
        let release = match loaded {
            Ok(release) => release,
            Err(err) => {
                report.record(row(&name, "-", 0), Err(err));
                continue;
            }
        };
        // Which contexts exist is only known when every environment file loaded; a
        // broken one would make correct contexts look unknown.
        if all_environments_loaded {
            let outcome = check_release_contexts(&release, &environments);
            if outcome.is_err() {
                report.record(row(&name, "*", 0), outcome);
            }
        }
        let in_scope = environments
            .iter()
            .filter(|e| only_env.as_ref().is_none_or(|n| *n == e.environment.name));
        for env in in_scope {
            let clusters = env.environment.clusters.len();
            let outcome = check_release_for_environment(&release, env);
            report.record(row(&name, &env.environment.name, clusters), outcome);
        }
    }
    Ok(report)
}

pub fn run(root: &Path, scope: &LintScope, output: OutputFormat) -> crate::Result<()> {
    let report = check_config(root, scope)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match output {
        OutputFormat::Table => {
            use std::io::Write;
            if !report.checks.is_empty() {
                let mut table = tabled::Table::new(&report.checks);
                table.with(tabled::settings::Style::blank());
                // The blank style pads the last column; trailing blanks only get in the way.
                for line in table.to_string().lines() {
                    writeln!(out, "{}", line.trim_end())?;
                }
            }
            for problem in &report.problems {
                eprintln!("error: {problem}");
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::other)?;
            use std::io::Write;
            writeln!(out)?;
        }
    }
    match report.problems.len() {
        0 => Ok(()),
        1 => Err(crate::Error::Reported("lint found 1 problem".to_string())),
        n => Err(crate::Error::Reported(format!("lint found {n} problems"))),
    }
}
