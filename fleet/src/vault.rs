//! The fleet's Vault and its set-up, as an operator would do it, with plain HTTP calls.
//!
//! HashiCorp Vault (the normal case) runs in dev mode: in memory, unsealed, plain HTTP
//! on 127.0.0.1, with a root token the fleet chooses. [`setup_hashicorp`] mounts KV v1
//! at `kv` and KV v2 at `kv2` (both seeded with the same secrets), writes the ACL policy
//! `fleet-read` (read on both), enables AppRole with role `flotilla` bound to it; and
//! [`setup_kubernetes_auth`] configures Kubernetes auth against one of the fleet's
//! apiservers (TokenReview with a reviewer service account).
//!
//! RustyVault (the fallback of a machine without Go) gets its config, init, unseal, the
//! KV v1 mount `kv`, the AppRole `flotilla` and the seed; it has no KV v2, no ACL and no
//! Kubernetes auth. The calls go straight to rvault (not through the proxy): this is the
//! operator's side, and it must see RustyVault's own answers.

use crate::{process, FleetError, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seed file in the repo, built in so a fleet starts from any directory.
const DEFAULT_SEED: &str = include_str!("../vault-seed.yaml");
pub const KV_MOUNT: &str = "kv";
/// The KV v2 mount of HashiCorp Vault, seeded with the same secrets as [`KV_MOUNT`].
pub const KV2_MOUNT: &str = "kv2";
pub const APPROLE: &str = "flotilla";
/// The ACL policy of the AppRole and of the Kubernetes auth role: read on both mounts.
pub const READ_POLICY: &str = "fleet-read";
const READ_POLICY_HCL: &str = "path \"kv/*\" {\n  capabilities = [\"read\"]\n}\npath \"kv2/data/*\" {\n  capabilities = [\"read\"]\n}\npath \"kv2/metadata/*\" {\n  capabilities = [\"read\"]\n}\n";
/// The Kubernetes auth method's role: service account `hello` of namespace `hello`.
pub const KUBERNETES_ROLE: &str = "hello";
pub const KUBERNETES_SA: &str = "hello";
pub const KUBERNETES_NAMESPACE: &str = "hello";
/// The audience a service-account token must carry for [`KUBERNETES_ROLE`].
pub const KUBERNETES_AUDIENCE: &str = "vault";
/// The process name (pid and log file) of HashiCorp Vault; RustyVault's is `rvault`.
pub const VAULT_PROCESS: &str = "vault";
pub const RVAULT_PROCESS: &str = "rvault";

/// Path (`kv/dev/hello/db`) → keys → values.
#[derive(Debug, Clone)]
pub struct Seed(pub BTreeMap<String, BTreeMap<String, String>>);

impl Seed {
    pub fn load(file: Option<&Path>) -> Result<Seed> {
        let (name, text) = match file {
            Some(path) => (
                path.to_path_buf(),
                std::fs::read_to_string(path).map_err(|e| FleetError::io(path, e))?,
            ),
            None => (
                PathBuf::from("fleet/vault-seed.yaml"),
                DEFAULT_SEED.to_string(),
            ),
        };
        let seed: BTreeMap<String, BTreeMap<String, String>> = serde_yaml_ng::from_str(&text)
            .map_err(|e| FleetError::BadInput {
                file: name.clone(),
                message: format!("expected `kv/PATH: {{key: value}}` entries: {e}"),
            })?;
        for path in seed.keys() {
            if !path.starts_with(&format!("{KV_MOUNT}/")) {
                return Err(FleetError::BadInput {
                    file: name,
                    message: format!("{path:?}: secrets live under the KV v1 mount {KV_MOUNT}/"),
                });
            }
        }
        Ok(Seed(seed))
    }
}

pub struct Credentials {
    pub root_token: String,
    pub unseal_key: String,
    pub role_id: String,
    pub secret_id: String,
}

/// Starts HashiCorp Vault in dev mode on `127.0.0.1:port` with root token `root_token`.
/// Dev mode also opens its cluster listener on `port + 1` (see [`free_port_pair`]).
pub fn spawn_hashicorp(dir: &Path, vault: &Path, port: u16, root_token: &str) -> Result<()> {
    let vault_dir = dir.join("vault");
    std::fs::create_dir_all(&vault_dir).map_err(|e| FleetError::io(&vault_dir, e))?;
    process::spawn_with_env(
        dir,
        VAULT_PROCESS,
        vault,
        &[
            "server".into(),
            "-dev".into(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            // The root token is handed over through the environment, not argv (which
            // every user of the machine can read in /proc).
            "-dev-no-store-token".into(),
            "-log-level=warn".into(),
        ],
        &[
            ("VAULT_DEV_ROOT_TOKEN_ID", root_token),
            // The dev server's own CLI settings must not come from the caller's.
            ("VAULT_ADDR", ""),
            ("VAULT_TOKEN", ""),
            ("HOME", &vault_dir.display().to_string()),
        ],
    )
    .map(|_| ())
}

/// A port `p` with `p + 1` free as well (Vault's dev mode listens on both).
pub fn free_port_pair() -> Result<u16> {
    use std::net::TcpListener;
    for _ in 0..50 {
        let first =
            TcpListener::bind("127.0.0.1:0").map_err(|e| FleetError::io("127.0.0.1:0", e))?;
        let port = first
            .local_addr()
            .map_err(|e| FleetError::io("127.0.0.1:0", e))?
            .port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(FleetError::Vault(
        "found no two free adjacent ports for Vault".into(),
    ))
}

pub fn spawn_rvault(dir: &Path, rvault: &Path, port: u16) -> Result<()> {
    let vault_dir = dir.join("vault");
    std::fs::create_dir_all(vault_dir.join("data")).map_err(|e| FleetError::io(&vault_dir, e))?;
    let config = vault_dir.join("config.hcl");
    let text = format!(
        "storage \"file\" {{\n  path = \"{data}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\nlog_level = \"warn\"\nwork_dir = \"{work}\"\n",
        data = vault_dir.join("data").display(),
        work = vault_dir.display(),
    );
    std::fs::write(&config, text).map_err(|e| FleetError::io(&config, e))?;
    process::spawn(
        dir,
        RVAULT_PROCESS,
        rvault,
        &["server".into(), format!("--config={}", config.display())],
    )
    .map(|_| ())
}

/// Waits until the server at `addr` answers HTTP at all (RustyVault answers
/// `sys/seal-status` with an error before it is initialised, so any answer counts).
pub async fn wait_answering(dir: &Path, process_name: &str, addr: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{addr}/v1/sys/init");
    crate::supervisor::wait_for(dir, process_name, || {
        let req = http.get(&url).timeout(Duration::from_secs(1)).send();
        async move { req.await.is_ok() }
    })
    .await
}

/// The HTTP method of an [`Api`] call (re-exported so tests need no reqwest).
pub use reqwest::Method;

/// Whether a set-up call rides out a server's first refusals ([`Api::call_retrying`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Yes,
    No,
}

/// An operator's client of Vault's HTTP API (answers of set-up calls hold no secret
/// values; errors are shown).
pub struct Api<'a> {
    pub http: reqwest::Client,
    pub addr: &'a str,
    pub token: Option<String>,
}

impl<'a> Api<'a> {
    pub fn new(addr: &'a str, token: Option<&str>) -> Api<'a> {
        Api {
            http: reqwest::Client::new(),
            addr,
            token: token.map(str::to_string),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/v1/{path}", self.addr))
            .timeout(Duration::from_secs(10));
        if let Some(token) = &self.token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| FleetError::Vault(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| FleetError::Vault(format!("{method} {path}: {e}")))?;
        if !status.is_success() {
            // Answers to set-up calls hold no secret values, only errors.
            return Err(FleetError::Vault(format!(
                "{method} {path}: {status}: {}",
                text.trim()
            )));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| FleetError::Vault(format!("{method} {path}: not JSON: {e}")))
    }

    /// Writes the AppRole role `APPROLE` with `role`, then reads its role id and makes a
    /// secret id (with `secret_id_body`): the credentials the fleet hands out.
    pub async fn approle(
        &self,
        role: Value,
        secret_id_body: Option<Value>,
        retry: Retry,
    ) -> Result<(String, String)> {
        let base = format!("auth/approle/role/{APPROLE}");
        self.call_with(retry, Method::POST, &base, Some(role))
            .await?;
        let role = self
            .call_with(retry, Method::GET, &format!("{base}/role-id"), None)
            .await?;
        let secret = self
            .call_with(
                retry,
                Method::POST,
                &format!("{base}/secret-id"),
                secret_id_body,
            )
            .await?;
        Ok((
            field(&role, "/data/role_id", "role-id")?,
            field(&secret, "/data/secret_id", "secret-id")?,
        ))
    }

    async fn call_with(
        &self,
        retry: Retry,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        match retry {
            Retry::Yes => self.call_retrying(method, path, body).await,
            Retry::No => self.call(method, path, body).await,
        }
    }

    /// RustyVault answers 500 "Logical backend path not supported" to the first writes
    /// after an auth method is enabled, and Vault answers 400 "upgrading" to the first
    /// writes to a new KV v2 mount; a bounded retry rides that out.
    pub async fn call_retrying(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut attempt = 0;
        loop {
            match self.call(method.clone(), path, body.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < 100 => {
                    tracing::debug!("retrying after: {e}");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn field(value: &Value, pointer: &str, what: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| FleetError::Vault(format!("{what}: no {pointer} in the answer")))
}

/// Init, unseal, mount, AppRole, seed. Returns the credentials the env file hands out.
pub async fn setup(dir: &Path, addr: &str, seed: &Seed) -> Result<Credentials> {
    use reqwest::Method;
    wait_answering(dir, RVAULT_PROCESS, addr).await?;
    let mut api = Api {
        http: reqwest::Client::new(),
        addr,
        token: None,
    };
    let init = api
        .call(
            Method::PUT,
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await?;
    let root_token = field(&init, "/root_token", "sys/init")?;
    let unseal_key = init
        .pointer("/keys/0")
        .or_else(|| init.pointer("/keys_base64/0"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| FleetError::Vault("sys/init: no unseal key in the answer".into()))?;
    api.call(Method::PUT, "sys/unseal", Some(json!({"key": unseal_key})))
        .await?;
    api.token = Some(root_token.clone());
    api.call_retrying(
        Method::POST,
        &format!("sys/mounts/{KV_MOUNT}"),
        Some(json!({"type": "kv"})),
    )
    .await?;
    api.call_retrying(
        Method::POST,
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await?;
    let (role_id, secret_id) = api
        .approle(
            json!({"token_policies": "default", "secret_id_num_uses": 0}),
            Some(json!({"metadata": ""})),
            Retry::Yes,
        )
        .await?;
    for (path, values) in &seed.0 {
        api.call_retrying(Method::POST, path, Some(json!(values)))
            .await?;
    }
    crate::supervisor::progress(&format!(
        "vault: initialised, unsealed, KV v1 mount {KV_MOUNT}, AppRole {APPROLE}, {} secrets seeded",
        seed.0.len()
    ));
    Ok(Credentials {
        root_token,
        unseal_key,
        role_id,
        secret_id,
    })
}

/// HashiCorp Vault in dev mode, once it answers: the mounts, the policy, AppRole and
/// the seed. Returns the credentials the env file hands out.
pub async fn setup_hashicorp(
    dir: &Path,
    addr: &str,
    root_token: &str,
    seed: &Seed,
) -> Result<Credentials> {
    use reqwest::Method;
    wait_unsealed(dir, addr).await?;
    let api = Api {
        http: reqwest::Client::new(),
        addr,
        token: Some(root_token.to_string()),
    };
    api.call(
        Method::POST,
        &format!("sys/mounts/{KV_MOUNT}"),
        Some(json!({"type": "kv", "options": {"version": "1"}})),
    )
    .await?;
    api.call(
        Method::POST,
        &format!("sys/mounts/{KV2_MOUNT}"),
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await?;
    api.call(
        Method::PUT,
        &format!("sys/policies/acl/{READ_POLICY}"),
        Some(json!({"policy": READ_POLICY_HCL})),
    )
    .await?;
    api.call(
        Method::POST,
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await?;
    let (role_id, secret_id) = api
        .approle(
            json!({"token_policies": [READ_POLICY], "secret_id_num_uses": 0, "token_ttl": "24h"}),
            None,
            Retry::No,
        )
        .await?;
    for (path, values) in &seed.0 {
        api.call(Method::POST, path, Some(json!(values))).await?;
        let relative = path.strip_prefix(&format!("{KV_MOUNT}/")).unwrap_or(path);
        // The first writes to a new KV v2 mount meet 400 "upgrading" for a moment.
        api.call_retrying(
            Method::POST,
            &format!("{KV2_MOUNT}/data/{relative}"),
            Some(json!({ "data": values })),
        )
        .await?;
    }
    crate::supervisor::progress(&format!(
        "vault: HashiCorp Vault (dev mode), KV v1 mount {KV_MOUNT}, KV v2 mount {KV2_MOUNT}, policy {READ_POLICY}, AppRole {APPROLE}, {} secrets seeded in each",
        seed.0.len()
    ));
    Ok(Credentials {
        root_token: root_token.to_string(),
        unseal_key: String::new(),
        role_id,
        secret_id,
    })
}

/// Waits until Vault answers `sys/health` as initialised and unsealed (200).
pub async fn wait_unsealed(dir: &Path, addr: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{addr}/v1/sys/health");
    crate::supervisor::wait_for(dir, VAULT_PROCESS, || {
        let req = http.get(&url).timeout(Duration::from_secs(1)).send();
        async move { matches!(req.await, Ok(r) if r.status().as_u16() == 200) }
    })
    .await
}

/// Where Vault's Kubernetes auth checks service-account tokens: an apiserver, its CA,
/// and the reviewer's token (allowed `tokenreviews`, by `system:auth-delegator`).
pub struct KubernetesAuth<'a> {
    pub host: String,
    pub ca_pem: &'a str,
    pub reviewer_jwt: &'a str,
}

/// Enables Kubernetes auth at `auth/kubernetes` and its role [`KUBERNETES_ROLE`]
/// (service account `hello/hello`, audience [`KUBERNETES_AUDIENCE`], policy
/// [`READ_POLICY`]).
pub async fn setup_kubernetes_auth(
    addr: &str,
    root_token: &str,
    auth: &KubernetesAuth<'_>,
) -> Result<()> {
    use reqwest::Method;
    let api = Api {
        http: reqwest::Client::new(),
        addr,
        token: Some(root_token.to_string()),
    };
    api.call(
        Method::POST,
        "sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    )
    .await?;
    api.call(
        Method::POST,
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": auth.host,
            "kubernetes_ca_cert": auth.ca_pem,
            "token_reviewer_jwt": auth.reviewer_jwt,
            "disable_local_ca_jwt": true,
        })),
    )
    .await?;
    api.call(
        Method::POST,
        &format!("auth/kubernetes/role/{KUBERNETES_ROLE}"),
        Some(json!({
            "bound_service_account_names": [KUBERNETES_SA],
            "bound_service_account_namespaces": [KUBERNETES_NAMESPACE],
            "audience": KUBERNETES_AUDIENCE,
            "token_policies": [READ_POLICY],
            "token_ttl": "1h",
        })),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Seed;

    #[test]
    fn the_built_in_seed_covers_the_example_for_every_environment() {
        let seed = Seed::load(None).unwrap();
        for env in ["dev", "staging", "prod"] {
            for (path, key) in [
                ("db", "password"),
                ("db-onprem", "password"),
                ("api", "token"),
            ] {
                let full = format!("kv/{env}/hello/{path}");
                assert!(
                    seed.0.get(&full).is_some_and(|v| v.contains_key(key)),
                    "{full}.{key}"
                );
            }
        }
        let mut values: Vec<&String> = seed.0.values().flat_map(|v| v.values()).collect();
        let count = values.len();
        values.sort();
        values.dedup();
        assert_eq!(values.len(), count, "every seeded value is unique");
    }

    #[test]
    fn a_seed_outside_the_kv_mount_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seed.yaml");
        std::fs::write(&file, "secret/dev/x: { k: v }\n").unwrap();
        let err = Seed::load(Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("seed.yaml") && err.contains("secret/dev/x"),
            "{err}"
        );
    }
}
