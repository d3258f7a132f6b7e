//! Scale benchmark: the executor and the per-cluster state machine for 100 and 1000
//! clusters, on scripted clusters (no API server): each cluster is the in-memory
//! `ops::fake::FakeKube` with a `storage::MemoryStore`, driven by `rollout::execute`
//! exactly as `flotilla deploy` drives real clusters, the example release rendered for
//! each. What it measures is flotilla's own work: render, records, the state machine,
//! the executor. A cluster's own time (apply, rollout) is scripted as a fixed delay per
//! deploy, so that many clusters are in flight at once and the concurrency bound is
//! exercised; that delay costs no CPU.
//!
//! Per size: wall time and CPU (user + system, getrusage) of the render, of a healthy
//! deploy of every cluster, and of a deploy that crashes in one cluster and restores
//! every other one; CPU per cluster; the process's peak RSS; the most clusters in
//! flight at once. It asserts what must hold whatever the machine's speed: the
//! concurrency bound (never more than `rollout.concurrency` in flight, and reached), and
//! that every changed cluster of the failing run is restored. Times are printed, never
//! asserted.
//!
//! `scripts/bench-scale.sh` (an optimised build), `--short` for CI (dev profile). Needs
//! the `scripted-clusters` feature, which makes `ops::fake` public.

use flotilla::config::{Cluster, OnFailure, Repo};
use flotilla::engine::{placeholder_secrets, Chart, Renderer};
use flotilla::ops::fake::{FakeKube, Wait};
use flotilla::ops::{restore::RestoreTo, upgrade::deploy_with, PackedRender, RunOptions};
use flotilla::rollout::executor::{Interrupt, RunInfo};
use flotilla::rollout::prepare::rendered;
use flotilla::rollout::report::{Overall, Report, RevisionRef, RunResult};
use flotilla::rollout::{execute, ClusterSteps, Plan, Reporter, StepError, StepOutcome};
use flotilla::storage::MemoryStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SIZES: [usize; 2] = [100, 1000];
/// Clusters in flight at once (`rollout.concurrency`).
const CONCURRENCY: usize = 50;
/// A scripted cluster's own time for one deploy or restore: apply and rollout.
const CLUSTER_TIME: Duration = Duration::from_millis(20);

/// One scripted cluster: its API server and its records. One step at a time holds the
/// API server (a restore makes it healthy again: the crash is the new version's).
struct Scripted {
    kube: tokio::sync::Mutex<FakeKube>,
    store: MemoryStore,
    /// Packed as `flotilla deploy` keeps it until the cluster's step (`rollout::Prepared`).
    rendered: PackedRender,
}

struct ScriptedSteps {
    clusters: HashMap<String, Scripted>,
    deployment_id: String,
    options: RunOptions,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    restores: AtomicUsize,
}

