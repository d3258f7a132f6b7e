//! The questions a promotion asks of records, without I/O: which revision every cluster
//! of the source environment agrees it runs healthy (`promote`), and whether an
//! artifact ran healthy long enough in the previous environment of a chain (`deploy`
//! and `promote` into an environment with `promotion.min_soak`).

use super::{History, ReleaseRecord, Status};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What one cluster of the source environment was found running.
#[derive(Debug, Clone)]
pub struct SourceCluster {
    pub context: String,
    /// Its latest revision (`None`: the release is not installed there), or why it
    /// could not be read.
    pub latest: Result<Option<ReleaseRecord>, String>,
    /// The release's objects that are not healthy now (`Deployment/web progressing`).
    pub unhealthy: Vec<String>,
    /// Why its latest record may not be used ([`check_record`](super::check_record)):
    /// digests that do not match its content, a MAC that does not verify. Each line
    /// names the record and the cluster.
    pub untrusted: Vec<String>,
}

impl SourceCluster {
    /// `cluster, revision, deployment id, status, health`: its row in the table a
    /// refusal prints.
    pub fn row(&self) -> [String; 5] {
        let context = self.context.clone();
        match &self.latest {
            Err(why) => [context, "-".into(), "-".into(), "-".into(), why.clone()],
            Ok(None) => [
                context,
                "-".into(),
                "-".into(),
                "not installed".into(),
                "-".into(),
            ],
            Ok(Some(r)) => [
                context,
                r.revision.to_string(),
                r.content_id().to_owned(),
                r.status.to_string(),
                if self.unhealthy.is_empty() {
                    "healthy".into()
                } else {
                    self.unhealthy.join(", ")
                },
            ],
        }
    }

    /// Why this cluster cannot be promoted from, if it cannot.
    fn problem(&self) -> Option<String> {
        let context = &self.context;
        if !self.untrusted.is_empty() {
            return Some(self.untrusted.join("\n  "));
        }
        match &self.latest {
            Err(why) => Some(format!("{context}: {why}")),
            Ok(None) => Some(format!("{context}: not installed")),
            Ok(Some(r)) if r.status != Status::Deployed => Some(format!(
                "{context}: its latest revision {} is {}, not deployed",
                r.revision, r.status
            )),
            Ok(Some(_)) if !self.unhealthy.is_empty() => Some(format!(
                "{context}: not healthy: {}",
                self.unhealthy.join(", ")
            )),
            Ok(Some(r)) if r.artifact().is_none() => Some(format!(
                "{context}: revision {} was recorded before flotilla kept its artifact (chart and values); deploy it again to promote it",
                r.revision
            )),
            Ok(Some(_)) => None,
        }
    }
}

