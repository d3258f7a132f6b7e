//! A chart by reference: `spec.chart: oci://HOST/PATH/NAME` with `spec.chartVersion`,
//! or `spec.repository` with a chart's name, and `spec.chartPull`. What is checked here
//! needs no network; the registry's own answer comes when the chart is pulled.

use super::problems::Problems;
use crate::config::yaml::FieldPath;
use crate::config::{ReleaseSpec, OCI_SCHEME};
use std::path::Path;

/// The checks of `spec.chart`, `spec.chartVersion`, `spec.repository` and
/// `spec.chartPull` together.
pub(crate) fn check_chart_source(
    problems: &mut Problems,
    file: &Path,
    spec_path: &FieldPath,
    spec: &ReleaseSpec,
) {
    let chart = spec.chart.trim();
    let at = |key: &str| spec_path.key(key);
    let oci = chart.starts_with(OCI_SCHEME);
    if !oci && spec.repository.is_none() {
        if chart.starts_with("https://") || chart.starts_with("http://") {
            problems.add(
                &at("chart"),
                format!("{chart:?}: a chart repository is named by spec.repository, the chart in it by its name (chart: web, repository: https://charts.example.com); a chart in an OCI registry is oci://HOST/PATH/NAME"),
            );
        }
        let only = "is only for a chart by reference (an oci:// chart, or a chart's name with spec.repository)";
        if let Some(version) = &spec.chart_version {
            problems.add(
                &at("chartVersion"),
                format!("{version:?} {only}; a chart folder's version is its Chart.yaml's"),
            );
        }
        if spec.chart_pull.is_some() {
            problems.add(&at("chartPull"), only);
        }
        return;
    }
    if oci {
        if let Some(repository) = &spec.repository {
            problems.add(
                &at("repository"),
                format!("{repository:?}: an oci:// chart names its registry itself; give one of spec.repository and an oci:// spec.chart"),
            );
        }
        if let Some(problem) = oci_reference_problem(chart) {
            problems.add(&at("chart"), format!("{chart:?}: {problem}"));
        }
    } else if let Some(repository) = &spec.repository {
        if let Some(problem) = repository_problem(repository) {
            problems.add(&at("repository"), format!("{repository:?}: {problem}"));
        }
        if let Some(problem) = chart_name_problem(chart) {
            problems.add(&at("chart"), format!("{chart:?}: {problem}"));
        }
    }
    match &spec.chart_version {
        None => problems.add(
            &at("chartVersion"),
            format!("is required with the chart {chart:?}: the exact version to pull (`helm show chart` or the registry's tags list them), recorded with every revision"),
        ),
        Some(version) => {
            if let Some(problem) = chart_version_problem(version) {
                problems.add(&at("chartVersion"), format!("{version:?}: {problem}"));
            }
        }
    }
    if let Some(pull) = &spec.chart_pull {
        let pull_at = at("chartPull");
        if pull.plain_http && !oci {
            problems.add(
                &pull_at.key("plainHttp"),
                "is only for an oci:// chart; a repository's URL says http:// itself",
            );
        }
        if let Some(ca_file) = &pull.ca_file {
            let base = file.parent().unwrap_or(Path::new(""));
            if !base.join(ca_file).is_file() {
                problems.add(
                    &pull_at.key("caFile"),
                    format!(
                        "{ca_file:?}: there is no file {} (a path relative to the descriptor)",
                        base.join(ca_file).display()
                    ),
                );
            }
        }
    }
}

/// Why `reference` (`oci://HOST/PATH/NAME`) cannot name a chart in a registry, if it
/// cannot: a host, a repository path of OCI's lower-case grammar, no tag or digest.
pub(crate) fn oci_reference_problem(reference: &str) -> Option<String> {
    let rest = reference.strip_prefix(OCI_SCHEME)?;
    let Some((host, path)) = rest.split_once('/') else {
        return Some(
            "expected oci://HOST/PATH/NAME (oci://registry.example.com/charts/web)".into(),
        );
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Some(format!(
            "{host:?} is not a registry host (HOST or HOST:PORT)"
        ));
    }
    let name = path.rsplit('/').next().unwrap_or_default();
    if name.contains('@') || name.contains(':') {
        return Some(
            "give the chart without a tag or digest, and its version in spec.chartVersion".into(),
        );
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    };
    if !path.split('/').all(segment_ok) {
        return Some(format!("{path:?} is not a repository path in a registry: lower-case letters, digits and `.`, `_`, `-` between `/`"));
    }
    None
}

/// Why `url` cannot be a classic chart repository, if it cannot.
fn repository_problem(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            None
        }
        Ok(parsed) if parsed.scheme() == "oci" => Some(
            "an OCI registry is not a chart repository: give the chart as spec.chart: oci://HOST/PATH/NAME".into(),
        ),
        _ => Some("expected the URL of a chart repository (https://charts.example.com), where its index.yaml is".into()),
    }
}

/// Why `name` cannot be a chart's name in a repository's index, if it cannot.
fn chart_name_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (!ok).then(|| "with spec.repository, spec.chart is a chart's name in it (web)".into())
}

