//! The fleet view as HTML: the fleet page (also what `status -o html` writes, one
//! self-contained file with inline CSS and no script), a deployment's run picture and
//! a release's page in one cluster. Everything read from a cluster is untrusted
//! (records are written by whoever may write Secrets in the namespace), so every value
//! goes through Handlebars' HTML escaping, and every page and fragment through the
//! secret scrubber as every other output. A served page is its layout around a body;
//! the live script replaces that body with each reading's (`serve.rs` streams them).

use super::view::{Cell, ClusterRun, DeploymentView, EnvironmentView, FleetView, ReleaseView};
use chrono::{DateTime, Utc};
use serde::Serialize;

const LAYOUT: &str = include_str!("layout.hbs");
const FLEET: &str = include_str!("fleet.hbs");
const RUN: &str = include_str!("run.hbs");
const CELL: &str = include_str!("cell.hbs");

/// Which page of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    Fleet,
    /// A deployment id's run picture.
    Run(String),
    /// One release in one cluster: (environment, release, kube context).
    Cell(String, String, String),
}

impl Which {
    /// The address of its event stream.
    pub fn events(&self) -> String {
        match self {
            Which::Fleet => "/events".to_owned(),
            Which::Run(id) => format!("/events{}", super::view::run_page(id)),
            Which::Cell(env, release, cluster) => {
                format!("/events{}", super::view::cell_page(env, release, cluster))
            }
        }
    }
}

#[derive(Serialize)]
struct Fleet<'a> {
    #[serde(flatten)]
    view: &'a FleetView,
    live: bool,
    refresh: u64,
}

#[derive(Serialize)]
struct Layout<'a> {
    title: &'a str,
    body: &'a str,
    live: bool,
    refresh: u64,
    events: String,
}

/// A deployment's run: each cluster's revisions of it with their phases placed on one
/// time axis, from the first start to the last end.
#[derive(Serialize)]
struct Picture<'a> {
    generated: DateTime<Utc>,
    environment: &'a str,
    release: &'a str,
    deployment: &'a DeploymentView,
    from: DateTime<Utc>,
    seconds: f64,
    rows: Vec<PictureRow<'a>>,
}

#[derive(Serialize)]
struct PictureRow<'a> {
    #[serde(flatten)]
    run: &'a ClusterRun,
    bars: Vec<Bar>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Bar {
    phase: &'static str,
    /// Where it starts and how long it lasts, in percent of the axis.
    left: f64,
    width: f64,
    seconds: f64,
}

#[derive(Serialize)]
struct CellPage<'a> {
    generated: DateTime<Utc>,
    environment: &'a str,
    release: &'a str,
    cluster: &'a Cell,
    /// The release's revisions in this cluster, newest deployment first.
    runs: Vec<CellRun<'a>>,
}

#[derive(Serialize)]
struct CellRun<'a> {
    id: &'a str,
    page: &'a str,
    run: &'a ClusterRun,
}

fn registry() -> crate::Result<handlebars::Handlebars<'static>> {
    let mut registry = handlebars::Handlebars::new();
    registry.set_strict_mode(false);
    // A bug in a template is ours, not the user's: it fails every test.
    for (name, text) in [
        ("layout", LAYOUT),
        ("fleet", FLEET),
        ("run", RUN),
        ("cell", CELL),
    ] {
        registry
            .register_template_string(name, text)
            .map_err(|err| {
                crate::Error::Output(std::io::Error::other(format!(
                    "the dashboard template {name}: {err}"
                )))
            })?;
    }
    Ok(registry)
}

fn render<T: Serialize>(template: &str, data: &T) -> crate::Result<String> {
    let text = registry()?.render(template, data).map_err(|err| {
        crate::Error::Output(std::io::Error::other(format!("the dashboard page: {err}")))
    })?;
    Ok(crate::redact::scrub(&text))
}

/// The fleet page of `view` as one file (`status -o html`): no script, no links.
pub fn page(view: &FleetView) -> crate::Result<String> {
    let body = render(
        "fleet",
        &Fleet {
            view,
            live: false,
            refresh: 0,
        },
    )?;
    wrap("the fleet", &body, None, &Which::Fleet)
}

/// `body` in the page's layout; served (`refresh`: the seconds between readings) it
/// loads the live script, which follows `which`'s event stream.
pub fn wrap(title: &str, body: &str, refresh: Option<u64>, which: &Which) -> crate::Result<String> {
    render(
        "layout",
        &Layout {
            title,
            body,
            live: refresh.is_some(),
            refresh: refresh.unwrap_or(0),
            events: which.events(),
        },
    )
}

