//! The fleet for integration tests, in flotilla's own tests and in this crate's.
//!
//! - [`Fleet::shared`]: the fleet named by `FLOTILLA_FLEET_DIR` when it is up (what
//!   `scripts/test.sh` starts once for every test binary), else one started once per test
//!   binary in a temporary directory and stopped when the test binary exits.
//! - [`Fleet::dedicated`]: a fleet of its own, for tests that stop clusters; stopped when
//!   dropped.
//! - Isolation on a shared fleet is by namespace: [`Fleet::namespace`] creates a fresh,
//!   unique one in every cluster.
//! - Waiting is on watches ([`wait_for`], [`wait_for_pods`]) with a deadline, never on
//!   fixed sleeps.
//!
//! Fleet processes are started by the `flotilla-fleet` binary: `FLOTILLA_FLEET_BIN`,
//! else the one next to the test binary's `deps/` folder, else built with cargo.
//!
//! These are test helpers: they panic with a clear message where a test cannot go on.

use crate::state::{self, State};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::Client;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub struct Fleet {
    dir: PathBuf,
    state: State,
    /// Runs `down` and removes a temporary state directory when its stdin closes, which
    /// happens when this process exits however it exits (a static is never dropped).
    guardian: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Fleet> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Fleet {
    /// The fleet of this test binary; see the module docs.
    pub fn shared() -> &'static Fleet {
        crate::install_crypto_provider();
        SHARED.get_or_init(|| {
            let named = std::env::var_os("FLOTILLA_FLEET_DIR").filter(|d| !d.is_empty());
            if let Some(dir) = named.map(PathBuf::from) {
                if let Ok(Some(state)) = State::load(&dir) {
                    if crate::supervisor::all_running(&dir, &state) {
                        return Fleet {
                            dir,
                            state,
                            guardian: Mutex::new(None),
                        };
                    }
                }
                eprintln!(
                    "FLOTILLA_FLEET_DIR={}: no fleet up there; starting one for this test binary",
                    dir.display()
                );
            }
            Fleet::start(&[], &[])
        })
    }

    /// A fleet of its own with these clusters; stopped when dropped.
    pub fn dedicated(names: &[&str]) -> Fleet {
        Fleet::dedicated_with(names, &[])
    }

    /// [`Fleet::dedicated`] with more flags of `up` (`--rtt NAME=150ms`).
    pub fn dedicated_with(names: &[&str], up_flags: &[&str]) -> Fleet {
        crate::install_crypto_provider();
        assert!(
            !names.is_empty(),
            "Fleet::dedicated needs at least one cluster"
        );
        Fleet::start(names, up_flags)
    }

    fn start(names: &[&str], up_flags: &[&str]) -> Fleet {
        let bin = fleet_binary();
        let dir = tempfile::Builder::new()
            .prefix("flotilla-fleet-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary fleet directory: {e}"))
            .keep();
        let guardian = spawn_guardian(&bin, &dir);
        let mut up = Command::new(&bin);
        up.arg("--state")
            .arg(&dir)
            .arg("up")
            .env_remove("FLOTILLA_FLEET_DIR")
            .current_dir(workspace_root());
        if !names.is_empty() {
            up.arg("--clusters").arg(names.join(","));
        }
        up.args(up_flags);
        let output = up
            .output()
            .unwrap_or_else(|e| panic!("running {} up: {e}", bin.display()));
        if !output.status.success() {
            // Most often the servers' binaries are missing: say how to get them.
            panic!(
                "flotilla-fleet up failed ({}):\n{}{}\n\
                 This test needs the local fleet: run scripts/install-deps.sh once (etcd, \
                 kube-apiserver, kube-controller-manager, rvault), or run the whole suite \
                 with scripts/test.sh, which also starts the fleet.",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let state = State::load(&dir)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no fleet state in {} after up", dir.display()));
        Fleet {
            dir,
            state,
            guardian: Mutex::new(Some(guardian)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Cluster (context) names, in the fleet's order.
    pub fn clusters(&self) -> Vec<String> {
        self.state.clusters.iter().map(|c| c.name.clone()).collect()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        state::kubeconfig_path(&self.dir)
    }

    /// An admin client for `context`.
    pub async fn client(&self, context: &str) -> Client {
        crate::supervisor::client(&self.dir, context)
            .await
            .unwrap_or_else(|e| panic!("kube client for {context}: {e}"))
    }

    /// A client that uses the RBAC-limited deployer token.
    pub async fn deployer_client(&self, context: &str) -> Client {
        self.client(&format!("{context}-deployer")).await
    }

    pub fn vault_addr(&self) -> String {
        self.state.vault_addr()
    }
    pub fn vault_token(&self) -> &str {
        &self.state.vault.root_token
    }
    pub fn vault_role_id(&self) -> &str {
        &self.state.vault.role_id
    }
    pub fn vault_secret_id(&self) -> &str {
        &self.state.vault.secret_id
    }

    /// HashiCorp Vault, or RustyVault (the fallback of a machine without Go).
    pub fn vault_kind(&self) -> state::VaultKind {
        self.state.vault.kind
    }

    /// The cluster that Vault's Kubernetes auth reviews tokens with (HashiCorp Vault only).
    pub fn kubernetes_auth_cluster(&self) -> Option<&str> {
        self.state.vault.kubernetes_auth_cluster.as_deref()
    }

    /// A service-account token from the TokenRequest API of `cluster`.
    pub async fn service_account_token(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        audience: &str,
        seconds: i64,
    ) -> String {
        let client = self.client(cluster).await;
        crate::supervisor::service_account_token(&client, namespace, name, Some(audience), seconds)
            .await
            .unwrap_or_else(|e| panic!("{cluster}: token of {namespace}/{name}: {e}"))
    }

    /// The variables of `<state>/env`: give them to a `flotilla` child process.
    pub fn env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("KUBECONFIG".into(), self.kubeconfig().display().to_string()),
            ("VAULT_ADDR".into(), self.vault_addr()),
            ("VAULT_TOKEN".into(), self.vault_token().into()),
            ("VAULT_ROLE_ID".into(), self.vault_role_id().into()),
            ("VAULT_SECRET_ID".into(), self.vault_secret_id().into()),
        ])
    }

    /// A fresh namespace `<prefix>-<unique>` in every running cluster of the fleet, where
    /// the deployer token has the same rights as in `hello`. Returns its name.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        for cluster in self.state.clusters.iter().filter(|c| !c.stopped) {
            let client = self.client(&cluster.name).await;
            create_namespace(&client, &name)
                .await
                .unwrap_or_else(|e| panic!("{}: creating namespace {name}: {e}", cluster.name));
        }
        name
    }

    /// `flotilla-fleet stop-cluster`; only on a dedicated fleet (others share the shared one).
    pub fn stop_cluster(&self, name: &str) {
        self.run_fleet(&["stop-cluster", name]);
    }

    pub fn start_cluster(&self, name: &str) {
        self.run_fleet(&["start-cluster", name]);
    }

    /// Runs `flotilla-fleet --state <this fleet> ARGS` and returns what it did.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        let bin = fleet_binary();
        Command::new(&bin)
            .arg("--state")
            .arg(&self.dir)
            .args(args)
            .env_remove("FLOTILLA_FLEET_DIR")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
    }

    fn run_fleet(&self, args: &[&str]) {
        let output = self.command(args);
        assert!(
            output.status.success(),
            "flotilla-fleet {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Fleet {
    /// Only a dedicated fleet is ever dropped: close the guardian's stdin and wait for
    /// its `down`.
    fn drop(&mut self) {
        let guardian = self.guardian.get_mut().ok().and_then(Option::take);
        if let Some(mut child) = guardian {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = state::random_token().unwrap_or_default();
    let mut name = format!("{prefix}-{}-{n}-{}", std::process::id(), &suffix[..6]);
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

async fn create_namespace(client: &Client, name: &str) -> kube::Result<()> {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "flotilla-fleet/test".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let binding = crate::supervisor::deployer_binding(name);
    Api::<RoleBinding>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// Waits on a watch until object `name` satisfies `condition` (which sees `None` while
/// the object does not exist); returns it, or an error naming what was awaited.
pub async fn wait_for<K>(
    api: Api<K>,
    name: &str,
    deadline: Duration,
    condition: impl Fn(Option<&K>) -> bool,
) -> Result<Option<K>, String>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let cond = move |obj: Option<&K>| condition(obj);
    match tokio::time::timeout(
        deadline,
        kube::runtime::wait::await_condition(api, name, cond),
    )
    .await
    {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(e)) => Err(format!("watching {name}: {e}")),
        Err(_) => Err(format!("{name}: condition not met within {deadline:?}")),
    }
}

/// Waits on a watch of the pods matching `selector` (a label selector) in `namespace`
/// until `condition` holds for the set of them; returns that set.
pub async fn wait_for_pods(
    client: &Client,
    namespace: &str,
    selector: &str,
    deadline: Duration,
    condition: impl Fn(&[Pod]) -> bool,
) -> Result<Vec<Pod>, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(selector);
    let mut stream = watcher::watcher(api, config).boxed();
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut initial: Option<BTreeMap<String, Pod>> = None;
    let watch = async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => initial = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(pod)) => {
                    if let Some(initial) = initial.as_mut() {
                        initial.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                    }
                }
                Ok(watcher::Event::InitDone) => pods = initial.take().unwrap_or_default(),
                Ok(watcher::Event::Apply(pod)) => {
                    pods.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                }
                Ok(watcher::Event::Delete(pod)) => {
                    pods.remove(pod.metadata.name.as_deref().unwrap_or_default());
                }
                Err(e) => return Err(format!("watching pods {selector} in {namespace}: {e}")),
            }
            if initial.is_none() {
                let current: Vec<Pod> = pods.values().cloned().collect();
                if condition(&current) {
                    return Ok(current);
                }
            }
        }
        Err("the pod watch ended".to_string())
    };
    match tokio::time::timeout(deadline, watch).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "pods {selector} in {namespace}: condition not met within {deadline:?}; last seen: {}",
            summarise(&pods.values().cloned().collect::<Vec<_>>())
        )),
    }
}

