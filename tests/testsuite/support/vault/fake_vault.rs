//! A fake Vault HTTP API, for what the fleet's RustyVault cannot do: KV v2 (versions,
//! deleted versions), ACL denials, Kubernetes auth, a sealed server, a token that stops
//! working mid-run. It answers as Vault's API documentation says (envelope, status codes,
//! `{"errors": [...]}` bodies), and records every request. Tests that use it say `fake`
//! in their names.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default)]
pub struct Token {
    /// API paths (`kv/data/dev/app`) this token may read; `None`: every path.
    pub readable: Option<Vec<String>>,
    /// The token stops working after this many KV reads (an expiry mid-run).
    pub kv_reads_left: Option<usize>,
    /// `auth/token/lookup-self` is denied (a token without the `default` policy).
    pub lookup_denied: bool,
}

#[derive(Debug, Clone)]
pub struct Request_ {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub token: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub mount: String,
    pub kv_version: u8,
    /// relative path → versions (1-based); `None` is a deleted version.
    pub secrets: HashMap<String, Vec<Option<Value>>>,
    pub tokens: HashMap<String, Token>,
    /// (role_id, secret_id) → token.
    pub approles: HashMap<(String, String), String>,
    /// (role, jwt) → token, at mount `kubernetes`.
    pub kubernetes: HashMap<(String, String), String>,
    pub sealed: bool,
    /// `auth/token/lookup-self` answers this status (a 500, a 429) with an error body.
    pub lookup_status: Option<u16>,
    /// Tokens revoked with `auth/token/revoke-self`.
    pub revoked: Vec<String>,
    /// Tokens renewed with `auth/token/renew-self`.
    pub renewed: Vec<String>,
    /// The lease of login tokens, in seconds (default 3600; a renewal gives 3600).
    pub login_ttl: Option<u64>,
    pub requests: Vec<Request_>,
    /// How long each answer takes (a remote Vault), so that reads overlap.
    pub latency: Option<std::time::Duration>,
    /// The most requests the fake was answering at one time.
    pub max_in_flight: usize,
    in_flight: usize,
}

