//! The simulated kubelet's container-log endpoint, so `GET .../pods/NAME/log` works
//! through the API server as on a real cluster.
//!
//! The API server proxies a log request to the kubelet of the pod's node:
//! `GET https://ADDRESS:PORT/containerLogs/NAMESPACE/POD/CONTAINER?tailLines=..&previous=..`,
//! with the address from the node's `status.addresses` (the fleet's apiservers prefer
//! `InternalIP`, 127.0.0.1) and the port from `status.daemonEndpoints.kubeletEndpoint`.
//! [`serve`] answers that over HTTPS with a self-signed certificate (an API server
//! without `--kubelet-certificate-authority` does not verify it) on an ephemeral port.
//!
//! There is no container: the log is made up, the same for the same pod state, from the
//! container's image tag and its status ([`container_log`]). A crashed run ends with
//! `simulated crash: container C of pod P exited 1 (fake kubelet)`, a `jobfail` Job's
//! run with `simulated job failure: ...`; which run is read (`previous`, the current
//! one, or the last terminated one of a waiting container) and the refusals (a
//! container waiting to start, no previous run) follow the kubelet's own rules. Query
//! parameters honoured: `tailLines`, `previous`, `timestamps`, `limitBytes`,
//! `sinceSeconds`, `sinceTime`, `stream` (every line is stdout); `follow` returns what
//! there is and ends.
//!
//! Must not: write anything from a pod's environment, its Secrets or ConfigMaps into a
//! log (only the pod's, the container's and the image's names appear).

use crate::kubelet::Behaviour;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Api, Client};
use std::sync::Arc;

/// The query of a log request, as the kubelet reads `PodLogOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub tail_lines: Option<i64>,
    pub previous: bool,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<Timestamp>,
    /// `All`, `Stdout` or `Stderr`.
    pub stream: Option<String>,
}

/// Why the kubelet serves no log: its status code and plain-text message, as the API
/// server passes them on (400 becomes the API server's BadRequest with that message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

impl LogQuery {
    /// The kubelet's decoding and validation: an unreadable value is 400, a value out
    /// of range 422, with the kubelet's own (JSON-looking) messages.
    pub fn parse(query: &str) -> Result<LogQuery, Refusal> {
        let undecodable = || {
            refuse(
                StatusCode::BAD_REQUEST,
                r#"{"message": "Unable to decode query."}"#,
            )
        };
        let mut q = LogQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let number = || value.parse::<i64>().map_err(|_| undecodable());
            let flag = || value.parse::<bool>().map_err(|_| undecodable());
            match key.as_ref() {
                "tailLines" => q.tail_lines = Some(number()?),
                // The kubelet's older spelling; `all` is no limit.
                "tail" if value == "all" => q.tail_lines = None,
                "tail" => q.tail_lines = Some(number()?),
                "previous" => q.previous = flag()?,
                "timestamps" => q.timestamps = flag()?,
                "limitBytes" => q.limit_bytes = Some(number()?),
                "sinceSeconds" => q.since_seconds = Some(number()?),
                "sinceTime" => q.since_time = Some(value.parse().map_err(|_| undecodable())?),
                "stream" => q.stream = Some(value.into_owned()),
                _ => {}
            }
        }
        let invalid = q.tail_lines.is_some_and(|n| n < 0)
            || q.limit_bytes.is_some_and(|n| n < 1)
            || q.since_seconds.is_some_and(|n| n < 1)
            || (q.since_seconds.is_some() && q.since_time.is_some())
            || q.stream
                .as_deref()
                .is_some_and(|s| !matches!(s, "All" | "Stdout" | "Stderr"))
            || (q.stream.as_deref().is_some_and(|s| s != "All") && q.tail_lines.is_some());
        if invalid {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"message": "Invalid request."}"#,
            ));
        }
        Ok(q)
    }
}

