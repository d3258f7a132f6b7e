//! `up`, `down`, `status`, `stop-cluster`, `start-cluster`: the life of one fleet.
//!
//! One etcd serves every cluster (each apiserver has its own `--etcd-prefix`); per
//! cluster a kube-apiserver, a kube-controller-manager and a simulated kubelet
//! (`flotilla-fleet kubelet`); one HashiCorp Vault in dev mode (or, on the fallback, one
//! RustyVault behind `flotilla-fleet vault-proxy`). Ports are chosen free at `up` and
//! recorded, so several fleets can share a machine.
//!
//! The control plane's flags depend on its version (read from `kube-apiserver
//! --version`): Kubernetes 1.24 removed the insecure port and KCM's `--port`, and the
//! controllers have had canonical names (`deployment-controller`) since 1.28.

use crate::binaries::{Binaries, VaultBinary};
use crate::certs::{self, CertPaths};
use crate::process;
use crate::state::{self, ClusterState, State, VaultKind, VaultState};
use crate::{FleetError, Result};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a server gets to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// The pieces of the state directory that `up` owns and may wipe.
const OWNED: &[&str] = &[
    "fleet.json",
    "kubeconfig",
    "env",
    "tokens.csv",
    "certs",
    "clusters",
    "etcd",
    "vault",
    "registry",
    "chart-repo",
    "logs",
    "pids",
];

pub struct UpRequest {
    pub dir: PathBuf,
    pub clusters: Vec<String>,
    /// The Vault seed file; `None` takes the one built into the binary.
    pub seed: Option<PathBuf>,
    /// The `flotilla-fleet` binary that runs the kubelets and the Vault proxy.
    pub fleet_exe: PathBuf,
    /// `--rtt`: (cluster or `all`, round-trip time); a cluster's own entry wins over `all`.
    pub rtt: Vec<(String, Duration)>,
}

impl UpRequest {
    /// The round-trip time its proxy adds to cluster `name`, in ms (0: no proxy).
    fn rtt_ms(&self, name: &str) -> u64 {
        let find = |key: &str| self.rtt.iter().rev().find(|(n, _)| n == key);
        find(name)
            .or_else(|| find(RTT_ALL))
            .map_or(0, |(_, rtt)| rtt.as_millis() as u64)
    }
}

/// `--rtt all=150ms`: every cluster of the fleet.
pub const RTT_ALL: &str = "all";

#[derive(Debug)]
pub enum UpOutcome {
    Started { took: Duration },
    AlreadyUp,
}

fn apiserver(name: &str) -> String {
    format!("apiserver-{name}")
}
fn controller_manager(name: &str) -> String {
    format!("controller-manager-{name}")
}
fn kubelet(name: &str) -> String {
    format!("kubelet-{name}")
}
fn rtt_proxy(name: &str) -> String {
    format!("rtt-proxy-{name}")
}
const ETCD: &str = "etcd";
const RVAULT: &str = crate::vault::RVAULT_PROCESS;
const VAULT: &str = crate::vault::VAULT_PROCESS;
const PROXY: &str = "vault-proxy";
/// Simulated nodes per cluster (DaemonSets get one pod on each).
pub const NODES: u32 = 2;

/// The Vault processes of a fleet with this Vault.
fn vault_processes(kind: VaultKind) -> Vec<String> {
    match kind {
        VaultKind::HashiCorp => vec![VAULT.to_string()],
        VaultKind::Rusty => vec![RVAULT.to_string(), PROXY.to_string()],
    }
}

/// The chart sources that should run: the chart repository, and the registry unless it
/// was built without one or `stop-registry` stopped it.
fn chart_processes(state: &State) -> Vec<String> {
    let mut names = Vec::new();
    if state.registry_port > 0 && !state.registry_stopped {
        names.push(crate::charts::REGISTRY.to_string());
    }
    if state.chart_repo_port > 0 {
        names.push(crate::charts::CHART_REPO.to_string());
    }
    names
}

/// The flags that changed since Kubernetes 1.20, by the apiserver's version.
#[derive(Debug, Clone, Copy)]
struct Flavour {
    /// 1.24 and later: no `--insecure-port`, no KCM `--port`.
    modern: bool,
}

impl Flavour {
    fn of(binaries: &Binaries) -> (Flavour, String) {
        let version = crate::binaries::version_of(&binaries.kube_apiserver).unwrap_or_default();
        let modern = crate::binaries::kubernetes_minor(&version)
            .is_none_or(|(major, minor)| major > 1 || minor >= 24);
        (Flavour { modern }, version)
    }
}

/// A cluster's processes, its latency proxy among them when it has one.
fn cluster_processes(cluster: &ClusterState) -> Vec<String> {
    let name = &cluster.name;
    let mut processes = vec![kubelet(name), controller_manager(name), apiserver(name)];
    if cluster.rtt_ms > 0 {
        processes.push(rtt_proxy(name));
    }
    processes
}

