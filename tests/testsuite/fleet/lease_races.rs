//! Leases under races, on the shared fleet (each test in a namespace of its own): a
//! holder whose renewals are slowed past the renew deadline (a delaying TCP proxy
//! between it and the API server) stops before another run may take its lease over; a
//! live holder in another PID namespace of this host is never taken over; a lease
//! deleted under a run is lost at once; a run refused by a lease leaves nothing created
//! (no namespace, no checksum key); a record write over another writer's change is
//! refused by the API server (resourceVersion preconditions), never applied.

use crate::support::cluster as support;
use crate::support::rollout as rollout_support;

use flotilla::cluster::{load_kubeconfig, ClusterError, ClusterHandle, LockOptions};
use flotilla::ops;
use flotilla::release::Status;
use flotilla::storage::{RecordStore, SecretStore};
use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use rollout_support::{
    cluster_in, command, create_namespace, describe, json, repo, result_of, run,
    spawn_broken_deploy, spawn_command, TestRepo,
};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of one API server that can be slowed down: bytes are forwarded
/// as they are (TLS passes through untouched), each chunk held back by the delay once
/// one is set, in both directions.
struct SlowProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl SlowProxy {
    async fn start(upstream: u16) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let delay = delay.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, delay.clone()),
                        pump(server_read, client_write, delay)
                    );
                });
            }
        });
        SlowProxy { port, delay_ms }
    }

    fn slow_down(&self, by: Duration) {
        self.delay_ms
            .store(u64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let ms = delay.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// `context` of the fleet reached through a [`SlowProxy`]: a copy of the fleet's
/// kubeconfig whose server for that cluster is the proxy.
async fn through_proxy(
    fleet: &Fleet,
    context: &str,
) -> (SlowProxy, ClusterHandle, tempfile::TempDir) {
    let text = std::fs::read_to_string(fleet.kubeconfig()).unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let cluster = config["clusters"]
        .as_sequence_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"].as_str() == Some(context))
        .unwrap();
    let server = cluster["cluster"]["server"].as_str().unwrap().to_owned();
    let upstream: u16 = server.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = SlowProxy::start(upstream).await;
    cluster["cluster"]["server"] = format!("https://127.0.0.1:{}", proxy.port).into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let kubeconfig = load_kubeconfig(Some(&path)).unwrap();
    let handle = ClusterHandle::connect(&kubeconfig, context).await.unwrap();
    (proxy, handle, dir)
}

/// The image tag the release's Deployment runs (what was applied last).
async fn image_tag(t: &support::TestCluster) -> Option<String> {
    let deployments: Api<Deployment> = Api::namespaced(t.handle.client(), &t.namespace);
    let web = deployments.get_opt("app1-web").await.ok()??;
    let image = web
        .spec
        .template
        .spec?
        .containers
        .into_iter()
        .next()?
        .image?;
    image.rsplit_once(':').map(|(_, tag)| tag.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_renewal_slowed_past_its_deadline_stops_the_run_before_another_takes_over() {
    let t = support::cluster("lease-slow").await;
    let context = t.handle.context().to_owned();
    let (proxy, slowed, _kubeconfig) = through_proxy(Fleet::shared(), &context).await;
    // Short leases, so that the test takes seconds; two runs of other hosts (judged by
    // expiry only).
    let lease = Duration::from_secs(6);
    let opts = |holder: &str, wait: Duration| {
        let mut opts = support::run_options();
        opts.timeout = Duration::from_secs(120);
        opts.lock = LockOptions {
            duration: lease,
            holder: holder.to_owned(),
            wait,
        };
        opts
    };
    let a_holder = "alice@runner-a pid 101 run 0000000a";
    let b_holder = "bob@runner-b pid 202 run 0000000b";
    support::deployed(
        ops::deploy(
            &t.handle,
            &support::rendered(&t.namespace, "1", 1, false),
            "d1",
            &opts(b_holder, Duration::ZERO),
        )
        .await
        .unwrap(),
    );

    // A, through the proxy: applies a revision whose pods never become ready, and
    // waits for it while it renews its lease.
    let a_opts = opts(a_holder, Duration::ZERO);
    let a_rendered = support::rendered(&t.namespace, "never", 1, true);
    let a_run = async {
        let outcome = ops::deploy(&slowed, &a_rendered, "d-a", &a_opts).await;
        (outcome, Instant::now())
    };
    let b_opts = opts(b_holder, Duration::from_secs(60));
    let b_rendered = support::rendered(&t.namespace, "3", 1, false);
    let rest = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while image_tag(&t).await.as_deref() != Some("never") {
            assert!(Instant::now() < deadline, "A never applied");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // From now on, A's renewals take longer than its lease.
        proxy.slow_down(Duration::from_secs(15));
        // B, straight to the API server: waits until it has seen A's lease unchanged
        // for its whole duration, then takes it over and deploys.
        let leases: Api<Lease> = Api::namespaced(t.handle.client(), &t.namespace);
        let taken_over = async {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let holder = leases
                    .get_opt("flotilla.app1")
                    .await
                    .unwrap()
                    .and_then(|l| l.spec?.holder_identity);
                if holder.as_deref() == Some(b_holder) {
                    return Instant::now();
                }
                assert!(Instant::now() < deadline, "B never took the lease");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::join!(
            ops::deploy(&t.handle, &b_rendered, "d-b", &b_opts),
            taken_over
        )
    };
    let ((a, a_stopped), (b, b_took_over)) = tokio::join!(a_run, rest);

    // A stopped on its own, saying it lost the lease, before B could take it.
    let a = a.unwrap();
    assert!(
        a_stopped < b_took_over,
        "A stopped {:?} after B took its lease over: {:?}",
        a_stopped - b_took_over,
        a.error
    );
    assert_eq!(
        a.status,
        Status::Pending,
        "A records nothing after the loss"
    );
    // Renewals with no answer in time: the run cannot tell a slow cluster from a lost
    // one, and reports it lost (its finish command follows); an answer refusing it
    // would be a lost lease.
    let message = match &a.error {
        Some(
            ClusterError::LockLost { message, .. } | ClusterError::Unreachable { message, .. },
        ) => message,
        other => panic!("A: {other:?}"),
    };
    assert!(message.contains("not renewed within"), "{message}");
    // B repaired A's pending record and deployed; nothing of A's was written after.
    let b = support::deployed(b.unwrap());
    assert_eq!((b.revision, b.repaired.clone()), (3, vec![2]));
    let history = ops::history(&t.handle, &t.namespace, "app1").await.unwrap();
    let statuses: Vec<_> = history.iter().map(|r| (r.revision, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (1, Status::Superseded),
            (2, Status::Failed),
            (3, Status::Deployed)
        ]
    );
    assert_eq!(image_tag(&t).await.as_deref(), Some("3"));
}

/// The smallest pid above 1 that no process of this PID namespace has now.
fn free_pid() -> u32 {
    (2..)
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .unwrap()
}

/// `cmd` run in a PID namespace of its own (its own `/proc`), as the process with pid
/// `pid` there; killed with `unshare` (`--kill-child`).
fn in_own_pid_namespace(cmd: &Command, pid: u32) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
    ]);
    // sh is pid 1; each /bin/true takes the next pid, so the command gets `pid`.
    wrapped.arg(format!(
        "i=2; while [ \"$i\" -lt {pid} ]; do /bin/true; i=$((i+1)); done; \"$@\"; :"
    ));
    wrapped
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_live_holder_in_another_pid_namespace_of_this_host_is_not_taken_over() {
    let fleet = Fleet::shared();
    let context = fleet.clusters()[0].clone();
    let repo = repo("pidns", &[("prod", &[(context.as_str(), 0)])], "60s");
    rollout_support::deploy_ok(fleet, &repo, "prod", "v1");

    // A run of this host (same hostname, same boot) in another PID namespace, as a CI
    // runner's or a hostNetwork pod's: holds the lease while its pods never get ready.
    // Its pid there is one no process has here.
    let pid = free_pid();
    let inner = command(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v2",
            "--set",
            &format!("breakIn={context}"),
            "--set",
            "breakTag=never",
        ],
    );
    let mut holder = spawn_command(
        in_own_pid_namespace(&inner, pid),
        &format!("[{context}] waiting"),
    );
    let leases: Api<Lease> = Api::namespaced(fleet.client(&context).await, &repo.namespace);
    let identity = leases
        .get("flotilla.hello")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap();
    assert!(identity.contains(&format!(" pid {pid} run ")), "{identity}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} names no process here"
    );

    // Another run here: the holder's pid means nothing in this namespace, so it waits
    // for the lease to expire, which a live holder never lets happen: refused.
    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--version",
            "v3",
            "--lock-timeout",
            "3s",
            "-o",
            "json",
        ],
    );
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(json(&out)["overall"], "refused");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(&format!("pid {pid} run ")), "{log}");
    assert!(!log.contains("taking over"), "{log}");
}

