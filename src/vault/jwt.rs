//! Where the JWT of a `jwt` login comes from: a variable, a file, or GitHub Actions'
//! token endpoint, asked as HashiCorp's vault-action asks it (`GET
//! $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD` with the request token as a bearer,
//! answering `{"value": JWT}`). The JWT and the request token are registered with the
//! scrubber before anything could print them.

use super::credentials::{credential, read_secret_file, VaultEnv};
use super::error::error_chain;
use super::error::VaultError;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// The variables GitHub Actions sets in a job with `permissions: id-token: write`.
pub const REQUEST_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const REQUEST_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// How long GitHub's token endpoint may take: as long as one request to Vault.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);

/// The JWT of a `jwt` login, and where it came from (for messages: a variable name, a
/// file, the endpoint; never the token).
pub(super) async fn jwt_for_login(
    env_file: &Path,
    env: &VaultEnv,
    jwt_env: Option<&str>,
    jwt_file: Option<&str>,
    audience: Option<&str>,
) -> Result<(Zeroizing<String>, String), VaultError> {
    if let Some(found) = credential(env_file, env, "vault.auth.jwt", jwt_env, None)? {
        return Ok(found);
    }
    if let Some(file) = jwt_file {
        let jwt = read_secret_file(env_file, "vault.auth.jwt_file", file)?;
        return Ok((jwt, file.to_string()));
    }
    let jwt = from_github_endpoint(env_file, env, audience).await?;
    Ok((
        jwt,
        format!("GitHub Actions' token endpoint ({REQUEST_URL_VAR})"),
    ))
}

/// Asks GitHub Actions' token endpoint for an ID token for `audience`.
async fn from_github_endpoint(
    env_file: &Path,
    env: &VaultEnv,
    audience: Option<&str>,
) -> Result<Zeroizing<String>, VaultError> {
    let unset = |var: &str| VaultError::Setting {
        origin: format!("{}: vault.auth", env_file.display()),
        message: format!(
            "method jwt without jwt_env or jwt_file takes the JWT from GitHub Actions' token \
             endpoint, and {var} is not set (the job needs `permissions: id-token: write`; \
             elsewhere give jwt_env or jwt_file)"
        ),
    };
    let url = env
        .get(REQUEST_URL_VAR)
        .ok_or_else(|| unset(REQUEST_URL_VAR))?;
    let request_token = env
        .get(REQUEST_TOKEN_VAR)
        .map(|token| Zeroizing::new(token.trim().to_string()))
        .ok_or_else(|| unset(REQUEST_TOKEN_VAR))?;
    // A credential of its own: it mints ID tokens for any audience for the job's life.
    crate::redact::register(&request_token);
    let failed = |reason: String| VaultError::TokenSource {
        source_name: format!("GitHub Actions' token endpoint ({REQUEST_URL_VAR})"),
        reason,
    };
    let mut url = url::Url::parse(url).map_err(|err| VaultError::Setting {
        origin: REQUEST_URL_VAR.to_string(),
        message: format!("not a URL: {err}"),
    })?;
    if let Some(audience) = audience {
        url.query_pairs_mut().append_pair("audience", audience);
    }
    let client = reqwest::Client::builder()
        .timeout(ENDPOINT_TIMEOUT)
        .build()
        .map_err(|err| failed(error_chain(&err)))?;
    let answer = client
        .get(url)
        .bearer_auth(request_token.as_str())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| failed(error_chain(&err.without_url())))?;
    let status = answer.status();
    let body = Zeroizing::new(
        answer
            .text()
            .await
            .map_err(|err| failed(error_chain(&err.without_url())))?,
    );
    if !status.is_success() {
        return Err(failed(format!(
            "HTTP {status}{}",
            endpoint_message(&body)
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )));
    }
    let jwt = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|answer| answer.get("value")?.as_str().map(str::to_string))
        .filter(|jwt| !jwt.trim().is_empty())
        .map(|jwt| Zeroizing::new(jwt.trim().to_string()))
        .ok_or_else(|| failed("the answer has no `value` (the ID token)".to_string()))?;
    crate::redact::register(&jwt);
    Ok(jwt)
}

