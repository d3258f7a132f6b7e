//! Vault's `jwt` auth method on the fleet's Vault, as a CI's OIDC issuer would be: a
//! mount of the test's own trusting a key pair the test generates, a role bound to
//! GitHub's or GitLab's claim shape, JWTs of that shape signed here; and GitHub Actions' token endpoint, played
//! by a local thread (the one part no real server can stand in for).

use flotilla_fleet::testing::Fleet;
use flotilla_fleet::vault::{Api, Method};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};

/// The repository (GitHub) or project (GitLab) the JWTs are issued for, and the role binds.
pub const REPOSITORY: &str = "acme/deploy";

/// Whose ID tokens a mount stands for: the claims its role binds and its tokens carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ci {
    /// GitHub Actions: `repository`, `ref: refs/heads/BRANCH`.
    GitHub,
    /// GitLab CI's `id_tokens`: `project_path`, `namespace_path`, `ref: BRANCH`,
    /// `ref_type: branch`.
    GitLab,
}

impl Ci {
    fn issuer(self) -> &'static str {
        match self {
            Ci::GitHub => "https://token.actions.githubusercontent.com",
            Ci::GitLab => "https://gitlab.example.com",
        }
    }

    /// What role `deploy-dev` binds: the dev branch of [`REPOSITORY`].
    fn bound_claims(self) -> Value {
        match self {
            Ci::GitHub => json!({"repository": REPOSITORY, "ref": "refs/heads/dev"}),
            Ci::GitLab => json!({
                "project_path": REPOSITORY,
                "namespace_path": "acme",
                "ref": "dev",
                "ref_type": "branch",
            }),
        }
    }
}

/// A `jwt` mount of the test's own on the fleet's Vault, trusting one generated key.
pub struct JwtIssuer {
    pub mount: String,
    pub ci: Ci,
    key: jsonwebtoken::EncodingKey,
}

impl JwtIssuer {
    /// Mount `jwt-<namespace>`, role `deploy-dev` bound to GitHub's claims for
    /// [`REPOSITORY`] and `ref: refs/heads/dev`, for `audience`, with the fleet's read
    /// policy.
    pub async fn start(fleet: &Fleet, namespace: &str, audience: &str) -> JwtIssuer {
        Self::start_for(fleet, namespace, audience, Ci::GitHub).await
    }

    /// The same for `ci`'s claim shape.
    pub async fn start_for(fleet: &Fleet, namespace: &str, audience: &str, ci: Ci) -> JwtIssuer {
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
                "bound_issuer": ci.issuer(),
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
                "bound_claims": ci.bound_claims(),
                "token_policies": [flotilla_fleet::vault::READ_POLICY],
                "token_ttl": "10m",
            }),
        )
        .await;
        JwtIssuer { mount, ci, key }
    }

    /// Writes role `name` of this mount as `body` (a role `secrets policy` printed).
    pub async fn write_role(&self, fleet: &Fleet, name: &str, body: Value) {
        let addr = fleet.vault_addr();
        let api = Api::new(&addr, Some(fleet.vault_token()));
        let path = format!("auth/{}/role/{name}", self.mount);
        api.call_retrying(Method::POST, &path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    }

    /// The claims of a JWT the CI issues a job of `REPOSITORY` on `branch`, in its shape.
    pub fn claims(&self, branch: &str, audience: &str) -> serde_json::Map<String, Value> {
        let now = chrono::Utc::now().timestamp();
        let claims = match self.ci {
            Ci::GitHub => json!({
                "iss": self.ci.issuer(),
                "sub": format!("repo:{REPOSITORY}:ref:refs/heads/{branch}"),
                "aud": audience,
                "repository": REPOSITORY,
                "repository_owner": "acme",
                "ref": format!("refs/heads/{branch}"),
                "ref_type": "branch",
                "event_name": "push",
                "environment": "dev",
            }),
            // As GitLab documents its ID token for a pipeline of a branch.
            Ci::GitLab => json!({
                "iss": self.ci.issuer(),
                "sub": format!("project_path:{REPOSITORY}:ref_type:branch:ref:{branch}"),
                "aud": audience,
                "namespace_id": "72",
                "namespace_path": "acme",
                "project_id": "1841",
                "project_path": REPOSITORY,
                "user_login": "alice",
                "pipeline_source": "push",
                "ref": branch,
                "ref_type": "branch",
                "ref_protected": "true",
                "environment": "dev",
            }),
        };
        let mut claims = match claims {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), (now - 5).into());
        claims.insert("exp".into(), (now + 600).into());
        claims
    }

    /// A JWT as the CI issues one for a job of `REPOSITORY` on `branch`.
    pub fn token(&self, branch: &str, audience: &str) -> String {
        self.sign(&self.claims(branch, audience))
    }

    /// `claims`, signed with the key the mount trusts.
    pub fn sign(&self, claims: &serde_json::Map<String, Value>) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            claims,
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