/// Every `--rtt` names a cluster of the fleet (or `all`).
fn validate_rtt(req: &UpRequest) -> Result<()> {
    for (name, _) in &req.rtt {
        if name != RTT_ALL && !req.clusters.contains(name) {
            return Err(FleetError::Usage(format!(
                "--rtt {name}=...: no cluster named {name:?} (clusters: {}; or `all`)",
                req.clusters.join(",")
            )));
        }
    }
    Ok(())
}

/// Cluster names become file names, etcd prefixes and context names.
pub fn validate_names(names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Err(FleetError::Usage("no clusters to start".into()));
    }
    for (i, name) in names.iter().enumerate() {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !name.starts_with(['-', '.']);
        if !ok {
            return Err(FleetError::Usage(format!(
                "cluster name {name:?}: use lower-case letters, digits, '-' and '.' (at most 63)"
            )));
        }
        if names[..i].contains(name) {
            return Err(FleetError::Usage(format!(
                "cluster {name:?} is named twice"
            )));
        }
    }
    Ok(())
}

/// Whether every process the fleet should have runs (stopped clusters excepted).
pub fn all_running(dir: &Path, state: &State) -> bool {
    let mut expected = vec![ETCD.to_string()];
    expected.extend(vault_processes(state.vault.kind));
    expected.extend(chart_processes(state));
    for c in state.clusters.iter().filter(|c| !c.stopped) {
        expected.extend(cluster_processes(c));
    }
    expected
        .iter()
        .all(|name| process::alive(dir, name).is_some())
}

pub async fn up(req: &UpRequest) -> Result<UpOutcome> {
    // Every check that can fail on bad input or a missing binary comes before anything
    // is stopped, wiped or started.
    validate_names(&req.clusters)?;
    validate_rtt(req)?;
    let binaries = Binaries::find()?;
    let seed = crate::vault::Seed::load(req.seed.as_deref())?;
    let dir = &req.dir;
    if let Some(state) = State::load(dir)? {
        if all_running(dir, &state) {
            let running: Vec<&str> = state.clusters.iter().map(|c| c.name.as_str()).collect();
            if running != req.clusters.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(FleetError::Usage(format!(
                    "a fleet with clusters {} is up in {}; run down first to start {}",
                    running.join(","),
                    dir.display(),
                    req.clusters.join(",")
                )));
            }
            if let Some(c) = state
                .clusters
                .iter()
                .find(|c| c.rtt_ms != req.rtt_ms(&c.name))
            {
                return Err(FleetError::Usage(format!(
                    "a fleet is up in {} with cluster {} at {} ms of round-trip time, not {} ms; run down first",
                    dir.display(),
                    c.name,
                    c.rtt_ms,
                    req.rtt_ms(&c.name)
                )));
            }
            for c in state.clusters.iter().filter(|c| c.stopped) {
                start_cluster(dir, &c.name, &req.fleet_exe).await?;
            }
            return Ok(UpOutcome::AlreadyUp);
        }
        eprintln!(
            "fleet in {}: some processes are gone (crash?); cleaning up and starting afresh",
            dir.display()
        );
    }
    // Whatever is left of an earlier fleet or a half-failed up goes first.
    down(dir).await?;
    wipe(dir)?;
    let started = Instant::now();
    match start(req, &binaries, &seed).await {
        Ok(()) => Ok(UpOutcome::Started {
            took: started.elapsed(),
        }),
        Err(e) => {
            eprintln!(
                "up failed; stopping what was started (logs kept in {}/logs)",
                dir.display()
            );
            down(dir).await?;
            Err(e)
        }
    }
}

