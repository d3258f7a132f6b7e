//! A soak: once a wave is healthy, each of its clusters is watched for a while before
//! the next wave starts. A pod of the release stuck in a state that fails a rollout
//! (`CrashLoopBackOff`, ...), a workload that loses its availability (a Deployment whose
//! `Available` condition turns `False`, a StatefulSet or DaemonSet with fewer pods
//! available than it wants) or disappears, or container restarts adding up past
//! `max_restarts` since the soak began fail it. It samples the release (one list of
//! pods and one of each workload kind, at once) every [`SOAK_SAMPLE_EVERY`]: a soak lasts
//! minutes, and a sample costs four requests.

use super::KubeClient;
use crate::cluster::{CancellationToken, ClusterError, SoakSample};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

pub const SOAK_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// What to watch, for how long.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub namespace: String,
    pub release: String,
    pub duration: Duration,
    /// Restarts the release's pods may add up to during the soak.
    pub max_restarts: u32,
}

/// Why `now` fails a soak that began at `baseline`, if it does.
pub fn judge(baseline: &SoakSample, now: &SoakSample, max_restarts: u32) -> Option<String> {
    if let Some(pod) = now.pods.iter().find(|p| p.stuck.is_some()) {
        return Some(format!(
            "pod {} {}",
            pod.name,
            pod.stuck.as_deref().unwrap_or_default()
        ));
    }
    for w in &now.workloads {
        if let Some(why) = &w.unavailable {
            return Some(format!(
                "{} {} lost its availability: {why}",
                w.kind, w.name
            ));
        }
    }
    for w in &baseline.workloads {
        if !now
            .workloads
            .iter()
            .any(|n| n.kind == w.kind && n.name == w.name)
        {
            return Some(format!("{} {} is gone", w.kind, w.name));
        }
    }
    let before: BTreeMap<&str, u32> = baseline
        .pods
        .iter()
        .map(|p| (p.name.as_str(), p.restarts))
        .collect();
    // A pod that was not there at the start (a replacement) counts all its restarts.
    let rise: u32 = now
        .pods
        .iter()
        .map(|p| {
            p.restarts
                .saturating_sub(before.get(p.name.as_str()).copied().unwrap_or(0))
        })
        .sum();
    (rise > max_restarts).then(|| {
        format!("containers of the release restarted {rise} times during the soak (max_restarts: {max_restarts})")
    })
}