impl ScriptedSteps {
    /// The cluster's own time, counted as in flight.
    async fn in_flight<T>(&self, step: impl std::future::Future<Output = T>) -> T {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(CLUSTER_TIME).await;
        let out = step.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

fn step_error(err: &flotilla::cluster::ClusterError) -> StepError {
    StepError::new(err.to_string())
}

impl ClusterSteps for ScriptedSteps {
    async fn deploy(&self, context: &str, stop: &CancellationToken, _: &Reporter) -> StepOutcome {
        let Some(c) = self.clusters.get(context) else {
            return StepOutcome::Untouched(StepError::new(format!("{context}: not prepared")));
        };
        let mut opts = self.options.clone();
        opts.cancel = stop.clone();
        let before = self.before(context);
        let rendered = match c.rendered.unpack(context) {
            Ok(rendered) => rendered,
            Err(err) => return StepOutcome::Untouched(step_error(&err)),
        };
        let kube = c.kube.lock().await;
        let result = self
            .in_flight(deploy_with(
                &*kube,
                &c.store,
                &rendered,
                &self.deployment_id,
                &opts,
            ))
            .await;
        match result {
            Err(err) => StepOutcome::Untouched(step_error(&err)),
            Ok(outcome) => StepOutcome::Changed {
                before,
                revision: outcome.revision,
                error: outcome.error.as_ref().map(step_error),
            },
        }
    }

    async fn restore(
        &self,
        context: &str,
        before: Option<&RevisionRef>,
        _: &Reporter,
    ) -> Result<Option<u32>, StepError> {
        let c = self
            .clusters
            .get(context)
            .ok_or_else(|| StepError::new(format!("{context}: not prepared")))?;
        let before = before.ok_or_else(|| StepError::new(format!("{context}: nothing before")))?;
        let to = RestoreTo {
            revision: before.revision,
            deployment_id: &self.deployment_id,
            fresh: &[],
            unreadable: &[],
        };
        let mut kube = c.kube.lock().await;
        kube.wait = Wait::Healthy;
        let outcome = self
            .in_flight(flotilla::ops::restore::restore_with(
                &*kube,
                &c.store,
                &c.rendered.namespace,
                &c.rendered.release,
                &to,
                &self.options,
            ))
            .await
            .map_err(|e| step_error(&e))?;
        self.restores.fetch_add(1, Ordering::SeqCst);
        match outcome.error {
            None => Ok(Some(outcome.revision)),
            Some(err) => Err(step_error(&err)),
        }
    }

    fn before(&self, context: &str) -> Option<RevisionRef> {
        let c = self.clusters.get(context)?;
        let history = flotilla::release::History::new(c.store.records());
        history.deployed().map(|r| RevisionRef {
            revision: r.revision,
            deployment_id: r.content_id().to_owned(),
        })
    }
}

/// User and system CPU of the process so far, and its peak RSS in KiB: `VmHWM` of
/// /proc/self/status (getrusage's `ru_maxrss` would carry cargo's own peak, the
/// process this one was forked from before its exec).
fn usage() -> (Duration, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let peak_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    (time(usage.ru_utime) + time(usage.ru_stime), peak_kb)
}

/// Wall time and CPU of `work`.
async fn measured<T>(work: impl std::future::Future<Output = T>) -> (T, Duration, Duration) {
    let (cpu, _) = usage();
    let started = Instant::now();
    let out = work.await;
    (out, started.elapsed(), usage().0 - cpu)
}

fn clusters(root: &Path, n: usize) -> Vec<Cluster> {
    let env = Repo::open(root)
        .and_then(|repo| repo.environment("prod"))
        .expect("the example environment prod loads");
    (0..n)
        .map(|i| {
            let mut cluster = env.environment.clusters[i % 3].clone();
            cluster.context = format!("scale-{i:04}");
            cluster.global.cluster_name = cluster.context.clone();
            cluster.wave = 0;
            cluster
        })
        .collect()
}

/// The example release rendered for every cluster, with placeholder secrets, packed as
/// `rollout::prepare` packs each cluster's.
fn render_all(root: &Path, clusters: &[Cluster], version: &str) -> HashMap<String, PackedRender> {
    let repo = Repo::open(root).expect("the example repo loads");
    let mut release = repo.release("hello").expect("release hello loads");
    release.descriptor.spec.version = version.to_owned();
    let chart = Chart::load(&release.chart_dir).expect("the example chart loads");
    let renderer = Renderer::for_release(&chart, &release, "prod", &Default::default(), 1)
        .expect("the renderer builds");
    clusters
        .iter()
        .map(|cluster| {
            let secrets = placeholder_secrets(&release.descriptor.spec, &cluster.context);
            let renders = renderer
                .render_for_apply(cluster, &secrets, 1)
                .expect("the example renders");
            let values = renderer.values(cluster, &secrets);
            let rendered = rendered(&release, &chart, renders, values, None);
            (cluster.context.clone(), PackedRender::pack(rendered))
        })
        .collect()
}

fn plan(clusters: &[Cluster]) -> Plan {
    Plan {
        environment: "scale".into(),
        env_file: PathBuf::from("environments/scale.yaml"),
        waves: vec![clusters.to_vec()],
        concurrency: CONCURRENCY,
        timeout: Duration::from_secs(60),
        rollback_timeout: None,
        on_failure: OnFailure::Rollback,
        wave_settings: Vec::new(),
        until_wave: None,
        resume_after: None,
    }
}

/// A deploy of every cluster of `plan` with the steps' deployment id, measured.
async fn run(plan: &Plan, steps: &ScriptedSteps) -> (Report, Duration, Duration) {
    let info = RunInfo {
        operation: "deploy".into(),
        release: "hello".into(),
        deployment_id: steps.deployment_id.clone(),
        target: None,
    };
    measured(execute(
        plan,
        steps,
        &info,
        &Interrupt::new(),
        &Reporter::silent(),
    ))
    .await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!(
        "scale benchmark: release hello on scripted clusters (no API server), concurrency {CONCURRENCY}, {} ms per cluster step scripted",
        CLUSTER_TIME.as_millis()
    );
    println!(
        "{:<9} {:<26} {:>9} {:>9} {:>13} {:>12} {:>13}",
        "clusters", "run", "wall_ms", "cpu_ms", "cpu_ms/cluster", "peak_RSS_MB", "most_in_flight"
    );
    let row = |n: usize, what: &str, wall: Duration, cpu: Duration, most: usize| {
        println!(
            "{n:<9} {what:<26} {:>9.1} {:>9.1} {:>13.3} {:>12.1} {:>13}",
            ms(wall),
            ms(cpu),
            ms(cpu) / n as f64,
            usage().1 as f64 / 1024.0,
            most
        );
    };
    println!(
        "{:<9} {:<26} {:>9} {:>9} {:>13} {:>12.1}",
        0,
        "start (runtime, nothing loaded)",
        "-",
        "-",
        "-",
        usage().1 as f64 / 1024.0
    );
    for n in SIZES {
        let clusters = clusters(root, n);
        let (first, wall, cpu) = measured(async { render_all(root, &clusters, "1.0.0") }).await;
        row(n, "render", wall, cpu, 0);
        let mut options = RunOptions::new(Duration::from_secs(60));
        options.targets = clusters.iter().map(|c| c.context.clone()).collect();
        let mut steps = ScriptedSteps {
            clusters: first
                .into_iter()
                .map(|(context, rendered)| {
                    let scripted = Scripted {
                        kube: tokio::sync::Mutex::new(FakeKube::new()),
                        store: MemoryStore::new(),
                        rendered,
                    };
                    (context, scripted)
                })
                .collect(),
            deployment_id: "scale-1".into(),
            options,
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            restores: AtomicUsize::new(0),
        };
        let plan = plan(&clusters);
        let (report, wall, cpu) = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::Succeeded, "{report:?}");
        let most = steps.most_in_flight.swap(0, Ordering::SeqCst);
        assert!(
            most <= CONCURRENCY,
            "{most} clusters in flight, bound {CONCURRENCY}"
        );
        assert_eq!(most, CONCURRENCY.min(n), "the bound is reached");
        row(n, "deploy, all healthy", wall, cpu, most);

        // Version 2 crashes in the first cluster: the run stops and restores every
        // cluster it changed to version 1.
        for (context, rendered) in render_all(root, &clusters, "2.0.0") {
            if let Some(c) = steps.clusters.get_mut(&context) {
                c.rendered = rendered;
            }
        }
        if let Some(c) = steps.clusters.get_mut(&clusters[0].context) {
            c.kube.get_mut().wait = Wait::Crash;
        }
        steps.deployment_id = "scale-2".into();
        let (report, wall, cpu) = run(&plan, &steps).await;
        assert_eq!(report.overall, Overall::RolledBack, "{report:?}");
        let changed = report
            .clusters
            .iter()
            .filter(|r| r.result == RunResult::RolledBack)
            .count();
        assert_eq!(changed, steps.restores.load(Ordering::SeqCst));
        assert!(
            report
                .clusters
                .iter()
                .all(|r| matches!(r.result, RunResult::RolledBack | RunResult::NotStarted)),
            "{report:?}"
        );
        let most = steps.most_in_flight.load(Ordering::SeqCst);
        assert!(
            most <= CONCURRENCY,
            "{most} clusters in flight, bound {CONCURRENCY}"
        );
        row(
            n,
            &format!("crash in 1, {changed} restored"),
            wall,
            cpu,
            most,
        );
    }
    println!(
        "cpu_ms/cluster: flotilla's own work per cluster (target <= 2 ms for a deploy). peak RSS: the process's so far (target <= 150 MB at 1000); it includes what the scripted clusters hold for themselves (every cluster's live objects and records), which a real API server holds"
    );
}