/// One run of a container, as far as its log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Still running, as its image tag says (`Ready`, `Slow`, `Never`, `CrashAfter`);
    /// `ready` whether its status says Ready.
    Running { behaviour: Behaviour, ready: bool },
    /// Crashed with this exit code (the runs before a `CrashLoopBackOff`).
    Crashed(i32),
    /// A `jobfail` Job's pod, failed with this exit code.
    JobFailed(i32),
    /// Ran to completion (a Job's pod, an init container).
    Completed,
}

/// The lines a run of `container` of `pod` wrote, oldest first. Several, so that
/// `tailLines` shows; the last one says how the run ended.
pub fn run_lines(pod: &str, container: &str, image: &str, run: Run) -> Vec<String> {
    let mut lines = vec![
        format!("starting container {container} of pod {pod} (image {image}, simulated by flotilla-fleet)"),
        "configuration loaded".to_owned(),
    ];
    match run {
        Run::Running { behaviour, ready } => {
            lines.push("listening on :8080".to_owned());
            match behaviour {
                Behaviour::Never => lines.push(
                    "waiting for a dependency that never answers (simulated: never ready)"
                        .to_owned(),
                ),
                Behaviour::Slow(secs) if !ready => {
                    lines.push(format!("warming up, ready in {secs}s (simulated)"))
                }
                _ => lines.push(format!(
                    "ready: container {container} of pod {pod} serves (fake kubelet)"
                )),
            }
        }
        Run::Crashed(code) => {
            lines.push("connecting to the backend".to_owned());
            lines.push(format!(
                "simulated crash: container {container} of pod {pod} exited {code} (fake kubelet)"
            ));
        }
        Run::JobFailed(code) => {
            lines.push("running the job".to_owned());
            lines.push(format!(
                "simulated job failure: container {container} of pod {pod} exited {code} (fake kubelet)"
            ));
        }
        Run::Completed => {
            lines.push("running the job".to_owned());
            lines.push(format!(
                "done: container {container} of pod {pod} exited 0 (fake kubelet)"
            ));
        }
    }
    lines
}

/// The log of `container` of `pod` for `query` at `now`, or why there is none: the
/// kubelet's choice of run (`validateContainerLogStatus`), then `sinceSeconds` /
/// `sinceTime`, `tailLines`, `timestamps` and `limitBytes`, in the kubelet's order.
pub fn container_log(
    pod: &Pod,
    container: &str,
    query: &LogQuery,
    now: Timestamp,
) -> Result<String, Refusal> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let Some(image) = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .map(|c| (c.name.as_str(), c.image.as_deref()))
                .chain(
                    s.ephemeral_containers
                        .iter()
                        .flatten()
                        .map(|c| (c.name.as_str(), c.image.as_deref())),
                )
        })
        .find(|(n, _)| *n == container)
        .map(|(_, image)| image.unwrap_or_default())
    else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {name:?}"),
        ));
    };
    let status = pod.status.as_ref();
    let Some(status) = status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .find(|c| c.name == container)
    else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {name:?} is not available"),
        ));
    };
    let (run, started) =
        chosen_run(status, Behaviour::of_image(image), query.previous).map_err(|why| {
            refuse(
                StatusCode::BAD_REQUEST,
                format!("container {container:?} in pod {name:?} {why}"),
            )
        })?;
    if query.stream.as_deref() == Some("Stderr") {
        return Ok(String::new());
    }
    let since = query.since_time.or_else(|| {
        query
            .since_seconds
            .and_then(|s| now.checked_sub(SignedDuration::from_secs(s)).ok())
    });
    // Every line of a run was written when it started.
    let started = started.unwrap_or(now);
    let mut lines = if since.is_some_and(|t| started < t) {
        Vec::new()
    } else {
        run_lines(name, container, image, run)
    };
    if let Some(tail) = query.tail_lines {
        let keep = usize::try_from(tail).unwrap_or(usize::MAX);
        lines.drain(..lines.len().saturating_sub(keep));
    }
    let mut text: String = lines
        .iter()
        .map(|line| match query.timestamps {
            true => format!("{started} {line}\n"),
            false => format!("{line}\n"),
        })
        .collect();
    if let Some(limit) = query.limit_bytes {
        let mut end = usize::try_from(limit).unwrap_or(usize::MAX).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Ok(text)
}

