//! The dashboard's web server: the fleet page and its JSON, read-only (GET only),
//! behind a bearer token when it listens beyond loopback. The fleet is read at most
//! once per interval whatever the number of viewers: a request within the interval
//! gets the page already read, and concurrent requests after it wait for one read.

use super::html;
use super::view::{self, FleetView};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
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
    last: Mutex<Option<(Instant, Arc<Reading>)>>,
}

struct Reading {
    page: String,
    json: String,
}

impl Shared {
    /// The fleet as read within the interval: read now when the last reading is
    /// older, one reading for every request waiting on the lock.
    async fn reading(&self) -> Arc<Reading> {
        let mut last = self.last.lock().await;
        if let Some((at, reading)) = last.as_ref() {
            if at.elapsed() < self.options.interval {
                return reading.clone();
            }
        }
        let reading = Arc::new(self.read().await);
        *last = Some((Instant::now(), reading.clone()));
        reading
    }

    async fn read(&self) -> Reading {
        let refresh = Some(self.options.interval.as_secs().max(1));
        let view = view::read(
            &self.options.root,
            self.options.env.as_deref(),
            self.options.kubeconfig.as_deref(),
        )
        .await;
        let page = view
            .as_ref()
            .map_err(|err| err.to_string())
            .and_then(|v| html::page(v, refresh).map_err(|err| err.to_string()));
        let page = page.unwrap_or_else(|err| error_page(&err, refresh));
        let json = match &view {
            Ok(view) => json(view),
            Err(err) => serde_json::json!({ "error": err.to_string() }).to_string(),
        };
        Reading {
            page,
            json: crate::redact::scrub(&json),
        }
    }
}

fn json(view: &FleetView) -> String {
    serde_json::to_string_pretty(view)
        .unwrap_or_else(|err| serde_json::json!({ "error": err.to_string() }).to_string())
}

/// The page when the repository itself cannot be read (a broken environment file):
/// the error, escaped, and the page still reloads to show the fix.
fn error_page(message: &str, refresh: Option<u64>) -> String {
    let escaped = handlebars::html_escape(&crate::redact::scrub(message));
    let meta = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">{meta}<title>flotilla: the fleet</title></head><body><h1>flotilla: the fleet</h1><p class=\"error\">{escaped}</p></body></html>"
    )
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

async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !allowed(shared.options.token.as_deref(), &headers) {
        return refused();
    }
    let reading = shared.reading().await;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        reading.page.clone(),
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

/// The router of the dashboard: `/` (the page) and `/view.json`; any other method
/// than GET is refused (405).
fn router(options: DashboardOptions) -> Router {
    let shared = Arc::new(Shared {
        options,
        last: Mutex::new(None),
    });
    Router::new()
        .route("/", get(page))
        .route("/view.json", get(view_json))
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
    fn an_error_page_escapes_its_message() {
        let page = error_page("environments/<b>.yaml: bad", Some(5));
        assert!(page.contains("&lt;b&gt;") && !page.contains("<b>"));
    }
}
