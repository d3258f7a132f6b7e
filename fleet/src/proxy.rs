//! `flotilla-fleet vault-proxy`: forwards Vault API calls to RustyVault and fills the
//! response-envelope fields that HashiCorp Vault always sends and RustyVault omits, so
//! clients written for Vault (vaultrs) read the answers.
//!
//! It only fills missing envelope fields; it never invents an answer: status codes,
//! `data`, errors and refusals are RustyVault's own. It never logs bodies (they hold
//! secret values).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// Request headers passed on to RustyVault (the rest are hop-by-hop or irrelevant).
const FORWARDED: &[&str] = &[
    "x-vault-token",
    "x-vault-namespace",
    "x-vault-request",
    "x-vault-wrap-ttl",
    "content-type",
];

pub async fn run(listen: SocketAddr, upstream: String) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let http = reqwest::Client::new();
    let upstream = Arc::new(upstream.trim_end_matches('/').to_string());
    loop {
        let (stream, _) = listener.accept().await?;
        let http = http.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| forward(http.clone(), upstream.clone(), req));
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

async fn forward(
    http: reqwest::Client,
    upstream: Arc<String>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = http.request(method, format!("{upstream}{path}"));
    for name in FORWARDED {
        if let Some(value) = req.headers().get(*name) {
            out = out.header(*name, value.clone());
        }
    }
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                format!("reading the request: {e}"),
            ))
        }
    };
    let answer = match out.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return Ok(plain(StatusCode::BAD_GATEWAY, format!("rvault: {e}"))),
    };
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return Ok(plain(StatusCode::BAD_GATEWAY, format!("rvault: {e}"))),
    };
    let mut content_type = content_type.map(|ct| ct.as_bytes().to_vec());
    let bytes = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut envelope)) if status.is_success() => {
            normalise(&mut envelope);
            Bytes::from(Value::Object(envelope).to_string())
        }
        // Vault's errors always carry `{"errors": [...]}`; RustyVault's 404 for a
        // missing path has no body. The status stays RustyVault's.
        _ if !status.is_success() && bytes.iter().all(u8::is_ascii_whitespace) => {
            content_type = Some(b"application/json".to_vec());
            Bytes::from_static(br#"{"errors":[]}"#)
        }
        _ => bytes,
    };
    let mut response = Response::builder().status(status.as_u16());
    if let Some(ct) = content_type {
        response = response.header("content-type", ct);
    }
    Ok(response
        .body(Full::new(bytes))
        .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "bad answer from rvault".into())))
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::json!({ "errors": [text] }).to_string(),
    )));
    *response.status_mut() = status;
    response
}

/// Fills what Vault's envelope always has and RustyVault's lacks. Existing fields are
/// never changed, except a login's empty `data: {}`, which Vault sends as `null`.
pub fn normalise(envelope: &mut Map<String, Value>) {
    if envelope.contains_key("errors") {
        return;
    }
    envelope
        .entry("request_id")
        .or_insert_with(|| Value::String(request_id()));
    envelope.entry("lease_id").or_insert_with(|| "".into());
    envelope.entry("renewable").or_insert(Value::Bool(false));
    envelope.entry("lease_duration").or_insert(0.into());
    envelope.entry("warnings").or_insert(Value::Null);
    envelope.entry("wrap_info").or_insert(Value::Null);
    let is_login = matches!(envelope.get("auth"), Some(Value::Object(_)));
    if let Some(Value::Object(auth)) = envelope.get_mut("auth") {
        auth.entry("accessor").or_insert_with(|| "".into());
        let policies = auth
            .get("policies")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        auth.entry("policies").or_insert_with(|| policies.clone());
        auth.entry("token_policies").or_insert(policies);
        auth.entry("metadata").or_insert(Value::Null);
        auth.entry("lease_duration").or_insert(0.into());
        auth.entry("renewable").or_insert(Value::Bool(false));
        auth.entry("entity_id").or_insert_with(|| "".into());
        auth.entry("token_type").or_insert_with(|| "service".into());
        auth.entry("orphan").or_insert(Value::Bool(true));
    }
    if is_login && matches!(envelope.get("data"), Some(Value::Object(d)) if d.is_empty()) {
        envelope.insert("data".into(), Value::Null);
    }
    envelope.entry("data").or_insert(Value::Null);
    envelope.entry("auth").or_insert(Value::Null);
}

/// A UUID-shaped id, as Vault's; uniqueness is all a client can rely on.
fn request_id() -> String {
    let hex = crate::state::random_token().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{nanos:032x}")
    });
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn login_answer_gets_the_fields_vaultrs_needs() {
        let mut answer = json!({
            "data": {},
            "auth": { "client_token": "t", "policies": ["default"], "lease_duration": 3600, "renewable": true }
        });
        let Value::Object(map) = &mut answer else {
            unreachable!()
        };
        normalise(map);
        assert_eq!(answer["data"], Value::Null);
        assert_eq!(answer["auth"]["token_policies"], json!(["default"]));
        assert_eq!(answer["auth"]["lease_duration"], json!(3600));
        assert_eq!(answer["auth"]["renewable"], json!(true));
        assert_eq!(answer["auth"]["token_type"], json!("service"));
        assert_eq!(answer["request_id"].as_str().map(str::len), Some(36));
        assert_eq!(answer["warnings"], Value::Null);
    }

    #[test]
    fn read_answer_keeps_its_data_and_errors_pass_untouched() {
        let mut answer = json!({ "data": { "password": "x" }, "lease_duration": 60 });
        let Value::Object(map) = &mut answer else {
            unreachable!()
        };
        normalise(map);
        assert_eq!(answer["data"], json!({ "password": "x" }));
        assert_eq!(answer["lease_duration"], json!(60));
        let mut error = json!({ "errors": ["denied"] });
        let Value::Object(map) = &mut error else {
            unreachable!()
        };
        normalise(map);
        assert_eq!(error, json!({ "errors": ["denied"] }));
    }
}
