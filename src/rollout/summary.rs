//! The run's result where CI shows it: a Markdown summary (GitHub's job summary, or a
//! file GitLab and Jenkins publish) and a JUnit XML report (one test case per cluster
//! and per gate, which GitLab and Jenkins display natively). Both are made from the
//! [`Report`]s alone, every text scrubbed of secret values once more.

use super::gates::GateResult;
use super::progress::seconds;
use super::report::{revision_text, ClusterResult, Overall, Report, RunResult};
use crate::cluster::diagnosis_lines;
use crate::redact::scrub;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where a run's summaries go besides stdout.
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    /// `--summary FILE`: the Markdown summary, written anew.
    pub summary: Option<PathBuf>,
    /// `--junit FILE`: the JUnit XML report, written anew.
    pub junit: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`: the Markdown summary, appended (GitHub's rule: a job's
    /// steps share the file).
    pub github_step_summary: Option<PathBuf>,
    /// Whether a run's report was written (shared by the clones the command hands
    /// down): a command that ends in an error without one writes its error instead
    /// ([`ReportFiles::write_unreported`]).
    pub written: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReportFiles {
    /// `--summary` and `--junit` as given, and `$GITHUB_STEP_SUMMARY` when it is set.
    pub fn new(summary: Option<PathBuf>, junit: Option<PathBuf>) -> ReportFiles {
        ReportFiles {
            summary,
            junit,
            github_step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            written: Default::default(),
        }
    }

    /// Writes every summary asked for. A file that cannot be written is a warning: the
    /// run's outcome (and its exit code) is what it is.
    pub fn write(&self, reports: &[Report]) {
        self.write_texts(|| (markdown(reports), junit(reports)));
    }

    /// For a run that ended in an error before it had a report (refused by a freeze, a
    /// Vault login refused, bad input): the error where CI shows it, as the heading
    /// `title` (`deploy hello`) with its exit code and one failed JUnit test case, so
    /// that a refused job's page says why and a published `junit.xml` exists. Nothing
    /// when the run's report was written already.
    pub fn write_unreported(&self, title: &str, message: &str, exit_code: u8) {
        if self.written.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.write_texts(|| {
            (
                unreported_markdown(title, message, exit_code),
                unreported_junit(title, message, exit_code),
            )
        });
    }

    /// Writes the Markdown and JUnit texts `make` returns where they are asked for.
    fn write_texts(&self, make: impl FnOnce() -> (String, String)) {
        if self.summary.is_none() && self.junit.is_none() && self.github_step_summary.is_none() {
            return;
        }
        self.written
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (text, junit_text) = make();
        let warn = |what: &str, path: &PathBuf, err: std::io::Error| {
            crate::output::eprint_line(&format!(
                "warning: the {what} could not be written to {}: {err}",
                path.display()
            ));
        };
        if let Some(path) = &self.summary {
            if let Err(err) = std::fs::write(path, &text) {
                warn("Markdown summary", path, err);
            }
        }
        if let Some(path) = &self.github_step_summary {
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()));
            if let Err(err) = appended {
                warn("GitHub step summary", path, err);
            }
        }
        if let Some(path) = &self.junit {
            if let Err(err) = std::fs::write(path, junit_text) {
                warn("JUnit report", path, err);
            }
        }
    }
}

fn headline(report: &Report) -> &'static str {
    match report.overall {
        Overall::Succeeded => "succeeded",
        Overall::RolledBack => "FAILED, every changed cluster rolled back",
        Overall::RollbackIncomplete => "FAILED, rollback INCOMPLETE",
        Overall::Halted => "FAILED, clusters left as they are (on_failure: halt)",
        Overall::Refused => "REFUSED before any change",
        Overall::Paused => "paused as asked (--until-wave)",
    }
}

/// A Markdown table cell: one line, no column break, no secret value.
fn cell(text: &str) -> String {
    scrub(text)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// `3 (20261207T0954Z-bf79) → 4`: the revisions, with the deployment that ran before.
fn from_to(c: &ClusterResult) -> String {
    let revisions = revision_text(c);
    match &c.before {
        Some(before) => format!("{revisions} (was {})", before.deployment_id),
        None => revisions,
    }
}

/// The Markdown summary of one or more runs (`deploy --all` makes several).
pub fn markdown(reports: &[Report]) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(
            out,
            "### flotilla {} {} to {}: {}\n",
            report.operation,
            cell(&report.release),
            cell(&report.environment),
            headline(report)
        );
        let mut facts = vec![format!("run `{}`", report.deployment_id)];
        if let Some(target) = &report.target {
            facts.push(format!("back to deployment `{target}`"));
        }
        if let Some(version) = &report.version {
            facts.push(format!("version `{}`", cell(version)));
        }
        facts.push(seconds(report.duration));
        let _ = writeln!(out, "{}\n", facts.join(" · "));
        out.push_str("| cluster | wave | revision | result | duration |\n");
        out.push_str("|---|---|---|---|---|\n");
        for c in &report.clusters {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                cell(&c.context),
                c.wave,
                cell(&from_to(c)),
                cell(&c.result.to_string()),
                seconds(c.duration)
            );
        }
        out.push('\n');
        if let Some(cause) = &report.cause {
            let _ = writeln!(out, "**Cause:** {}\n", cell(cause));
        }
        for c in &report.clusters {
            let lines: Vec<String> = c
                .error
                .iter()
                .filter(|_| c.result != RunResult::Deployed)
                .cloned()
                .chain(c.diagnosis.iter().flat_map(|d| diagnosis_lines(d)))
                .chain(
                    c.kept_live
                        .iter()
                        .map(|k| format!("kept live {} ({})", k.object, k.why)),
                )
                .collect();
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "<details><summary>{}: {}</summary>\n\n```text",
                cell(&c.context),
                cell(&c.result.to_string())
            );
            for line in lines {
                let _ = writeln!(out, "{}", fenced(&line));
            }
            out.push_str("```\n\n</details>\n\n");
        }
        if let Some(gate) = &report.failed_gate {
            let _ = writeln!(
                out,
                "**Failed gate:** {} on `{}`: {}\n",
                cell(&gate.gate),
                cell(&gate.cluster),
                cell(&gate.detail)
            );
            if !gate.output.is_empty() {
                out.push_str("```text\n");
                for line in &gate.output {
                    let _ = writeln!(out, "{}", fenced(line));
                }
                out.push_str("```\n\n");
            }
        }
        let next: Vec<String> = report
            .paused_after_wave
            .map(|_| {
                format!(
                    "flotilla deploy {} --env {} --resume {}",
                    report.release, report.environment, report.deployment_id
                )
            })
            .into_iter()
            .chain(report.clusters.iter().filter_map(|c| c.finish_with.clone()))
            .collect();
        if !next.is_empty() {
            out.push_str("**Next:**\n\n```sh\n");
            for command in next {
                let _ = writeln!(out, "{}", fenced(&command));
            }
            out.push_str("```\n\n");
        }
    }
    out
}

