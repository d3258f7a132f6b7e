//! Vault's `jwt` auth method on the fleet's Vault, as a CI's OIDC issuer would be: a
//! mount of the test's own trusting a key pair the test generates, a role bound to
//! GitHub's claim shape, JWTs signed here; and GitHub Actions' token endpoint, played
//! by a local thread (the one part no real server can stand in for).

use flotilla_fleet::testing::Fleet;
use flotilla_fleet::vault::{Api, Method};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};

/// The repository the JWTs are issued for, and the role binds.
pub const REPOSITORY: &str = "acme/deploy";

/// A `jwt` mount of the test's own on the fleet's Vault, trusting one generated key.
pub struct JwtIssuer {
    pub mount: String,
    key: jsonwebtoken::EncodingKey,
}

impl JwtIssuer {
    /// Mount `jwt-<namespace>`, role `deploy-dev` bound to [`REPOSITORY`] and
    /// `ref: refs/heads/dev` for `audience`, with the fleet's read policy.
    pub async fn start(fleet: &Fleet, namespace: &str, audience: &str) -> JwtIssuer {
        let pair = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("key pair: {e}"));
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
            .unwrap_or_else(|e| panic!("signing key: {e}"));
        let mount = format!("jwt-{namespace}");
        let addr = fleet.vault_addr();
        let api = Api::new(&addr, Some(fleet.vault_token()));
        let call = |method: Method, path: String, body: Value| {
            let api = &api;
            async move {
                api.call_retrying(method.clone(), &path, Some(body))
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            }
        };
        call(
            Method::POST,
            format!("sys/auth/{mount}"),
            json!({"type": "jwt"}),
        )
        .await;
        call(
            Method::POST,
            format!("auth/{mount}/config"),
            json!({
                "jwt_validation_pubkeys": [pair.public_key_pem()],
                "bound_issuer": "https://token.actions.githubusercontent.com",
            }),
        )
        .await;
        call(
            Method::POST,
            format!("auth/{mount}/role/deploy-dev"),
            json!({
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": [audience],
                "bound_claims": {"repository": REPOSITORY, "ref": "refs/heads/dev"},
                "token_policies": [flotilla_fleet::vault::READ_POLICY],
                "token_ttl": "10m",
            }),
        )
        .await;
        JwtIssuer { mount, key }
    }

    /// A JWT as GitHub Actions issues one for a job of `REPOSITORY` on `branch`.
    pub fn token(&self, branch: &str, audience: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": format!("repo:{REPOSITORY}:ref:refs/heads/{branch}"),
            "aud": audience,
            "repository": REPOSITORY,
            "ref": format!("refs/heads/{branch}"),
            "environment": "dev",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 600,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &self.key,
        )
        .unwrap_or_else(|e| panic!("signing: {e}"))
    }

    /// The live tokens this mount's logins made: none once every run revoked its own.
    pub async fn live_logins(&self, fleet: &Fleet) -> usize {
        let addr = fleet.vault_addr();
        let api = Api::new(&addr, Some(fleet.vault_token()));
        let list = api
            .call(Method::GET, "auth/token/accessors?list=true", None)
            .await
            .unwrap_or_else(|e| panic!("listing accessors: {e}"));
        let mut live = 0;
        for accessor in list
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            // An accessor revoked meanwhile (another test's run) answers an error.
            if let Ok(found) = api
                .call(
                    Method::POST,
                    "auth/token/lookup-accessor",
                    Some(json!({ "accessor": accessor })),
                )
                .await
            {
                if found.pointer("/data/path").and_then(Value::as_str)
                    == Some(&format!("auth/{}/login", self.mount))
                {
                    live += 1;
                }
            }
        }
        live
    }
}

/// GitHub Actions' token endpoint, played by a thread: answers a GET that carries the
/// request token as a bearer with `{"value": JWT}` for the audience asked, 401 else.
/// Returns its URL (with `?api-version=2.0`, as GitHub's has a query already) and the
/// request lines it saw.
pub fn fake_token_endpoint(
    request_token: &'static str,
    jwt: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if request.is_empty() {
                    request = line.trim().to_string();
                }
                authorized |= line
                    .trim()
                    .eq_ignore_ascii_case(&format!("authorization: Bearer {request_token}"));
            }
            let (status, body) = if authorized {
                let audience = request
                    .split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("audience="))
                    .unwrap_or("")
                    .to_string();
                (
                    "200 OK",
                    json!({ "value": jwt, "audience_asked": audience }).to_string(),
                )
            } else {
                (
                    "401 Unauthorized",
                    json!({"message": "Bad credentials"}).to_string(),
                )
            };
            log.lock().unwrap_or_else(|p| p.into_inner()).push(request);
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (
        format!("http://127.0.0.1:{port}/token?api-version=2.0"),
        seen,
    )
}