async fn start(req: &UpRequest, binaries: &Binaries, seed: &crate::vault::Seed) -> Result<()> {
    let dir = &req.dir;
    std::fs::create_dir_all(dir).map_err(|e| FleetError::io(dir, e))?;
    let certs = certs::generate(dir)?;

    let (flavour, kubernetes_version) = Flavour::of(binaries);
    let kind = match binaries.vault {
        VaultBinary::HashiCorp(_) => VaultKind::HashiCorp,
        VaultBinary::Rusty(_) => VaultKind::Rusty,
    };
    // HashiCorp Vault's dev mode takes two adjacent ports (API, cluster).
    let vault_port = crate::vault::free_port_pair()?;
    let proxies = req.clusters.iter().filter(|c| req.rtt_ms(c) > 0).count();
    let mut ports = free_ports(7 + req.clusters.len() + proxies)?
        .into_iter()
        .filter(|p| *p != vault_port && *p != vault_port + 1);
    let mut next = || ports.next().unwrap_or_default();
    let state = State {
        kubernetes_version: kubernetes_version.clone(),
        nodes: NODES,
        admin_token: state::random_token()?,
        deployer_token: state::random_token()?,
        etcd_port: next(),
        etcd_peer_port: next(),
        registry_port: if binaries.registry.is_some() {
            next()
        } else {
            0
        },
        registry_stopped: false,
        chart_repo_port: next(),
        clusters: req
            .clusters
            .iter()
            .map(|name| {
                let rtt_ms = req.rtt_ms(name);
                ClusterState {
                    name: name.clone(),
                    port: next(),
                    stopped: false,
                    rtt_ms,
                    proxy_port: if rtt_ms > 0 { next() } else { 0 },
                }
            })
            .collect(),
        vault: VaultState {
            kind,
            version: match &binaries.vault {
                VaultBinary::HashiCorp(path) => {
                    crate::binaries::version_of(path).unwrap_or_default()
                }
                VaultBinary::Rusty(_) => "RustyVault".into(),
            },
            port: vault_port,
            proxy_port: if kind == VaultKind::Rusty { next() } else { 0 },
            kubernetes_auth_cluster: None,
            root_token: if kind == VaultKind::HashiCorp {
                state::random_token()?
            } else {
                String::new()
            },
            role_id: String::new(),
            secret_id: String::new(),
            unseal_key: String::new(),
        },
    };
    state.save(dir)?;
    certs::write(
        &dir.join("tokens.csv"),
        &format!(
            "{},admin,admin,system:masters\n{},deployer,deployer\n",
            state.admin_token, state.deployer_token
        ),
    )?;
    let ca = std::fs::read_to_string(&certs.ca).map_err(|e| FleetError::io(&certs.ca, e))?;
    state::write_kubeconfig(dir, &state, &ca)?;

    spawn_etcd(dir, binaries, &state)?;
    if let Some(registry) = &binaries.registry {
        crate::charts::spawn_registry(dir, registry, state.registry_port)?;
    }
    crate::charts::spawn_chart_repo(dir, &req.fleet_exe, state.chart_repo_port)?;
    match &binaries.vault {
        VaultBinary::HashiCorp(path) => {
            crate::vault::spawn_hashicorp(dir, path, state.vault.port, &state.vault.root_token)?
        }
        VaultBinary::Rusty(path) => crate::vault::spawn_rvault(dir, path, state.vault.port)?,
    }
    progress(&format!(
        "starting etcd, {} and {} kube-apiserver(s) ({}); logs in {}",
        match kind {
            VaultKind::HashiCorp => "vault (dev mode)",
            VaultKind::Rusty => "rvault (RustyVault, the fallback)",
        },
        state.clusters.len(),
        if kubernetes_version.is_empty() {
            "version unknown"
        } else {
            &kubernetes_version
        },
        dir.join("logs").display()
    ));
    // Apiservers retry etcd until it answers: starting them at once overlaps their slow
    // start-up (OpenAPI, bootstrap roles) with etcd's.
    for c in &state.clusters {
        spawn_apiserver(dir, binaries, flavour, &certs, &state, c)?;
        spawn_rtt_proxy(dir, &req.fleet_exe, c)?;
    }
    wait_etcd(dir, state.etcd_port).await?;
    progress("etcd answers");
    let vault_addr = format!("http://127.0.0.1:{}", state.vault.port);
    let vault_setup = async {
        match kind {
            VaultKind::HashiCorp => {
                crate::vault::setup_hashicorp(dir, &vault_addr, &state.vault.root_token, seed).await
            }
            VaultKind::Rusty => crate::vault::setup(dir, &vault_addr, seed).await,
        }
    };
    let (clusters, vault) = tokio::join!(
        futures::future::try_join_all(state.clusters.iter().map(|c| bring_up_cluster(
            dir,
            binaries,
            flavour,
            &req.fleet_exe,
            &c.name
        ))),
        vault_setup
    );
    clusters?;
    for c in &state.clusters {
        wait_rtt_proxy(dir, c).await?;
    }
    let creds = vault?;
    let mut state = state;
    state.vault.root_token = creds.root_token;
    state.vault.unseal_key = creds.unseal_key;
    state.vault.role_id = creds.role_id;
    state.vault.secret_id = creds.secret_id;
    if kind == VaultKind::HashiCorp {
        if let Some(first) = state.clusters.first() {
            kubernetes_auth(dir, &state, &first.name, &ca).await?;
            state.vault.kubernetes_auth_cluster = Some(first.name.clone());
        }
    }
    wait_chart_sources(dir, &state).await?;
    progress("every cluster and Vault ready");
    state.save(dir)?;

    if kind == VaultKind::Rusty {
        process::spawn(
            dir,
            PROXY,
            &req.fleet_exe,
            &[
                "vault-proxy".into(),
                "--listen".into(),
                format!("127.0.0.1:{}", state.vault.proxy_port),
                "--upstream".into(),
                vault_addr,
            ],
        )?;
        crate::vault::wait_answering(dir, PROXY, &state.vault_addr()).await?;
    }
    let mut tools: Vec<&Path> = binaries
        .kubectl
        .as_deref()
        .and_then(Path::parent)
        .into_iter()
        .collect();
    if let VaultBinary::HashiCorp(vault) = &binaries.vault {
        tools.extend(vault.parent());
    }
    tools.extend(binaries.helm.as_deref().and_then(Path::parent));
    // flotilla-fleet's own folder, where cargo puts flotilla too: after `source env`,
    // both are on PATH, as the README's tour needs.
    let own = std::env::current_exe().ok();
    tools.extend(own.as_deref().and_then(Path::parent));
    state::write_env(dir, &state, &tools)?;
    Ok(())
}