/// What an error before any report says, by its exit code (docs/design.md's table).
fn unreported_headline(exit_code: u8) -> String {
    match exit_code {
        2 => "BAD INPUT, nothing changed (exit 2)".to_string(),
        3 => "REFUSED, nothing changed (exit 3)".to_string(),
        code => format!("FAILED (exit {code})"),
    }
}

fn unreported_markdown(title: &str, message: &str, exit_code: u8) -> String {
    let mut out = format!(
        "### flotilla {}: {}\n\n```text\n",
        cell(title),
        unreported_headline(exit_code)
    );
    for line in message.lines() {
        let _ = writeln!(out, "{}", fenced(line));
    }
    out.push_str("```\n\n");
    out
}

fn unreported_junit(title: &str, message: &str, exit_code: u8) -> String {
    let headline = unreported_headline(exit_code);
    let class = format!("flotilla.{}", title.replace(' ', "."));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flotilla\" tests=\"1\" failures=\"1\" errors=\"0\" skipped=\"0\">\n  <testsuite name=\"{}\" tests=\"1\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"0.0\">\n    <testcase classname=\"{}\" name=\"{}\" time=\"0.0\">\n      <failure type=\"exit {exit_code}\" message=\"{}\">{}</failure>\n    </testcase>\n  </testsuite>\n</testsuites>\n",
        xml(&format!("flotilla {title}: {headline}")),
        xml(&class),
        xml(title),
        xml(message.lines().next().unwrap_or_default()),
        xml(message)
    )
}

