//! The dashboard's web server: its pages, their event streams and the JSON, read-only
//! (GET only), behind a bearer token when it listens beyond loopback. The fleet is read
//! at most once per interval whatever the number of viewers: a request within the
//! interval gets the reading already made, concurrent requests after it wait for one
//! read, and every event stream sends each reading once.

use super::html::{self, Which};
use super::view::{self, FleetView};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// What `flotilla dashboard` serves.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    pub root: PathBuf,
    /// Only this environment; every one of the repository when `None`.
    pub env: Option<String>,
    pub listen: SocketAddr,
    /// The bearer token every request must carry; required beyond loopback.
    pub token: Option<String>,
    /// How often the fleet is read again (and the page reloads itself).
    pub interval: Duration,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
}

/// The last reading of the fleet, kept for one interval.
struct Shared {
    options: DashboardOptions,
    last: Mutex<Option<Arc<Reading>>>,
}

/// One reading of the fleet: the view (or why the repository could not be read), its
/// JSON, when it was read and its number (the event streams send each reading once).
struct Reading {
    view: Result<FleetView, String>,
    json: String,
    at: Instant,
    serial: u64,
}

impl Shared {
    /// The fleet as read within the interval: read now when the last reading is
    /// older, one reading for every request waiting on the lock.
    async fn reading(&self) -> Arc<Reading> {
        let mut last = self.last.lock().await;
        if let Some(reading) = last.as_ref() {
            if reading.at.elapsed() < self.options.interval {
                return reading.clone();
            }
        }
        let serial = last.as_ref().map_or(0, |r| r.serial + 1);
        let reading = Arc::new(self.read(serial).await);
        *last = Some(reading.clone());
        reading
    }

    async fn read(&self, serial: u64) -> Reading {
        let view = view::read(
            &self.options.root,
            self.options.env.as_deref(),
            self.options.kubeconfig.as_deref(),
        )
        .await
        .map_err(|err| err.to_string());
        let json = match &view {
            Ok(view) => json(view),
            Err(err) => serde_json::json!({ "error": err }).to_string(),
        };
        Reading {
            view,
            json: crate::redact::scrub(&json),
            at: Instant::now(),
            serial,
        }
    }

    fn refresh(&self) -> u64 {
        self.options.interval.as_secs().max(1)
    }

    /// The title and body of `which` in `reading`: `None` when it names nothing there.
    fn body(&self, reading: &Reading, which: &Which) -> Option<(String, String)> {
        let view = match &reading.view {
            Ok(view) => view,
            Err(err) => return Some(("the fleet".to_owned(), error_body(err))),
        };
        Some(match html::body(view, which, self.refresh())? {
            Ok(found) => found,
            Err(err) => ("the fleet".to_owned(), error_body(&err.to_string())),
        })
    }
}

fn json(view: &FleetView) -> String {
    serde_json::to_string_pretty(view)
        .unwrap_or_else(|err| serde_json::json!({ "error": err.to_string() }).to_string())
}

/// What a page shows when the repository itself cannot be read (a broken environment
/// file): the error, escaped and scrubbed; the page goes on following its stream to
/// show the fix.
fn error_body(message: &str) -> String {
    let escaped = handlebars::html_escape(&crate::redact::scrub(message));
    format!("<p class=\"error\">{escaped}</p>")
}

/// Whether `headers` carry the token (`Authorization: Bearer TOKEN`), when one is set.
fn allowed(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in full whatever the first difference, as a token should be.
    given.is_some_and(|given| {
        given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required (Authorization: Bearer TOKEN)\n",
    )
        .into_response()
}

async fn fleet_page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    page(&shared, &headers, Which::Fleet).await
}

async fn run_page(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    page(&shared, &headers, Which::Run(id)).await
}

async fn cell_page(
    State(shared): State<Arc<Shared>>,
    Path((env, release, cluster)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    page(&shared, &headers, Which::Cell(env, release, cluster)).await
}

async fn page(shared: &Shared, headers: &HeaderMap, which: Which) -> Response {
    if !allowed(shared.options.token.as_deref(), headers) {
        return refused();
    }
    let reading = shared.reading().await;
    let Some((title, body)) = shared.body(&reading, &which) else {
        return not_found();
    };
    match html::wrap(&title, &body, Some(shared.refresh()), &which) {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page,
        )
            .into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not in the fleet as last read (an id or cluster not there)\n",
    )
        .into_response()
}

async fn fleet_events(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    events(shared, &headers, Which::Fleet)
}