pub struct FakeVault {
    pub address: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeVault {
    pub async fn start(mount: &str, kv_version: u8) -> FakeVault {
        let state = Arc::new(Mutex::new(State {
            mount: mount.to_string(),
            kv_version,
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake vault: bind: {e}"));
        let address = format!(
            "http://{}",
            listener
                .local_addr()
                .unwrap_or_else(|e| panic!("fake vault: address: {e}"))
        );
        let shared = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeVault {
            address,
            state,
            server,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a new version of the secret at `relative`.
    pub fn put(&self, relative: &str, data: Value) {
        self.state()
            .secrets
            .entry(relative.to_string())
            .or_default()
            .push(Some(data));
    }

    pub fn token(&self, token: &str, spec: Token) {
        self.state().tokens.insert(token.to_string(), spec);
    }

    /// KV reads (GET under the mount) so far.
    pub fn kv_reads(&self) -> Vec<Request_> {
        let state = self.state();
        let prefix = format!("/v1/{}/", state.mount);
        state
            .requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn errors(status: StatusCode, messages: &[&str]) -> Response<Full<Bytes>> {
    respond(status, json!({ "errors": messages }))
}

fn envelope(data: Value, auth: Value) -> Value {
    json!({
        "request_id": "8b7a6c4e-0000-4000-8000-000000000000",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": auth,
    })
}

fn login(token: &str, ttl: u64) -> Response<Full<Bytes>> {
    respond(
        StatusCode::OK,
        envelope(
            Value::Null,
            json!({
                "client_token": token,
                "accessor": "accessor-1",
                "policies": ["default", "app"],
                "token_policies": ["default", "app"],
                "metadata": {},
                "lease_duration": ttl,
                "renewable": true,
                "entity_id": "",
                "token_type": "service",
                "orphan": true,
            }),
        ),
    )
}

async fn handle(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let latency = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        state.latency
    };
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let response = answer(state, req).await;
    state.lock().unwrap_or_else(|p| p.into_inner()).in_flight -= 1;
    response
}

async fn answer(state: &Mutex<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let token = header("x-vault-token");
    let namespace = header("x-vault-namespace");
    let body: Value = match req.into_body().collect().await {
        Ok(collected) => serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    state.requests.push(Request_ {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        token: token.clone(),
        namespace,
    });
    if state.sealed {
        return errors(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };

    if method == Method::POST && path == "/v1/auth/approle/login" {
        return match state.approles.get(&(field("role_id"), field("secret_id"))) {
            Some(token) => login(token, state.login_ttl.unwrap_or(3600)),
            None => errors(StatusCode::BAD_REQUEST, &["invalid role or secret ID"]),
        };
    }
    if method == Method::POST && path == "/v1/auth/kubernetes/login" {
        return match state.kubernetes.get(&(field("role"), field("jwt"))) {
            Some(token) => login(token, state.login_ttl.unwrap_or(3600)),
            None => errors(StatusCode::FORBIDDEN, &["permission denied"]),
        };
    }

    let valid = token
        .as_ref()
        .and_then(|t| state.tokens.get(t))
        .is_some_and(|t| t.kv_reads_left != Some(0));
    if !valid {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    let token = token.unwrap_or_default();
    if method == Method::POST && path == "/v1/auth/token/revoke-self" {
        state.tokens.remove(&token);
        state.revoked.push(token);
        let mut response = respond(StatusCode::NO_CONTENT, Value::Null);
        *response.body_mut() = Full::new(Bytes::new());
        return response;
    }
    if method == Method::POST && path == "/v1/auth/token/renew-self" {
        state.renewed.push(token.clone());
        // A renewal gives the token a full hour: one renewal is enough for any test.
        return login(&token, 3600);
    }
    if method == Method::GET && path == "/v1/auth/token/lookup-self" {
        if let Some(status) = state.lookup_status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return errors(status, &["lookup failed on the server"]);
        }
        if state.tokens.get(&token).is_some_and(|t| t.lookup_denied) {
            return errors(
                StatusCode::FORBIDDEN,
                &["1 error occurred:\n\t* permission denied\n\n"],
            );
        }
        return respond(
            StatusCode::OK,
            envelope(
                json!({
                    "accessor": "accessor-1",
                    "creation_time": 1_700_000_000u64,
                    "creation_ttl": 3600,
                    "display_name": "token",
                    "entity_id": "",
                    "expire_time": null,
                    "explicit_max_ttl": 0,
                    "id": token,
                    "identity_policies": null,
                    "issue_time": "2026-11-23T17:00:00Z",
                    "meta": null,
                    "num_uses": 0,
                    "orphan": true,
                    "path": "auth/token/create",
                    "policies": ["default", "app"],
                    "renewable": false,
                    "ttl": 3000,
                }),
                Value::Null,
            ),
        );
    }

    let prefix = format!("/v1/{}/", state.mount);
    let Some(rest) = path.strip_prefix(&prefix).map(str::to_string) else {
        return errors(StatusCode::NOT_FOUND, &["no handler for route"]);
    };
    if method != Method::GET {
        return errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]);
    }
    let api_path = format!("{}/{rest}", state.mount);
    if let Some(spec) = state.tokens.get_mut(&token) {
        if let Some(left) = spec.kv_reads_left.as_mut() {
            *left = left.saturating_sub(1);
        }
        if let Some(readable) = &spec.readable {
            if !readable.contains(&api_path) {
                return errors(
                    StatusCode::FORBIDDEN,
                    &["1 error occurred:\n\t* permission denied\n\n"],
                );
            }
        }
    }
    if state.kv_version == 1 {
        return match state
            .secrets
            .get(&rest)
            .and_then(|v| v.last().cloned().flatten())
        {
            Some(data) => respond(StatusCode::OK, envelope(data, Value::Null)),
            None => errors(StatusCode::NOT_FOUND, &[]),
        };
    }
    let Some(relative) = rest.strip_prefix("data/") else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    let Some(versions) = state.secrets.get(relative) else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    let wanted = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("version=")))
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(versions.len());
    let metadata = |deleted: bool| {
        json!({
            "created_time": "2026-11-23T17:00:00.000000000Z",
            "custom_metadata": null,
            "deletion_time": if deleted { "2026-11-23T17:30:00.000000000Z" } else { "" },
            "destroyed": false,
            "version": wanted,
        })
    };
    match versions.get(wanted - 1) {
        Some(Some(data)) => respond(
            StatusCode::OK,
            envelope(
                json!({ "data": data, "metadata": metadata(false) }),
                Value::Null,
            ),
        ),
        // Vault answers a deleted version with 404 and its metadata, without `errors`.
        Some(None) => respond(
            StatusCode::NOT_FOUND,
            envelope(
                json!({ "data": null, "metadata": metadata(true) }),
                Value::Null,
            ),
        ),
        None => errors(StatusCode::NOT_FOUND, &[]),
    }
}
