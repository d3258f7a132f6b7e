//! `flotilla lint`: every environment file and every release descriptor, and each release
//! against each environment, checked without a cluster or Vault.
//!
//! The configuration level lives here: each file on its own ([`crate::config`] loading),
//! then the checks that need a release and the environments together. Problems go to
//! stderr one per line; the table of what was checked goes to stdout.
//!
//! The chart level: each release that passes its configuration checks is rendered for
//! every cluster of the environment (secrets as placeholders), and every object is
//! checked by [`crate::engine::check`] (known kinds against their Kubernetes schema).

use crate::config::{
    check_environments, check_release_contexts, check_release_for_environment, ConfigError, Repo,
};
use crate::config::{LoadedEnvironment, LoadedRelease};
use crate::engine::check::{check_manifest, secret_placements};
use crate::engine::{placeholder_secrets, Chart, CommandLineValues, Renderer, ValueSource};
use crate::output::OutputFormat;
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// How many clusters (`clusters` in JSON is always a list or map of clusters).
    #[tabled(rename = "CLUSTERS")]
    #[serde(rename = "cluster_count")]
    pub clusters: usize,
    /// Objects rendered, over all the clusters.
    #[tabled(rename = "OBJECTS")]
    pub objects: usize,
    #[tabled(rename = "RESULT")]
    pub result: String,
    /// Warnings its rendering found (problems under `--strict`).
    #[tabled(skip)]
    #[serde(skip)]
    pub warnings: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct LintReport {
    pub checks: Vec<LintRow>,
    /// Every problem found (file, field, value, line; or template and object).
    pub problems: Vec<LintProblem>,
    /// What is allowed but unsafe: a secret that lands outside a Secret. Problems under
    /// `lint --strict`.
    pub warnings: Vec<LintProblem>,
}

/// One problem or warning, as fields for CI (`-o json`); `message` is the line stderr
/// says. A field that does not apply is `null`.
#[derive(Debug, Clone, Serialize)]
pub struct LintProblem {
    /// `error` (lint exits 2), or `warning` (only under `--strict` an error).
    pub severity: Severity,
    pub message: String,
    /// The file at fault: an environment file, a descriptor, or a chart's template.
    pub file: Option<String>,
    pub line: Option<usize>,
    /// The field's path in the file (`spec.scaling[0].replicas[0].count`).
    pub field: Option<String>,
    /// The value the file holds at `field`, as written.
    pub value: Option<serde_json::Value>,
    /// A rendered object (`Deployment/hello-web`).
    pub object: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    /// The clusters a rendering problem was found for.
    pub clusters: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl LintProblem {
    fn new(severity: Severity, message: String) -> LintProblem {
        LintProblem {
            severity,
            message,
            file: None,
            line: None,
            field: None,
            value: None,
            object: None,
            release: None,
            environment: None,
            clusters: Vec::new(),
        }
    }

    fn of_config(err: &ConfigError) -> LintProblem {
        let mut problem = LintProblem::new(Severity::Error, err.to_string());
        match err {
            ConfigError::Parse {
                file, line, field, ..
            }
            | ConfigError::Invalid {
                file, line, field, ..
            } => {
                problem.file = Some(file.display().to_string());
                problem.line = *line;
                if !field.is_empty() {
                    problem.value = value_at(file, field);
                    problem.field = Some(field.clone());
                }
            }
            ConfigError::Read { file, .. } => problem.file = Some(file.display().to_string()),
            _ => {}
        }
        problem
    }

    fn of_object(severity: Severity, found: &crate::engine::check::Problem) -> LintProblem {
        LintProblem {
            file: Some(found.source.clone()),
            object: Some(found.object.clone()),
            ..LintProblem::new(severity, found.to_string())
        }
    }
}

/// The value at `field` (`spec.scaling[0].replicas[0].count`) of a YAML file; `None`
/// when the file does not parse or has nothing there.
fn value_at(file: &Path, field: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut value: serde_json::Value = serde_yaml_ng::from_str(&text).ok()?;
    for segment in field.split('.') {
        let (key, indexes) = segment.split_once('[').unwrap_or((segment, ""));
        if !key.is_empty() {
            value = value.get_mut(key)?.take();
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            value = value.get_mut(index)?.take();
        }
    }
    Some(value)
}

impl LintReport {
    /// Records the outcome of one check; returns whether it passed.
    fn record(&mut self, row: LintRow, outcome: Result<(), ConfigError>) -> bool {
        let problems = match outcome {
            Ok(()) => Vec::new(),
            Err(err) => err
                .problems()
                .into_iter()
                .map(LintProblem::of_config)
                .collect(),
        };
        self.record_problems(row, problems)
    }