/// Watches the release in the cluster for `opts.duration`; `remaining` hears how long
/// is left after each sample. Stops (cancelled) when `cancel` is.
pub async fn soak<K: KubeClient>(
    kube: &K,
    opts: &SoakOptions,
    cancel: &CancellationToken,
    remaining: &(dyn Fn(Duration) + Send + Sync),
) -> Result<(), ClusterError> {
    let started = Instant::now();
    let deadline = started + opts.duration;
    let baseline = kube.soak_sample(&opts.namespace, &opts.release).await?;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        remaining(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(SOAK_SAMPLE_EVERY.min(deadline - now)) => {}
            _ = cancel.cancelled() => {
                return Err(ClusterError::Cancelled { context: kube.context().to_owned() });
            }
        }
        let sample = kube.soak_sample(&opts.namespace, &opts.release).await?;
        if let Some(why) = judge(&baseline, &sample, opts.max_restarts) {
            return Err(ClusterError::Unhealthy {
                context: kube.context().to_owned(),
                object: format!(
                    "the soak (after {}s of {})",
                    started.elapsed().as_secs(),
                    humantime::format_duration(opts.duration)
                ),
                reason: why,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    //! The soak's decisions against the in-memory cluster, on a paused clock: samples
    //! are scripted one per [`SOAK_SAMPLE_EVERY`].
    use super::*;
    use crate::cluster::{PodSample, WorkloadSample};
    use crate::ops::fake::FakeKube;
    use std::sync::Mutex;

    fn sample(pods: &[(&str, u32, Option<&str>)], unavailable: Option<&str>) -> SoakSample {
        SoakSample {
            pods: pods
                .iter()
                .map(|(name, restarts, stuck)| PodSample {
                    name: (*name).into(),
                    restarts: *restarts,
                    stuck: stuck.map(str::to_owned),
                })
                .collect(),
            workloads: vec![WorkloadSample {
                kind: "Deployment",
                name: "web".into(),
                unavailable: unavailable.map(str::to_owned),
            }],
        }
    }

    fn options(seconds: u64, max_restarts: u32) -> SoakOptions {
        SoakOptions {
            namespace: "ns".into(),
            release: "hello".into(),
            duration: Duration::from_secs(seconds),
            max_restarts,
        }
    }

    async fn run(kube: &FakeKube, opts: &SoakOptions) -> (Result<(), ClusterError>, Vec<u64>) {
        let heard = Mutex::new(Vec::new());
        let result = soak(kube, opts, &CancellationToken::new(), &|left| {
            heard.lock().unwrap().push(left.as_secs())
        })
        .await;
        (result, heard.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_release_passes_the_soak_and_hears_the_time_left_fake_cluster() {
        let kube = FakeKube::new();
        kube.script_samples(vec![sample(&[("web-1", 2, None)], None)]);
        let (result, heard) = run(&kube, &options(6, 0)).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(heard, [6, 4, 2]);
        assert_eq!(kube.samples_taken(), 4, "the baseline and one per 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_crashloop_that_begins_during_the_soak_fails_it_fake_cluster() {
        let kube = FakeKube::new();
        kube.script_samples(vec![
            sample(&[("web-1", 0, None)], None),
            sample(&[("web-1", 0, None)], None),
            sample(
                &[("web-1", 1, Some("container web: CrashLoopBackOff"))],
                None,
            ),
        ]);
        let (result, _) = run(&kube, &options(600, 5)).await;
        let text = result.unwrap_err().to_string();
        assert!(
            text.contains("pod web-1 container web: CrashLoopBackOff"),
            "{text}"
        );
        assert!(text.contains("the soak (after 4s of 10m)"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_past_the_threshold_fail_and_up_to_it_pass_fake_cluster() {
        let rising = vec![
            sample(&[("web-1", 3, None), ("web-2", 0, None)], None),
            sample(&[("web-1", 4, None), ("web-2", 0, None)], None),
            // web-2 replaced by web-3, which restarted once already.
            sample(&[("web-1", 4, None), ("web-3", 1, None)], None),
        ];
        let kube = FakeKube::new();
        kube.script_samples(rising.clone());
        let (result, _) = run(&kube, &options(10, 1)).await;
        let text = result.unwrap_err().to_string();
        assert!(text.contains("restarted 2 times"), "{text}");

        let kube = FakeKube::new();
        kube.script_samples(rising);
        let (result, _) = run(&kube, &options(10, 2)).await;
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deployment_losing_availability_or_disappearing_fails_the_soak_fake_cluster() {
        let kube = FakeKube::new();
        kube.script_samples(vec![
            sample(&[("web-1", 0, None)], None),
            sample(&[("web-1", 0, None)], Some("MinimumReplicasUnavailable")),
        ]);
        let (result, _) = run(&kube, &options(60, 0)).await;
        let text = result.unwrap_err().to_string();
        assert!(
            text.contains("Deployment web lost its availability: MinimumReplicasUnavailable"),
            "{text}"
        );

        let gone = SoakSample::default();
        assert_eq!(
            judge(&sample(&[], None), &gone, 0).as_deref(),
            Some("Deployment web is gone")
        );
    }

    #[test]
    fn a_stateful_set_losing_a_replica_fails_the_soak_and_kinds_are_told_apart() {
        let with = |kind: &'static str, unavailable: Option<&str>| SoakSample {
            pods: Vec::new(),
            workloads: vec![WorkloadSample {
                kind,
                name: "db".into(),
                unavailable: unavailable.map(str::to_owned),
            }],
        };
        assert_eq!(
            judge(
                &with("StatefulSet", None),
                &with("StatefulSet", Some("2 of 3 replicas available")),
                0
            )
            .as_deref(),
            Some("StatefulSet db lost its availability: 2 of 3 replicas available")
        );
        // A Deployment of the same name does not stand in for a StatefulSet that went.
        assert_eq!(
            judge(&with("StatefulSet", None), &with("Deployment", None), 0).as_deref(),
            Some("StatefulSet db is gone")
        );
        assert_eq!(
            judge(&with("DaemonSet", None), &with("DaemonSet", None), 0),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_run_ends_the_soak_at_once_fake_cluster() {
        let kube = FakeKube::new();
        kube.script_samples(vec![sample(&[("web-1", 0, None)], None)]);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result = soak(&kube, &options(3600, 0), &cancel, &|_| {}).await;
        assert!(
            matches!(result, Err(ClusterError::Cancelled { .. })),
            "{result:?}"
        );
        assert_eq!(kube.samples_taken(), 1);
    }
}
