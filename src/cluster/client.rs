//! One client per kubeconfig context, with a discovery cache and a request counter.

use super::{ClusterError, ObjectRef};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersion;
use kube::discovery::{self, ApiResource, Scope};
use kube::{Client, Config};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The kubeconfig of a command, and where it was read: a context it lacks is named
/// with the files that were looked in.
#[derive(Debug, Clone)]
pub struct LoadedKubeconfig {
    pub config: Kubeconfig,
    /// `/home/u/.kube/config (the default path, as KUBECONFIG is not set)`.
    pub read_from: String,
    /// The files it was read from (none for one made in memory).
    files: Vec<std::path::PathBuf>,
}

impl LoadedKubeconfig {
    /// A kubeconfig made in memory (tests, tools), named `read_from` in messages.
    pub fn new(config: Kubeconfig, read_from: impl Into<String>) -> LoadedKubeconfig {
        LoadedKubeconfig {
            config,
            read_from: read_from.into(),
            files: Vec::new(),
        }
    }

    /// `KUBECONFIG` for a process this run starts (a verify command): the files this
    /// kubeconfig was read from, so that it sees the contexts the run saw.
    pub fn for_child_process(&self) -> std::ffi::OsString {
        std::env::join_paths(&self.files).unwrap_or_else(|_| {
            // A path holding the separator cannot be joined: the first file alone.
            self.files
                .first()
                .map(|f| f.as_os_str().to_owned())
                .unwrap_or_default()
        })
    }
}

/// Reads the kubeconfig as kubectl does: the given file (`--kubeconfig`), else every
/// file `KUBECONFIG` lists (merged, the first to set a value wins), else
/// `~/.kube/config`. A file that cannot be read is named with why it was chosen.
pub fn load_kubeconfig(path: Option<&Path>) -> Result<LoadedKubeconfig, ClusterError> {
    let (files, chosen) =
        kubeconfig_files(path, std::env::var_os("KUBECONFIG"), std::env::home_dir())?;
    let mut merged = Kubeconfig::default();
    for file in &files {
        let read = Kubeconfig::read_from(file).and_then(|config| merged.clone().merge(config));
        merged = read.map_err(|err| ClusterError::Kubeconfig {
            file: file.display().to_string(),
            chosen: chosen.clone(),
            problem: kubeconfig_problem(&err),
            source: Some(Box::new(err)),
        })?;
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Ok(LoadedKubeconfig {
        config: merged,
        read_from: format!("{} ({chosen})", names.join(", ")),
        files,
    })
}

/// The kubeconfig files to read and why they are the ones (for messages).
fn kubeconfig_files(
    flag: Option<&Path>,
    variable: Option<std::ffi::OsString>,
    home: Option<std::path::PathBuf>,
) -> Result<(Vec<std::path::PathBuf>, String), ClusterError> {
    if let Some(file) = flag {
        return Ok((vec![file.to_path_buf()], "given by --kubeconfig".into()));
    }
    if let Some(value) = variable {
        let files: Vec<_> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !files.is_empty() {
            let chosen = format!("from KUBECONFIG={}", value.to_string_lossy());
            return Ok((files, chosen));
        }
    }
    let chosen = "the default path, as KUBECONFIG is not set".to_string();
    match home {
        Some(home) => Ok((vec![home.join(".kube").join("config")], chosen)),
        None => Err(ClusterError::Kubeconfig {
            file: "~/.kube/config".into(),
            chosen,
            problem: "there is no home directory (HOME is not set)".into(),
            source: None,
        }),
    }
}

/// What is wrong with one kubeconfig file, in our words (the file is named by the caller).
fn kubeconfig_problem(err: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError;
    match err {
        KubeconfigError::ReadConfig(io, _) => match io.kind() {
            std::io::ErrorKind::NotFound => "there is no such file".into(),
            std::io::ErrorKind::PermissionDenied => "it may not be read (permission denied)".into(),
            _ => io.to_string(),
        },
        // The YAML parser's message comes with a drawing of the line: its first line says it all.
        KubeconfigError::Parse(parse) => {
            let text = parse.to_string();
            let first = text.lines().next().unwrap_or_default();
            format!(
                "it is not a kubeconfig: {}",
                first.trim_start_matches("error: ")
            )
        }
        KubeconfigError::KindMismatch | KubeconfigError::ApiVersionMismatch => {
            format!("it cannot be merged with the files before it in KUBECONFIG ({err})")
        }
        other => other.to_string(),
    }
}

/// What is wrong with a context of the kubeconfig, in our words.
fn context_problem(err: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError;
    match err {
        KubeconfigError::LoadClusterOfContext(cluster) => {
            format!("its cluster `{cluster}` is not in the kubeconfig")
        }
        KubeconfigError::MissingClusterUrl => "its cluster has no `server` URL".into(),
        KubeconfigError::ParseClusterUrl(url) => {
            format!("its cluster's `server` is not a URL: {url}")
        }
        other => super::api_error::chain(other),
    }
}

/// How long one request that is not a watch may take, connection included:
/// `FLOTILLA_REQUEST_TIMEOUT` (humantime, `10s`), default [`REQUEST_TIMEOUT`]. An API
/// server that accepts connections and never answers (frozen, overloaded) is thereby an
/// unreachable cluster after that long, not a run that waits forever.
pub fn request_timeout() -> Duration {
    std::env::var("FLOTILLA_REQUEST_TIMEOUT")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(REQUEST_TIMEOUT)
}

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The log target of one line per API request (`FLOTILLA_LOG=flotilla::requests=debug`).
pub const REQUEST_LOG: &str = "flotilla::requests";

/// The tower layer of [`request_timeout`]: every request but a watch (`watch=true` or
/// `watch=1`, which stream for long by design; kube's watcher has its own idle timeout)
/// gets an answer within the deadline, or fails as a transport error. It also logs each
/// request once answered ([`REQUEST_LOG`]): when it was sent and when its answer (a
/// watch's: its headers) came, so that a run's requests can be laid out in time and the
/// ones that waited for each other told apart.
#[derive(Clone)]
struct RequestDeadline {
    timeout: Duration,
    cluster: Arc<str>,
}

impl<S> tower::Layer<S> for RequestDeadline {
    type Service = DeadlineService<S>;
    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService {
            inner,
            timeout: self.timeout,
            cluster: self.cluster.clone(),
        }
    }
}