/// The `message` of an error answer from GitHub, if it has one.
fn endpoint_message(body: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_str(body).ok()?;
    let message = answer.get("message")?.as_str()?;
    Some(crate::redact::scrub(message.trim()))
}

/// The claims a role binds, as CI systems name them (GitHub's, GitLab's, the standard
/// ones): the only ones a refusal repeats. Others may carry what a job's author put in
/// (GitHub's `workflow` name, GitLab's `user_email`), and the token itself never.
const CLAIMS_SHOWN: &[&str] = &[
    "iss",
    "aud",
    "sub",
    "repository",
    "ref",
    "ref_type",
    "environment",
    "base_ref",
    "event_name",
    "job_workflow_ref",
    "project_path",
    "namespace_path",
    "pipeline_source",
];

/// What the JWT of a refused login claims, for the refusal: `ref=refs/heads/feature-x,
/// aud=vault, ...` from its payload, read without checking the signature (Vault did;
/// this only says what was presented, so that the user can hold it against the role's
/// bound claims, which a refused login cannot read). `None` when the payload does not
/// decode or holds none of [`CLAIMS_SHOWN`].
pub(super) fn presented_claims(jwt: &str) -> Option<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    let shown: Vec<String> = CLAIMS_SHOWN
        .iter()
        .filter_map(|name| {
            let value = match claims.get(*name)? {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            // A claim is the CI's, but a token is untrusted input: one line, bounded.
            let value: String = value
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            Some(format!("{name}={value:?}"))
        })
        .collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// The `jwt` role an operator writes next to the policy `secrets policy` prints, as HCL
/// comments (the output stays a policy `vault policy write` takes): the claims that pin
/// a CI job to this environment's branch, in GitHub's shape when the JWT comes from
/// GitHub's endpoint, else GitLab's. Not `environment`: a CI puts it in the token only
/// for a job that declares a CI environment, which the recipes' jobs need not (the
/// header says how to add it). `policy_name` is the name the policy is written under.
/// `None` unless the environment logs in with `jwt`.
pub fn role_for_policy(
    env: &crate::config::Environment,
    env_file: &Path,
    policy_name: &str,
) -> Option<String> {
    let crate::config::VaultAuth::Jwt {
        role,
        mount,
        jwt_env,
        jwt_file,
        audience,
    } = &env.vault.as_ref()?.auth
    else {
        return None;
    };
    let mount = mount.as_deref().unwrap_or("jwt");
    let github = jwt_env.is_none() && jwt_file.is_none();
    let mut claims = serde_json::Map::new();
    let (repository, shape) = if github {
        ("repository", "GitHub Actions'")
    } else {
        ("project_path", "GitLab CI's")
    };
    claims.insert(repository.into(), "OWNER/REPO".into());
    if let Some(branch) = &env.branch {
        if github {
            claims.insert("ref".into(), format!("refs/heads/{branch}").into());
        } else {
            claims.insert("ref".into(), branch.clone().into());
            claims.insert("ref_type".into(), "branch".into());
        }
    }
    let audience = match (audience, github) {
        (Some(audience), _) => audience.clone(),
        (None, true) => "https://github.com/OWNER".to_string(),
        (None, false) => "AUDIENCE".to_string(),
    };
    let body = serde_json::json!({
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": [audience],
        "bound_claims_type": "string",
        "bound_claims": claims,
        "token_policies": [policy_name],
        "token_ttl": "15m",
        "token_max_ttl": "1h",
    });
    let body = serde_json::to_string_pretty(&body).unwrap_or_default();
    let mut text = format!(
        "\n# The Vault role of `vault.auth.method: jwt` ({}): role {role} at auth/{mount},\n\
         # bound to {shape} claims for environment {}{}. Its tokens get the policy above:\n\
         #   vault policy write {policy_name} POLICY_FILE\n\
         #   vault write auth/{mount}/role/{role} @role.json   (the JSON below, without the #)\n\
         # Replace OWNER/REPO{}: a role that binds no repository takes any repository's token.\n\
         # Jobs that declare a CI environment (`environment:`) may be bound to it too:\n\
         # add \"environment\": \"{}\" to bound_claims.\n",
        env_file.display(),
        env.name,
        env.branch
            .as_ref()
            .map(|b| format!(" and branch {b}"))
            .unwrap_or_default(),
        if audience.contains("OWNER") || audience == "AUDIENCE" {
            " and the audience"
        } else {
            ""
        },
        env.name,
    );
    for line in body.lines() {
        text.push_str("# ");
        text.push_str(line);
        text.push('\n');
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_token_source_is_the_variable_the_file_or_the_endpoint_each_named_when_missing() {
        let env_file = Path::new("environments/prod.yaml");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("id-token");
        std::fs::write(&file, "eyJ.file-jwt-canary.sig\n").unwrap_or_else(|e| panic!("{e}"));
        let file = file.to_string_lossy().into_owned();
        let env = VaultEnv::from_vars([("CI_JOB_JWT", "eyJ.env-jwt-canary.sig")]);
        let got = |jwt_env, jwt_file| {
            let env = env.clone();
            async move {
                jwt_for_login(env_file, &env, jwt_env, jwt_file, None)
                    .await
                    .map(|(jwt, origin)| (jwt.to_string(), origin))
                    .map_err(|e| e.to_string())
            }
        };
        assert_eq!(
            got(Some("CI_JOB_JWT"), None).await,
            Ok((
                "eyJ.env-jwt-canary.sig".to_string(),
                "CI_JOB_JWT".to_string()
            ))
        );
        assert_eq!(
            got(None, Some(file.as_str())).await,
            Ok(("eyJ.file-jwt-canary.sig".to_string(), file.clone()))
        );
        assert_eq!(
            got(Some("VAULT_ID_TOKEN"), None).await,
            Err(
                "environments/prod.yaml: vault.auth.jwt_env: the variable VAULT_ID_TOKEN is not set"
                    .to_string()
            )
        );
        let unreadable = got(None, Some("/nonexistent/id-token"))
            .await
            .err()
            .unwrap_or_default();
        assert!(
            unreadable.starts_with(
                "environments/prod.yaml: vault.auth.jwt_file: cannot read /nonexistent/id-token: "
            ),
            "{unreadable}"
        );
        let no_endpoint = got(None, None).await.err().unwrap_or_default();
        assert!(
            no_endpoint.starts_with("environments/prod.yaml: vault.auth: method jwt without jwt_env or jwt_file takes the JWT from GitHub Actions' token endpoint, and ACTIONS_ID_TOKEN_REQUEST_URL is not set"),
            "{no_endpoint}"
        );
        let said = crate::redact::scrub("eyJ.env-jwt-canary.sig eyJ.file-jwt-canary.sig");
        assert!(!said.contains("canary"), "{said}");
    }

    #[test]
    fn a_refusal_shows_the_claims_a_role_binds_never_the_token_or_other_claims() {
        use base64::Engine;
        let part = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = format!(
            "{}.{}.c2lnbmF0dXJl",
            part(serde_json::json!({"alg": "ES256"})),
            part(serde_json::json!({
                "project_path": "acme/deploy",
                "ref": "v1.2",
                "ref_type": "tag",
                "aud": ["https://vault.example.com", "other"],
                "user_email": "dev@example.com",
                "exp": 1,
                "environment": "prod\u{1b}[2J",
            }))
        );
        assert_eq!(
            presented_claims(&jwt).as_deref(),
            Some(
                "aud=\"https://vault.example.com,other\", ref=\"v1.2\", ref_type=\"tag\", \
                 environment=\"prod[2J\", project_path=\"acme/deploy\""
            )
        );
        assert_eq!(presented_claims("not-a-jwt"), None);
        assert_eq!(presented_claims("a.bm90IGpzb24.c"), None);
    }

    #[tokio::test]
    async fn an_endpoint_that_does_not_answer_is_named() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let env = VaultEnv::from_vars([
            (
                REQUEST_URL_VAR,
                format!("http://127.0.0.1:{port}/token?api-version=2.0"),
            ),
            (REQUEST_TOKEN_VAR, "request-token-canary-91c3".to_string()),
        ]);
        let err = jwt_for_login(Path::new("x.yaml"), &env, None, None, Some("vault"))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("the JWT for Vault's jwt login could not be had from GitHub Actions' token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): "),
            "{err}"
        );
        assert!(!err.contains("canary"), "{err}");
        assert!(!crate::redact::scrub("request-token-canary-91c3").contains("canary"));
    }
}
