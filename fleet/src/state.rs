//! The state directory and `fleet.json`, the record of one fleet: its clusters, ports and
//! credentials. Everything the fleet writes lives under this directory.
//!
//! Layout: `fleet.json`, `kubeconfig`, `env`, `certs/`, `tokens.csv`, `etcd/`, `vault/`,
//! `logs/NAME.log`, `pids/NAME.pid`.

use crate::{FleetError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The state directory: `--state`, else `FLOTILLA_FLEET_DIR`, else `./.fleet`.
pub fn resolve_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let dir = explicit
        .or_else(|| std::env::var_os("FLOTILLA_FLEET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".fleet"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(|e| FleetError::io(".", e))?
            .join(dir)
    };
    Ok(dir)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub admin_token: String,
    pub deployer_token: String,
    pub etcd_port: u16,
    pub etcd_peer_port: u16,
    pub clusters: Vec<ClusterState>,
    pub vault: VaultState,
    /// `Kubernetes v1.37.2`: what `kube-apiserver --version` said at `up`.
    #[serde(default)]
    pub kubernetes_version: String,
    /// Simulated nodes per cluster (`fake-node-1` ..).
    #[serde(default = "one")]
    pub nodes: u32,
    /// The OCI registry's port (0: no registry binary, none runs).
    #[serde(default)]
    pub registry_port: u16,
    /// Set by `stop-registry`, cleared by `start-registry`: a stopped registry is not a
    /// crash.
    #[serde(default)]
    pub registry_stopped: bool,
    /// The chart repository's port (0: none runs).
    #[serde(default)]
    pub chart_repo_port: u16,
}

fn one() -> u32 {
    1
}

/// Which Vault server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VaultKind {
    /// HashiCorp Vault in dev mode; `VAULT_ADDR` is the server itself.
    #[default]
    HashiCorp,
    /// RustyVault behind the envelope proxy (the fallback); `VAULT_ADDR` is the proxy.
    Rusty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub port: u16,
    /// Set by `stop-cluster`, cleared by `start-cluster`: a stopped cluster is not a crash.
    #[serde(default)]
    pub stopped: bool,
    /// The round-trip time its latency proxy adds (`up --rtt`), in milliseconds; 0: no
    /// proxy, the kubeconfig names the API server itself.
    #[serde(default)]
    pub rtt_ms: u64,
    /// The latency proxy's port, when `rtt_ms` is set.
    #[serde(default)]
    pub proxy_port: u16,
}

impl ClusterState {
    /// The port clients reach it on: its latency proxy's, else the API server's.
    pub fn client_port(&self) -> u16 {
        if self.rtt_ms > 0 {
            self.proxy_port
        } else {
            self.port
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VaultState {
    #[serde(default)]
    pub kind: VaultKind,
    /// `Vault v1.21.4 (...)`, what `vault --version` said at `up` (RustyVault: its crate).
    #[serde(default)]
    pub version: String,
    pub port: u16,
    /// RustyVault's proxy; 0 for HashiCorp Vault.
    pub proxy_port: u16,
    /// The cluster whose apiserver Vault's Kubernetes auth (`auth/kubernetes`) reviews
    /// tokens with; `None` on RustyVault (it has no Kubernetes auth).
    #[serde(default)]
    pub kubernetes_auth_cluster: Option<String>,
    pub root_token: String,
    pub role_id: String,
    pub secret_id: String,
    /// The unseal key of this throw-away RustyVault (kept so a restarted rvault can be
    /// unsealed); empty for HashiCorp Vault's dev mode.
    pub unseal_key: String,
}

impl State {
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("fleet.json")
    }

    /// The state of the fleet in `dir`, if one was written there.
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let file = State::file(dir);
        match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| FleetError::BadInput {
                    file,
                    message: format!("not a fleet state file: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FleetError::io(file, e)),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| FleetError::BadInput {
            file: State::file(dir),
            message: e.to_string(),
        })?;
        crate::certs::write(&State::file(dir), &text)
    }

    pub fn cluster(&self, name: &str) -> Result<&ClusterState> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    pub fn cluster_mut(&mut self, name: &str) -> Result<&mut ClusterState> {
        let err = self.unknown(name);
        self.clusters.iter_mut().find(|c| c.name == name).ok_or(err)
    }

    fn unknown(&self, name: &str) -> FleetError {
        let names: Vec<&str> = self.clusters.iter().map(|c| c.name.as_str()).collect();
        FleetError::Usage(format!(
            "no cluster named {name:?} in this fleet (clusters: {})",
            names.join(", ")
        ))
    }

    /// What flotilla talks to: Vault itself, or RustyVault's proxy.
    pub fn vault_addr(&self) -> String {
        match self.vault.kind {
            VaultKind::HashiCorp => format!("http://127.0.0.1:{}", self.vault.port),
            VaultKind::Rusty => format!("http://127.0.0.1:{}", self.vault.proxy_port),
        }
    }
}

pub fn kubeconfig_path(dir: &Path) -> PathBuf {
    dir.join("kubeconfig")
}

pub fn env_path(dir: &Path) -> PathBuf {
    dir.join("env")
}

/// The kubeconfig: a context per cluster (admin) and `<name>-deployer` (the RBAC-limited
/// deployer, namespace `hello`), all trusting the fleet CA; a cluster with a round-trip
/// time (`up --rtt`) is reached through its latency proxy. Also one file per cluster,
/// `clusters/<name>.kubeconfig`, for what runs inside the cluster (kube-controller-manager,
/// which has no `--context`, the kubelet, the fleet's own checks): the API server itself.
pub fn write_kubeconfig(dir: &Path, state: &State, ca_pem: &str) -> Result<()> {
    write_yaml(
        &kubeconfig_path(dir),
        &kubeconfig(state, &state.clusters, ca_pem, true),
    )?;
    let per_cluster = dir.join("clusters");
    std::fs::create_dir_all(&per_cluster).map_err(|e| FleetError::io(&per_cluster, e))?;
    for c in &state.clusters {
        let config = kubeconfig(state, std::slice::from_ref(c), ca_pem, false);
        write_yaml(&cluster_kubeconfig_path(dir, &c.name), &config)?;
    }
    Ok(())
}

pub fn cluster_kubeconfig_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("clusters").join(format!("{name}.kubeconfig"))
}

