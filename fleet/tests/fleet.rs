//! The fleet itself, on real servers: the simulated kubelet's reports per image tag,
//! stopping and starting a cluster, RBAC of the deployer token, the version the control
//! plane reports, a cluster made far away by its latency proxy, and Vault reads with an
//! AppRole login (vaultrs, as flotilla uses it).

use flotilla_fleet::state::State;
use flotilla_fleet::testing::{summarise, wait_for, wait_for_pods, Fleet};
use flotilla_fleet::{process, supervisor};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

async fn deploy(client: &Client, ns: &str, name: &str, image: &str) {
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "main", "image": image }] }
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn one_pod(
    client: &Client,
    ns: &str,
    app: &str,
    what: &str,
    cond: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods = wait_for_pods(client, ns, &format!("app={app}"), DEADLINE, |pods| {
        pods.len() == 1 && cond(&pods[0])
    })
    .await
    .unwrap_or_else(|e| panic!("{app}: waiting for {what}: {e}"));
    pods[0].clone()
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn kubelet_reports_each_image_tag() {
    let fleet = Fleet::shared();
    let cluster = &fleet.clusters()[0];
    let client = fleet.client(cluster).await;
    let ns = fleet.namespace("tags").await;
    for (name, image) in [
        ("plain", "hello:1.0.0"),
        ("crash", "hello:crashloop"),
        ("pull", "registry.local:5000/hello:pullfail"),
        ("slow", "hello:slow-5"),
        ("never", "hello:never"),
    ] {
        deploy(&client, &ns, name, image).await;
    }

    // slow-5 is seen Running but not Ready first (checked first, well within its 5 s).
    let early = one_pod(&client, &ns, "slow", "Running", |p| phase(p) == "Running").await;
    assert!(
        !ready(&early),
        "slow-5 was Ready at once: {}",
        summarise(&[early])
    );

    let plain = one_pod(&client, &ns, "plain", "Running and Ready", |p| {
        phase(p) == "Running" && ready(p)
    })
    .await;
    let node = plain.spec.unwrap().node_name.unwrap_or_default();
    assert!(
        flotilla_fleet::kubelet::node_names(supervisor::NODES).contains(&node),
        "bound to {node:?}"
    );
    let available = wait_for(
        Api::<Deployment>::namespaced(client.clone(), &ns),
        "plain",
        DEADLINE,
        |d| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.available_replicas)
                == Some(1)
        },
    )
    .await;
    assert!(available.is_ok(), "{available:?}");

    let first = one_pod(&client, &ns, "crash", "CrashLoopBackOff", |p| {
        waiting_reason(p).as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    assert!(!ready(&first));
    let later = one_pod(&client, &ns, "crash", "a rising restartCount", |p| {
        restarts(p) >= restarts(&first) + 2
    })
    .await;
    assert_eq!(waiting_reason(&later).as_deref(), Some("CrashLoopBackOff"));

    let pull = one_pod(&client, &ns, "pull", "ImagePullBackOff", |p| {
        waiting_reason(p).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    assert_eq!(phase(&pull), "Pending");
    assert!(!ready(&pull));

    one_pod(&client, &ns, "slow", "Ready", ready).await;
    // `never` was created with `slow`; now that slow is Ready, never still is not.
    let never = one_pod(&client, &ns, "never", "Running", |p| phase(p) == "Running").await;
    assert!(!ready(&never), "{}", summarise(&[never]));
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn job_pods_complete_so_jobs_finish() {
    let fleet = Fleet::shared();
    let client = fleet.client(&fleet.clusters()[0]).await;
    let ns = fleet.namespace("job").await;
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "migrate" },
        "spec": { "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "migrate", "image": "hello-migrate:1.0.0" }]
        }}}
    }))
    .unwrap();
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let done = wait_for(jobs, "migrate", DEADLINE, |j| {
        j.and_then(|j| j.status.as_ref()).and_then(|s| s.succeeded) == Some(1)
    })
    .await;
    assert!(done.is_ok(), "{done:?}");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_job_whose_pod_fails_fails() {
    let fleet = Fleet::shared();
    let client = fleet.client(&fleet.clusters()[0]).await;
    let ns = fleet.namespace("jobfail").await;
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "migrate" },
        "spec": { "backoffLimit": 0, "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "migrate", "image": "hello-migrate:jobfail" }]
        }}}
    }))
    .unwrap();
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let failed = wait_for(jobs, "migrate", DEADLINE, |j| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
    })
    .await;
    assert!(failed.is_ok(), "{failed:?}");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        pods.items.iter().all(|p| phase(p) == "Failed"),
        "{}",
        summarise(&pods.items)
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_daemonset_runs_one_pod_on_each_node() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let fleet = Fleet::shared();
    let client = fleet.client(&fleet.clusters()[0]).await;
    let ns = fleet.namespace("ds").await;
    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": { "name": "agent" },
        "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "template": {
                "metadata": { "labels": { "app": "agent" } },
                "spec": { "containers": [{ "name": "agent", "image": "agent:1.0.0" }] }
            }
        }
    }))
    .unwrap();
    let sets = Api::<DaemonSet>::namespaced(client.clone(), &ns);
    sets.create(&PostParams::default(), &ds).await.unwrap();
    let nodes = i32::try_from(supervisor::NODES).unwrap();
    let ready = wait_for(sets, "agent", DEADLINE, |d| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.desired_number_scheduled == nodes && s.number_ready == nodes)
    })
    .await;
    assert!(ready.is_ok(), "{ready:?}");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap();
    let mut on: Vec<String> = pods
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    on.sort();
    assert_eq!(on, flotilla_fleet::kubelet::node_names(supervisor::NODES));
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn the_control_plane_reports_the_version_it_was_built_as() {
    let fleet = Fleet::shared();
    let state = State::load(fleet.dir()).unwrap().unwrap();
    let client = fleet.client(&fleet.clusters()[0]).await;
    let info = client.apiserver_version().await.unwrap();
    assert!(
        !state.kubernetes_version.is_empty()
            && state.kubernetes_version.ends_with(&info.git_version),
        "apiserver says {}, `kube-apiserver --version` said {:?}",
        info.git_version,
        state.kubernetes_version
    );
    assert_ne!(info.git_version, "v0.0.0-master+$Format:%H$");
    let status = fleet.command(&["status"]);
    assert!(status.status.success());
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&info.git_version), "{text}");
    if fleet.vault_kind() == flotilla_fleet::state::VaultKind::HashiCorp {
        assert!(text.contains("vault (Vault v1."), "{text}");
    }
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_deleted_pod_goes_away_as_its_kubelet_confirms() {
    let fleet = Fleet::shared();
    let client = fleet.client(&fleet.clusters()[0]).await;
    let ns = fleet.namespace("delete").await;
    deploy(&client, &ns, "web", "hello:1.0.0").await;
    let pod = one_pod(&client, &ns, "web", "Ready", ready).await;
    let name = pod.metadata.name.clone().unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    // Default grace period: without a kubelet the pod would stay Terminating.
    pods.delete(&name, &Default::default()).await.unwrap();
    let gone = wait_for(pods, &name, DEADLINE, |p| p.is_none()).await;
    assert!(gone.is_ok(), "{gone:?}");
    // The ReplicaSet replaced it, and the replacement is Ready.
    one_pod(&client, &ns, "web", "a Ready replacement", |p| {
        ready(p) && p.metadata.name.as_deref() != Some(name.as_str())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn deployer_token_is_limited_to_release_namespaces() {
    let fleet = Fleet::shared();
    let cluster = &fleet.clusters()[0];
    let deployer = fleet.deployer_client(cluster).await;
    let ns = fleet.namespace("rbac").await;
    Api::<Pod>::namespaced(deployer.clone(), &ns)
        .list(&Default::default())
        .await
        .expect("the deployer may list pods in a test namespace");
    Api::<Pod>::namespaced(deployer.clone(), "hello")
        .list(&Default::default())
        .await
        .expect("the deployer may list pods in hello");
    let denied = Api::<Pod>::namespaced(deployer, "kube-system")
        .list(&Default::default())
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "{denied:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_stopped_cluster_refuses_connections_while_the_others_answer_and_up_recovers_a_crash() {
    let fleet = Fleet::dedicated(&["stop-a", "stop-b"]);
    let a = fleet.client("stop-a").await;
    let b = fleet.client("stop-b").await;
    a.apiserver_version()
        .await
        .expect("stop-a answers before the stop");

    fleet.stop_cluster("stop-a");
    let refused = a.apiserver_version().await;
    let message = format!("{refused:?}");
    assert!(
        refused.is_err() && message.to_lowercase().contains("connect"),
        "stop-a should refuse connections: {message}"
    );
    b.apiserver_version()
        .await
        .expect("stop-b answers while stop-a is down");

    fleet.start_cluster("stop-a");
    let a = fleet.client("stop-a").await;
    a.apiserver_version()
        .await
        .expect("stop-a answers again after start-cluster");

    // `up` on a running fleet changes nothing.
    let etcd = process::alive(fleet.dir(), "etcd").expect("etcd runs");
    let again = fleet.command(&["up", "--clusters", "stop-a,stop-b"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("already up"));
    assert_eq!(process::alive(fleet.dir(), "etcd"), Some(etcd));

    // After a crash (etcd killed), `up` cleans up and starts afresh.
    // SAFETY: kill(2) on the pid of the etcd this test's fleet started.
    unsafe { libc::kill(etcd as i32, libc::SIGKILL) };
    let status = fleet.command(&["status"]);
    assert_eq!(status.status.code(), Some(3), "status reports the crash");
    let restarted = fleet.command(&["up", "--clusters", "stop-a,stop-b"]);
    assert!(
        restarted.status.success(),
        "{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    let fresh = State::load(fleet.dir()).unwrap().unwrap();
    assert!(supervisor::all_running(fleet.dir(), &fresh));
    assert_ne!(process::alive(fleet.dir(), "etcd"), Some(etcd));
    let b = flotilla_fleet::supervisor::client(fleet.dir(), "stop-b")
        .await
        .unwrap();
    b.apiserver_version()
        .await
        .expect("stop-b answers after the restart");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn approle_login_reads_a_seeded_secret() {
    use std::collections::HashMap;
    use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
    let fleet = Fleet::shared();
    let settings = VaultClientSettingsBuilder::default()
        .address(fleet.vault_addr())
        .build()
        .unwrap();
    let mut vault = VaultClient::new(settings).unwrap();
    let login = vaultrs::auth::approle::login(
        &vault,
        "approle",
        fleet.vault_role_id(),
        fleet.vault_secret_id(),
    )
    .await
    .expect("AppRole login");
    vault.set_token(&login.client_token);

    let seed: HashMap<String, HashMap<String, String>> =
        serde_yaml_ng::from_str(include_str!("../vault-seed.yaml")).unwrap();
    let secret: HashMap<String, String> = vaultrs::kv1::get(&vault, "kv", "dev/hello/db")
        .await
        .expect("reading kv/dev/hello/db");
    // Compared, never printed.
    assert!(
        secret.get("password") == seed["kv/dev/hello/db"].get("password"),
        "kv/dev/hello/db: wrong value"
    );

    if fleet.vault_kind() == flotilla_fleet::state::VaultKind::HashiCorp {
        // The same seed on the KV v2 mount.
        let secret: HashMap<String, String> = vaultrs::kv2::read(&vault, "kv2", "dev/hello/db")
            .await
            .expect("reading kv2/data/dev/hello/db");
        assert!(
            secret.get("password") == seed["kv/dev/hello/db"].get("password"),
            "kv2/dev/hello/db: wrong value"
        );
    }

    let missing =
        vaultrs::kv1::get::<HashMap<String, String>>(&vault, "kv", "dev/hello/absent").await;
    assert!(
        matches!(
            missing,
            Err(vaultrs::error::ClientError::APIError { code: 404, .. })
        ),
        "a missing path is a 404: {:?}",
        missing.err()
    );
}

/// `up --rtt`: a request through the kubeconfig crosses the latency proxy (TLS passing
/// through, the certificate checked) and takes at least the round-trip time set; a new
/// connection one more (its handshake). The cluster without one answers through the same
/// kubeconfig, and stop-cluster and start-cluster take the proxy down and up with its
/// API server. Lower bounds only: a loaded machine only makes it slower.
#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_cluster_behind_its_latency_proxy_is_a_round_trip_away() {
    const RTT: Duration = Duration::from_millis(200);
    let fleet = Fleet::dedicated_with(&["far", "near"], &["--rtt", "far=200ms"]);
    let state = State::load(fleet.dir()).unwrap().unwrap();
    let far = state.cluster("far").unwrap();
    assert_eq!(
        (far.rtt_ms, state.cluster("near").unwrap().rtt_ms),
        (200, 0)
    );
    let kubeconfig = std::fs::read_to_string(fleet.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains(&format!("https://127.0.0.1:{}", far.proxy_port)),
        "{kubeconfig}"
    );

    let client = fleet.client("far").await;
    let started = std::time::Instant::now();
    client.apiserver_version().await.unwrap();
    let first = started.elapsed();
    // TCP's handshake (the proxy's extra round trip), TLS's, then the request itself.
    assert!(
        first >= RTT * 3,
        "a new connection's first answer took {first:?}"
    );
    let started = std::time::Instant::now();
    client.apiserver_version().await.unwrap();
    let again = started.elapsed();
    assert!(
        again >= RTT,
        "a request on a kept connection took {again:?}"
    );
    fleet
        .client("near")
        .await
        .apiserver_version()
        .await
        .unwrap();

    let status = fleet.command(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains("far latency proxy (200 ms round trip)"),
        "{text}"
    );

    fleet.stop_cluster("far");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", far.proxy_port)).await;
    assert!(
        refused.is_err(),
        "the proxy of a stopped cluster still accepts"
    );
    fleet.start_cluster("far");
    let client = fleet.client("far").await;
    client.apiserver_version().await.unwrap();
}