#[derive(Clone)]
struct DeadlineService<S> {
    inner: S,
    timeout: Duration,
    cluster: Arc<str>,
}

/// When this process first connected to a cluster: the start of its run, as far as the
/// clusters can tell (a diagnosis shows no event from before it).
static RUN_STARTED: std::sync::OnceLock<k8s_openapi::jiff::Timestamp> = std::sync::OnceLock::new();

/// The start of this process's run: its first connection to a cluster, if any.
pub(super) fn run_started() -> Option<k8s_openapi::jiff::Timestamp> {
    RUN_STARTED.get().copied()
}

/// Milliseconds since the process's first request: the clock of the request log.
fn log_clock() -> f64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1000.0
}

/// One line of the request log: method and URI, never a body.
fn log_request(cluster: &str, method: &http::Method, uri: &str, start_ms: f64, answer: &str) {
    tracing::debug!(
        target: REQUEST_LOG,
        "cluster={cluster} start_ms={start_ms:.1} end_ms={:.1} answer={answer} {method} {uri}",
        log_clock()
    );
}

fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl<S, B, R> tower::Service<http::Request<B>> for DeadlineService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let deadline = (!is_watch(request.uri())).then_some(self.timeout);
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let logged = tracing::enabled!(target: REQUEST_LOG, tracing::Level::DEBUG)
            .then(|| (self.cluster.clone(), request.uri().to_string(), log_clock()));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = match deadline {
                None => answer.await.map_err(Into::into),
                Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                    Ok(answer) => answer.map_err(Into::into),
                    Err(_) => Err(format!(
                        "no answer to {method} {path} within {}s (request timeout)",
                        timeout.as_secs()
                    )
                    .into()),
                },
            };
            if let Some((cluster, uri, start_ms)) = logged {
                let status = match &answer {
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(_) => "error".to_owned(),
                };
                log_request(&cluster, &method, &uri, start_ms, &status);
            }
            answer
        })
    }
}

/// kube logs `Server cert bypassed` at every TLS handshake with a context that sets
/// `insecure-skip-tls-verify` (the CLI drops those lines); flotilla says it once per
/// run instead, naming the first such context.
fn warn_insecure_once(context: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "context {context}: insecure-skip-tls-verify is set, so the server's certificate is not checked (said once per run)"
        );
    });
}

/// The service kube's `ClientBuilder` builds on.
type GenericService = tower::util::BoxService<
    http::Request<kube::client::Body>,
    http::Response<Box<kube::client::DynBody>>,
    tower::BoxError,
>;