/// Vault's Kubernetes auth against cluster `name`: a reviewer service account
/// (`kube-system/vault-reviewer`, bound to `system:auth-delegator`, so it may create
/// TokenReviews), its token from the TokenRequest API (no token Secrets since 1.24), the
/// service account `hello/hello` that the role binds, then Vault's config and role.
async fn kubernetes_auth(dir: &Path, state: &State, name: &str, ca_pem: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kube::api::{Api, Patch, PatchParams};
    let client = direct_client(dir, name).await?;
    let fail = |e: kube::Error| FleetError::Cluster {
        cluster: name.to_string(),
        message: format!("Vault's Kubernetes auth: {e}"),
    };
    let params = PatchParams::apply("flotilla-fleet").force();
    for (namespace, sa) in [
        ("kube-system", "vault-reviewer"),
        (
            crate::vault::KUBERNETES_NAMESPACE,
            crate::vault::KUBERNETES_SA,
        ),
    ] {
        let account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": sa, "namespace": namespace },
        }))
        .map_err(|e| FleetError::Usage(e.to_string()))?;
        Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .patch(sa, &params, &Patch::Apply(&account))
            .await
            .map_err(fail)?;
    }
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": { "name": "vault-reviewer" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator" },
        "subjects": [{ "kind": "ServiceAccount", "name": "vault-reviewer", "namespace": "kube-system" }],
    }))
    .map_err(|e| FleetError::Usage(e.to_string()))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch("vault-reviewer", &params, &Patch::Apply(&binding))
        .await
        .map_err(fail)?;
    // The reviewer's token lives as long as a fleet reasonably does (a week).
    let reviewer_jwt = service_account_token(
        &client,
        "kube-system",
        "vault-reviewer",
        None,
        7 * 24 * 3600,
    )
    .await
    .map_err(fail)?;
    let cluster = state.cluster(name)?;
    crate::vault::setup_kubernetes_auth(
        &format!("http://127.0.0.1:{}", state.vault.port),
        &state.vault.root_token,
        &crate::vault::KubernetesAuth {
            host: format!("https://127.0.0.1:{}", cluster.port),
            ca_pem,
            reviewer_jwt: &reviewer_jwt,
        },
    )
    .await?;
    progress(&format!(
        "vault: Kubernetes auth against {name} (role {}: service account {}/{}, audience {})",
        crate::vault::KUBERNETES_ROLE,
        crate::vault::KUBERNETES_NAMESPACE,
        crate::vault::KUBERNETES_SA,
        crate::vault::KUBERNETES_AUDIENCE
    ));
    Ok(())
}

/// A token of service account `namespace/name` from the TokenRequest API, for
/// `audience` (`None`: the apiserver's own), valid `seconds`.
pub async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    audience: Option<&str>,
    seconds: i64,
) -> kube::Result<String> {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "audiences": audience.map(|a| vec![a]).unwrap_or_default(),
            "expirationSeconds": seconds,
        },
    }))
    .map_err(kube::Error::SerdeError)?;
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_subresource("token", name, &PostParams::default(), &request)
        .await?;
    answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            kube::Error::Service(
                format!("TokenRequest for {namespace}/{name}: no token in the answer").into(),
            )
        })
}

/// Says what `up` is doing, on stderr (stdout carries the status table).
pub(crate) fn progress(message: &str) {
    eprintln!("[fleet] {message}");
}

/// After its apiserver was spawned: wait for it, give it the deployer's RBAC, start its
/// controller-manager and kubelet, wait for the kubelet's node.
async fn bring_up_cluster(
    dir: &Path,
    binaries: &Binaries,
    flavour: Flavour,
    fleet_exe: &Path,
    name: &str,
) -> Result<()> {
    let client = wait_apiserver(dir, name).await?;
    progress(&format!("{name}: apiserver ready"));
    bootstrap(&client, name).await?;
    spawn_controller_manager(dir, binaries, flavour, name)?;
    spawn_kubelet(dir, fleet_exe, name)?;
    wait_node(dir, &client, name).await?;
    progress(&format!(
        "{name}: controller-manager and kubelet up, node Ready"
    ));
    still_running(dir, &controller_manager(name))
}

