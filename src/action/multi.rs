//! What the commands that run on every cluster (`deploy`, `rollback`, `promote`,
//! `adopt-helm`) share once the run is over: printing its reports and the exit code
//! they make.

use crate::output::OutputFormat;
use crate::rollout::summary::ReportFiles;
use crate::rollout::{Overall, Report};
use crate::Result;

/// Prints the reports (table and notes, or one JSON document) on stdout; any run that
/// did not succeed is exit code 1.
pub fn finish(reports: &[Report], output: OutputFormat, files: &ReportFiles) -> Result<()> {
    files.write(reports);
    match output {
        OutputFormat::Json | OutputFormat::Yaml => match reports {
            [one] => crate::output::print_json(one)?,
            many => crate::output::print_json(&many)?,
        },
        OutputFormat::Table => {
            let text: Vec<String> = reports.iter().map(Report::text).collect();
            crate::output::print(&text.join("\n"))?;
        }
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.succeeded())
        .map(|r| format!("{} {}: {}", r.operation, r.release, verdict(r, output)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let message = failed.join("; ");
    if let Some(signal) = reports.iter().find_map(|r| r.signal) {
        return Err(crate::Error::Abandoned { signal, message });
    }
    if reports
        .iter()
        .all(|r| r.succeeded() || r.refused_before_any_change())
    {
        return Err(crate::Error::Refused(format!(
            "{message} (nothing was changed)"
        )));
    }
    Err(crate::Error::Failed(message))
}

/// Why a run failed, for the last line on stderr. A run that changed clusters and
/// failed had its cause (a diagnosis, a verify's command and output) in the text report
/// just printed: the line gives the verdict and where the cause is, instead of saying it
/// again. Anywhere else (JSON on stdout, a refusal, a rollback left incomplete) the
/// line carries the cause: it is the one a reader of stderr has.
fn verdict(report: &Report, output: OutputFormat) -> String {
    let said_above = matches!(output, OutputFormat::Table)
        && matches!(report.overall, Overall::RolledBack | Overall::Halted);
    match &report.cause {
        Some(_) if said_above => match report.failed_cluster() {
            Some(cluster) => format!(
                "{}; the cause ({cluster}) is in the report above",
                report.outcome()
            ),
            None => format!("{}; the cause is in the report above", report.outcome()),
        },
        Some(cause) => cause.clone(),
        None => report.outcome().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::executor::RunInfo;
    use crate::rollout::ClusterResult;

    fn failed(overall: Overall) -> Report {
        let info = RunInfo {
            operation: "deploy".into(),
            release: "hello".into(),
            deployment_id: "d2".into(),
            target: None,
        };
        let cause = "cluster `eu`: Deployment hello/web failed: CrashLoopBackOff";
        let mut eu = ClusterResult::new("eu", 0);
        eu.error = Some(cause.into());
        Report {
            overall,
            cause: Some(cause.into()),
            clusters: vec![eu, ClusterResult::new("us", 0)],
            ..Report::new(&info, "dev")
        }
    }

    #[test]
    fn a_failure_the_text_report_said_is_not_said_again_on_the_last_line() {
        let report = failed(Overall::RolledBack);
        let line = verdict(&report, OutputFormat::Table);
        assert_eq!(
            line,
            "FAILED, every changed cluster rolled back; the cause (eu) is in the report above"
        );
        assert!(!line.contains("CrashLoopBackOff"));
    }

    #[test]
    fn the_last_line_carries_the_cause_where_no_text_report_said_it() {
        for (report, output) in [
            (failed(Overall::RolledBack), OutputFormat::Json),
            (failed(Overall::RollbackIncomplete), OutputFormat::Table),
            (failed(Overall::Refused), OutputFormat::Table),
        ] {
            let line = verdict(&report, output);
            assert!(
                line.contains("CrashLoopBackOff"),
                "{:?}: {line}",
                report.overall
            );
        }
    }
}
