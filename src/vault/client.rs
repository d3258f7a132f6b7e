//! The logged-in Vault client of one run: settings from the environment file and the
//! variables the vault CLI reads, the three login methods, and KV v1/v2 reads that
//! classify every failure into a [`ReadProblem`].

use super::error::{ReadProblem, VaultError};
use crate::config::{KvConfig, VaultAuth, VaultConfig};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

/// How long one request to Vault may take: a Vault that does not answer must not hold a
/// deploy for minutes before any cluster is touched.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a Kubernetes pod finds its service-account token.
pub const DEFAULT_JWT_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The process variables Vault settings come from (`VAULT_ADDR`, `VAULT_TOKEN`, the
/// AppRole variables an environment names, `HOME` for `~/.vault-token`), captured once so
/// that tests can pass their own without touching the process environment. Debug shows
/// variable names only.
#[derive(Clone, Default)]
pub struct VaultEnv {
    vars: BTreeMap<String, String>,
}

impl VaultEnv {
    pub fn from_process() -> Self {
        VaultEnv {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        VaultEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; set-but-empty counts as unset, as the vault CLI does.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for VaultEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultEnv")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The key/value map of one secret as Vault returned it. Debug shows the keys only.
#[derive(Clone, Default)]
pub struct SecretData(Map<String, Value>);

impl SecretData {
    pub fn new(map: Map<String, Value>) -> Self {
        SecretData(map)
    }

    /// The string under `key`, or why there is none.
    pub fn string(&self, key: &str) -> Result<super::SecretValue, ReadProblem> {
        match self.0.get(key) {
            Some(Value::String(text)) => Ok(super::SecretValue::new(text.clone())),
            Some(other) => Err(ReadProblem::NotString {
                found: json_kind(other),
            }),
            None => Err(ReadProblem::MissingKey {
                available: self.0.keys().cloned().collect(),
            }),
        }
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A Vault client logged in for one run, with the environment's KV settings. Counts
/// the KV reads it makes (tests check that each distinct path is read once).
pub struct VaultSession {
    client: VaultClient,
    address: String,
    kv: KvConfig,
    /// Where the token came from, for messages: `VAULT_TOKEN`, `approle login`, ...
    token_origin: String,
    reads: AtomicUsize,
}

impl fmt::Debug for VaultSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSession")
            .field("address", &self.address)
            .field("kv", &self.kv)
            .field("token_origin", &self.token_origin)
            .finish_non_exhaustive()
    }
}

impl VaultSession {
    /// Builds the client from `config` (read from `env_file`) and the variables, and logs
    /// in. Bad settings are [`VaultError::Setting`] (exit 2); a refused login, a sealed or
    /// unreachable Vault are exit 3.
    pub async fn connect(
        config: &VaultConfig,
        env_file: &Path,
        env: &VaultEnv,
    ) -> Result<VaultSession, VaultError> {
        let (url, address) = vault_address(config, env_file, env)?;
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(url.as_str())
            .token("")
            .timeout(Some(REQUEST_TIMEOUT))
            .ca_certs(ca_certs(env)?)
            .verify(!env.get("VAULT_SKIP_VERIFY").is_some_and(is_truthy));
        // The variable wins over the file, as VAULT_ADDR does.
        if let Some(namespace) = env.get("VAULT_NAMESPACE").or(config.namespace.as_deref()) {
            settings.set_namespace(namespace.to_string());
        }
        let settings = settings.build().map_err(|err| VaultError::Setting {
            origin: format!("Vault client for {address}"),
            message: err.to_string(),
        })?;
        let client = VaultClient::new(settings).map_err(|err| VaultError::Setting {
            origin: "VAULT_CACERT/VAULT_CAPATH".to_string(),
            message: error_chain(&err),
        })?;

        let mut session = VaultSession {
            client,
            address,
            kv: config.kv.clone(),
            token_origin: String::new(),
            reads: AtomicUsize::new(0),
        };
        session.login(&config.auth, env_file, env).await?;
        Ok(session)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn kv(&self) -> &KvConfig {
        &self.kv
    }

    /// KV reads made so far (logins and token checks are not counted).
    pub fn read_count(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    async fn login(
        &mut self,
        auth: &VaultAuth,
        env_file: &Path,
        env: &VaultEnv,
    ) -> Result<(), VaultError> {
        match auth {
            VaultAuth::Token => {
                let (token, origin) = token_from_env(env_file, env)?;
                self.client.set_token(&token);
                self.token_origin = origin;
                // A bad token would otherwise show up as "permission denied" on the first
                // secret, which sends people to the wrong fix.
                match vaultrs::token::lookup_self(&self.client).await {
                    Ok(_) => Ok(()),
                    Err(err) => match self.classify(err, None) {
                        // 2xx with a body vaultrs cannot parse still means "token valid".
                        ReadProblem::Unexpected { .. } => Ok(()),
                        ReadProblem::PermissionDenied { detail, .. }
                        | ReadProblem::TokenExpired { origin: detail } => Err(VaultError::Login {
                            address: self.address.clone(),
                            method: "token",
                            origin: self.token_origin.clone(),
                            reason: format!(
                                "the token is invalid, expired, or lacks the default policy \
                                 (auth/token/lookup-self: {detail})"
                            ),
                        }),
                        problem => Err(VaultError::Server { problem }),
                    },
                }
            }
            VaultAuth::AppRole {
                mount,
                role_id_env,
                secret_id_env,
                role_id_file,
                secret_id_file,
            } => {
                let mount = mount.as_deref().unwrap_or("approle");
                let Some((role_id, role_origin)) = credential(
                    env_file,
                    env,
                    "vault.auth.role_id",
                    role_id_env.as_deref(),
                    role_id_file.as_deref(),
                )?
                else {
                    return Err(VaultError::Setting {
                        origin: format!("{}: vault.auth", env_file.display()),
                        message: "method approle needs role_id_env or role_id_file".to_string(),
                    });
                };
                // A role may be bound without a secret id (bind_secret_id=false).
                let (secret_id, secret_origin) = credential(
                    env_file,
                    env,
                    "vault.auth.secret_id",
                    secret_id_env.as_deref(),
                    secret_id_file.as_deref(),
                )?
                .unwrap_or_else(|| (Zeroizing::new(String::new()), "none".to_string()));
                let origin =
                    format!("auth/{mount} login, role id {role_origin}, secret id {secret_origin}");
                let answer =
                    vaultrs::auth::approle::login(&self.client, mount, &role_id, &secret_id).await;
                self.finish_login(answer, "approle", origin)
            }
            VaultAuth::Kubernetes {
                role,
                mount,
                jwt_file,
            } => {
                let mount = mount.as_deref().unwrap_or("kubernetes");
                let jwt_file = jwt_file.as_deref().unwrap_or(DEFAULT_JWT_FILE);
                let jwt = read_secret_file(env_file, "vault.auth.jwt_file", jwt_file)?;
                let origin = format!("auth/{mount} login, role {role}, JWT from {jwt_file}");
                let answer =
                    vaultrs::auth::kubernetes::login(&self.client, mount, role, &jwt).await;
                self.finish_login(answer, "kubernetes", origin)
            }
        }
    }

    fn finish_login(
        &mut self,
        answer: Result<vaultrs::api::AuthInfo, ClientError>,
        method: &'static str,
        origin: String,
    ) -> Result<(), VaultError> {
        match answer {
            Ok(info) => {
                let token = Zeroizing::new(info.client_token);
                self.client.set_token(&token);
                self.token_origin = format!("{method} login");
                tracing::debug!(address = %self.address, method, "logged in to Vault");
                Ok(())
            }
            Err(err) => match self.classify(err, None) {
                problem @ (ReadProblem::Sealed { .. } | ReadProblem::Unreachable { .. }) => {
                    Err(VaultError::Server { problem })
                }
                problem => Err(VaultError::Login {
                    address: self.address.clone(),
                    method,
                    origin,
                    reason: login_reason(&problem),
                }),
            },
        }
    }

    /// Reads the secret at `relative` under the KV mount (at `version` on KV v2). A 403
    /// is told apart: a token that no longer works at all (expired mid-run) against a
    /// policy that does not allow this path.
    pub async fn read(
        &self,
        relative: &str,
        version: Option<u64>,
    ) -> Result<SecretData, ReadProblem> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mount = self.kv.mount.as_str();
        tracing::debug!(
            mount,
            path = relative,
            ?version,
            "reading a secret from Vault"
        );
        let answer = if self.kv.version == 2 {
            match version {
                Some(v) => {
                    vaultrs::kv2::read_version::<Value>(&self.client, mount, relative, v).await
                }
                None => vaultrs::kv2::read::<Value>(&self.client, mount, relative).await,
            }
        } else {
            vaultrs::kv1::get_raw(&self.client, mount, relative)
                .await
                .map(|answer| answer.data)
        };
        let problem = match answer {
            Ok(Value::Object(map)) => return Ok(SecretData::new(map)),
            Ok(other) => ReadProblem::Unexpected {
                address: self.address.clone(),
                detail: format!(
                    "the secret's data is {}, not a key/value map",
                    json_kind(&other)
                ),
            },
            Err(err) => self.classify(err, version),
        };
        match problem {
            ReadProblem::PermissionDenied { detail, .. } => {
                if self.token_still_valid().await {
                    Err(ReadProblem::PermissionDenied {
                        api_path: self.api_path(relative),
                        detail,
                    })
                } else {
                    Err(ReadProblem::TokenExpired {
                        origin: self.token_origin.clone(),
                    })
                }
            }
            other => Err(other),
        }
    }

    /// The path a policy names for a secret: KV v2 keeps data under `<mount>/data/`.
    pub fn api_path(&self, relative: &str) -> String {
        api_path(&self.kv, relative)
    }

    async fn token_still_valid(&self) -> bool {
        match vaultrs::token::lookup_self(&self.client).await {
            Ok(_) => true,
            Err(err) => !matches!(
                self.classify(err, None),
                ReadProblem::PermissionDenied { .. }
            ),
        }
    }

    /// Sorts a vaultrs error into what a user can act on. Vault's own error texts are
    /// kept (they never hold values); the bodies of successful answers never are.
    fn classify(&self, err: ClientError, version: Option<u64>) -> ReadProblem {
        let address = self.address.clone();
        let (code, messages) = match &err {
            ClientError::APIError { code, errors } => (*code, tidy_messages(errors.iter())),
            ClientError::RestClientError {
                source: rustify::errors::ClientError::ServerResponseError { code, content },
            } => (*code, error_messages(content.as_deref())),
            ClientError::RestClientError {
                source: rustify::errors::ClientError::RequestError { .. },
            } => {
                return ReadProblem::Unreachable {
                    address,
                    reason: error_chain(&err),
                }
            }
            _ => {
                return ReadProblem::Unexpected {
                    address,
                    detail: error_chain(&err),
                }
            }
        };
        let detail = if messages.is_empty() {
            format!("HTTP {code}")
        } else {
            format!("HTTP {code}: {messages}")
        };
        match code {
            404 => match version {
                Some(v) => ReadProblem::MissingVersion(v),
                None => ReadProblem::MissingPath,
            },
            401 | 403 => ReadProblem::PermissionDenied {
                api_path: String::new(),
                detail,
            },
            503 => ReadProblem::Sealed { address },
            _ => ReadProblem::Unexpected { address, detail },
        }
    }
}

/// The path a policy names for a secret at `relative` under the KV mount.
pub fn api_path(kv: &KvConfig, relative: &str) -> String {
    if kv.version == 2 {
        format!("{}/data/{relative}", kv.mount)
    } else {
        format!("{}/{relative}", kv.mount)
    }
}

fn login_reason(problem: &ReadProblem) -> String {
    match problem {
        ReadProblem::PermissionDenied { detail, .. } | ReadProblem::Unexpected { detail, .. } => {
            detail.clone()
        }
        ReadProblem::MissingPath => "no such auth method mounted (HTTP 404)".to_string(),
        other => other.to_string(),
    }
}

fn vault_address(
    config: &VaultConfig,
    env_file: &Path,
    env: &VaultEnv,
) -> Result<(url::Url, String), VaultError> {
    let (value, origin) = match env.get("VAULT_ADDR") {
        Some(value) => (value.to_string(), "VAULT_ADDR".to_string()),
        None => match &config.address {
            Some(value) => (
                value.clone(),
                format!("{}: vault.address", env_file.display()),
            ),
            None => {
                return Err(VaultError::NoAddress {
                    file: env_file.to_path_buf(),
                })
            }
        },
    };
    // vaultrs's builder panics on an address it cannot parse: check it first.
    match url::Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok((url, value)),
        Ok(url) => Err(VaultError::Setting {
            origin,
            message: format!(
                "{value:?} is not a Vault address: the scheme must be http or https, with a host (got scheme {:?})",
                url.scheme()
            ),
        }),
        Err(err) => Err(VaultError::Setting {
            origin,
            message: format!("{value:?} is not a Vault address: {err}"),
        }),
    }
}

fn is_truthy(value: &str) -> bool {
    !matches!(value.to_ascii_lowercase().as_str(), "0" | "f" | "false")
}

/// `VAULT_CACERT` (a PEM bundle) and `VAULT_CAPATH` (a folder of them), checked here so a
/// wrong path is named before vaultrs reads it.
fn ca_certs(env: &VaultEnv) -> Result<Vec<String>, VaultError> {
    let mut certs = Vec::new();
    if let Some(file) = env.get("VAULT_CACERT") {
        std::fs::metadata(file).map_err(|err| VaultError::Setting {
            origin: format!("VAULT_CACERT={file}"),
            message: format!("cannot read the CA bundle: {err}"),
        })?;
        certs.push(file.to_string());
    }
    if let Some(dir) = env.get("VAULT_CAPATH") {
        let entries = std::fs::read_dir(dir).map_err(|err| VaultError::Setting {
            origin: format!("VAULT_CAPATH={dir}"),
            message: format!("cannot list the CA folder: {err}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                certs.push(path.to_string_lossy().into_owned());
            }
        }
    }
    Ok(certs)
}

/// `VAULT_TOKEN`, else `~/.vault-token`, as the vault CLI looks.
fn token_from_env(
    env_file: &Path,
    env: &VaultEnv,
) -> Result<(Zeroizing<String>, String), VaultError> {
    if let Some(token) = env.get("VAULT_TOKEN") {
        return Ok((
            Zeroizing::new(token.trim().to_string()),
            "VAULT_TOKEN".to_string(),
        ));
    }
    if let Some(home) = env.get("HOME") {
        let file = PathBuf::from(home).join(".vault-token");
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => {
                let token = Zeroizing::new(text.trim().to_string());
                drop(Zeroizing::new(text));
                return Ok((token, file.display().to_string()));
            }
            Ok(_) => {
                return Err(VaultError::Setting {
                    origin: file.display().to_string(),
                    message: "the token file is empty".to_string(),
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(VaultError::Setting {
                    origin: file.display().to_string(),
                    message: format!("cannot read the token file: {err}"),
                })
            }
        }
    }
    Err(VaultError::Setting {
        origin: format!("{}: vault.auth", env_file.display()),
        message: "method token needs a Vault token: set VAULT_TOKEN or write ~/.vault-token \
                  (or use method approle or kubernetes)"
            .to_string(),
    })
}

/// An AppRole id from the variable the environment names (it must be set), or the file
/// it names; `None` when it names neither.
fn credential(
    env_file: &Path,
    env: &VaultEnv,
    field: &str,
    var: Option<&str>,
    file: Option<&str>,
) -> Result<Option<(Zeroizing<String>, String)>, VaultError> {
    if let Some(name) = var {
        return match env.get(name) {
            Some(value) => Ok(Some((
                Zeroizing::new(value.trim().to_string()),
                name.to_string(),
            ))),
            None => Err(VaultError::Setting {
                origin: format!("{}: {field}_env", env_file.display()),
                message: format!("the variable {name} is not set"),
            }),
        };
    }
    match file {
        Some(file) => {
            let field = format!("{field}_file");
            Ok(Some((
                read_secret_file(env_file, &field, file)?,
                file.to_string(),
            )))
        }
        None => Ok(None),
    }
}

/// A credential kept in a file (an AppRole id, a service-account JWT); relative paths
/// are relative to the working folder, as the vault CLI takes them.
fn read_secret_file(
    env_file: &Path,
    field: &str,
    file: &str,
) -> Result<Zeroizing<String>, VaultError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(file).map_err(|err| VaultError::Setting {
                origin: format!("{}: {field}", env_file.display()),
                message: format!("cannot read {file}: {err}"),
            })?,
        );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(VaultError::Setting {
            origin: format!("{}: {field}", env_file.display()),
            message: format!("{file} is empty"),
        });
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

/// The `errors` list of a Vault error body, or the `error` text RustyVault sends.
fn error_messages(body: Option<&str>) -> String {
    let Some(body) = body else {
        return String::new();
    };
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => {
            if let Some(Value::Array(errors)) = map.get("errors") {
                tidy_messages(errors.iter().filter_map(Value::as_str))
            } else if let Some(Value::String(error)) = map.get("error") {
                tidy_messages([error])
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// Vault's error texts on one line. Vault wraps most in a multierror ("1 error occurred:
/// \n\t* permission denied\n\n"): keep the items only.
fn tidy_messages<S: AsRef<str>>(messages: impl IntoIterator<Item = S>) -> String {
    let mut items = Vec::new();
    for message in messages {
        let flat = message
            .as_ref()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let body = match flat.split_once(" occurred:") {
            Some((count, rest)) if count.ends_with("error") || count.ends_with("errors") => {
                rest.to_string()
            }
            _ => flat,
        };
        items.extend(
            body.split(" * ")
                .map(|item| item.trim().trim_start_matches("* ").trim().to_string())
                .filter(|item| !item.is_empty()),
        );
    }
    items.join("; ")
}

/// An error and its sources, one line. Quoted text is dropped: parser messages quote the
/// value they choked on, and that value could be a secret.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(next) = source {
        let text = next.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = next.source();
    }
    scrub_quoted(&parts.join(": "))
}

fn scrub_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_multierrors_read_as_one_line() {
        assert_eq!(
            tidy_messages(["1 error occurred:\n\t* permission denied\n\n"]),
            "permission denied"
        );
        assert_eq!(
            tidy_messages(["2 errors occurred:\n\t* a\n\t* b c\n\n", "Vault is sealed"]),
            "a; b c; Vault is sealed"
        );
        assert_eq!(tidy_messages(["Permission denied."]), "Permission denied.");
    }

    #[test]
    fn quoted_text_is_scrubbed_from_error_chains() {
        assert_eq!(
            scrub_quoted(r#"invalid type: string "hunter2", expected u64"#),
            "invalid type: string \"…\", expected u64"
        );
    }

    #[test]
    fn secret_data_names_keys_not_values() {
        let data = SecretData::new(
            serde_json::json!({"password": "hunter2", "port": 5432})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert!(!format!("{data:?}").contains("hunter2"));
        assert_eq!(
            data.string("password").map(|v| v.expose().to_string()),
            Ok("hunter2".to_string())
        );
        assert_eq!(
            data.string("port").map(|_| ()),
            Err(ReadProblem::NotString { found: "a number" })
        );
        let missing = data.string("user").map(|_| ());
        assert_eq!(
            missing,
            Err(ReadProblem::MissingKey {
                available: vec!["password".to_string(), "port".to_string()]
            })
        );
    }

    #[test]
    fn approle_ids_come_from_the_named_variable_or_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let file = dir.path().join("secret-id");
        std::fs::write(&file, "from-file\n").unwrap_or_else(|e| panic!("write: {e}"));
        let file = file.to_string_lossy().into_owned();
        let env_file = Path::new("environments/dev.yaml");
        let env = VaultEnv::from_vars([("MY_ROLE", "from-var")]);
        let get = |var: Option<&str>, file: Option<&str>| {
            credential(env_file, &env, "vault.auth.role_id", var, file)
                .map(|found| found.map(|(value, origin)| (value.to_string(), origin)))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            get(Some("MY_ROLE"), None),
            Ok(Some(("from-var".to_string(), "MY_ROLE".to_string())))
        );
        assert_eq!(
            get(None, Some(&file)),
            Ok(Some(("from-file".to_string(), file.clone())))
        );
        assert_eq!(get(None, None), Ok(None));
        assert_eq!(
            get(Some("UNSET"), None),
            Err(
                "environments/dev.yaml: vault.auth.role_id_env: the variable UNSET is not set"
                    .to_string()
            )
        );
        let missing = get(None, Some("/nonexistent/role-id"))
            .err()
            .unwrap_or_default();
        assert!(
            missing.starts_with("environments/dev.yaml: vault.auth.role_id_file: cannot read /nonexistent/role-id: "),
            "{missing}"
        );
    }

    #[test]
    fn an_address_that_is_not_a_url_is_a_setting_error_not_a_panic() {
        let config = VaultConfig {
            address: Some("vault.internal:8200".to_string()),
            namespace: None,
            auth: VaultAuth::Token,
            kv: KvConfig {
                mount: "kv".to_string(),
                version: 1,
            },
        };
        let err = vault_address(
            &config,
            Path::new("environments/prod.yaml"),
            &VaultEnv::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.starts_with("environments/prod.yaml: vault.address: \"vault.internal:8200\""),
            "{err}"
        );
        let env = VaultEnv::from_vars([("VAULT_ADDR", "http://127.0.0.1:8200")]);
        let address = vault_address(&config, Path::new("x.yaml"), &env).map(|(_, a)| a);
        assert_eq!(address.ok().as_deref(), Some("http://127.0.0.1:8200"));
    }
}