/// The revision every cluster of the source runs healthy, the same deployment and the
/// same artifact everywhere; else every reason why not, one line each.
pub fn agreed(clusters: &[SourceCluster]) -> Result<&ReleaseRecord, Vec<String>> {
    let mut problems: Vec<String> = clusters.iter().filter_map(SourceCluster::problem).collect();
    let running: Vec<(&str, &ReleaseRecord)> = clusters
        .iter()
        .filter_map(|c| Some((c.context.as_str(), c.latest.as_ref().ok()?.as_ref()?)))
        .collect();
    let first = running.first().map(|(_, r)| *r);
    if let Some(first) = first {
        let differs = |r: &ReleaseRecord| {
            r.content_id() != first.content_id() || r.artifact_digest() != first.artifact_digest()
        };
        if running.iter().any(|(_, r)| differs(r)) {
            problems.push(format!(
                "the clusters disagree: {}",
                running
                    .iter()
                    .map(|(context, r)| format!("{context} runs {}", r.content_id()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    match first {
        Some(record) if problems.is_empty() => Ok(record),
        _ if clusters.is_empty() => Err(vec!["the environment has no cluster".into()]),
        _ => Err(problems),
    }
}

impl History {
    /// The longest time this cluster ran the artifact `digest` healthy in one stretch,
    /// as of `now`: from when a revision of it was recorded healthy to now (still
    /// deployed) or to when a later deploy superseded it. A revision rolled back (undone
    /// on purpose) or never healthy does not count. A revision runs the artifact whose
    /// digest its recorded chart and values hash to, whatever digest it claims.
    pub fn soaked(&self, digest: &str, now: DateTime<Utc>) -> Option<Duration> {
        self.records()
            .iter()
            .filter(|r| {
                !digest.is_empty()
                    && r.artifact_digest() == digest
                    && r.artifact().is_some_and(|a| a.digest() == digest)
            })
            .filter_map(|r| {
                let since = r.healthy_at?;
                let until = match r.status {
                    Status::Deployed => now,
                    Status::Superseded => r.updated,
                    _ => return None,
                };
                (until - since).to_std().ok()
            })
            .max()
    }
}

/// Why an artifact may not go on past `previous` (the environment it is promoted from):
/// each cluster there (its context, how long it ran the artifact healthy, or why that
/// could not be read) must have run it at least `min_soak`. Empty: it may.
pub fn soak_problems(
    previous: &str,
    clusters: &[(String, Result<Option<Duration>, String>)],
    min_soak: Duration,
) -> Vec<String> {
    let human = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    clusters
        .iter()
        .filter_map(|(context, soaked)| match soaked {
            Err(why) => Some(format!("{previous}/{context}: {why}")),
            Ok(None) => Some(format!(
                "{previous}/{context}: never ran this artifact healthy"
            )),
            Ok(Some(ran)) if *ran < min_soak => Some(format!(
                "{previous}/{context}: ran it healthy {} of the {} required",
                human(*ran),
                human(min_soak)
            )),
            Ok(Some(_)) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::RevisionSource;

    fn with_artifact(mut r: ReleaseRecord, digest: &str) -> ReleaseRecord {
        r.source = Some(RevisionSource {
            values: Some(serde_json::json!({})),
            artifact: digest.into(),
            ..RevisionSource::default()
        });
        r
    }

    fn source(context: &str, r: ReleaseRecord) -> SourceCluster {
        SourceCluster {
            context: context.into(),
            latest: Ok(Some(r)),
            unhealthy: Vec::new(),
            untrusted: Vec::new(),
        }
    }

    /// `r` running a real artifact made of `text`, its digest recorded as computed.
    fn running(mut r: ReleaseRecord, text: &str) -> ReleaseRecord {
        r.source = Some(RevisionSource {
            chart: [("templates/a.yaml".to_owned(), text.to_owned())].into(),
            values: Some(serde_json::json!({})),
            ..RevisionSource::default()
        });
        let digest = r.artifact().unwrap().digest();
        r.source.as_mut().unwrap().artifact = digest;
        r
    }

    #[test]
    fn every_cluster_running_one_deployment_healthy_agrees() {
        let clusters = [
            source("a", with_artifact(record(3, "d1", Status::Deployed), "x")),
            source("b", with_artifact(record(1, "d1", Status::Deployed), "x")),
        ];
        let found = agreed(&clusters).unwrap();
        assert_eq!(found.deployment_id, "d1");
    }

    #[test]
    fn a_restore_of_the_same_deployment_agrees_with_its_deploy() {
        let mut restore = with_artifact(record(5, "rb", Status::Deployed), "x");
        restore.restores = Some("d1".into());
        let clusters = [
            source("a", restore),
            source("b", with_artifact(record(1, "d1", Status::Deployed), "x")),
        ];
        assert_eq!(agreed(&clusters).unwrap().content_id(), "d1");
    }

    #[test]
    fn disagreeing_unhealthy_failed_missing_or_unreachable_clusters_are_refused() {
        let good = || with_artifact(record(1, "d1", Status::Deployed), "x");
        let cases: Vec<(SourceCluster, &str)> = vec![
            (
                source("b", with_artifact(record(2, "d2", Status::Deployed), "y")),
                "the clusters disagree: a runs d1, b runs d2",
            ),
            (
                SourceCluster {
                    unhealthy: vec!["Deployment/web failed: CrashLoopBackOff".into()],
                    ..source("b", good())
                },
                "b: not healthy: Deployment/web failed: CrashLoopBackOff",
            ),
            (
                source("b", with_artifact(record(2, "d2", Status::Failed), "y")),
                "b: its latest revision 2 is failed, not deployed",
            ),
            (
                SourceCluster {
                    latest: Ok(None),
                    ..source("b", good())
                },
                "b: not installed",
            ),
            (
                SourceCluster {
                    latest: Err("unreachable: connection refused".into()),
                    ..source("b", good())
                },
                "b: unreachable: connection refused",
            ),
            (
                source("b", record(1, "d1", Status::Deployed)),
                "b: revision 1 was recorded before flotilla kept its artifact",
            ),
            (
                SourceCluster {
                    untrusted: vec!["b: revision 1 of hello (deployment d1) in cluster b: its artifact digest says x".into()],
                    ..source("b", good())
                },
                "b: revision 1 of hello (deployment d1) in cluster b: its artifact digest",
            ),
        ];
        for (other, expected) in cases {
            let clusters = [source("a", good()), other];
            let problems = agreed(&clusters).unwrap_err();
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected}: {problems:?}"
            );
            // The table names every cluster.
            assert_eq!(clusters[1].row()[0], "b");
        }
    }

    #[test]
    fn soak_counts_healthy_stretches_of_the_artifact_only() {
        let now = Utc::now();
        let minutes = |m: i64| now - chrono::Duration::minutes(m);
        let mut old = running(record(1, "d1", Status::Superseded), "x");
        old.healthy_at = Some(minutes(60));
        old.updated = minutes(45);
        let mut rolled = running(record(2, "d2", Status::RolledBack), "x");
        rolled.healthy_at = Some(minutes(44));
        rolled.updated = minutes(1);
        let mut now_on = running(record(3, "d3", Status::Deployed), "y");
        now_on.healthy_at = Some(minutes(5));
        let x = old.artifact_digest().to_owned();
        let y = now_on.artifact_digest().to_owned();
        // A record that claims artifact x while its chart is another: it never ran x.
        let mut forged = running(record(4, "d4", Status::Superseded), "forged");
        forged.source.as_mut().unwrap().artifact = x.clone();
        forged.healthy_at = Some(minutes(600));
        forged.updated = minutes(2);
        let history = History::new(vec![forged, old, rolled, now_on]);
        assert_eq!(history.soaked(&x, now), Some(Duration::from_secs(15 * 60)));
        assert_eq!(history.soaked(&y, now), Some(Duration::from_secs(5 * 60)));
        assert_eq!(history.soaked("z", now), None);
        assert_eq!(history.soaked("", now), None);
    }

    #[test]
    fn soak_problems_name_each_short_cluster() {
        let clusters = vec![
            ("a".to_owned(), Ok(Some(Duration::from_secs(900)))),
            ("b".to_owned(), Ok(Some(Duration::from_secs(120)))),
            ("c".to_owned(), Ok(None)),
            ("d".to_owned(), Err("unreachable".to_owned())),
        ];
        assert_eq!(
            soak_problems("staging", &clusters, Duration::from_secs(600)),
            [
                "staging/b: ran it healthy 2m of the 10m required",
                "staging/c: never ran this artifact healthy",
                "staging/d: unreachable",
            ]
        );
        assert!(soak_problems("staging", &clusters[..1], Duration::from_secs(600)).is_empty());
    }
}