/// One line per pod: phase and container states, for failure messages.
pub fn summarise(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let containers: Vec<String> = status
                .container_statuses
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    let state = c.state.clone().unwrap_or_default();
                    let what = state
                        .waiting
                        .and_then(|w| w.reason)
                        .or_else(|| state.terminated.and_then(|t| t.reason))
                        .unwrap_or_else(|| "running".into());
                    format!(
                        "{}:{}:ready={}:restarts={}",
                        c.name, what, c.ready, c.restart_count
                    )
                })
                .collect();
            format!(
                "{} {} [{}]",
                p.metadata.name.as_deref().unwrap_or_default(),
                status.phase.unwrap_or_default(),
                containers.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The checkout the tests run from: found from the package cargo is testing
/// (`CARGO_MANIFEST_DIR` at run time), else from where this crate was compiled. A
/// target directory shared by checkouts at other paths (a CI clone, a worktree) may
/// hold this crate built from one of those, since gone.
fn workspace_root() -> PathBuf {
    let tested = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let found = tested
        .iter()
        .flat_map(|dir| dir.ancestors())
        .find(|dir| dir.join("fleet").join("Cargo.toml").is_file())
        .map(Path::to_path_buf);
    found.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

/// `FLOTILLA_FLEET_BIN`, else `target/<profile>/flotilla-fleet` next to this test
/// binary's `deps/`, else `cargo build -p flotilla-fleet`.
pub fn fleet_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLOTILLA_FLEET_BIN") {
        return PathBuf::from(bin);
    }
    let sibling = std::env::current_exe().ok().and_then(|exe| {
        let profile_dir = exe.parent()?.parent()?.to_path_buf();
        Some(profile_dir.join("flotilla-fleet"))
    });
    if let Some(bin) = sibling.filter(|b| b.is_file()) {
        return bin;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "-p",
            "flotilla-fleet",
            "--bin",
            "flotilla-fleet",
            "--message-format=short",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cargo build -p flotilla-fleet: {e}"));
    assert!(
        output.status.success(),
        "cargo build -p flotilla-fleet failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join("flotilla-fleet")
}

/// A `sh` that waits for its stdin to close (this process exiting, or a dedicated fleet
/// dropped), then stops the fleet and removes its directory.
fn spawn_guardian(bin: &Path, dir: &Path) -> Child {
    // The directory goes only when down succeeded; else its logs tell why.
    let script = r#"cat >/dev/null; "$0" --state "$1" down >/dev/null 2>&1 && rm -rf "$1""#;
    let mut command = Command::new("sh");
    command
        .args(["-c", script])
        .arg(bin)
        .arg(dir)
        .env_remove("FLOTILLA_FLEET_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; a Ctrl-C to the test run must not kill the
    // guardian before it cleaned up.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting the fleet guardian: {e}"));
    // Nothing is ever written; the pipe only tells the guardian when we are gone.
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.flush();
    }
    child
}

/// A webhook receiver for notification tests: a real HTTP/1.1 server on 127.0.0.1 (one
/// thread, `std::net`) that answers every POST with `status` (`None`: accepts and never
/// answers, to test a deadline) and hands each request body to the test.
pub struct HookReceiver {
    /// `http://127.0.0.1:PORT/hook/T0KEN`: with a token in the path, as Slack's URLs.
    pub url: String,
    bodies: std::sync::mpsc::Receiver<String>,
}

impl HookReceiver {
    pub fn start(status: Option<u16>) -> HookReceiver {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!(
            "http://{}/hook/T0KEN-in-the-url",
            listener.local_addr().expect("local address")
        );
        let (tx, bodies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Ok(read_half) = stream.try_clone() else {
                    continue;
                };
                let mut reader = BufReader::new(read_half);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                if tx
                    .send(String::from_utf8_lossy(&body).into_owned())
                    .is_err()
                {
                    return;
                }
                match status {
                    Some(code) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                    }
                    None => held.push(stream),
                }
            }
        });
        HookReceiver { url, bodies }
    }

    /// A URL where nothing listens: connections are refused.
    pub fn refusing_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!(
            "http://{}/hook/T0KEN-in-the-url",
            listener.local_addr().expect("local address")
        );
        drop(listener);
        url
    }

    /// Every body received so far, in order (the notifier has returned by then: it
    /// waits for each answer or its deadline).
    pub fn received(&self) -> Vec<String> {
        self.bodies.try_iter().collect()
    }
}