/// Which run a log request reads, and when it started; else the end of the kubelet's
/// refusal (`is waiting to start: ...`).
fn chosen_run(
    status: &ContainerStatus,
    behaviour: Behaviour,
    previous: bool,
) -> Result<(Run, Option<Timestamp>), String> {
    let state = status.state.clone().unwrap_or_default();
    // Only a crash ends a run that is followed by another in this simulation.
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            (
                Run::Crashed(t.exit_code),
                t.started_at.as_ref().map(|t| t.0),
            )
        });
    if previous {
        return last.ok_or_else(|| "previous terminated container not found".to_owned());
    }
    if let Some(running) = &state.running {
        let run = Run::Running {
            behaviour,
            ready: status.ready,
        };
        return Ok((run, running.started_at.as_ref().map(|t| t.0)));
    }
    if let Some(t) = &state.terminated {
        let run = match (t.exit_code, behaviour) {
            (0, _) => Run::Completed,
            (code, Behaviour::JobFail) => Run::JobFailed(code),
            (code, _) => Run::Crashed(code),
        };
        return Ok((run, t.started_at.as_ref().map(|t| t.0)));
    }
    if let Some(last) = last {
        return Ok(last);
    }
    match state.waiting.and_then(|w| w.reason) {
        Some(reason) if reason == "ErrImagePull" => {
            Err("is waiting to start: image can't be pulled".to_owned())
        }
        Some(reason) if reason == "ImagePullBackOff" => {
            Err("is waiting to start: trying and failing to pull image".to_owned())
        }
        Some(reason) => Err(format!("is waiting to start: {reason}")),
        None => Err("is waiting to start - no logs yet".to_owned()),
    }
}

/// Starts the log endpoint on an ephemeral port of 127.0.0.1 and returns the port.
/// It answers for pods bound to one of `nodes`.
pub async fn serve(client: Client, nodes: Vec<String>) -> anyhow::Result<u16> {
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config()?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let served = Arc::new((client, nodes));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("log endpoint: accept: {e}");
                    continue;
                }
            };
            let (tls, served) = (tls.clone(), served.clone());
            tokio::spawn(async move {
                let stream = match tls.accept(stream).await {
                    Ok(stream) => stream,
                    Err(e) => return tracing::debug!("log endpoint: TLS: {e}"),
                };
                let service = hyper::service::service_fn(move |req| answer(served.clone(), req));
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!("log endpoint: connection: {e}");
                }
            });
        }
    });
    Ok(port)
}

/// A fresh self-signed serving certificate for 127.0.0.1 (nothing checks it).
fn tls_config() -> anyhow::Result<rustls::ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)?;
    Ok(config)
}