/// A process that exits at once (a bad flag) is caught here rather than by a test later.
fn still_running(dir: &Path, name: &str) -> Result<()> {
    if process::alive(dir, name).is_some() {
        return Ok(());
    }
    let log = process::log_path(dir, name);
    Err(FleetError::Start {
        process: name.to_string(),
        message: format!("it exited; last lines of its log:\n{}", tail(&log, 15)),
        log,
    })
}

/// Frees `n` distinct ports by binding port 0 on 127.0.0.1 (all held until every one is
/// chosen, so none is handed out twice).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(|e| FleetError::io("127.0.0.1:0", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| FleetError::io("127.0.0.1:0", e))
}

fn spawn_etcd(dir: &Path, binaries: &Binaries, state: &State) -> Result<()> {
    let client = format!("http://127.0.0.1:{}", state.etcd_port);
    let peer = format!("http://127.0.0.1:{}", state.etcd_peer_port);
    let args = [
        "--name=fleet".to_string(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=fleet={peer}"),
        "--log-level=warn".into(),
        "--logger=zap".into(),
    ];
    process::spawn(dir, ETCD, &binaries.etcd, &args).map(|_| ())
}

async fn wait_etcd(dir: &Path, port: u16) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/health");
    let http = reqwest::Client::new();
    wait_for(dir, ETCD, || {
        let req = http.get(&url).timeout(Duration::from_secs(1)).send();
        async move { matches!(req.await, Ok(r) if r.status().is_success()) }
    })
    .await
}

/// Polls `ready` until it answers true, the process died, or [`START_DEADLINE`] passed.
pub(crate) async fn wait_for<F, Fut>(dir: &Path, process_name: &str, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if ready().await {
            return Ok(());
        }
        let log = process::log_path(dir, process_name);
        if process::alive(dir, process_name).is_none() {
            return Err(FleetError::Start {
                process: process_name.to_string(),
                message: format!("it exited; last lines of its log:\n{}", tail(&log, 15)),
                log,
            });
        }
        if Instant::now() > deadline {
            return Err(FleetError::Start {
                process: process_name.to_string(),
                message: format!("not ready after {}s", START_DEADLINE.as_secs()),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn spawn_apiserver(
    dir: &Path,
    binaries: &Binaries,
    flavour: Flavour,
    certs: &CertPaths,
    state: &State,
    cluster: &ClusterState,
) -> Result<()> {
    let name = &cluster.name;
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", state.etcd_port),
        format!("--etcd-prefix=/{name}"),
        format!("--secure-port={}", cluster.port),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--tls-cert-file={}", certs.serving_cert.display()),
        format!("--tls-private-key-file={}", certs.serving_key.display()),
        format!("--client-ca-file={}", certs.ca.display()),
        format!("--token-auth-file={}", dir.join("tokens.csv").display()),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-issuer=https://{name}"),
        format!("--service-account-key-file={}", certs.sa_pub.display()),
        format!(
            "--service-account-signing-key-file={}",
            certs.sa_key.display()
        ),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--service-cluster-ip-range=10.96.0.0/16".into(),
        // One machine, many apiservers: no endpoint lease games, no profiling, less memory.
        "--endpoint-reconciler-type=none".into(),
        "--enable-priority-and-fairness=false".into(),
        "--profiling=false".into(),
        "--allow-privileged=true".into(),
        // The simulated nodes are reachable at their InternalIP (127.0.0.1) only: the
        // default prefers the Hostname (`fake-node-N`), which resolves nowhere, and a
        // pod's log could not be read.
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--v=0".into(),
    ];
    if !flavour.modern {
        // 1.20 serves plain HTTP on 8080 unless told not to (the flag went in 1.24).
        args.push("--insecure-port=0".into());
    }
    process::spawn(dir, &apiserver(name), &binaries.kube_apiserver, &args).map(|_| ())
}

/// An admin client for context `name` of the fleet's kubeconfig: as flotilla, kubectl
/// and Helm reach it, through its latency proxy when it has one.
pub async fn client(dir: &Path, context: &str) -> Result<kube::Client> {
    client_of(&state::kubeconfig_path(dir), context).await
}

/// An admin client of cluster `name`'s API server itself (never through its latency
/// proxy): the fleet's own start-up and checks.
async fn direct_client(dir: &Path, name: &str) -> Result<kube::Client> {
    client_of(&state::cluster_kubeconfig_path(dir, name), name).await
}

async fn client_of(path: &Path, context: &str) -> Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    crate::install_crypto_provider();
    let path = path.to_path_buf();
    let kubeconfig = Kubeconfig::read_from(&path).map_err(|e| FleetError::BadInput {
        file: path.clone(),
        message: e.to_string(),
    })?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| FleetError::Cluster {
            cluster: context.to_string(),
            message: e.to_string(),
        })?;
    config.connect_timeout = Some(Duration::from_secs(2));
    kube::Client::try_from(config).map_err(|e| FleetError::Cluster {
        cluster: context.to_string(),
        message: e.to_string(),
    })
}

async fn readyz(client: &kube::Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}

async fn wait_apiserver(dir: &Path, name: &str) -> Result<kube::Client> {
    let client = direct_client(dir, name).await?;
    wait_for(dir, &apiserver(name), || readyz(&client)).await?;
    Ok(client)
}

/// Namespace `hello` and the deployer's rights in it.
async fn bootstrap(client: &kube::Client, name: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding};
    use kube::api::{ObjectMeta, Patch, PatchParams};
    use kube::Api;
    let params = PatchParams::apply("flotilla-fleet").force();
    let fail = |e: kube::Error| FleetError::Cluster {
        cluster: name.to_string(),
        message: format!("RBAC bootstrap: {e}"),
    };
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch("hello", &params, &Patch::Apply(&ns))
        .await
        .map_err(fail)?;
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some("flotilla-deployer".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(client.clone())
        .patch("flotilla-deployer", &params, &Patch::Apply(&role))
        .await
        .map_err(fail)?;
    let binding = deployer_binding("hello");
    Api::<RoleBinding>::namespaced(client.clone(), "hello")
        .patch("flotilla-deployer", &params, &Patch::Apply(&binding))
        .await
        .map_err(fail)?;
    Ok(())
}

/// The RoleBinding that lets the `deployer` user (the namespace-limited token) work in
/// one namespace, through the `flotilla-deployer` ClusterRole.
pub fn deployer_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some("flotilla-deployer".into()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "flotilla-deployer".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: "deployer".into(),
            ..Default::default()
        }]),
    }
}

