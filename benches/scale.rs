//! Scale benchmark: the executor and the per-cluster state machine for 100 and 1000
//! clusters, on scripted clusters (no API server): each cluster is the in-memory
//! `ops::fake::FakeKube` (its records in a `storage::MemoryStore`), driven by
//! `rollout::execute` through the steps `flotilla deploy` runs on real clusters
//! (`rollout::kube_steps::KubeSteps`: leases, records, the state machine), the example
//! release rendered for each. What it measures is flotilla's own work: render, records, the state machine,
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
use flotilla::ops::fake::{FakeKube, InFlight, Wait};
use flotilla::ops::{PackedRender, RunOptions};
use flotilla::release::History;
use flotilla::rollout::executor::{Interrupt, RunInfo};
use flotilla::rollout::kube_steps::{KubeSteps, Leases, Prepared};
use flotilla::rollout::prepare::rendered;
use flotilla::rollout::report::{Overall, Report, RunResult};
use flotilla::rollout::{execute, Plan, Reporter};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZES: [usize; 2] = [100, 1000];
/// Clusters in flight at once (`rollout.concurrency`).
const CONCURRENCY: usize = 50;
/// A scripted cluster's own time for one deploy or restore: apply and rollout.
const CLUSTER_TIME: Duration = Duration::from_millis(20);

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

/// The steps of run `id` deploying `renders` to `fleet`, as `flotilla deploy` builds them.
fn steps(
    fleet: &HashMap<String, FakeKube>,
    renders: HashMap<String, PackedRender>,
    id: &str,
    options: &RunOptions,
) -> KubeSteps<FakeKube> {
    let clusters = renders
        .into_iter()
        .filter_map(|(context, rendered)| {
            let kube = fleet.get(&context)?.clone();
            let history = History::new(kube.records.records());
            Some((context, Prepared::render(kube, history, rendered)))
        })
        .collect();
    KubeSteps::new(clusters, id, options.clone(), Leases::new(false))
}

/// A deploy of every cluster of `plan` with the steps' deployment id, measured.
async fn run(plan: &Plan, steps: &KubeSteps<FakeKube>) -> (Report, Duration, Duration) {
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
        let in_flight = Arc::new(InFlight::default());
        let fleet: HashMap<String, FakeKube> = clusters
            .iter()
            .map(|c| {
                let kube = FakeKube::named(&c.context);
                kube.take_rollout_time(CLUSTER_TIME, in_flight.clone());
                (c.context.clone(), kube)
            })
            .collect();
        let plan = plan(&clusters);
        let (report, wall, cpu) = run(&plan, &steps(&fleet, first, "scale-1", &options)).await;
        assert_eq!(report.overall, Overall::Succeeded, "{report:?}");
        let most = in_flight.take_most();
        assert!(
            most <= CONCURRENCY,
            "{most} clusters in flight, bound {CONCURRENCY}"
        );
        assert_eq!(most, CONCURRENCY.min(n), "the bound is reached");
        row(n, "deploy, all healthy", wall, cpu, most);

        // Version 2 crashes in the first cluster: the run stops and restores every
        // cluster it changed to version 1.
        fleet[&clusters[0].context].next_wait(Wait::Crash);
        let second = render_all(root, &clusters, "2.0.0");
        let (report, wall, cpu) = run(&plan, &steps(&fleet, second, "scale-2", &options)).await;
        assert_eq!(report.overall, Overall::RolledBack, "{report:?}");
        let changed = report
            .clusters
            .iter()
            .filter(|r| r.result == RunResult::RolledBack)
            .count();
        // Each changed cluster runs version 1 again, by a restore recorded there.
        let restored = fleet
            .values()
            .filter(|kube| {
                let history = History::new(kube.records.records());
                history.records().len() == 3
                    && history.runs_now().map(|r| r.content_id()) == Some("scale-1")
            })
            .count();
        assert_eq!(changed, restored);
        assert!(
            report
                .clusters
                .iter()
                .all(|r| matches!(r.result, RunResult::RolledBack | RunResult::NotStarted)),
            "{report:?}"
        );
        let most = in_flight.take_most();
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
