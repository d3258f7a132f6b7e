//! The logged-in Vault client of one run: settings from the environment file and the
//! variables the vault CLI reads, the four login methods, and KV v1/v2 reads that
//! classify every failure into a [`ReadProblem`].

pub use super::credentials::VaultEnv;
use super::credentials::{credential, read_secret_file};
use super::error::{error_chain, scrub_quoted, ReadProblem, VaultError};
use crate::config::{KvConfig, VaultAuth, VaultConfig};
use serde_json::{Map, Value};
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
    /// A token this session logged in for (AppRole, Kubernetes): renewed as it ages,
    /// revoked by [`VaultSession::close`]. `None` for a token given by the user.
    lease: tokio::sync::Mutex<Option<Lease>>,
    /// `auth/token/lookup-self` was denied at login (a token without the `default`
    /// policy): a later denial cannot be told apart from an expired token by asking it.
    lookup_denied: bool,
}

/// A login token's lease: when it was asked for (the request sent: Vault starts the
/// TTL when it answers, so this errs early), for how long.
#[derive(Debug, Clone, Copy)]
struct Lease {
    since: std::time::Instant,
    ttl: Duration,
    renewable: bool,
}

impl Lease {
    /// Renew once half the lease is gone, as Vault's own lifetime watcher does (it
    /// renews at about two thirds): a run that reads for long never sees its token expire.
    fn needs_renewal(&self, now: std::time::Instant) -> bool {
        self.renewable
            && !self.ttl.is_zero()
            && now.saturating_duration_since(self.since) >= self.ttl / 2
    }
}

/// `VAULT_SKIP_VERIFY` read as the vault CLI reads it, with Go's `strconv.ParseBool`:
/// `1 t T TRUE true True` skip verification, `0 f F FALSE false False` do not, anything
/// else is an error (never "skip").
pub fn parse_skip_verify(value: &str) -> Result<bool, VaultError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(VaultError::Setting {
            origin: "VAULT_SKIP_VERIFY".to_string(),
            message: format!(
                "{other:?} is not a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)"
            ),
        }),
    }
}

/// Whether `VAULT_SKIP_VERIFY` turns certificate checks off; when it does, a warning
/// says so once per run, as for a kubeconfig context with `insecure-skip-tls-verify`:
/// a variable left set in a CI job's settings must not go unnoticed.
fn skip_verify(env: &VaultEnv, address: &str) -> Result<bool, VaultError> {
    let skip = match env.get("VAULT_SKIP_VERIFY") {
        Some(value) => parse_skip_verify(value)?,
        None => false,
    };
    if skip {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "Vault {address}: VAULT_SKIP_VERIFY is set, so the server's certificate is not checked (said once per run)"
            );
        });
    }
    Ok(skip)
}

