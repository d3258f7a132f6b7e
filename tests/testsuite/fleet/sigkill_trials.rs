//! SIGKILL at seeded random points of a multi-cluster `deploy` and of a `rollback`, on
//! the shared fleet (three real kube-apiservers). After every kill, at once and without
//! any manual cleanup, the next `deploy` and the next `rollback` must succeed (the dead
//! run's lease is taken over at once: its process is gone from this host), and then:
//! every cluster runs one consistent deployment, no lease is left held, no record is
//! left `pending`, no object of the release is orphaned, and the history reads.
//!
//! The kill point is the k-th progress line of the run (k drawn from the lines a full
//! run of the same kind prints) plus a random delay of up to 150 ms: each trial kills at
//! a different phase (lease, pending record, apply, wait, record, restore). Seed and
//! counts are printed; `FLOTILLA_TRIAL_SEED=N` replays a run, `FLOTILLA_TRIALS=N` sets
//! how many (default 40: 20 kills of a deploy, 20 of a rollback).

use crate::support::rollout as rollout_support;

use flotilla_fleet::testing::Fleet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use rollout_support::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// splitmix64: a seeded generator, so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The example chart plus a ConfigMap named after the version: each deploy creates a
/// new one and must prune the previous one, so an object orphaned by a killed run shows.
fn trial_repo(fleet: &Fleet) -> (TestRepo, Vec<String>) {
    let contexts = fleet.clusters();
    let clusters: Vec<(&str, u32)> = contexts.iter().map(|c| (c.as_str(), 0)).collect();
    let repo = repo("sigkill", &[("prod", &clusters)], "30s");
    std::fs::write(
        repo.root().join("releases/hello/chart/templates/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{Release.Name}}-extra-{{Release.Version}}\ndata:\n  version: \"{{Release.Version}}\"\n",
    )
    .unwrap();
    (repo, contexts)
}

/// How a killed run was killed.
struct Kill {
    after_lines: usize,
    delay: Duration,
    last_line: String,
    exited_first: bool,
}

/// Runs `args` and SIGKILLs it after its `after_lines`-th stderr line plus `delay`.
fn run_and_kill(
    fleet: &Fleet,
    repo: &TestRepo,
    args: &[&str],
    after_lines: usize,
    delay: Duration,
) -> Kill {
    let mut child = command(fleet, repo, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = 0;
    let mut last_line = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < after_lines {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                seen += 1;
                last_line = line;
            }
            // The run ended (stderr closed) before that line: it is killed at its end.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the run printed nothing for 120s"),
        }
    }
    // The random point past that line: this is the fault's timing, not a synchronisation.
    std::thread::sleep(delay);
    let exited_first = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap();
    Kill {
        after_lines: seen,
        delay,
        last_line,
        exited_first,
    }
}

/// stderr lines of a full run of `args` (the range kill points are drawn from).
fn lines_of(out: &std::process::Output) -> usize {
    String::from_utf8_lossy(&out.stderr).lines().count()
}