fn spawn_controller_manager(
    dir: &Path,
    binaries: &Binaries,
    flavour: Flavour,
    name: &str,
) -> Result<()> {
    let mut args = vec![
        format!(
            "--kubeconfig={}",
            state::cluster_kubeconfig_path(dir, name).display()
        ),
        if flavour.modern {
            // Canonical names; the serviceaccount controller makes each namespace's
            // `default` ServiceAccount (charts and TokenRequests expect it).
            "--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,namespace-controller,job-controller,statefulset-controller,daemonset-controller,serviceaccount-controller".into()
        } else {
            "--controllers=deployment,replicaset,garbagecollector,namespace,job,statefulset,daemonset".into()
        },
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
        "--leader-elect=false".into(),
        "--kube-api-qps=100".into(),
        "--kube-api-burst=200".into(),
        "--v=0".into(),
    ];
    if !flavour.modern {
        args.push("--port=0".into());
    }
    process::spawn(
        dir,
        &controller_manager(name),
        &binaries.kube_controller_manager,
        &args,
    )
    .map(|_| ())
}

/// The latency proxy of a cluster with a round-trip time (nothing otherwise).
fn spawn_rtt_proxy(dir: &Path, fleet_exe: &Path, cluster: &ClusterState) -> Result<()> {
    if cluster.rtt_ms == 0 {
        return Ok(());
    }
    let args = vec![
        "rtt-proxy".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", cluster.proxy_port),
        "--upstream".into(),
        format!("127.0.0.1:{}", cluster.port),
        "--rtt".into(),
        format!("{}ms", cluster.rtt_ms),
    ];
    process::spawn(dir, &rtt_proxy(&cluster.name), fleet_exe, &args).map(|_| ())
}

/// Waits until the latency proxy of `cluster` (if it has one) accepts connections.
async fn wait_rtt_proxy(dir: &Path, cluster: &ClusterState) -> Result<()> {
    if cluster.rtt_ms == 0 {
        return Ok(());
    }
    let address = format!("127.0.0.1:{}", cluster.proxy_port);
    wait_for(dir, &rtt_proxy(&cluster.name), || {
        let address = address.clone();
        async move { tokio::net::TcpStream::connect(address).await.is_ok() }
    })
    .await
}

/// The kubelet runs in its cluster: it talks to the API server itself, not through the
/// latency proxy.
fn spawn_kubelet(dir: &Path, fleet_exe: &Path, name: &str) -> Result<()> {
    let args = vec![
        "kubelet".into(),
        "--kubeconfig".into(),
        state::cluster_kubeconfig_path(dir, name)
            .display()
            .to_string(),
        "--context".into(),
        name.to_string(),
        "--nodes".into(),
        NODES.to_string(),
    ];
    process::spawn(dir, &kubelet(name), fleet_exe, &args).map(|_| ())
}

/// Waits until the kubelet of `name` has registered its Ready nodes.
async fn wait_node(dir: &Path, client: &kube::Client, name: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let nodes = kube::Api::<Node>::all(client.clone());
    wait_for(dir, &kubelet(name), || {
        let nodes = nodes.clone();
        async move {
            for node_name in crate::kubelet::node_names(NODES) {
                let Ok(Some(node)) = nodes.get_opt(&node_name).await else {
                    return false;
                };
                if !crate::kubelet::node_ready(&node)
                    || node
                        .spec
                        .as_ref()
                        .is_some_and(|s| s.taints.as_ref().is_some_and(|t| !t.is_empty()))
                {
                    return false;
                }
            }
            true
        }
    })
    .await
}