/// A line inside a fenced block: scrubbed, and unable to close the fence.
fn fenced(line: &str) -> String {
    scrub(line).replace("```", "'''")
}

/// Text as XML character data or an attribute value: escaped, scrubbed, and without
/// the control characters XML 1.0 cannot hold (a log line may carry any byte).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in scrub(text).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// One `<testcase>`: its name, time, and how it failed (`None`: passed) or was skipped.
struct Case {
    name: String,
    seconds: f64,
    outcome: Outcome,
}

enum Outcome {
    Passed,
    Skipped(String),
    Failed {
        kind: String,
        message: String,
        details: Vec<String>,
    },
}

fn cluster_case(c: &ClusterResult, cause: Option<&str>) -> Case {
    let outcome = match c.result {
        RunResult::Deployed | RunResult::LeftDeployed => Outcome::Passed,
        RunResult::NotStarted => Outcome::Skipped("not started: the run stopped before it".into()),
        result => Outcome::Failed {
            kind: result.to_string(),
            message: c
                .error
                .clone()
                .or_else(|| {
                    cause.map(|cause| format!("the run failed elsewhere ({cause}): {result}"))
                })
                .unwrap_or_else(|| result.to_string()),
            details: c
                .diagnosis
                .iter()
                .flat_map(|d| diagnosis_lines(d))
                .chain(c.finish_with.iter().map(|f| format!("to finish: {f}")))
                .collect(),
        },
    };
    Case {
        name: c.context.clone(),
        seconds: c.duration.as_secs_f64(),
        outcome,
    }
}

fn gate_case(context: &str, gate: &GateResult) -> Case {
    let name = match &gate.command {
        Some(command) => format!("{context}: {} `{command}`", gate.gate),
        None => format!("{context}: {}", gate.gate),
    };
    let outcome = if gate.passed {
        Outcome::Passed
    } else if gate.stopped {
        Outcome::Skipped(format!("stopped: {}", gate.detail))
    } else {
        Outcome::Failed {
            kind: gate.gate.clone(),
            message: gate.detail.clone(),
            details: gate.output.clone(),
        }
    };
    Case {
        name,
        seconds: 0.0,
        outcome,
    }
}

