//! A HashiCorp Vault server of a test's own: the fleet's Vault binary in dev mode (in
//! memory, unsealed, plain HTTP on 127.0.0.1, root token chosen), started by the fleet's
//! own code, with one KV mount `kv` of the version the test asks for and AppRole enabled.
//! It is a test's own because tests seal it, revoke its tokens and write its policies.
//!
//! A file audit device records every request Vault served (paths and the
//! `X-Vault-Namespace` header in clear, values HMAC'd), so a test can count the reads the
//! server saw, and the namespace each named, as the fake did.

use flotilla_fleet::binaries::{Binaries, VaultBinary};
use flotilla_fleet::vault::Method;
use flotilla_fleet::{process, vault};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub struct RealVault {
    dir: tempfile::TempDir,
    pub address: String,
    pub root_token: String,
    pub kv_version: u8,
    /// AppRole `flotilla`, bound to policy [`READER`].
    pub role_id: String,
    pub secret_id: String,
}

/// The policy of AppRole `flotilla`: read on every secret of `kv`.
pub const READER: &str = "reader";

/// One request as Vault's audit log has it.
#[derive(Debug, Clone)]
pub struct Audited {
    pub operation: String,
    /// Without the `/v1/` prefix: `kv/data/dev/hello/db`.
    pub path: String,
    /// The `X-Vault-Namespace` header the client sent (the open-source server ignores
    /// namespaces, but audits the header, as configured in [`RealVault::start`]).
    pub namespace: Option<String>,
}

impl RealVault {
    /// A Vault with KV mount `kv` at `kv_version` (1 or 2) holding the fleet's seed
    /// (`fleet/vault-seed.yaml`), policy [`READER`], AppRole `flotilla` bound to it, and
    /// an audit log.
    pub async fn start(kv_version: u8) -> RealVault {
        let binaries = Binaries::find()
            .unwrap_or_else(|e| panic!("no Vault binary ({e}); run scripts/install-deps.sh"));
        let VaultBinary::HashiCorp(bin) = &binaries.vault else {
            panic!(
                "this test needs HashiCorp Vault, and only RustyVault (the fallback of a machine \
                 without Go) is installed: run scripts/install-deps.sh with Go >= 1.26"
            )
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = vault::free_port_pair().unwrap_or_else(|e| panic!("{e}"));
        // Custom token ids may not hold a `.` (so no `hvs.` prefix).
        let root_token = format!("test-root-{port}");
        vault::spawn_hashicorp(dir.path(), bin, port, &root_token)
            .unwrap_or_else(|e| panic!("starting vault: {e}"));
        let address = format!("http://127.0.0.1:{port}");
        vault::wait_unsealed(dir.path(), &address)
            .await
            .unwrap_or_else(|e| panic!("vault did not come up: {e}"));
        let real = RealVault {
            dir,
            address,
            root_token,
            kv_version,
            role_id: format!("role-{port}"),
            secret_id: format!("secret-{port}-{}", std::process::id()),
        };
        real.sys(
            Method::POST,
            "sys/mounts/kv",
            json!({"type": "kv", "options": {"version": kv_version.to_string()}}),
        )
        .await;
        real.sys(Method::POST, "sys/auth/approle", json!({"type": "approle"}))
            .await;
        real.policy(READER, "path \"kv/*\" {\n  capabilities = [\"read\"]\n}\n")
            .await;
        let (role_id, secret_id) = (real.role_id.clone(), real.secret_id.clone());
        real.approle("flotilla", &[READER], &role_id, &secret_id)
            .await;
        let seed = vault::Seed::load(None).unwrap_or_else(|e| panic!("seed: {e}"));
        for (path, values) in &seed.0 {
            let relative = path.strip_prefix("kv/").unwrap_or(path);
            real.put(relative, json!(values)).await;
        }
        let audit = real.audit_file();
        real.sys(
            Method::PUT,
            "sys/audit/file",
            json!({"type": "file", "options": {"file_path": audit.display().to_string()}}),
        )
        .await;
        // The audit log records this request header, in clear.
        real.sys(
            Method::PUT,
            "sys/config/auditing/request-headers/X-Vault-Namespace",
            json!({"hmac": false}),
        )
        .await;
        real
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn audit_file(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    fn api(&self, token: Option<&str>) -> vault::Api<'_> {
        vault::Api::new(&self.address, token)
    }

    /// An operator call with the root token; panics on an error answer.
    pub async fn sys(&self, method: Method, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        self.api(Some(&self.root_token))
            .call_retrying(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Writes a secret (a new version on KV v2) at `relative` under `kv`.
    pub async fn put(&self, relative: &str, data: Value) {
        if self.kv_version == 2 {
            self.sys(
                Method::POST,
                &format!("kv/data/{relative}"),
                json!({ "data": data }),
            )
            .await;
        } else {
            self.sys(Method::POST, &format!("kv/{relative}"), data)
                .await;
        }
    }

    /// Writes ACL policy `name`.
    pub async fn policy(&self, name: &str, hcl: &str) {
        self.sys(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": hcl }),
        )
        .await;
    }

    /// A token with exactly `policies` (and `default`); `extra` adds fields of
    /// `auth/token/create` (`id`, `ttl`, `num_uses`).
    pub async fn token(&self, policies: &[&str], extra: Value) -> String {
        let mut body = json!({ "policies": policies });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let answer = self.sys(Method::POST, "auth/token/create", body).await;
        answer
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("auth/token/create: no client_token"))
            .to_string()
    }

    /// AppRole role `name` bound to `policies`, with the role id and secret id given.
    pub async fn approle(&self, name: &str, policies: &[&str], role_id: &str, secret_id: &str) {
        self.sys(
            Method::POST,
            &format!("auth/approle/role/{name}"),
            json!({ "token_policies": policies, "secret_id_num_uses": 0 }),
        )
        .await;
        self.sys(
            Method::POST,
            &format!("auth/approle/role/{name}/role-id"),
            json!({ "role_id": role_id }),
        )
        .await;
        self.sys(
            Method::POST,
            &format!("auth/approle/role/{name}/custom-secret-id"),
            json!({ "secret_id": secret_id }),
        )
        .await;
    }

    /// `sys/seal`: from now on every call but `sys/*` status is 503.
    pub async fn seal(&self) {
        self.sys(Method::PUT, "sys/seal", Value::Null).await;
    }

    /// Every KV request (`kv/...`) the server saw, from its audit log, in order.
    pub fn kv_reads(&self) -> Vec<Audited> {
        let text = std::fs::read_to_string(self.audit_file()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["type"] == "request")
            .filter_map(|entry| {
                let path = entry.pointer("/request/path")?.as_str()?.to_string();
                let operation = entry.pointer("/request/operation")?.as_str()?.to_string();
                let namespace = entry
                    .pointer("/request/headers/x-vault-namespace/0")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                path.starts_with("kv/").then_some(Audited {
                    operation,
                    path,
                    namespace,
                })
            })
            .collect()
    }

    /// The KV paths the audit log shows were read, sorted.
    pub fn read_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .kv_reads()
            .into_iter()
            .filter(|r| r.operation == "read")
            .map(|r| r.path)
            .collect();
        paths.sort();
        paths
    }
}

impl Drop for RealVault {
    fn drop(&mut self) {
        // Only the vault this helper started, by the pid its pid file holds.
        if let Some(pid) = process::alive(self.dir.path(), vault::VAULT_PROCESS) {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}