/// The HTTP status of an error Vault answered with, if it answered.
fn http_status(err: &ClientError) -> Option<u16> {
    match err {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
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
            .verify(!skip_verify(env, &address)?);
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
            lease: tokio::sync::Mutex::new(None),
            lookup_denied: false,
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
        // VAULT_TOKEN first, whatever the method, as the vault CLI does: an on-call
        // engineer's own token works in an environment whose CI logs in with AppRole.
        let given = env.get("VAULT_TOKEN").is_some();
        match auth {
            VaultAuth::Token => self.use_token(env_file, env).await,
            _ if given => {
                self.use_token(env_file, env).await?;
                self.token_origin = format!(
                    "VAULT_TOKEN, used instead of the environment's {} login",
                    auth_method_name(auth)
                );
                Ok(())
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
                let sent = std::time::Instant::now();
                let answer =
                    vaultrs::auth::approle::login(&self.client, mount, &role_id, &secret_id).await;
                self.finish_login(answer, sent, "approle", origin)
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
                let sent = std::time::Instant::now();
                let answer =
                    vaultrs::auth::kubernetes::login(&self.client, mount, role, &jwt).await;
                self.finish_login(answer, sent, "kubernetes", origin)
            }
            VaultAuth::Jwt {
                role,
                mount,
                jwt_env,
                jwt_file,
                audience,
            } => {
                let mount = mount.as_deref().unwrap_or("jwt");
                let (jwt, jwt_origin) = super::jwt::jwt_for_login(
                    env_file,
                    env,
                    jwt_env.as_deref(),
                    jwt_file.as_deref(),
                    audience.as_deref(),
                )
                .await?;
                let origin = format!("auth/{mount} login, role {role}, JWT from {jwt_origin}");
                let sent = std::time::Instant::now();
                let answer =
                    vaultrs::auth::oidc::login(&self.client, mount, &jwt, Some(role.clone())).await;
                self.finish_login(answer, sent, "jwt", origin)
                    .map_err(|err| match err {
                        // Vault names the claim it refused; what the token claims, next to
                        // it, is what the user holds against the role (which a refused
                        // login cannot read).
                        VaultError::Login {
                            address,
                            method,
                            origin,
                            reason,
                        } => VaultError::Login {
                            reason: match super::jwt::presented_claims(&jwt) {
                                Some(claims) => format!(
                                    "{reason}; the JWT presented claims {claims} (compare with \
                                     `vault read auth/{mount}/role/{role}`)"
                                ),
                                None => reason,
                            },
                            address,
                            method,
                            origin,
                        },
                        other => other,
                    })
            }
        }
    }

    /// Logs in with the user's token (`VAULT_TOKEN`, else `~/.vault-token`), checked
    /// with `auth/token/lookup-self` so that a bad token is reported as one, not as a
    /// denied secret. A token whose lookup-self is denied (no `default` policy) may still
    /// read: it is accepted, and its first read tells. A 5xx or 429 answer is Vault's
    /// problem, not a verdict on the token: an error, never "valid".
    async fn use_token(&mut self, env_file: &Path, env: &VaultEnv) -> Result<(), VaultError> {
        let (token, origin) = token_from_env(env_file, env)?;
        crate::redact::register(&token);
        self.client.set_token(&token);
        self.token_origin = origin;
        let err = match vaultrs::token::lookup_self(&self.client).await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let status = http_status(&err);
        match (status, self.classify(err, None)) {
            (Some(code), problem) if code >= 500 || code == 429 => match problem {
                problem @ ReadProblem::Sealed { .. } => Err(VaultError::Server { problem }),
                problem => Err(VaultError::Server {
                    problem: ReadProblem::Unexpected {
                        address: self.address.clone(),
                        detail: format!("auth/token/lookup-self: {}", problem_detail(&problem)),
                    },
                }),
            },
            // 2xx with a body vaultrs cannot parse still means "token valid".
            (None, ReadProblem::Unexpected { .. }) => Ok(()),
            (Some(403), ReadProblem::PermissionDenied { detail, .. }) => {
                tracing::debug!(
                    address = %self.address,
                    "auth/token/lookup-self denied ({detail}); the token is accepted and its first read will tell"
                );
                self.lookup_denied = true;
                Ok(())
            }
            (_, ReadProblem::PermissionDenied { detail, .. })
            | (_, ReadProblem::TokenExpired { origin: detail }) => Err(VaultError::Login {
                address: self.address.clone(),
                method: "token",
                origin: self.token_origin.clone(),
                reason: format!(
                    "the token is invalid or expired (auth/token/lookup-self: {detail})"
                ),
            }),
            (_, problem) => Err(VaultError::Server { problem }),
        }
    }

    /// For a token whose lookup-self was denied at login, once every read was denied
    /// too: the token itself is refused (invalid or expired), reported as a credentials
    /// error rather than as one denied secret per mapping.
    pub fn refused_token(&self) -> Option<VaultError> {
        self.lookup_denied.then(|| VaultError::Login {
            address: self.address.clone(),
            method: "token",
            origin: self.token_origin.clone(),
            reason: "auth/token/lookup-self and every read were denied: the token is invalid or expired (or has neither the default policy nor one that reads these paths)".to_string(),
        })
    }

    /// Ends the session: a token this session logged in for is revoked
    /// (`auth/token/revoke-self`), so that no live credential outlives the run. A user's
    /// own token is left alone. A failed revoke is logged, not an error: the token
    /// expires with its TTL.
    pub async fn close(self) {
        let lease = self.lease.lock().await.take();
        if lease.is_some() {
            if let Err(err) = vaultrs::token::revoke_self(&self.client).await {
                tracing::warn!(
                    address = %self.address,
                    "the login token could not be revoked ({}); it expires with its TTL",
                    error_chain(&err)
                );
            }
        }
    }

    /// Renews a login token that has lived half its lease. Concurrent reads wait for
    /// one renewal instead of each sending its own.
    async fn renew_if_due(&self) {
        let mut lease = self.lease.lock().await;
        if !lease.is_some_and(|l| l.needs_renewal(std::time::Instant::now())) {
            return;
        }
        let sent = std::time::Instant::now();
        match vaultrs::token::renew_self(&self.client, None).await {
            Ok(info) => {
                *lease = Some(Lease {
                    since: sent,
                    ttl: Duration::from_secs(info.lease_duration),
                    renewable: info.renewable,
                });
                tracing::debug!(address = %self.address, ttl = info.lease_duration, "renewed the Vault login token");
            }
            Err(err) => tracing::warn!(
                address = %self.address,
                "the Vault login token could not be renewed: {}",
                error_chain(&err)
            ),
        }
    }

    fn finish_login(
        &mut self,
        answer: Result<vaultrs::api::AuthInfo, ClientError>,
        sent: std::time::Instant,
        method: &'static str,
        origin: String,
    ) -> Result<(), VaultError> {
        match answer {
            Ok(info) => {
                let token = Zeroizing::new(info.client_token);
                crate::redact::register(&token);
                self.client.set_token(&token);
                *self.lease.get_mut() = Some(Lease {
                    since: sent,
                    ttl: Duration::from_secs(info.lease_duration),
                    renewable: info.renewable,
                });
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
        self.renew_if_due().await;
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
            // lookup-self cannot be asked: the reads as a whole tell a bad token
            // ([`VaultSession::refused_token`]).
            ReadProblem::PermissionDenied { detail, .. } if self.lookup_denied => {
                Err(ReadProblem::PermissionDenied {
                    api_path: self.api_path(relative),
                    detail,
                })
            }
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
            } => {
                // KV v2 answers a deleted or destroyed version with 404 and its metadata.
                if *code == 404 {
                    if let Some(deleted) = deleted_version(content.as_deref()) {
                        return deleted;
                    }
                }
                (*code, error_messages(content.as_deref()))
            }
            ClientError::RestClientError {
                source:
                    rustify::errors::ClientError::RequestError {
                        source,
                        url,
                        method,
                    },
            } => {
                return ReadProblem::Unreachable {
                    address,
                    reason: format!("{} ({method} {url})", unanswered_cause(source)),
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

/// A KV v2 404 body that is a version's metadata with a `deletion_time` or `destroyed`:
/// the version exists but was deleted (recoverable with `vault kv undelete`) or destroyed.
fn deleted_version(body: Option<&str>) -> Option<ReadProblem> {
    let body: Value = serde_json::from_str(body?).ok()?;
    let metadata = body.pointer("/data/metadata")?;
    let destroyed = metadata.get("destroyed").and_then(Value::as_bool) == Some(true);
    let deleted = metadata
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    (deleted || destroyed).then(|| ReadProblem::DeletedVersion {
        version: metadata.get("version").and_then(Value::as_u64),
        destroyed,
    })
}

fn auth_method_name(auth: &VaultAuth) -> &'static str {
    match auth {
        VaultAuth::Token => "token",
        VaultAuth::AppRole { .. } => "approle",
        VaultAuth::Kubernetes { .. } => "kubernetes",
        VaultAuth::Jwt { .. } => "jwt",
    }
}

fn problem_detail(problem: &ReadProblem) -> String {
    match problem {
        ReadProblem::Unexpected { detail, .. } | ReadProblem::PermissionDenied { detail, .. } => {
            detail.clone()
        }
        other => other.to_string(),
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
                  (or use method approle, kubernetes or jwt)"
            .to_string(),
    })
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
/// Why a request got no answer, as a person says it: `connection refused`, else the
/// cause at the bottom of the chain (a TLS or DNS problem), not the layers of client
/// libraries above it ("An error occurred with the request: Error sending HTTP request:
/// error sending request for url ...: client error (Connect): ...").
fn unanswered_cause(err: &anyhow::Error) -> String {
    let mut innermost = String::new();
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused".into();
            }
        }
        let text = cause.to_string();
        if !text.is_empty() {
            innermost = text;
        }
    }
    scrub_quoted(&innermost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_verify_is_parsed_as_go_parse_bool() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_skip_verify(yes).ok(), Some(true), "{yes}");
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_skip_verify(no).ok(), Some(false), "{no}");
        }
        for bad in ["yes", "no", "tRuE", "on", "2", " true"] {
            let err = parse_skip_verify(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.starts_with(&format!("VAULT_SKIP_VERIFY: {bad:?} is not a boolean")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_lease_is_renewed_after_half_its_ttl_and_a_ttl_of_zero_never() {
        let since = std::time::Instant::now();
        let lease = Lease {
            since,
            ttl: Duration::from_secs(60),
            renewable: true,
        };
        assert!(!lease.needs_renewal(since + Duration::from_secs(29)));
        assert!(lease.needs_renewal(since + Duration::from_secs(30)));
        let fixed = Lease {
            renewable: false,
            ..lease
        };
        assert!(!fixed.needs_renewal(since + Duration::from_secs(59)));
        let forever = Lease {
            ttl: Duration::ZERO,
            ..lease
        };
        assert!(!forever.needs_renewal(since + Duration::from_secs(3600)));
    }

    #[test]
    fn a_deleted_kv2_version_is_told_apart_from_a_missing_one() {
        let soft = r#"{"data":{"data":null,"metadata":{"deletion_time":"2026-11-23T17:30:00Z","destroyed":false,"version":3}}}"#;
        assert_eq!(
            deleted_version(Some(soft)),
            Some(ReadProblem::DeletedVersion {
                version: Some(3),
                destroyed: false
            })
        );
        let destroyed = r#"{"data":{"data":null,"metadata":{"deletion_time":"","destroyed":true,"version":2}}}"#;
        assert_eq!(
            deleted_version(Some(destroyed)),
            Some(ReadProblem::DeletedVersion {
                version: Some(2),
                destroyed: true
            })
        );
        assert_eq!(deleted_version(Some(r#"{"errors":[]}"#)), None);
        assert_eq!(deleted_version(None), None);
    }

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
    fn login_credentials_are_registered_with_the_scrubber() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let jwt = dir.path().join("token");
        std::fs::write(&jwt, "eyJhbGciOi.jwt-canary-payload.sig\n")
            .unwrap_or_else(|e| panic!("write: {e}"));
        let env_file = Path::new("environments/dev.yaml");
        let env = VaultEnv::from_vars([
            ("CANARY_ROLE", "role-id-canary-5e1f"),
            ("CANARY_SECRET", " secret-id-canary-77a2\n"),
        ]);
        for var in ["CANARY_ROLE", "CANARY_SECRET"] {
            credential(env_file, &env, "vault.auth.role_id", Some(var), None)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        read_secret_file(env_file, "vault.auth.jwt_file", &jwt.to_string_lossy())
            .unwrap_or_else(|e| panic!("{e}"));
        let said = crate::redact::scrub(
            "login with role-id-canary-5e1f and secret-id-canary-77a2 and eyJhbGciOi.jwt-canary-payload.sig",
        );
        assert!(!said.contains("canary"), "{said}");
    }

    #[test]
    fn vault_skip_verify_is_warned_of_once() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let off = VaultEnv::from_vars([("VAULT_SKIP_VERIFY", "false")]);
            assert_eq!(skip_verify(&off, "https://vault:8200").ok(), Some(false));
            let on = VaultEnv::from_vars([("VAULT_SKIP_VERIFY", "true")]);
            for _ in 0..3 {
                assert_eq!(skip_verify(&on, "https://vault:8200").ok(), Some(true));
            }
        });
        let text = String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned();
        assert_eq!(
            text.matches("Vault https://vault:8200: VAULT_SKIP_VERIFY is set, so the server's certificate is not checked")
                .count(),
            1,
            "{text}"
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
            record_key: None,
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