/// The JUnit XML report: a test suite per run, a test case per cluster (passed when it
/// runs the release healthy at the end) and per gate of its wave.
pub fn junit(reports: &[Report]) -> String {
    let mut suites = String::new();
    let (mut total, mut failed, mut skipped) = (0, 0, 0);
    for report in reports {
        let cases: Vec<Case> = report
            .clusters
            .iter()
            .flat_map(|c| {
                std::iter::once(cluster_case(c, report.cause.as_deref()))
                    .chain(c.gates.iter().map(|g| gate_case(&c.context, g)))
            })
            .collect();
        let failures = cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed { .. }))
            .count();
        let skips = cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
            .count();
        total += cases.len();
        failed += failures;
        skipped += skips;
        let class = format!(
            "flotilla.{}.{}.{}",
            report.operation, report.release, report.environment
        );
        let _ = writeln!(
            suites,
            r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="{skips}" time="{:.1}">"#,
            xml(&format!(
                "flotilla {} {} to {} ({}): {}",
                report.operation,
                report.release,
                report.environment,
                report.deployment_id,
                headline(report)
            )),
            cases.len(),
            report.duration.as_secs_f64()
        );
        for case in cases {
            let _ = write!(
                suites,
                r#"    <testcase classname="{}" name="{}" time="{:.1}""#,
                xml(&class),
                xml(&case.name),
                case.seconds
            );
            match case.outcome {
                Outcome::Passed => suites.push_str("/>\n"),
                Outcome::Skipped(why) => {
                    let _ = writeln!(
                        suites,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(&why)
                    );
                }
                Outcome::Failed {
                    kind,
                    message,
                    details,
                } => {
                    let _ = writeln!(
                        suites,
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                        xml(&kind),
                        xml(&message),
                        xml(&details.join("\n"))
                    );
                }
            }
        }
        suites.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flotilla\" tests=\"{total}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">\n{suites}</testsuites>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::report::{FailedGate, RevisionRef};
    use std::time::Duration;

    fn cluster(context: &str, wave: u32, result: RunResult) -> ClusterResult {
        ClusterResult {
            before: Some(RevisionRef {
                revision: 3,
                deployment_id: "20261207T090000Z-aaaa".into(),
            }),
            deployed: (result != RunResult::NotStarted).then_some(4),
            restored: (result == RunResult::RolledBack).then_some(5),
            result,
            duration: Duration::from_millis(2300),
            ..ClusterResult::new(context, wave)
        }
    }

    /// A two-wave deploy whose canary wave failed its verify gate in one cluster: the
    /// canaries rolled back, the second wave never started.
    fn failed_two_waves() -> Report {
        let mut eu = cluster("prod-eu", 0, RunResult::RolledBack);
        eu.gates = vec![GateResult {
            gate: "verify".into(),
            command: Some("./smoke.sh <eu>".into()),
            passed: false,
            detail: "exit code 1".into(),
            output: vec!["GET /healthz: 503 & \"down\"".into(), "bell\u{7}".into()],
            stopped: false,
        }];
        eu.error = Some("gate verify failed | see below".into());
        let us = cluster("prod-us", 0, RunResult::RolledBack);
        let paris = cluster("prod-paris", 1, RunResult::NotStarted);
        let info = crate::rollout::report::RunInfo {
            operation: "deploy".into(),
            release: "hello".into(),
            deployment_id: "20261207T100000Z-bbbb".into(),
            target: None,
        };
        Report {
            version: Some("2.4.0".into()),
            overall: Overall::RolledBack,
            cause: Some("cluster `prod-eu`: gate verify failed".into()),
            duration: Duration::from_secs(12),
            clusters: vec![eu, us, paris],
            failed_gate: Some(FailedGate {
                cluster: "prod-eu".into(),
                gate: "verify `./smoke.sh <eu>`".into(),
                detail: "exit code 1".into(),
                output: vec!["GET /healthz: 503".into()],
            }),
            ..Report::new(&info, "prod")
        }
    }

    #[test]
    fn the_markdown_summary_has_a_row_per_cluster_the_cause_and_the_gate() {
        let text = markdown(&[failed_two_waves()]);
        assert!(text.starts_with(
            "### flotilla deploy hello to prod: FAILED, every changed cluster rolled back\n"
        ));
        assert!(text.contains("version `2.4.0`"), "{text}");
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(
            rows,
            [
                "| `prod-eu` | 0 | 3 → 4 → 5 (= 3) (was 20261207T090000Z-aaaa) | rolled back | 2.3s |",
                "| `prod-us` | 0 | 3 → 4 → 5 (= 3) (was 20261207T090000Z-aaaa) | rolled back | 2.3s |",
                "| `prod-paris` | 1 | 3 (was 20261207T090000Z-aaaa) | not started | 2.3s |",
            ]
        );
        assert!(text.contains("**Cause:** cluster `prod-eu`: gate verify failed"));
        assert!(text.contains("<details><summary>prod-eu: rolled back</summary>\n\n```text\ngate verify failed | see below\n```"), "{text}");
        assert!(
            text.contains("**Failed gate:** verify `./smoke.sh <eu>` on `prod-eu`: exit code 1")
        );
    }

    #[test]
    fn the_junit_report_has_a_case_per_cluster_and_gate_escaped() {
        let xml = junit(&[failed_two_waves()]);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flotilla\" tests=\"4\" failures=\"3\" errors=\"0\" skipped=\"1\">"), "{xml}");
        assert!(
            xml.contains(r#"name="prod-eu: verify `./smoke.sh &lt;eu&gt;`""#),
            "{xml}"
        );
        assert!(xml.contains("503 &amp; &quot;down&quot;\nbell?"), "{xml}");
        assert!(xml.contains(r#"<skipped message="not started: the run stopped before it"/>"#));
        assert!(xml.contains(
            r#"message="the run failed elsewhere (cluster `prod-eu`: gate verify failed): rolled back""#
        ));
    }

    #[test]
    fn the_junit_report_parses_as_xml_with_its_counts() {
        let text = junit(&[failed_two_waves()]);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let suites = doc.root_element();
        assert_eq!(suites.tag_name().name(), "testsuites");
        let cases: Vec<_> = suites
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
        assert_eq!(
            names,
            [
                "prod-eu",
                "prod-eu: verify `./smoke.sh <eu>`",
                "prod-us",
                "prod-paris"
            ]
        );
        let failures = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .count();
        assert_eq!(failures, 3);
        assert_eq!(suites.attribute("failures"), Some("3"));
    }

    /// Every summary asked for, in `dir`.
    fn files_in(dir: &std::path::Path) -> ReportFiles {
        ReportFiles {
            summary: Some(dir.join("summary.md")),
            junit: Some(dir.join("junit.xml")),
            github_step_summary: Some(dir.join("step-summary.md")),
            written: Default::default(),
        }
    }

    #[test]
    fn the_github_step_summary_is_appended_to_and_the_files_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let files = files_in(dir.path());
        let report = failed_two_waves();
        files.write(std::slice::from_ref(&report));
        files.write(std::slice::from_ref(&report));
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let once = markdown(std::slice::from_ref(&report));
        assert_eq!(read("summary.md"), once);
        assert_eq!(read("step-summary.md"), once.repeat(2));
        assert_eq!(read("junit.xml"), junit(&[report]));
    }

    #[test]
    fn an_error_before_any_report_is_written_once_and_never_over_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let files = files_in(dir.path());
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let message = "deploy refused, nothing changed: prod is frozen by alice@laptop: \"incident <4711> & co\"";
        files.clone().write_unreported("deploy hello", message, 3);
        let summary = read("summary.md");
        assert_eq!(
            summary,
            format!("### flotilla deploy hello: REFUSED, nothing changed (exit 3)\n\n```text\n{message}\n```\n\n")
        );
        assert_eq!(read("step-summary.md"), summary);
        let xml = read("junit.xml");
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let case = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase"))
            .expect("one test case");
        assert_eq!(case.attribute("name"), Some("deploy hello"));
        let failure = case
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("failed");
        assert_eq!(failure.attribute("message"), Some(message));
        assert_eq!(failure.attribute("type"), Some("exit 3"));
        // A run whose report was written keeps it: the error that follows (its exit 1)
        // does not replace it.
        files.write(&[failed_two_waves()]);
        files.write_unreported("deploy hello", "deploy failed", 1);
        assert_eq!(read("summary.md"), markdown(&[failed_two_waves()]));
        assert_eq!(read("junit.xml"), junit(&[failed_two_waves()]));
    }

    #[test]
    fn a_registered_secret_never_reaches_either_summary() {
        crate::redact::register("s3cr3t-summary-value");
        let mut report = failed_two_waves();
        report.cause = Some("leaked s3cr3t-summary-value".into());
        report.clusters[0].error = Some("error s3cr3t-summary-value".into());
        assert!(!markdown(&[report.clone()]).contains("s3cr3t-summary-value"));
        assert!(!junit(&[report]).contains("s3cr3t-summary-value"));
    }
}