async fn answer(
    served: Arc<(Client, Vec<String>)>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (client, nodes) = served.as_ref();
    if req.method() != Method::GET {
        return Ok(crate::charts::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only",
        ));
    }
    let parts: Vec<&str> = req.uri().path().split('/').skip(1).collect();
    let ["containerLogs", namespace, pod, container] = parts[..] else {
        return Ok(crate::charts::plain(StatusCode::NOT_FOUND, "not found"));
    };
    let result = async {
        let query = LogQuery::parse(req.uri().query().unwrap_or_default())?;
        let gone = || refuse(StatusCode::NOT_FOUND, format!("pod {pod:?} does not exist"));
        let found = Api::<Pod>::namespaced(client.clone(), namespace)
            .get_opt(pod)
            .await
            .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .ok_or_else(gone)?;
        let on_our_node = found
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| nodes.contains(n));
        if !on_our_node {
            return Err(gone());
        }
        container_log(&found, container, &query, Timestamp::now())
    };
    Ok(match result.await {
        Ok(text) => crate::charts::plain(StatusCode::OK, &text),
        Err(refusal) => crate::charts::plain(refusal.status, &refusal.message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "web-1", "namespace": "ns" },
            "spec": { "containers": [{ "name": "web", "image": image }] },
            "status": { "containerStatuses": [status] },
        }))
        .unwrap()
    }

    const START: &str = "2026-01-02T03:04:05Z";

    fn crashlooping() -> Pod {
        pod(
            "app:crashloop",
            json!({ "name": "web", "image": "app:crashloop", "imageID": "", "ready": false, "restartCount": 3,
                    "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                    "lastState": { "terminated": { "exitCode": 1, "startedAt": START } } }),
        )
    }

    fn running(image: &str, ready: bool) -> Pod {
        pod(
            image,
            json!({ "name": "web", "image": image, "imageID": "", "ready": ready, "restartCount": 0,
                    "state": { "running": { "startedAt": START } } }),
        )
    }

    fn now() -> Timestamp {
        "2026-01-02T03:05:05Z".parse().unwrap()
    }

    fn query(text: &str) -> LogQuery {
        LogQuery::parse(text).unwrap()
    }

    fn log(pod: &Pod, container: &str, text: &str) -> Result<Vec<String>, Refusal> {
        container_log(pod, container, &query(text), now())
            .map(|t| t.lines().map(str::to_owned).collect())
    }

    #[test]
    fn a_crashed_run_ends_with_the_crash_and_previous_reads_it() {
        let all = log(&crashlooping(), "web", "previous=true").unwrap();
        assert_eq!(all.len(), 4, "{all:?}");
        assert_eq!(
            all.last().unwrap(),
            "simulated crash: container web of pod web-1 exited 1 (fake kubelet)"
        );
        // A waiting container without `previous`: its last terminated run, as the kubelet.
        assert_eq!(log(&crashlooping(), "web", "").unwrap(), all);
        assert_eq!(
            log(&crashlooping(), "web", "tailLines=1&previous=true").unwrap(),
            all[3..]
        );
        assert_eq!(
            log(&crashlooping(), "web", "tailLines=2").unwrap(),
            all[2..]
        );
        assert!(log(&crashlooping(), "web", "tailLines=0")
            .unwrap()
            .is_empty());
        assert_eq!(log(&crashlooping(), "web", "tailLines=99").unwrap(), all);
    }

    #[test]
    fn the_current_run_is_read_without_previous() {
        let current = log(&running("app:1.0", true), "web", "").unwrap();
        assert!(current[0].starts_with("starting container web of pod web-1 (image app:1.0"));
        assert!(current.last().unwrap().starts_with("ready:"), "{current:?}");
    }

    #[test]
    fn a_running_containers_last_line_follows_its_tag_and_readiness() {
        let last = |image: &str, ready: bool| {
            log(&running(image, ready), "web", "tailLines=1").unwrap()[0].clone()
        };
        assert!(last("app:never", false).contains("never answers"));
        assert!(last("app:slow-5", false).contains("ready in 5s"));
        assert!(last("app:slow-5", true).starts_with("ready:"));
        assert!(last("app:crashafter-9", true).starts_with("ready:"));
    }

    #[test]
    fn a_failed_job_says_so_and_a_completed_one_exits_0() {
        let terminated = |image: &str, code: i32| {
            pod(
                image,
                json!({ "name": "web", "image": image, "imageID": "", "ready": false, "restartCount": 0,
                        "state": { "terminated": { "exitCode": code, "startedAt": START } } }),
            )
        };
        assert_eq!(
            log(&terminated("app:jobfail", 1), "web", "tailLines=1").unwrap(),
            ["simulated job failure: container web of pod web-1 exited 1 (fake kubelet)"]
        );
        assert_eq!(
            log(&terminated("app:1.0", 0), "web", "tailLines=1").unwrap(),
            ["done: container web of pod web-1 exited 0 (fake kubelet)"]
        );
    }

    #[test]
    fn refusals_have_the_kubelets_codes_and_words() {
        let pulling = pod(
            "app:pullfail",
            json!({ "name": "web", "image": "app:pullfail", "imageID": "", "ready": false, "restartCount": 0,
                    "state": { "waiting": { "reason": "ImagePullBackOff" } } }),
        );
        let cases = [
            (
                running("app:1.0", true),
                "web",
                "previous=true",
                StatusCode::BAD_REQUEST,
                r#"container "web" in pod "web-1" previous terminated container not found"#,
            ),
            (
                pulling,
                "web",
                "",
                StatusCode::BAD_REQUEST,
                r#"container "web" in pod "web-1" is waiting to start: trying and failing to pull image"#,
            ),
            (
                crashlooping(),
                "db",
                "",
                StatusCode::NOT_FOUND,
                r#"container "db" not found in pod "web-1""#,
            ),
        ];
        for (pod, container, query, status, message) in cases {
            let refusal = log(&pod, container, query).unwrap_err();
            assert_eq!(
                (refusal.status, refusal.message.as_str()),
                (status, message)
            );
        }
    }

    #[test]
    fn timestamps_since_and_limit_bytes_apply_after_the_tail() {
        let stamped = log(&crashlooping(), "web", "tailLines=1&timestamps=true").unwrap();
        assert_eq!(
            stamped,
            [format!(
                "{START} simulated crash: container web of pod web-1 exited 1 (fake kubelet)"
            )]
        );
        // The run started a minute before `now`.
        assert!(log(&crashlooping(), "web", "sinceSeconds=30")
            .unwrap()
            .is_empty());
        assert_eq!(
            log(&crashlooping(), "web", "sinceSeconds=90")
                .unwrap()
                .len(),
            4
        );
        let cut = container_log(&crashlooping(), "web", &query("limitBytes=10"), now()).unwrap();
        assert_eq!(cut, "starting c");
        assert!(log(&crashlooping(), "web", "stream=Stderr")
            .unwrap()
            .is_empty());
    }

    proptest::proptest! {
        /// `tailLines` keeps the last lines, then `limitBytes` the first bytes of what
        /// is left, whichever run `previous` picks.
        #[test]
        fn tail_then_limit_bytes_model(tail in proptest::option::of(0i64..8), limit in proptest::option::of(1i64..400), previous: bool) {
            let mut text = String::from("previous=") + &previous.to_string();
            if let Some(tail) = tail {
                text += &format!("&tailLines={tail}");
            }
            if let Some(limit) = limit {
                text += &format!("&limitBytes={limit}");
            }
            let all = log(&crashlooping(), "web", "").unwrap();
            let skip = tail.map_or(0, |t| all.len().saturating_sub(usize::try_from(t).unwrap()));
            let mut expected: String = all[skip..].iter().map(|l| format!("{l}\n")).collect();
            if let Some(limit) = limit {
                expected.truncate(usize::try_from(limit).unwrap().min(expected.len()));
            }
            proptest::prop_assert_eq!(container_log(&crashlooping(), "web", &query(&text), now()).unwrap(), expected);
        }
    }

    #[test]
    fn bad_queries_are_refused_with_the_kubelets_codes() {
        let code = |text: &str| LogQuery::parse(text).unwrap_err().status;
        assert_eq!(code("tailLines=x"), StatusCode::BAD_REQUEST);
        assert_eq!(code("previous=maybe"), StatusCode::BAD_REQUEST);
        assert_eq!(code("tailLines=-1"), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code("limitBytes=0"), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            code("sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z"),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(query("tail=all&follow=true"), LogQuery::default());
        assert_eq!(query("tail=3").tail_lines, Some(3));
    }
}
