//! Render benchmark: the example release `hello` for 100 clusters, as a deploy to a
//! 100-cluster environment renders it (chart loaded once, values merged once, one render
//! per cluster). Prints figures; asserts nothing about time.
//!
//! `cargo bench --bench render` (optimised build, 30 runs); `scripts/bench-render.sh --short`
//! for CI (dev profile, 5 runs).

use flotilla::config::{Cluster, Repo};
use flotilla::engine::{placeholder_secrets, Chart, Renderer};
use std::path::Path;
use std::time::{Duration, Instant};

const CLUSTERS: usize = 100;
const RUNS: usize = 30;
const SHORT_RUNS: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_count = if std::env::args().any(|arg| arg == "--short") {
        SHORT_RUNS
    } else {
        RUNS
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = Repo::open(root)?;
    let release = repo.release("hello")?;
    let env = repo.environment("prod")?;

    // 100 clusters made from prod's three, each with its own context and name; every
    // third one in the busy region, every third on premises.
    let clusters: Vec<Cluster> = (0..CLUSTERS)
        .map(|i| {
            let mut cluster = env.environment.clusters[i % 3].clone();
            cluster.context = format!("prod-bench-{i:03}");
            cluster.global.cluster_name = cluster.context.clone();
            cluster
        })
        .collect();

    let started = Instant::now();
    let chart = Chart::load(&release.chart_dir)?;
    let load = started.elapsed();

    let mut runs = Vec::with_capacity(run_count);
    let mut objects = 0;
    let mut bytes = 0;
    for _ in 0..run_count {
        let started = Instant::now();
        let renderer = Renderer::for_release(
            &chart,
            &release,
            &env.environment.name,
            &Default::default(),
            1,
        )?;
        objects = 0;
        bytes = 0;
        for cluster in &clusters {
            let secrets = placeholder_secrets(&release.descriptor.spec, &cluster.context);
            let manifest = renderer.render(cluster, &secrets)?;
            objects += manifest.objects.len();
            bytes += manifest.to_yaml(None).len();
        }
        runs.push(started.elapsed());
    }
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("render benchmark: release hello, {CLUSTERS} clusters, {run_count} runs");
    println!("  chart load + compile:        {:8.3} ms (once)", ms(load));
    println!(
        "  {CLUSTERS} clusters, fastest run:  {:8.3} ms",
        ms(runs[0])
    );
    println!(
        "  {CLUSTERS} clusters, median run:   {:8.3} ms",
        ms(runs[run_count / 2])
    );
    println!(
        "  {CLUSTERS} clusters, slowest run:  {:8.3} ms",
        ms(runs[run_count - 1])
    );
    println!(
        "  per cluster (median):        {:8.3} ms",
        ms(runs[run_count / 2]) / CLUSTERS as f64
    );
    println!(
        "  objects per run: {objects}, YAML per run: {} KiB",
        bytes / 1024
    );
    Ok(())
}
