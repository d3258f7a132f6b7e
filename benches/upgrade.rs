//! Benchmark: wall time and API requests of an upgrade of the example release (config
//! map, secret, service, deployment with 2 replicas) on one cluster: install once, then
//! upgrades that change the image tag, each waiting for health.
//!
//! `cargo bench --profile dev --bench upgrade` (5 upgrades), `-- --short` for CI (1
//! upgrade). The time is the cluster's (apply, controllers, watches), not our CPU: the
//! dev profile (dependencies optimised) measures the same and avoids a release build.
//! Runs on the local fleet (`FLOTILLA_FLEET_DIR`, else one started for the run).

#[path = "../tests/testsuite/support/cluster.rs"]
mod support;

use flotilla::ops;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let short = std::env::args().any(|a| a == "--short");
    let upgrades = if short { 1 } else { 5 };
    let t = support::cluster("bench").await;
    let opts = support::run_options();

    let first = support::rendered(&t.namespace, "1", 2, false);
    let (install_ms, install_requests) =
        timed(&t, || ops::deploy(&t.handle, &first, "d0", &opts)).await;
    println!("install          : {install_ms:>7.1} ms {install_requests:>4} requests");
    let mut times = Vec::new();
    let mut requests = Vec::new();
    for n in 1..=upgrades {
        let rendered = support::rendered(&t.namespace, &format!("1.{n}"), 2, false);
        let id = format!("d{n}");
        let (ms, count) = timed(&t, || ops::deploy(&t.handle, &rendered, &id, &opts)).await;
        println!("upgrade {n:>2}       : {ms:>7.1} ms {count:>4} requests");
        times.push(ms);
        requests.push(count);
    }
    let same = support::rendered(&t.namespace, &format!("1.{upgrades}"), 2, false);
    let (noop_ms, noop_requests) = timed(&t, || ops::deploy(&t.handle, &same, "same", &opts)).await;
    println!("unchanged deploy : {noop_ms:>7.1} ms {noop_requests:>4} requests");
    times.sort_by(f64::total_cmp);
    println!(
        "upgrade median   : {:>7.1} ms {:>4} requests ({} upgrades, 4 objects, 2 replicas)",
        times[times.len() / 2],
        requests[requests.len() / 2],
        upgrades
    );
}

async fn timed<F, Fut>(t: &support::TestCluster, run: F) -> (f64, u64)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<ops::Outcome, flotilla::cluster::ClusterError>>,
{
    let before = t.handle.requests();
    let start = Instant::now();
    let outcome = run().await.expect("deploy");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    (
        start.elapsed().as_secs_f64() * 1000.0,
        t.handle.requests() - before,
    )
}