    /// Records a check that found these problems (none: it passed), each naming the
    /// row's release and environment.
    fn record_problems(&mut self, mut row: LintRow, mut problems: Vec<LintProblem>) -> bool {
        for problem in &mut problems {
            problem.release = named(&row.release);
            problem.environment = named(&row.environment);
        }
        row.result = match problems.len() {
            0 => "ok".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        };
        let passed = problems.is_empty();
        self.problems.extend(problems);
        self.checks.push(row);
        passed
    }
}

/// A row's release or environment, unless it stands for none (`-`) or all (`*`).
fn named(cell: &str) -> Option<String> {
    (cell != "-" && cell != "*").then(|| cell.to_owned())
}

/// What rendering one release for every cluster of an environment found.
struct RenderFindings {
    objects: usize,
    problems: Vec<LintProblem>,
    warnings: Vec<LintProblem>,
}

/// Renders `release` for every cluster of `env` and checks every object. Returns the
/// number of objects rendered, the problems and the warnings (secrets outside Secrets);
/// a message found in several clusters is reported once, naming them.
fn check_rendering(
    chart: &Chart,
    release: &LoadedRelease,
    env: &LoadedEnvironment,
    values: &CommandLineValues,
) -> RenderFindings {
    let renderer = match Renderer::for_release(chart, release, &env.environment.name, values, 1) {
        Ok(renderer) => renderer,
        Err(err) => {
            return RenderFindings {
                objects: 0,
                problems: vec![LintProblem::new(Severity::Error, err.to_string())],
                warnings: Vec::new(),
            }
        }
    };
    let mut objects = 0;
    // Message → the problem and the clusters it was found in, in first-seen order.
    let mut found: BTreeMap<String, (usize, LintProblem, Vec<&str>)> = BTreeMap::new();
    let mut warned: BTreeMap<String, (usize, LintProblem, Vec<&str>)> = BTreeMap::new();
    for cluster in &env.environment.clusters {
        let secrets = placeholder_secrets(&release.descriptor.spec, &cluster.context);
        let (messages, warnings) = match renderer.render(cluster, &secrets) {
            Ok(manifest) => {
                objects += manifest.objects.len();
                (
                    check_manifest(&manifest)
                        .iter()
                        .map(|p| LintProblem::of_object(Severity::Error, p))
                        .collect(),
                    secret_placements(&manifest)
                        .iter()
                        .map(|p| LintProblem::of_object(Severity::Warning, p))
                        .collect(),
                )
            }
            Err(err) => (
                vec![LintProblem::new(Severity::Error, err.to_string())],
                Vec::new(),
            ),
        };
        for (messages, into) in [(messages, &mut found), (warnings, &mut warned)] {
            for problem in messages {
                let order = into.len();
                into.entry(problem.message.clone())
                    .or_insert((order, problem, Vec::new()))
                    .2
                    .push(&cluster.context);
            }
        }
    }
    RenderFindings {
        objects,
        problems: with_clusters(found),
        warnings: with_clusters(warned),
    }
}

/// Each problem once, with the clusters it was found for, in first-seen order.
fn with_clusters(found: BTreeMap<String, (usize, LintProblem, Vec<&str>)>) -> Vec<LintProblem> {
    let mut problems: Vec<(usize, LintProblem)> = found
        .into_iter()
        .map(|(message, (order, mut problem, clusters))| {
            let label = if clusters.len() == 1 {
                "cluster"
            } else {
                "clusters"
            };
            problem.message = format!("{message} [{label} {}]", clusters.join(", "));
            problem.clusters = clusters.into_iter().map(str::to_owned).collect();
            (order, problem)
        })
        .collect();
    problems.sort_by_key(|(order, _)| *order);
    problems.into_iter().map(|(_, p)| p).collect()
}

/// What `lint` looks at: everything, or one release and/or one environment (named, or
/// picked by branch as `deploy --branch` would).
#[derive(Debug, Clone, Default)]
pub struct LintScope {
    pub release: Option<String>,
    pub env: Option<String>,
    pub branch: Option<String>,
    /// `-f` and `--set` values every release is rendered with, as a deploy would.
    pub values: Vec<ValueSource>,
}

/// Every configuration check of the repo at `root` within `scope`. Every environment
/// file is loaded and checked whatever the scope: releases name contexts of all of them.
pub fn check_config(
    root: &Path,
    scope: &LintScope,
    values: &CommandLineValues,
) -> Result<LintReport, ConfigError> {
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
        objects: 0,
        result: String::new(),
        warnings: 0,
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
        let chart = match Chart::for_release(&release) {
            Ok(chart) => Some(chart),
            Err(err) => {
                report.record_problems(
                    row(&name, "*", 0),
                    vec![LintProblem::new(Severity::Error, err.to_string())],
                );
                None
            }
        };
        let in_scope = environments
            .iter()
            .filter(|e| only_env.as_ref().is_none_or(|n| *n == e.environment.name));
        for env in in_scope {
            let clusters = env.environment.clusters.len();
            let outcome = check_release_for_environment(&release, env);
            let mut checked = row(&name, &env.environment.name, clusters);
            match (outcome, &chart) {
                (Ok(()), Some(chart)) => {
                    let found = check_rendering(chart, &release, env, values);
                    checked.objects = found.objects;
                    checked.warnings = found.warnings.len();
                    report
                        .warnings
                        .extend(found.warnings.into_iter().map(|mut w| {
                            w.release = Some(name.clone());
                            w.environment = Some(env.environment.name.clone());
                            w
                        }));
                    report.record_problems(checked, found.problems);
                }
                // Nothing to render: the chart's own row says why; this one is not `ok`.
                (Ok(()), None) => {
                    checked.result = "not rendered: the chart does not load".into();
                    report.checks.push(checked);
                }
                (outcome, _) => {
                    report.record(checked, outcome);
                }
            }
        }
    }
    Ok(report)
}