/// Stops every process of the fleet in `dir` (also of a half-failed `up`), dependants
/// first. Keeps the state directory's files (logs help after a failure).
pub async fn down(dir: &Path) -> Result<()> {
    let names = process::names(dir);
    let tier = |prefix: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect()
    };
    // Kubelets and controller-managers would only log errors once their apiserver went.
    let mut first = tier("kubelet-");
    first.extend(tier("rtt-proxy-"));
    first.extend(tier("controller-manager-"));
    first.extend(tier(PROXY));
    first.extend(tier(RVAULT));
    first.extend(tier(VAULT).into_iter().filter(|n| n != PROXY));
    process::stop(dir, &first, process::GRACE).await;
    process::stop(dir, &tier("apiserver-"), process::APISERVER_GRACE).await;
    // Anything else with a pid file (etcd last: apiservers write to it until they stop).
    process::stop(dir, &process::names(dir), process::GRACE).await;
    Ok(())
}

/// Removes the state directory's fleet files (after `down`).
pub fn wipe(dir: &Path) -> Result<()> {
    for entry in OWNED {
        let path = dir.join(entry);
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FleetError::io(path, e)),
        }
    }
    Ok(())
}

/// Waits until the registry answers its API and the chart repository accepts connections.
async fn wait_chart_sources(dir: &Path, state: &State) -> Result<()> {
    if state.registry_port > 0 && !state.registry_stopped {
        let port = state.registry_port;
        wait_for(dir, crate::charts::REGISTRY, || {
            crate::charts::registry_answers(port)
        })
        .await?;
    }
    if state.chart_repo_port > 0 {
        let address = format!("127.0.0.1:{}", state.chart_repo_port);
        wait_for(dir, crate::charts::CHART_REPO, || {
            let address = address.clone();
            async move { tokio::net::TcpStream::connect(address).await.is_ok() }
        })
        .await?;
    }
    Ok(())
}

/// Stops the OCI registry (what was pushed stays on disk): charts by reference are then
/// unreachable, as when a registry is down.
pub async fn stop_registry(dir: &Path) -> Result<()> {
    let mut state = State::load(dir)?.ok_or_else(|| FleetError::NotUp(dir.to_path_buf()))?;
    if state.registry_port == 0 {
        return Err(FleetError::Usage(
            "this fleet runs no registry (scripts/install-deps.sh builds it)".into(),
        ));
    }
    state.registry_stopped = true;
    state.save(dir)?;
    process::stop(dir, &[crate::charts::REGISTRY.to_string()], process::GRACE).await;
    Ok(())
}

/// Starts a stopped registry again, on its port, with its data.
pub async fn start_registry(dir: &Path) -> Result<()> {
    let mut state = State::load(dir)?.ok_or_else(|| FleetError::NotUp(dir.to_path_buf()))?;
    let registry = Binaries::find()?.registry.ok_or_else(|| {
        FleetError::Usage("no registry binary (scripts/install-deps.sh builds it)".into())
    })?;
    if state.registry_port == 0 {
        return Err(FleetError::Usage(
            "this fleet was started without a registry; run down and up".into(),
        ));
    }
    process::stop(dir, &[crate::charts::REGISTRY.to_string()], process::GRACE).await;
    crate::charts::spawn_registry(dir, &registry, state.registry_port)?;
    state.registry_stopped = false;
    wait_chart_sources(dir, &state).await?;
    state.save(dir)
}

pub async fn stop_cluster(dir: &Path, name: &str) -> Result<()> {
    let mut state = State::load(dir)?.ok_or_else(|| FleetError::NotUp(dir.to_path_buf()))?;
    state.cluster_mut(name)?.stopped = true;
    state.save(dir)?;
    stop_cluster_processes(dir, name).await;
    Ok(())
}

async fn stop_cluster_processes(dir: &Path, name: &str) {
    // Its latency proxy too: a stopped cluster refuses connections, as without one.
    process::stop(
        dir,
        &[kubelet(name), controller_manager(name), rtt_proxy(name)],
        process::GRACE,
    )
    .await;
    process::stop(dir, &[apiserver(name)], process::APISERVER_GRACE).await;
}