fn kubeconfig(
    state: &State,
    clusters: &[ClusterState],
    ca_pem: &str,
    from_outside: bool,
) -> serde_json::Value {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut contexts = Vec::new();
    let mut entries = Vec::new();
    for c in clusters {
        entries.push(serde_json::json!({
            "name": c.name,
            "cluster": {
                "server": format!(
                    "https://127.0.0.1:{}",
                    if from_outside { c.client_port() } else { c.port }
                ),
                "certificate-authority-data": ca,
            }
        }));
        contexts.push(serde_json::json!({
            "name": c.name,
            "context": { "cluster": c.name, "user": "fleet-admin" }
        }));
        if from_outside {
            contexts.push(serde_json::json!({
                "name": format!("{}-deployer", c.name),
                "context": { "cluster": c.name, "user": "fleet-deployer", "namespace": "hello" }
            }));
        }
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": clusters.first().map(|c| c.name.clone()).unwrap_or_default(),
        "clusters": entries,
        "contexts": contexts,
        "users": [
            { "name": "fleet-admin", "user": { "token": state.admin_token } },
            { "name": "fleet-deployer", "user": { "token": state.deployer_token } },
        ],
        "preferences": {},
    })
}

fn write_yaml(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_yaml_ng::to_string(value).map_err(|e| FleetError::BadInput {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    crate::certs::write(path, &text)
}

/// `<state>/env`, for `source`: KUBECONFIG and the Vault variables, and PATH with the
/// folders of `tools` first: the kubectl, vault and helm built with the fleet (so that
/// `kubectl version` and `vault version` show them), and flotilla-fleet's own (where
/// cargo puts flotilla too).
pub fn write_env(dir: &Path, state: &State, tools: &[&Path]) -> Result<()> {
    let path: String = tools
        .iter()
        .map(|t| format!("export PATH='{}':\"$PATH\"\n", t.display()))
        .collect();
    let text = format!(
        "export FLOTILLA_FLEET_DIR='{dir}'\nexport KUBECONFIG='{kubeconfig}'\nexport VAULT_ADDR='{addr}'\nexport VAULT_TOKEN='{token}'\nexport VAULT_ROLE_ID='{role}'\nexport VAULT_SECRET_ID='{secret}'\n",
        dir = dir.display(),
        kubeconfig = kubeconfig_path(dir).display(),
        addr = state.vault_addr(),
        token = state.vault.root_token,
        role = state.vault.role_id,
        secret = state.vault.secret_id,
    ) + &charts_env(dir, state)
        + &path;
    crate::certs::write(&env_path(dir), &text)
}

/// The chart sources' addresses, for `helm push` and `helm repo index`: the registry's
/// `host:port` (`oci://$FLOTILLA_FLEET_REGISTRY/charts/web`), the chart repository's URL
/// and the folder it serves.
fn charts_env(dir: &Path, state: &State) -> String {
    let mut text = String::new();
    if state.registry_port > 0 {
        text += &format!(
            "export FLOTILLA_FLEET_REGISTRY='127.0.0.1:{}'\n",
            state.registry_port
        );
    }
    if state.chart_repo_port > 0 {
        text += &format!(
            "export FLOTILLA_FLEET_CHART_REPO='http://127.0.0.1:{}'\nexport FLOTILLA_FLEET_CHART_REPO_DIR='{}'\n",
            state.chart_repo_port,
            crate::charts::chart_repo_dir(dir).display()
        );
    }
    text
}

/// A fresh random token (hex), from the kernel's generator.
pub fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| FleetError::io("/dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The cluster contexts of an environment file (`clusters[].context`), read leniently:
/// the fleet only needs the names, flotilla validates the rest.
pub fn contexts_of(file: &Path) -> Result<Vec<String>> {
    let bad = |message: String| FleetError::BadInput {
        file: file.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read: {e}")))?;
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| bad(format!("not YAML: {e}")))?;
    let clusters = doc
        .get("clusters")
        .and_then(|c| c.as_sequence())
        .ok_or_else(|| bad("clusters: expected a list of {context: NAME}".into()))?;
    clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.get("context")
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("clusters[{i}].context: expected a name")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::contexts_of;

    #[test]
    fn contexts_come_from_an_environment_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev.yaml");
        std::fs::write(
            &file,
            "name: dev\nclusters:\n  - context: dev-eu\n    global: {cloud: true}\n  - context: dev-us\n",
        )
        .unwrap();
        assert_eq!(contexts_of(&file).unwrap(), vec!["dev-eu", "dev-us"]);

        std::fs::write(&file, "name: dev\nclusters:\n  - wave: 1\n").unwrap();
        let err = contexts_of(&file).unwrap_err().to_string();
        assert!(
            err.contains("dev.yaml") && err.contains("clusters[0].context"),
            "{err}"
        );
    }
}
