//! RustyVault's set-up: its config, init, unseal, the KV v1 mount `kv`, the AppRole
//! `flotilla`, and the seed secrets. Plain HTTP calls straight to rvault (not through the
//! proxy): this is the operator's side, and it must see RustyVault's own answers.

use crate::{process, FleetError, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seed file in the repo, built in so a fleet starts from any directory.
const DEFAULT_SEED: &str = include_str!("../vault-seed.yaml");
pub const KV_MOUNT: &str = "kv";
pub const APPROLE: &str = "flotilla";

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
        let seed: BTreeMap<String, BTreeMap<String, String>> = serde_yaml::from_str(&text)
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
        "rvault",
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

struct Api<'a> {
    http: reqwest::Client,
    addr: &'a str,
    token: Option<String>,
}

impl Api<'_> {
    async fn call(
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

    /// RustyVault answers 500 "Logical backend path not supported" to the first writes
    /// after an auth method is enabled; a bounded retry rides that out.
    async fn call_retrying(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut attempt = 0;
        loop {
            match self.call(method.clone(), path, body.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < 30 => {
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
    wait_answering(dir, "rvault", addr).await?;
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
    api.call_retrying(
        Method::POST,
        &format!("auth/approle/role/{APPROLE}"),
        Some(json!({"token_policies": "default", "secret_id_num_uses": 0})),
    )
    .await?;
    let role = api
        .call_retrying(
            Method::GET,
            &format!("auth/approle/role/{APPROLE}/role-id"),
            None,
        )
        .await?;
    let role_id = field(&role, "/data/role_id", "role-id")?;
    let secret = api
        .call_retrying(
            Method::POST,
            &format!("auth/approle/role/{APPROLE}/secret-id"),
            Some(json!({"metadata": ""})),
        )
        .await?;
    let secret_id = field(&secret, "/data/secret_id", "secret-id")?;
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