pub async fn start_cluster(dir: &Path, name: &str, fleet_exe: &Path) -> Result<()> {
    let mut state = State::load(dir)?.ok_or_else(|| FleetError::NotUp(dir.to_path_buf()))?;
    let cluster = state.cluster(name)?.clone();
    if process::alive(dir, ETCD).is_none() {
        return Err(FleetError::NotUp(dir.to_path_buf()));
    }
    let binaries = Binaries::find()?;
    let (flavour, _) = Flavour::of(&binaries);
    // Whatever is left of it (a crash) goes first, so the port is free.
    stop_cluster_processes(dir, name).await;
    spawn_apiserver(
        dir,
        &binaries,
        flavour,
        &CertPaths::new(dir),
        &state,
        &cluster,
    )?;
    spawn_rtt_proxy(dir, fleet_exe, &cluster)?;
    let client = wait_apiserver(dir, name).await?;
    wait_rtt_proxy(dir, &cluster).await?;
    spawn_controller_manager(dir, &binaries, flavour, name)?;
    spawn_kubelet(dir, fleet_exe, name)?;
    wait_node(dir, &client, name).await?;
    still_running(dir, &controller_manager(name))?;
    state.cluster_mut(name)?.stopped = false;
    state.save(dir)
}

/// One line per process and per cluster, for `status`.
pub struct StatusReport {
    pub lines: Vec<(String, String, String)>,
    pub healthy: bool,
}

pub async fn status(dir: &Path) -> Result<StatusReport> {
    let state = State::load(dir)?.ok_or_else(|| FleetError::NotUp(dir.to_path_buf()))?;
    let mut lines = Vec::new();
    let mut healthy = true;
    let mut row = |what: String, proc_name: &str, endpoint: String, want: bool| {
        let pid = process::alive(dir, proc_name);
        let status = match (pid, want) {
            (Some(pid), _) => format!("running (pid {pid})"),
            (None, false) => "stopped".to_string(),
            (None, true) => "DOWN".to_string(),
        };
        healthy &= pid.is_some() || !want;
        lines.push((what, status, endpoint));
    };
    row(
        "etcd".into(),
        ETCD,
        format!("http://127.0.0.1:{}", state.etcd_port),
        true,
    );
    match state.vault.kind {
        VaultKind::HashiCorp => row(
            format!("vault ({})", state.vault.version),
            VAULT,
            state.vault_addr(),
            true,
        ),
        VaultKind::Rusty => {
            row(
                "vault (RustyVault, the fallback)".into(),
                RVAULT,
                format!("http://127.0.0.1:{}", state.vault.port),
                true,
            );
            row("vault proxy".into(), PROXY, state.vault_addr(), true);
        }
    }
    if state.registry_port > 0 {
        row(
            "registry (OCI, plain HTTP)".into(),
            crate::charts::REGISTRY,
            format!("oci://127.0.0.1:{}", state.registry_port),
            !state.registry_stopped,
        );
    }
    if state.chart_repo_port > 0 {
        row(
            "chart repository".into(),
            crate::charts::CHART_REPO,
            format!("http://127.0.0.1:{}", state.chart_repo_port),
            true,
        );
    }
    let mut answering = Vec::new();
    let mut unanswered = false;
    for c in &state.clusters {
        let answers = match direct_client(dir, &c.name).await {
            Ok(client) => tokio::time::timeout(Duration::from_secs(3), readyz(&client))
                .await
                .unwrap_or(false),
            Err(_) => false,
        };
        answering.push(answers);
    }
    for (c, answers) in state.clusters.iter().zip(answering) {
        let want = !c.stopped;
        let endpoint = format!("https://127.0.0.1:{}", c.port);
        row(
            format!(
                "{} apiserver{}",
                c.name,
                if state.kubernetes_version.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", state.kubernetes_version)
                }
            ),
            &apiserver(&c.name),
            if answers {
                format!("{endpoint} (ready)")
            } else {
                format!("{endpoint} (not answering)")
            },
            want,
        );
        unanswered |= want && !answers;
        row(
            format!("{} controller-manager", c.name),
            &controller_manager(&c.name),
            String::new(),
            want,
        );
        row(
            format!("{} kubelet", c.name),
            &kubelet(&c.name),
            String::new(),
            want,
        );
        if c.rtt_ms > 0 {
            row(
                format!("{} latency proxy ({} ms round trip)", c.name, c.rtt_ms),
                &rtt_proxy(&c.name),
                format!("https://127.0.0.1:{} (in the kubeconfig)", c.proxy_port),
                want,
            );
        }
    }
    Ok(StatusReport {
        lines,
        healthy: healthy && !unanswered,
    })
}

#[cfg(test)]
mod tests {
    use super::validate_names;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cluster_names_must_be_usable_as_files_and_contexts() {
        assert!(validate_names(&names(&["dev-europe-west1", "dev-paris-dc1"])).is_ok());
        let err = validate_names(&names(&["Dev_1"])).unwrap_err().to_string();
        assert!(err.contains("\"Dev_1\""), "{err}");
        let err = validate_names(&names(&["a", "b", "a"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("named twice"), "{err}");
        assert!(validate_names(&[]).is_err());
        assert!(validate_names(&names(&["../etc"])).is_err());
    }
}
