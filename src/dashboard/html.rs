//! The fleet view as one self-contained HTML page (inline CSS, no script): what
//! `status -o html` writes and the dashboard serves. Everything read from a cluster is
//! untrusted (records are written by whoever may write Secrets in the namespace), so
//! every value goes through Handlebars' HTML escaping, and the page through the
//! secret scrubber as every other output.

use super::view::FleetView;
use serde::Serialize;

const PAGE: &str = include_str!("page.hbs");

#[derive(Serialize)]
struct Page<'a> {
    #[serde(flatten)]
    view: &'a FleetView,
    /// Seconds between the page's reloads; none for a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<u64>,
}

/// The page of `view`; reloading itself every `refresh` seconds when served.
pub fn page(view: &FleetView, refresh: Option<u64>) -> crate::Result<String> {
    let mut registry = handlebars::Handlebars::new();
    // A bug in the template is ours, not the user's: it fails every test.
    registry
        .register_template_string("page", PAGE)
        .map_err(|err| {
            crate::Error::Output(std::io::Error::other(format!(
                "the dashboard template: {err}"
            )))
        })?;
    let text = registry
        .render("page", &Page { view, refresh })
        .map_err(|err| {
            crate::Error::Output(std::io::Error::other(format!("the dashboard page: {err}")))
        })?;
    Ok(crate::redact::scrub(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::view::{
        Cell, CellState, ClusterRun, DeploymentView, EnvironmentView, ReleaseView,
    };

    fn cell(cluster: &str, state: CellState, reason: Option<&str>) -> Cell {
        Cell {
            cluster: cluster.into(),
            state,
            version: Some("1.2.3".into()),
            deployment_id: Some("20261207-abc".into()),
            put_back_by: None,
            revision: Some(3),
            status: Some("deployed".into()),
            reason: reason.map(str::to_owned),
            drifted: 0,
            failing_pods: Vec::new(),
            diagnosis: Vec::new(),
        }
    }

    fn view(cells: Vec<Cell>) -> FleetView {
        FleetView {
            generated: chrono::Utc::now(),
            environments: vec![EnvironmentView {
                name: "prod".into(),
                clusters: cells.iter().map(|c| c.cluster.clone()).collect(),
                releases: vec![ReleaseView {
                    name: "hello".into(),
                    namespace: "ns".into(),
                    cells,
                    timeline: Vec::new(),
                    rollback_target: None,
                }],
                error: None,
            }],
        }
    }

    #[test]
    fn values_from_clusters_are_escaped() {
        let mut hostile = cell(
            "east",
            CellState::Failing,
            Some("<script>alert(1)</script>"),
        );
        hostile.version = Some("\"><img src=x onerror=alert(2)>".into());
        hostile.diagnosis = vec!["  last log lines:".into(), "    <b>boom</b>".into()];
        let mut view = view(vec![hostile]);
        let now = chrono::Utc::now();
        view.environments[0].releases[0].timeline = vec![DeploymentView {
            id: "20261207-abc".into(),
            state: Some(crate::release::DeploymentState::Failed),
            version: "1.2.3".into(),
            created: now,
            by: "u@h".into(),
            commit: None,
            runs: vec![ClusterRun {
                cluster: "east".into(),
                revision: 3,
                status: "failed".into(),
                restores: None,
                started: now,
                healthy_after: None,
                recorded_after: 12,
                description: "<script>alert(3)</script>".into(),
            }],
            rollback_target: false,
        }];
        let html = page(&view, None).unwrap();
        assert!(html.contains("&lt;script&gt;alert(3)"), "{html}");
        assert!(
            html.contains("<tr class=\"run-failed\"><td>east</td>"),
            "{html}"
        );
        assert!(html.contains("<summary>diagnosis</summary>"), "{html}");
        assert!(
            html.contains("&lt;b&gt;boom&lt;/b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn each_cell_is_coloured_by_its_state() {
        let html = page(
            &view(vec![
                cell("east", CellState::Healthy, None),
                cell(
                    "west",
                    CellState::Failing,
                    Some("pod web-1 container web: CrashLoopBackOff"),
                ),
                cell(
                    "north",
                    CellState::Unreachable,
                    Some("unreachable: connection refused"),
                ),
                cell("south", CellState::Progressing, None),
            ]),
            None,
        )
        .unwrap();
        for (cluster, class) in [
            ("east", "healthy"),
            ("west", "failing"),
            ("north", "unreachable"),
            ("south", "progressing"),
        ] {
            assert!(
                html.contains(&format!(
                    "<tr class=\"cell {class}\" data-cluster=\"{cluster}\">"
                )),
                "{cluster} as {class}: {html}"
            );
        }
        assert!(html.contains("CrashLoopBackOff"));
        assert!(html.contains("20261207-abc"));
    }

    #[test]
    fn only_a_served_page_reloads_itself() {
        let file = page(&view(Vec::new()), None).unwrap();
        assert!(!file.contains("http-equiv=\"refresh\""));
        let served = page(&view(Vec::new()), Some(5)).unwrap();
        assert!(served.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(!served.contains("<script"), "no script in the page");
    }

    #[test]
    fn a_registered_secret_value_never_reaches_the_page() {
        crate::redact::register("dashboard-canary-5f1e");
        let html = page(
            &view(vec![cell(
                "east",
                CellState::Error,
                Some("cannot read: dashboard-canary-5f1e"),
            )]),
            None,
        )
        .unwrap();
        assert!(!html.contains("dashboard-canary-5f1e"));
    }
}