/// `strict`: warnings count as problems (`lint --strict`).
pub fn run(
    root: &Path,
    scope: &LintScope,
    strict: bool,
    output: OutputFormat,
) -> crate::Result<()> {
    let values = CommandLineValues::parse(&scope.values)?;
    let mut report = check_config(root, scope, &values)?;
    for row in &mut report.checks {
        let plural = if row.warnings == 1 { "" } else { "s" };
        match (row.warnings, row.result.as_str(), strict) {
            (0, _, _) => {}
            (n, "ok", true) => row.result = format!("{n} warning{plural} (--strict: problems)"),
            (n, "ok", false) => row.result = format!("ok, {n} warning{plural}"),
            (n, _, _) => row.result.push_str(&format!(", {n} warning{plural}")),
        }
    }
    if strict {
        let warnings = std::mem::take(&mut report.warnings);
        report
            .problems
            .extend(warnings.into_iter().map(|w| LintProblem {
                severity: Severity::Error,
                ..w
            }));
    }
    match output {
        OutputFormat::Table => {
            if !report.checks.is_empty() {
                crate::output::print(&crate::output::table_text(tabled::Table::new(
                    &report.checks,
                )))?;
            }
            for warning in &report.warnings {
                crate::output::eprint_line(&format!("warning: {}", warning.message));
            }
            for problem in &report.problems {
                crate::output::eprint_line(&format!("error: {}", problem.message));
            }
        }
        OutputFormat::Json | OutputFormat::Yaml => crate::output::print_json(&report)?,
    }
    match report.problems.len() {
        0 => Ok(()),
        1 => Err(crate::Error::Reported("lint found 1 problem".to_string())),
        n => Err(crate::Error::Reported(format!("lint found {n} problems"))),
    }
}