/// The HTTP client of a cluster: HTTP/2 when the server offers it (every API server
/// does, through ALPN, as kubectl uses it), so that every request and watch of a run
/// shares one connection, made once (a TCP and a TLS handshake: two round trips). kube's
/// own client speaks HTTP/1.1 only, where every request in flight at once and every
/// open watch holds a connection of its own, each made with its own handshakes. A
/// kubeconfig with a `proxy-url` or a `tls-server-name` gets kube's client, which
/// handles both.
fn client_builder(
    config: Config,
) -> Result<kube::client::ClientBuilder<GenericService>, kube::Error> {
    use kube::client::ConfigExt;
    use tower::ServiceExt;
    if config.proxy_url.is_some() || config.tls_server_name.is_some() {
        return kube::client::ClientBuilder::try_from(config);
    }
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(config.connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(tcp);
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, kube::client::Body>(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http)
        .map_response(|response: http::Response<hyper::body::Incoming>| {
            response.map(|body| {
                Box::new(http_body_util::BodyExt::map_err(
                    body,
                    tower::BoxError::from,
                )) as Box<kube::client::DynBody>
            })
        });
    Ok(kube::client::ClientBuilder::new(
        tower::util::BoxService::new(service),
        config.default_namespace,
    ))
}

/// `apiVersion` → the resources it serves, each with whether it is namespaced.
type DiscoveryCache = HashMap<String, super::discovery::Served>;

/// A connection to one cluster (one kubeconfig context). Cheap to clone; clones share
/// the discovery cache and the request counter.
#[derive(Clone)]
pub struct ClusterHandle {
    context: String,
    /// The API server's URL, for messages about a cluster that does not answer.
    server: String,
    client: Client,
    requests: Arc<AtomicU64>,
    resources: Arc<Mutex<DiscoveryCache>>,
    /// One discovery of a group version at a time: identities resolved at once wait
    /// for the one request instead of each sending its own.
    discovering: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The discovery cache on disk (`None`: no home or cache folder).
    disk_cache: Option<std::path::PathBuf>,
}

impl ClusterHandle {
    /// A client for `context` of `kubeconfig`. Makes no request: an unreachable cluster
    /// shows on the first call.
    pub async fn connect(
        kubeconfig: &LoadedKubeconfig,
        context: &str,
    ) -> Result<ClusterHandle, ClusterError> {
        RUN_STARTED.get_or_init(k8s_openapi::jiff::Timestamp::now);
        let (read_from, kubeconfig) = (&kubeconfig.read_from, &kubeconfig.config);
        if !kubeconfig.contexts.iter().any(|c| c.name == context) {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let message = if known.is_empty() {
                format!("not in the kubeconfig {read_from}, which has no contexts")
            } else {
                format!(
                    "not in the kubeconfig {read_from} (it has: {})",
                    known.join(", ")
                )
            };
            return Err(ClusterError::Context {
                context: context.to_owned(),
                message,
            });
        }
        let options = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
            .await
            .map_err(|e| ClusterError::Context {
                context: context.to_owned(),
                message: context_problem(&e),
            })?;
        if config.accept_invalid_certs {
            warn_insecure_once(context);
        }
        let server = config.cluster_url.to_string();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let count =
            tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
                counter.fetch_add(1, Ordering::Relaxed);
                req
            });
        let deadline = RequestDeadline {
            timeout: request_timeout(),
            cluster: context.into(),
        };
        let client = client_builder(config)
            .map_err(|e| match e {
                // An exec plugin or token file that gives no credential: the
                // environment, not the input.
                kube::Error::Auth(_) => {
                    super::error::classify(context, &server, "authenticate to", "the cluster", e)
                }
                e => ClusterError::Context {
                    context: context.to_owned(),
                    message: super::api_error::describe(&e),
                },
            })?
            .with_layer(&count)
            .with_layer(&deadline)
            .build();
        Ok(ClusterHandle {
            context: context.to_owned(),
            server,
            client,
            requests,
            resources: Default::default(),
            discovering: Default::default(),
            disk_cache: super::discovery::cache_root(),
        })
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// HTTP requests sent so far through this handle (and its clones).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The API server's version (`v1.37.2`) and every API version it serves, as group
    /// versions (`v1`, `apps/v1`) and group/version/kind (`apps/v1/Deployment`), sorted:
    /// what `helm install` finds as `.Capabilities` in this cluster. Aggregated discovery
    /// (two requests), else discovery group by group (servers before 1.30).
    pub async fn served_apis(&self) -> Result<(String, Vec<String>), ClusterError> {
        let version = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| self.error("read", &"/version", e))?;
        let discovery = match discovery::Discovery::new(self.client.clone())
            .run_aggregated()
            .await
        {
            Ok(found) => found,
            Err(_) => discovery::Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(|e| self.error("discover", &"the served APIs", e))?,
        };
        let mut served = std::collections::BTreeSet::new();
        for group in discovery.groups() {
            for version in group.versions() {
                let group_version = if group.name().is_empty() {
                    version.to_owned()
                } else {
                    format!("{}/{version}", group.name())
                };
                for (resource, _) in group.versioned_resources(version) {
                    served.insert(format!("{group_version}/{}", resource.kind));
                }
                served.insert(group_version);
            }
        }
        Ok((version.git_version, served.into_iter().collect()))
    }

    /// The resource and scope (namespaced or not) of an object's kind, from discovery:
    /// kept on disk between runs (`cluster::discovery`), else one request per group
    /// version and run (`/api/v1` once for ConfigMaps, Secrets and Services alike, also
    /// when asked for all three at once). `wait_for` lets a kind defined by a CRD of the
    /// same apply appear (the CRD takes a moment to be served; its group version is
    /// asked again); otherwise an unknown kind fails at once.
    pub async fn resource(
        &self,
        object: &ObjectRef,
        wait_for: Option<Duration>,
    ) -> Result<(ApiResource, bool), ClusterError> {
        if let Some(found) = self.cached(object) {
            return Ok(found);
        }
        let gate = self
            .discovering
            .lock()
            .ok()
            .map(|mut gates| gates.entry(object.api_version.clone()).or_default().clone());
        let _discovering = match &gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        // Found by the discovery this one waited for.
        if let Some(found) = self.cached(object) {
            return Ok(found);
        }
        let on_disk = self
            .disk_cache
            .as_deref()
            .map(|root| super::discovery::entry_path(root, &self.server, &object.api_version));
        if let Some(served) = on_disk.as_deref().and_then(super::discovery::load) {
            if let Ok(mut cache) = self.resources.lock() {
                cache.insert(object.api_version.clone(), served);
            }
            if let Some(found) = self.cached(object) {
                return Ok(found);
            }
            // A miss (a CRD installed since the entry was written): the server is
            // asked, and its answer replaces the entry.
        }
        let (group, version) = object.group_version();
        let gv = GroupVersion::gv(group, version);
        let deadline = tokio::time::Instant::now() + wait_for.unwrap_or_default();
        let mut pause = Duration::from_millis(100);
        loop {
            let found = match discovery::pinned_group(&self.client, &gv).await {
                Ok(served) => {
                    let resources: Vec<(ApiResource, bool)> = served
                        .versioned_resources(version)
                        .into_iter()
                        .map(|(resource, caps)| (resource, caps.scope == Scope::Namespaced))
                        .collect();
                    let found = resources
                        .iter()
                        .find(|(resource, _)| resource.kind == object.kind)
                        .cloned();
                    if let Some(path) = &on_disk {
                        super::discovery::store(path, &resources);
                    }
                    if let Ok(mut cache) = self.resources.lock() {
                        cache.insert(object.api_version.clone(), resources);
                    }
                    found
                }
                Err(kube::Error::Api(_) | kube::Error::Discovery(_)) => None,
                Err(err) => return Err(self.error("discover", object, err)),
            };
            if let Some(found) = found {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::UnknownKind {
                    context: self.context.clone(),
                    api_version: object.api_version.clone(),
                    kind: object.kind.clone(),
                    object: object.to_string(),
                });
            }
            // A CRD just applied is served once it is Established: back off, bounded.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    fn cached(&self, object: &ObjectRef) -> Option<(ApiResource, bool)> {
        self.resources
            .lock()
            .ok()?
            .get(&object.api_version)?
            .iter()
            .find(|(resource, _)| resource.kind == object.kind)
            .cloned()
    }

    /// The dynamic API of an object's kind; namespaced kinds use `object.namespace`
    /// or `default_namespace`.
    pub async fn api(
        &self,
        object: &ObjectRef,
        default_namespace: &str,
        wait_for: Option<Duration>,
    ) -> Result<(Api<DynamicObject>, bool), ClusterError> {
        let (resource, namespaced) = self.resource(object, wait_for).await?;
        let api = if namespaced {
            let ns = object.namespace.as_deref().unwrap_or(default_namespace);
            Api::namespaced_with(self.client.clone(), ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        Ok((api, namespaced))
    }

    /// With `create`, creates the namespace when it does not exist (labelled as ours,
    /// never pruned). Without, only checks that it exists: a deployer that may not read
    /// namespaces (a namespace-limited token) goes on, as `kubectl apply -n` would.
    pub async fn ensure_namespace(
        &self,
        namespace: &str,
        create: bool,
    ) -> Result<(), ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let object = format!("Namespace {namespace}");
        match api.get_opt(namespace).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if create => {}
            Ok(None) => {
                return Err(ClusterError::NoNamespace {
                    context: self.context.clone(),
                    namespace: namespace.to_owned(),
                })
            }
            Err(kube::Error::Api(status)) if status.code == 403 && !create => return Ok(()),
            Err(err) => return Err(self.error("read", &object, err)),
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_owned()),
                labels: Some(
                    [(
                        super::labels::MANAGED_BY.to_owned(),
                        super::labels::MANAGER.to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            // Another cluster operation of ours created it meanwhile.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(err) => Err(self.error("create", &object, err)),
        }
    }
}

impl ClusterHandle {
    /// A failed request of this cluster, while flotilla was doing `action` (`list`,
    /// `apply`, `read`) to `object` (`Deployment hello/web`): see [`super::error::classify`].
    pub(crate) fn error(
        &self,
        action: &str,
        object: &dyn std::fmt::Display,
        err: kube::Error,
    ) -> ClusterError {
        super::error::classify(
            self.context(),
            self.server(),
            action,
            &object.to_string(),
            err,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[tokio::test]
    async fn a_context_the_kubeconfig_lacks_is_named_with_the_files_looked_in() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: prod-eu\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let loaded = load_kubeconfig(Some(&file)).unwrap();
        let err = ClusterHandle::connect(&loaded, "prod-us")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let expected = format!(
            "not in the kubeconfig {} (given by --kubeconfig) (it has: prod-eu)",
            file.display()
        );
        assert!(err.contains(&expected), "{err}");
        assert!(err.contains("prod-us"), "{err}");
        let empty = LoadedKubeconfig::new(Kubeconfig::default(), "/nowhere (test)");
        let err = ClusterHandle::connect(&empty, "x")
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .unwrap_or_default()
                .contains("/nowhere (test), which has no contexts"),
            "{err:?}"
        );
    }

    #[test]
    fn the_kubeconfig_is_chosen_as_kubectl_does_and_says_why() {
        let home = Some(PathBuf::from("/home/ann"));
        let pick = |flag: Option<&str>, variable: Option<&str>, home: Option<PathBuf>| {
            kubeconfig_files(flag.map(Path::new), variable.map(Into::into), home)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            pick(Some("k.yaml"), Some("/a"), home.clone()),
            Ok((
                vec![PathBuf::from("k.yaml")],
                "given by --kubeconfig".into()
            ))
        );
        assert_eq!(
            pick(None, Some("/a:/b"), home.clone()),
            Ok((
                vec![PathBuf::from("/a"), PathBuf::from("/b")],
                "from KUBECONFIG=/a:/b".into()
            ))
        );
        for empty in [None, Some(""), Some(":")] {
            assert_eq!(
                pick(None, empty, home.clone()),
                Ok((
                    vec![PathBuf::from("/home/ann/.kube/config")],
                    "the default path, as KUBECONFIG is not set".into()
                ))
            );
        }
        assert_eq!(
            pick(None, None, None),
            Err("cannot read the kubeconfig ~/.kube/config (the default path, as KUBECONFIG is not set): there is no home directory (HOME is not set); name the right one with --kubeconfig FILE or KUBECONFIG=FILE".into())
        );
    }

    #[test]
    fn a_kubeconfig_that_is_not_yaml_is_said_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, "apiVersion: v1\nclusters: [\n").unwrap();
        let err = load_kubeconfig(Some(&file)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("cannot read the kubeconfig {} (given by --kubeconfig): it is not a kubeconfig: line 2 column 11: unclosed bracket '['; name the right one with --kubeconfig FILE or KUBECONFIG=FILE", file.display())
        );
    }

    #[test]
    fn a_missing_kubeconfig_keeps_the_io_error_as_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent");
        let err = load_kubeconfig(Some(&file)).unwrap_err();
        assert!(
            err.to_string().contains(": there is no such file;"),
            "{err}"
        );
        let mut causes = std::iter::successors(std::error::Error::source(&err), |e| e.source());
        let io = causes
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .expect("an io::Error among the causes");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