/// Whether the release namespace of `repo` exists in `context`.
async fn namespace_exists(fleet: &Fleet, repo: &TestRepo, context: &str) -> bool {
    Api::<Namespace>::all(fleet.client(context).await)
        .get_opt(&repo.namespace)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_run_refused_by_a_lease_creates_no_namespace_and_no_checksum_key() {
    let fleet = Fleet::shared();
    let clusters = fleet.clusters();
    let (fresh, held) = (clusters[0].clone(), clusters[1].clone());
    let repo = repo(
        "refused-clean",
        &[("prod", &[(fresh.as_str(), 0), (held.as_str(), 0)])],
        "60s",
    );
    // In `held`, the namespace exists and another live run holds the lease; in
    // `fresh`, there is nothing yet.
    let client = fleet.client(&held).await;
    create_namespace(&client, &repo.namespace).await;
    rollout_support::hold_lease(client.clone(), &repo.namespace, "hello").await;

    let out = run(
        fleet,
        &repo,
        &[
            "deploy",
            "hello",
            "--env",
            "prod",
            "--lock-timeout",
            "1s",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(json(&out)["overall"], "refused");
    assert!(
        !namespace_exists(fleet, &repo, &fresh).await,
        "a refused run created the namespace in {fresh}"
    );
    let key = Api::<Secret>::namespaced(client, &repo.namespace)
        .get_opt(&flotilla::storage::checksum_key_name("hello"))
        .await
        .unwrap();
    assert!(
        key.is_none(),
        "a refused run created the checksum key in {held}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_lease_deleted_under_a_run_is_lost_at_once_not_retried() {
    let fleet = Fleet::shared();
    let context = fleet.clusters()[0].clone();
    let repo = repo(
        "lease-deleted",
        &[("prod", &[(context.as_str(), 0)])],
        "60s",
    );
    rollout_support::deploy_ok(fleet, &repo, "prod", "v1");
    let broken = spawn_broken_deploy(fleet, &repo, &context, &format!("[{context}] waiting"));
    Api::<Lease>::namespaced(fleet.client(&context).await, &repo.namespace)
        .delete("flotilla.hello", &Default::default())
        .await
        .unwrap();
    let (out, log) = broken.finish();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let report = json(&out);
    // Not a transient error retried until the lease's duration ran out: lost at the
    // next renewal, and the cluster put back (the lease taken again at once).
    let error = cluster_in(&report, &context)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("was deleted"), "{error}");
    assert_eq!(result_of(&report, &context), "rolled-back", "{report:#}");
}

#[tokio::test]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn a_record_write_over_another_writers_change_is_refused_never_applied() {
    let t = support::cluster("record-race").await;
    support::deployed(
        ops::deploy(
            &t.handle,
            &support::rendered(&t.namespace, "1", 1, false),
            "d1",
            &support::run_options(),
        )
        .await
        .unwrap(),
    );
    // Two writers read revision 1; the other one rewrites it first.
    let ours = SecretStore::new(&t.handle, &t.namespace, "app1");
    let theirs = SecretStore::new(&t.handle, &t.namespace, "app1");
    let mut our_copy = ours.list().await.unwrap().remove(0);
    let mut their_copy = theirs.list().await.unwrap().remove(0);
    their_copy.description = "theirs".into();
    theirs.update(&their_copy).await.unwrap();

    our_copy.description = "ours".into();
    for (what, refused) in [
        ("update", ours.update(&our_copy).await),
        ("delete", ours.delete(1).await),
        ("create", ours.create(&our_copy).await),
    ] {
        let err = refused.expect_err(what);
        assert!(
            matches!(err, ClusterError::LockLost { .. }) && err.to_string().contains("revision 1"),
            "{what}: {err}"
        );
    }
    let now = theirs.list().await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].description, "theirs", "never overwritten");
}