async fn run_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    events(shared, &headers, Which::Run(id))
}

async fn cell_events(
    State(shared): State<Arc<Shared>>,
    Path((env, release, cluster)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    events(shared, &headers, Which::Cell(env, release, cluster))
}

/// A page's body as each reading of the fleet shows it (Server-Sent Events, event
/// `reading`), one event per reading: every stream shares the readings, so the
/// clusters are asked no more than once per interval whatever the number of viewers.
fn events(shared: Arc<Shared>, headers: &HeaderMap, which: Which) -> Response {
    if !allowed(shared.options.token.as_deref(), headers) {
        return refused();
    }
    let stream = futures::stream::unfold(
        (shared, which, None::<u64>),
        |(shared, which, sent)| async move {
            let reading = loop {
                let reading = shared.reading().await;
                if sent != Some(reading.serial) {
                    break reading;
                }
                // The next reading is due one interval after this one.
                let due = reading.at + shared.options.interval;
                tokio::time::sleep_until(due.into()).await;
            };
            let data = shared.body(&reading, &which).map_or_else(
                || "<p class=\"error\">not in the fleet as last read</p>".to_owned(),
                |(_, body)| body,
            );
            // A carriage return cannot travel in an event; HTML does without it.
            let event = Event::default()
                .event("reading")
                .data(data.replace('\r', ""));
            Some((
                Ok::<_, Infallible>(event),
                (shared, which, Some(reading.serial)),
            ))
        },
    );
    (
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

async fn view_json(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !allowed(shared.options.token.as_deref(), &headers) {
        return refused();
    }
    let reading = shared.reading().await;
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        reading.json.clone(),
    )
        .into_response()
}

/// The live script: follows the page's event stream and puts each reading's body in
/// place. Public (no token): it holds nothing read from a cluster.
async fn live_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        LIVE_JS,
    )
        .into_response()
}

const LIVE_JS: &str = include_str!("live.js");

/// The router of the dashboard: the fleet (`/`), a deployment's run (`/run/ID`), a
/// release in a cluster (`/cluster/ENV/RELEASE/CONTEXT`), each page's event stream
/// under `/events`, `/view.json` and the live script; any other method than GET is
/// refused (405).
fn router(options: DashboardOptions) -> Router {
    let shared = Arc::new(Shared {
        options,
        last: Mutex::new(None),
    });
    Router::new()
        .route("/", get(fleet_page))
        .route("/run/{id}", get(run_page))
        .route("/cluster/{env}/{release}/{cluster}", get(cell_page))
        .route("/events", get(fleet_events))
        .route("/events/run/{id}", get(run_events))
        .route(
            "/events/cluster/{env}/{release}/{cluster}",
            get(cell_events),
        )
        .route("/view.json", get(view_json))
        .route("/live.js", get(live_js))
        .with_state(shared)
}

/// Whether listening on `listen` needs a token: anything but loopback does.
pub fn needs_token(listen: &SocketAddr) -> bool {
    !listen.ip().is_loopback()
}

/// Serves the dashboard until the process is stopped. The address it listens on is
/// printed first (with port 0, the one the system chose).
pub async fn serve(options: DashboardOptions) -> crate::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let address = listener.local_addr()?;
    crate::output::print(&format!("flotilla dashboard: http://{address}/"))?;
    axum::serve(listener, router(options)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_token_is_let_in() {
        assert!(allowed(None, &HeaderMap::new()));
        assert!(!allowed(Some("s3cret"), &HeaderMap::new()));
        assert!(allowed(Some("s3cret"), &bearer("Bearer s3cret")));
        assert!(!allowed(Some("s3cret"), &bearer("Bearer s3cre")));
        assert!(!allowed(Some("s3cret"), &bearer("Bearer s3cret2")));
        assert!(!allowed(Some("s3cret"), &bearer("Basic s3cret")));
    }

    #[test]
    fn loopback_alone_goes_without_a_token() {
        assert!(!needs_token(&"127.0.0.1:8470".parse().unwrap()));
        assert!(!needs_token(&"[::1]:8470".parse().unwrap()));
        assert!(needs_token(&"0.0.0.0:8470".parse().unwrap()));
        assert!(needs_token(&"10.1.2.3:8470".parse().unwrap()));
    }

    #[test]
    fn an_error_body_escapes_its_message() {
        let body = error_body("environments/<b>.yaml: bad");
        assert!(body.contains("&lt;b&gt;") && !body.contains("<b>"));
    }
}