/// Why `version` cannot be the exact version of a published chart, if it cannot: a
/// range (`^1.2`, `1.x`, `>=1`) would let the registry choose, and the version is what
/// the chart's digest is recorded under.
pub(crate) fn chart_version_problem(version: &str) -> Option<String> {
    let body = version.strip_prefix('v').unwrap_or(version);
    let core = body.split(['-', '+']).next().unwrap_or_default();
    let exact = !core.is_empty()
        && core.split('.').count() <= 3
        && core
            .split('.')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    (!exact).then(|| {
        "give the exact version of the chart (1.4.2), not a range: what was pulled is recorded under it".into()
    })
}

#[cfg(test)]
mod tests {
    use super::super::problems::testing::*;
    use super::*;

    /// The problems of APP1 with its `chart:` line replaced by `lines`.
    fn with_chart(lines: &str) -> Vec<String> {
        let text = APP1.replace("  chart: ./chart\n", &format!("{lines}\n"));
        assert_ne!(text, APP1, "the descriptor has no `chart: ./chart` line");
        release_problems(&text)
    }

    #[test]
    fn an_oci_chart_with_its_version_is_accepted() {
        assert_eq!(
            with_chart("  chart: oci://registry.example.com:5000/charts/web\n  chartVersion: 1.4.2\n  chartPull: { plainHttp: true }"),
            Vec::<String>::new()
        );
        assert_eq!(
            with_chart("  chart: web\n  repository: https://charts.example.com/stable\n  chartVersion: 0.1.0-rc.1"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_chart_by_reference_needs_an_exact_version() {
        let problems = with_chart("  chart: oci://registry.example.com/charts/web");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("releases/app1/release.yaml: spec.chartVersion: is required with the chart \"oci://registry.example.com/charts/web\""),
            "{problems:?}"
        );
        for range in ["^1.2.0", "1.x", ">=1.0.0", "1.2.3 || 2.0.0", "latest", ""] {
            let problems = with_chart(&format!(
                "  chart: oci://registry.example.com/charts/web\n  chartVersion: {range:?}"
            ));
            assert_eq!(problems.len(), 1, "{range}: {problems:?}");
            assert!(
                problems[0].contains("spec.chartVersion") && problems[0].contains("exact version"),
                "{range}: {problems:?}"
            );
        }
    }

    #[test]
    fn bad_references_name_the_field_and_the_value() {
        let cases = [
            ("  chart: oci://registry.example.com/charts/web:1.0.0\n  chartVersion: 1.0.0", "spec.chart: \"oci://registry.example.com/charts/web:1.0.0\": give the chart without a tag"),
            ("  chart: oci://registry.example.com\n  chartVersion: 1.0.0", "expected oci://HOST/PATH/NAME"),
            ("  chart: oci://registry.example.com/Charts/Web\n  chartVersion: 1.0.0", "is not a repository path"),
            ("  chart: oci:///charts/web\n  chartVersion: 1.0.0", "is not a registry host"),
            ("  chart: https://charts.example.com/web-1.0.0.tgz", "spec.chart: \"https://charts.example.com/web-1.0.0.tgz\": a chart repository is named by spec.repository"),
            ("  chart: web\n  repository: oci://registry.example.com/charts\n  chartVersion: 1.0.0", "spec.repository: \"oci://registry.example.com/charts\": an OCI registry is not a chart repository"),
            ("  chart: web\n  repository: charts.example.com\n  chartVersion: 1.0.0", "spec.repository: \"charts.example.com\": expected the URL"),
            ("  chart: stable/web\n  repository: https://charts.example.com\n  chartVersion: 1.0.0", "spec.chart: \"stable/web\": with spec.repository"),
            ("  chart: oci://r.example.com/charts/web\n  repository: https://charts.example.com\n  chartVersion: 1.0.0", "spec.repository: \"https://charts.example.com\": an oci:// chart names its registry itself"),
            ("  chart: ./chart\n  chartVersion: 1.0.0", "spec.chartVersion: \"1.0.0\" is only for a chart by reference"),
            ("  chart: ./chart\n  chartPull: { plainHttp: true }", "spec.chartPull: is only for a chart by reference"),
            ("  chart: web\n  repository: http://charts.example.com\n  chartVersion: 1.0.0\n  chartPull: { plainHttp: true }", "spec.chartPull.plainHttp: is only for an oci:// chart"),
            ("  chart: oci://r.example.com/charts/web\n  chartVersion: 1.0.0\n  chartPull: { caFile: no-such-ca.pem }", "spec.chartPull.caFile: \"no-such-ca.pem\": there is no file releases/app1/no-such-ca.pem"),
        ];
        for (lines, expected) in cases {
            let problems = with_chart(lines);
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("releases/app1/release.yaml") && p.contains(expected)),
                "{lines}: expected {expected:?} in {problems:?}"
            );
        }
    }

    #[test]
    fn exact_versions() {
        for ok in ["1.4.2", "v1.4.2", "0.1.0-rc.1", "1.0.0+build.5", "2"] {
            assert_eq!(chart_version_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "v", "1..2", "1.2.3.4", "~1.2", "1.2.*", "latest", "1.2.3 ",
        ] {
            assert!(chart_version_problem(bad).is_some(), "{bad}");
        }
    }
}