/// Everything the trials require of the clusters after the next deploy and rollback.
async fn assert_clean(
    fleet: &Fleet,
    repo: &TestRepo,
    contexts: &[String],
    want_id: &str,
    want_version: &str,
    trial: usize,
) {
    // The history reads, and every cluster runs one deployment.
    let rows = history(fleet, repo, "prod");
    for context in contexts {
        let deployed: Vec<_> = rows
            .iter()
            .filter(|r| &r.0 == context && r.2 == "deployed")
            .collect();
        assert_eq!(
            deployed.len(),
            1,
            "trial {trial}: {context} has not exactly one deployed revision: {rows:?}"
        );
        assert_eq!(
            (deployed[0].3.as_str(), deployed[0].4.as_str()),
            (want_id, want_version),
            "trial {trial}: {context}: {rows:?}"
        );
    }
    assert!(
        !rows.iter().any(|r| r.2 == "pending"),
        "trial {trial}: a record is left pending: {rows:?}"
    );
    for context in contexts {
        let client = fleet.client(context).await;
        // No lease left held.
        let leases: Api<Lease> = Api::namespaced(client.clone(), &repo.namespace);
        let lease = leases.get_opt("flotilla.hello").await.unwrap();
        assert!(
            lease.is_none(),
            "trial {trial}: {context}: a lease is left: {:?}",
            lease.and_then(|l| l.spec)
        );
        // No object orphaned: the only versioned ConfigMap is the deployed version's.
        let cms: Api<ConfigMap> = Api::namespaced(client, &repo.namespace);
        let names: Vec<String> = cms
            .list(&ListParams::default().labels("flotilla.dev/release=hello"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert_eq!(
            names,
            vec![format!("hello-extra-{want_version}")],
            "trial {trial}: {context}: orphaned objects"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local fleet: scripts/test.sh runs it"]
async fn sigkill_at_random_points_of_deploy_and_rollback_never_blocks_the_next_run() {
    let fleet = Fleet::shared();
    let seed: u64 = std::env::var("FLOTILLA_TRIAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let trials: usize = std::env::var("FLOTILLA_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("sigkill trials: seed {seed} (FLOTILLA_TRIAL_SEED={seed} replays), {trials} trials");
    let mut rng = Rng(seed);
    let (repo, contexts) = trial_repo(fleet);

    let deploy = |version: &str| {
        let out = run(
            fleet,
            &repo,
            &[
                "deploy",
                "hello",
                "--env",
                "prod",
                "--version",
                version,
                "-o",
                "json",
            ],
        );
        assert!(out.status.success(), "deploy {version}: {}", describe(&out));
        (
            json(&out)["deployment_id"].as_str().unwrap().to_owned(),
            out,
        )
    };
    let rollback = |to: &str| {
        let out = run(
            fleet,
            &repo,
            &[
                "rollback", "hello", "--env", "prod", "--to", to, "-o", "json",
            ],
        );
        assert!(
            out.status.success(),
            "rollback --to {to}: {}",
            describe(&out)
        );
        out
    };

    // Two good deployments; calibrate how many lines each kind of run prints.
    let (mut good, first) = deploy("v1");
    let (mut current, second) = deploy("v2");
    let mut current_version = "v1".to_owned();
    let deploy_lines = lines_of(&first).max(lines_of(&second));
    let rollback_lines = lines_of(&rollback(&good));
    std::mem::swap(&mut good, &mut current);
    // Now `current` (v1) runs everywhere and `good` is v2's id: the rollback target of
    // the trials is always the deployment before the current one.

    let mut worst = Duration::ZERO;
    let mut killed_mid_run = 0;
    let mut taken_over = 0;
    for trial in 0..trials {
        let kill_deploy = trial % 2 == 0;
        let version = format!("v{}", trial + 3);
        let (args, lines): (Vec<String>, usize) = if kill_deploy {
            (
                ["deploy", "hello", "--env", "prod", "--version", &version]
                    .map(String::from)
                    .to_vec(),
                deploy_lines,
            )
        } else {
            (
                ["rollback", "hello", "--env", "prod", "--to", &good]
                    .map(String::from)
                    .to_vec(),
                rollback_lines,
            )
        };
        // Short of the last lines (the report), so that most kills land mid-run.
        let after = rng.below(lines.saturating_sub(2) as u64) as usize;
        let delay = Duration::from_millis(rng.below(150));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let kill = run_and_kill(fleet, &repo, &args, after, delay);
        if !kill.exited_first {
            killed_mid_run += 1;
        }
        eprintln!(
            "trial {trial}: SIGKILL of `{}` after line {} (+{} ms){}: {}",
            args[0],
            kill.after_lines,
            kill.delay.as_millis(),
            if kill.exited_first {
                " (it had ended)"
            } else {
                ""
            },
            kill.last_line
        );

        // The next deploy, at once.
        let t = Instant::now();
        let next = format!("v{}-next", trial + 3);
        let (id, out) = deploy(&next);
        let took = t.elapsed();
        worst = worst.max(took);
        let log = String::from_utf8_lossy(&out.stderr);
        if log.contains("taking over the lock") {
            taken_over += 1;
        }
        assert!(
            took < flotilla::cluster::LEASE_DURATION + Duration::from_secs(25),
            "trial {trial}: the next deploy took {took:?}:\n{log}"
        );
        // The next rollback: back to the deployment before it.
        let before = std::mem::replace(&mut current, id);
        let before_version = std::mem::replace(&mut current_version, next);
        rollback(&before);
        good = std::mem::replace(&mut current, before);
        current_version = before_version;
        assert_clean(fleet, &repo, &contexts, &current, &current_version, trial).await;
    }
    eprintln!(
        "sigkill trials: seed {seed}: {trials} trials, {killed_mid_run} killed mid-run, \
         {taken_over} leases of a dead run taken over, worst recovery (next deploy) {:.1}s, \
         nothing lost",
        worst.as_secs_f64()
    );
}
