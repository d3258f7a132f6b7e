//! What the commands that run on every cluster (`deploy`, `rollback`, `promote`,
//! `adopt-helm`) share once the run is over: printing its reports and the exit code
//! they make.

use crate::output::OutputFormat;
use crate::rollout::summary::ReportFiles;
use crate::rollout::Report;
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
        .map(|r| {
            format!(
                "{} {}: {}",
                r.operation,
                r.release,
                r.cause.as_deref().unwrap_or(r.outcome())
            )
        })
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