/// The title and body of a served page of `view`, `None` when `which` names nothing in
/// it (an id or cluster not there).
pub fn body(
    view: &FleetView,
    which: &Which,
    refresh: u64,
) -> Option<crate::Result<(String, String)>> {
    match which {
        Which::Fleet => Some(
            render(
                "fleet",
                &Fleet {
                    view,
                    live: true,
                    refresh,
                },
            )
            .map(|body| ("the fleet".to_owned(), body)),
        ),
        Which::Run(id) => {
            let (environment, release, deployment) = find_deployment(view, id)?;
            let picture = picture(view.generated, environment, release, deployment);
            Some(render("run", &picture).map(|body| (format!("deployment {id}"), body)))
        }
        Which::Cell(env, release, cluster) => {
            let (environment, found) = find_release(view, env, release)?;
            let cell = found.cells.iter().find(|c| &c.cluster == cluster)?;
            let runs = found
                .timeline
                .iter()
                .flat_map(|d| {
                    d.runs
                        .iter()
                        .filter(|r| &r.cluster == cluster)
                        .map(move |run| CellRun {
                            id: &d.id,
                            page: &d.page,
                            run,
                        })
                })
                .collect();
            let page = CellPage {
                generated: view.generated,
                environment: &environment.name,
                release: &found.name,
                cluster: cell,
                runs,
            };
            Some(render("cell", &page).map(|body| (format!("{release} in {cluster}"), body)))
        }
    }
}

fn find_release<'a>(
    view: &'a FleetView,
    env: &str,
    release: &str,
) -> Option<(&'a EnvironmentView, &'a ReleaseView)> {
    let environment = view.environments.iter().find(|e| e.name == env)?;
    let found = environment.releases.iter().find(|r| r.name == release)?;
    Some((environment, found))
}

fn find_deployment<'a>(
    view: &'a FleetView,
    id: &str,
) -> Option<(&'a str, &'a str, &'a DeploymentView)> {
    view.environments.iter().find_map(|environment| {
        environment.releases.iter().find_map(|release| {
            let deployment = release.timeline.iter().find(|d| d.id == id)?;
            Some((environment.name.as_str(), release.name.as_str(), deployment))
        })
    })
}

/// A phase's name, start and end.
type Span = (&'static str, DateTime<Utc>, DateTime<Utc>);

/// Each run's phases on the deployment's time axis. A record written before phases
/// were is one `run` bar from its start to its last write.
fn picture<'a>(
    generated: DateTime<Utc>,
    environment: &'a str,
    release: &'a str,
    deployment: &'a DeploymentView,
) -> Picture<'a> {
    let spans: Vec<Vec<Span>> = deployment
        .runs
        .iter()
        .map(|run| {
            if run.phases.is_empty() {
                let ended = run.started + chrono::Duration::seconds(run.recorded_after);
                vec![("run", run.started, ended)]
            } else {
                run.phases
                    .iter()
                    .map(|p| (p.phase.as_str(), p.started, p.ended.max(p.started)))
                    .collect()
            }
        })
        .collect();
    let from = spans
        .iter()
        .flatten()
        .map(|s| s.1)
        .min()
        .unwrap_or(deployment.created);
    let to = spans.iter().flatten().map(|s| s.2).max().unwrap_or(from);
    let total = (to - from).num_milliseconds().max(1) as f64;
    let percent =
        |at: DateTime<Utc>| ((at - from).num_milliseconds() as f64 / total * 1000.0).round() / 10.0;
    let rows = deployment
        .runs
        .iter()
        .zip(spans)
        .map(|(run, spans)| PictureRow {
            run,
            bars: spans
                .into_iter()
                .map(|(phase, started, ended)| Bar {
                    phase,
                    left: percent(started),
                    width: (percent(ended) - percent(started)).max(0.0),
                    seconds: seconds(ended - started),
                })
                .collect(),
        })
        .collect();
    Picture {
        generated,
        environment,
        release,
        deployment,
        from,
        seconds: seconds(to - from),
        rows,
    }
}

