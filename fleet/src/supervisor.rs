//! `up`, `down`, `status`, `stop-cluster`, `start-cluster`: the life of one fleet.
//!
//! One etcd serves every cluster (each apiserver has its own `--etcd-prefix`); per
//! cluster a kube-apiserver, a kube-controller-manager and a simulated kubelet
//! (`flotilla-fleet kubelet`); one RustyVault behind `flotilla-fleet vault-proxy`.
//! Ports are chosen free at `up` and recorded, so several fleets can share a machine.

use crate::binaries::Binaries;
use crate::certs::{self, CertPaths};
use crate::process;
use crate::state::{self, ClusterState, State, VaultState};
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
}

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
const ETCD: &str = "etcd";
const RVAULT: &str = "rvault";
const PROXY: &str = "vault-proxy";

fn cluster_processes(name: &str) -> [String; 3] {
    [kubelet(name), controller_manager(name), apiserver(name)]
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
    let mut expected = vec![ETCD.to_string(), RVAULT.to_string(), PROXY.to_string()];
    for c in state.clusters.iter().filter(|c| !c.stopped) {
        expected.extend(cluster_processes(&c.name));
    }
    expected
        .iter()
        .all(|name| process::alive(dir, name).is_some())
}

pub async fn up(req: &UpRequest) -> Result<UpOutcome> {
    // Every check that can fail on bad input or a missing binary comes before anything
    // is stopped, wiped or started.
    validate_names(&req.clusters)?;
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

    let mut ports = free_ports(4 + req.clusters.len())?.into_iter();
    let mut next = || ports.next().unwrap_or_default();
    let state = State {
        admin_token: state::random_token()?,
        deployer_token: state::random_token()?,
        etcd_port: next(),
        etcd_peer_port: next(),
        clusters: req
            .clusters
            .iter()
            .map(|name| ClusterState {
                name: name.clone(),
                port: next(),
                stopped: false,
            })
            .collect(),
        vault: VaultState {
            port: next(),
            proxy_port: next(),
            root_token: String::new(),
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
    crate::vault::spawn_rvault(dir, &binaries.rvault, state.vault.port)?;
    progress(&format!(
        "starting etcd, rvault and {} kube-apiserver(s); logs in {}",
        state.clusters.len(),
        dir.join("logs").display()
    ));
    // Apiservers retry etcd until it answers: starting them at once overlaps their slow
    // start-up (OpenAPI, bootstrap roles) with etcd's.
    for c in &state.clusters {
        spawn_apiserver(dir, binaries, &certs, &state, c)?;
    }
    wait_etcd(dir, state.etcd_port).await?;
    progress("etcd answers");
    let vault_addr = format!("http://127.0.0.1:{}", state.vault.port);
    let (clusters, vault) = tokio::join!(
        futures::future::try_join_all(state.clusters.iter().map(|c| bring_up_cluster(
            dir,
            binaries,
            &req.fleet_exe,
            &c.name
        ))),
        crate::vault::setup(dir, &vault_addr, seed)
    );
    clusters?;
    let creds = vault?;
    progress("every cluster and Vault ready");
    let mut state = state;
    state.vault.root_token = creds.root_token;
    state.vault.unseal_key = creds.unseal_key;
    state.vault.role_id = creds.role_id;
    state.vault.secret_id = creds.secret_id;
    state.save(dir)?;

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
    state::write_env(dir, &state)?;
    Ok(())
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
    fleet_exe: &Path,
    name: &str,
) -> Result<()> {
    let client = wait_apiserver(dir, name).await?;
    progress(&format!("{name}: apiserver ready"));
    bootstrap(&client, name).await?;
    spawn_controller_manager(dir, binaries, name)?;
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
    certs: &CertPaths,
    state: &State,
    cluster: &ClusterState,
) -> Result<()> {
    let name = &cluster.name;
    let args = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", state.etcd_port),
        format!("--etcd-prefix=/{name}"),
        format!("--secure-port={}", cluster.port),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        "--insecure-port=0".into(),
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
        "--v=0".into(),
    ];
    process::spawn(dir, &apiserver(name), &binaries.kube_apiserver, &args).map(|_| ())
}

/// An admin client for context `name` of the fleet's kubeconfig.
pub async fn client(dir: &Path, context: &str) -> Result<kube::Client> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    crate::install_crypto_provider();
    let path = state::kubeconfig_path(dir);
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
    let client = client(dir, name).await?;
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

fn spawn_controller_manager(dir: &Path, binaries: &Binaries, name: &str) -> Result<()> {
    let args = vec![
        format!(
            "--kubeconfig={}",
            state::cluster_kubeconfig_path(dir, name).display()
        ),
        "--controllers=deployment,replicaset,garbagecollector,namespace,job,statefulset,daemonset"
            .into(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
        "--port=0".into(),
        "--leader-elect=false".into(),
        "--kube-api-qps=100".into(),
        "--kube-api-burst=200".into(),
        "--v=0".into(),
    ];
    process::spawn(
        dir,
        &controller_manager(name),
        &binaries.kube_controller_manager,
        &args,
    )
    .map(|_| ())
}

fn spawn_kubelet(dir: &Path, fleet_exe: &Path, name: &str) -> Result<()> {
    let args = vec![
        "kubelet".into(),
        "--kubeconfig".into(),
        state::kubeconfig_path(dir).display().to_string(),
        "--context".into(),
        name.to_string(),
    ];
    process::spawn(dir, &kubelet(name), fleet_exe, &args).map(|_| ())
}

/// Waits until the kubelet of `name` has registered its Ready node.
async fn wait_node(dir: &Path, client: &kube::Client, name: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let nodes = kube::Api::<Node>::all(client.clone());
    wait_for(dir, &kubelet(name), || {
        let nodes = nodes.clone();
        async move {
            let Ok(Some(node)) = nodes.get_opt(crate::kubelet::NODE).await else {
                return false;
            };
            crate::kubelet::node_ready(&node)
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
    first.extend(tier("controller-manager-"));
    first.extend(tier(PROXY));
    first.extend(tier(RVAULT));
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

pub async fn stop_cluster(dir: &Path, name: &str) -> Result<()> {
    let mut state = State::load(dir)?.ok_or_else(|| FleetError::NotUp(dir.to_path_buf()))?;
    state.cluster_mut(name)?.stopped = true;
    state.save(dir)?;
    stop_cluster_processes(dir, name).await;
    Ok(())
}

async fn stop_cluster_processes(dir: &Path, name: &str) {
    process::stop(
        dir,
        &[kubelet(name), controller_manager(name)],
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
    // Whatever is left of it (a crash) goes first, so the port is free.
    stop_cluster_processes(dir, name).await;
    spawn_apiserver(dir, &binaries, &CertPaths::new(dir), &state, &cluster)?;
    let client = wait_apiserver(dir, name).await?;
    spawn_controller_manager(dir, &binaries, name)?;
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
    row(
        "vault (rvault)".into(),
        RVAULT,
        format!("http://127.0.0.1:{}", state.vault.port),
        true,
    );
    row("vault proxy".into(), PROXY, state.vault_addr(), true);
    let mut answering = Vec::new();
    let mut unanswered = false;
    for c in &state.clusters {
        let answers = match client(dir, &c.name).await {
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
            format!("{} apiserver", c.name),
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
