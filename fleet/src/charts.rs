//! Where the fleet's charts by reference come from: the CNCF distribution registry (an
//! OCI registry, `registry serve`) and a classic chart repository (`flotilla-fleet
//! chart-repo`, static files of a folder made with `helm package` + `helm repo index`).
//!
//! Both listen on loopback and speak plain HTTP: Helm reaches the registry with
//! `--plain-http` (a release says `chartPull: { plainHttp: true }`), as it would any
//! registry without TLS. The registry keeps its blobs under `<state>/registry/`, so
//! `stop-registry` + `start-registry` keeps what was pushed; the repository serves
//! `<state>/chart-repo/`.

use crate::process;
use crate::{FleetError, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The process names of the two servers.
pub const REGISTRY: &str = "registry";
pub const CHART_REPO: &str = "chart-repo";

/// The registry's folder (config and blobs).
pub fn registry_dir(dir: &Path) -> PathBuf {
    dir.join("registry")
}

/// The folder the chart repository serves.
pub fn chart_repo_dir(dir: &Path) -> PathBuf {
    dir.join("chart-repo")
}

/// The registry's configuration: filesystem storage under `<state>/registry/data`,
/// deletes allowed (a test may overwrite a tag), no tracing exporter, quiet logs.
fn registry_config(dir: &Path, port: u16) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
        data = registry_dir(dir).join("data").display()
    )
}

/// Starts the registry on `port` (its configuration written afresh; its data kept).
pub fn spawn_registry(dir: &Path, program: &Path, port: u16) -> Result<()> {
    let folder = registry_dir(dir);
    std::fs::create_dir_all(folder.join("data")).map_err(|e| FleetError::io(&folder, e))?;
    let config = folder.join("config.yml");
    std::fs::write(&config, registry_config(dir, port)).map_err(|e| FleetError::io(&config, e))?;
    process::spawn_with_env(
        dir,
        REGISTRY,
        program,
        &["serve".into(), config.display().to_string()],
        // Without it the registry tries to export traces to a collector that is not there.
        &[("OTEL_TRACES_EXPORTER", "none")],
    )
    .map(|_| ())
}

/// Starts the chart repository (`flotilla-fleet chart-repo`) on `port`.
pub fn spawn_chart_repo(dir: &Path, fleet_exe: &Path, port: u16) -> Result<()> {
    let root = chart_repo_dir(dir);
    std::fs::create_dir_all(&root).map_err(|e| FleetError::io(&root, e))?;
    process::spawn(
        dir,
        CHART_REPO,
        fleet_exe,
        &[
            "chart-repo".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--root".into(),
            root.display().to_string(),
        ],
    )
    .map(|_| ())
}

/// Whether the registry answers its API's version check (`GET /v2/`).
pub async fn registry_answers(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/v2/");
    matches!(reqwest::get(url).await, Ok(r) if r.status().is_success())
}

/// Serves the files of `root` over HTTP/1.1 on `listen`: GET and HEAD, nothing else.
pub async fn serve_chart_repo(listen: SocketAddr, root: PathBuf) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let root = Arc::new(root);
    loop {
        let (stream, _) = listener.accept().await?;
        let root = root.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(root.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

async fn answer(
    root: Arc<PathBuf>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let head = req.method() == hyper::Method::HEAD;
    if req.method() != hyper::Method::GET && !head {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
    }
    let Some(file) = file_of(&root, req.uri().path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let kind = if file.extension().is_some_and(|e| e == "yaml") {
                "application/yaml"
            } else {
                "application/gzip"
            };
            let body = if head { Bytes::new() } else { bytes.into() };
            Ok(Response::builder()
                .header("content-type", kind)
                .body(Full::new(body))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response")))
        }
        Err(_) => Ok(plain(StatusCode::NOT_FOUND, "not found")),
    }
}

/// The file a request path names under `root`: plain names only, never `..` or a
/// hidden file, so nothing outside the folder is served.
fn file_of(root: &Path, path: &str) -> Option<PathBuf> {
    let mut file = root.to_path_buf();
    let mut any = false;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part.starts_with('.') || part.contains('\\') {
            return None;
        }
        file.push(part);
        any = true;
    }
    any.then_some(file)
}

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::file_of;
    use std::path::Path;

    #[test]
    fn only_plain_names_inside_the_folder_are_served() {
        let root = Path::new("/srv/charts");
        assert_eq!(file_of(root, "/index.yaml"), Some(root.join("index.yaml")));
        assert_eq!(
            file_of(root, "/web-0.1.0.tgz"),
            Some(root.join("web-0.1.0.tgz"))
        );
        assert_eq!(file_of(root, "/../etc/passwd"), None);
        assert_eq!(file_of(root, "/.hidden"), None);
        assert_eq!(file_of(root, "/"), None);
    }
}