/// Seconds to the tenth: a run on a near cluster takes less than one.
fn seconds(span: chrono::Duration) -> f64 {
    (span.num_milliseconds() as f64 / 100.0).round() / 10.0
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
            frozen: None,
            locked: None,
            page: crate::dashboard::view::cell_page("prod", "hello", cluster),
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
                phases: Vec::new(),
            }],
            rollback_target: false,
            page: "/run/20261207-abc".into(),
        }];
        let html = page(&view).unwrap();
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
        let html = page(&view(vec![
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
        ]))
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
    fn only_a_served_page_follows_its_stream_and_links_its_pages() {
        let file = page(&view(vec![cell("east", CellState::Healthy, None)])).unwrap();
        assert!(
            !file.contains("<script") && !file.contains("http-equiv"),
            "{file}"
        );
        assert!(!file.contains("<a href"), "a file links nowhere: {file}");
        let view = view(vec![cell("east", CellState::Healthy, None)]);
        let (title, body) = super::body(&view, &Which::Fleet, 5).unwrap().unwrap();
        let served = wrap(&title, &body, Some(5), &Which::Fleet).unwrap();
        assert!(
            served.contains("<script src=\"/live.js\" defer></script>"),
            "{served}"
        );
        assert!(served.contains("data-events=\"/events\""), "{served}");
        // Without script, the page reloads itself instead.
        assert!(served.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
        assert!(
            served.contains("<a href=\"/cluster/prod/hello/east\">east</a>"),
            "{served}"
        );
    }

    #[test]
    fn a_context_with_slashes_has_one_path_segment() {
        assert_eq!(
            crate::dashboard::view::cell_page(
                "prod",
                "hello",
                "arn:aws:eks:eu-west-1:1:cluster/a b"
            ),
            "/cluster/prod/hello/arn%3Aaws%3Aeks%3Aeu-west-1%3A1%3Acluster%2Fa+b"
        );
        assert_eq!(Which::Run("d/1".into()).events(), "/events/run/d%2F1");
    }

    fn phase(
        phase: crate::release::Phase,
        from: i64,
        to: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> crate::release::PhaseTime {
        crate::release::PhaseTime {
            phase,
            started: at + chrono::Duration::seconds(from),
            ended: at + chrono::Duration::seconds(to),
        }
    }

    #[test]
    fn a_run_picture_places_each_phase_on_one_axis() {
        use crate::release::Phase;
        let at = chrono::Utc::now();
        let run = |cluster: &str, phases: Vec<crate::release::PhaseTime>| ClusterRun {
            cluster: cluster.into(),
            revision: 2,
            status: "deployed".into(),
            restores: None,
            started: at,
            healthy_after: None,
            recorded_after: 40,
            description: String::new(),
            phases,
        };
        let deployment = DeploymentView {
            id: "d-1".into(),
            state: Some(crate::release::DeploymentState::Complete),
            version: "v1".into(),
            created: at,
            by: "u@h".into(),
            commit: None,
            runs: vec![
                run(
                    "east",
                    vec![
                        phase(Phase::Prepare, 0, 10, at),
                        phase(Phase::Apply, 10, 20, at),
                        phase(Phase::Wait, 20, 50, at),
                    ],
                ),
                // Written before phases were: one bar from start to last write.
                run("west", Vec::new()),
                run("north", vec![phase(Phase::Restore, 50, 100, at)]),
            ],
            rollback_target: false,
            page: "/run/d-1".into(),
        };
        let picture = picture(at, "prod", "hello", &deployment);
        assert_eq!(picture.seconds, 100.0);
        let bars: Vec<Vec<(&str, f64, f64, f64)>> = picture
            .rows
            .iter()
            .map(|r| {
                r.bars
                    .iter()
                    .map(|b| (b.phase, b.left, b.width, b.seconds))
                    .collect()
            })
            .collect();
        assert_eq!(
            bars,
            [
                vec![
                    ("prepare", 0.0, 10.0, 10.0),
                    ("apply", 10.0, 10.0, 10.0),
                    ("wait", 20.0, 30.0, 30.0)
                ],
                vec![("run", 0.0, 40.0, 40.0)],
                vec![("restore", 50.0, 50.0, 50.0)],
            ]
        );
    }

    #[test]
    fn a_cell_page_shows_its_diagnosis_scrubbed_and_escaped() {
        crate::redact::register("cell-page-canary-77a1");
        let mut failing = cell(
            "west",
            CellState::Failing,
            Some("pod web-1 container web: CrashLoopBackOff"),
        );
        failing.diagnosis = vec![
            "  pod web-1 container web: CrashLoopBackOff".into(),
            "    last log lines: password=cell-page-canary-77a1 <i>".into(),
        ];
        failing.frozen = Some("prod is frozen by u@h".into());
        let view = view(vec![cell("east", CellState::Healthy, None), failing]);
        let which = Which::Cell("prod".into(), "hello".into(), "west".into());
        let (title, body) = super::body(&view, &which, 5).unwrap().unwrap();
        assert_eq!(title, "hello in west");
        assert!(body.contains("<pre class=\"diagnosis\">"), "{body}");
        assert!(
            body.contains("CrashLoopBackOff") && body.contains("&lt;i&gt;"),
            "{body}"
        );
        assert!(!body.contains("cell-page-canary-77a1"), "{body}");
        assert!(body.contains("prod is frozen by u@h"), "{body}");
        let missing = Which::Cell("prod".into(), "hello".into(), "nowhere".into());
        assert!(super::body(&view, &missing, 5).is_none());
    }

    #[test]
    fn a_registered_secret_value_never_reaches_the_page() {
        crate::redact::register("dashboard-canary-5f1e");
        let html = page(&view(vec![cell(
            "east",
            CellState::Error,
            Some("cannot read: dashboard-canary-5f1e"),
        )]))
        .unwrap();
        assert!(!html.contains("dashboard-canary-5f1e"));
    }
}
