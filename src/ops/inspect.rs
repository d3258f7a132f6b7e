//! Read-only questions about one release in one cluster: its history, the live health
//! and drift of its recorded revision, and what deploying a rendered revision would
//! change.

use super::{release_error, Rendered};
use crate::cluster::{labels, ObjectRef};
use crate::cluster::{
    ApplyOptions, ClusterError, ClusterHandle, DiffAction, FieldChange, Health, ObjectDiff,
};
use crate::release::{History, Status};
use crate::storage::{RecordStore, SecretStore};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// The records of a release in one cluster.
pub async fn history(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
) -> Result<History, ClusterError> {
    SecretStore::new(cluster, namespace, release)
        .history()
        .await
}

/// Where one object of the recorded revision stands, live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectHealth {
    /// A workload (Deployment, StatefulSet, DaemonSet, Job) that is healthy.
    Ready,
    /// A workload on its way; the text says what it waits for.
    Progressing(String),
    /// A workload that will not get better by itself.
    Failed(String),
    /// Recorded, but not in the cluster.
    Missing,
    /// Live, of a kind without a health of its own (a ConfigMap).
    NotApplicable,
}

impl ObjectHealth {
    fn of(health: Option<Health>) -> ObjectHealth {
        match health {
            None => ObjectHealth::NotApplicable,
            Some(Health::Ready) => ObjectHealth::Ready,
            Some(Health::Progressing(why)) => ObjectHealth::Progressing(why),
            Some(Health::Failed(why)) => ObjectHealth::Failed(why),
        }
    }

    /// Neither ready nor without a health: what makes a release unhealthy.
    pub fn is_unhealthy(&self) -> bool {
        !matches!(self, ObjectHealth::Ready | ObjectHealth::NotApplicable)
    }
}

/// `ready`, `progressing: ...`, `failed: ...`, `missing`, or `-`: as tables and JSON
/// show it.
impl std::fmt::Display for ObjectHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectHealth::Ready => f.write_str("ready"),
            ObjectHealth::Progressing(why) => write!(f, "progressing: {why}"),
            ObjectHealth::Failed(why) => write!(f, "failed: {why}"),
            ObjectHealth::Missing => f.write_str("missing"),
            ObjectHealth::NotApplicable => f.write_str("-"),
        }
    }
}

impl Serialize for ObjectHealth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One object of the recorded revision as it is live.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectStatus {
    pub object: ObjectRef,
    pub health: ObjectHealth,
    /// Fields the record sets that live differs on; empty when in sync.
    pub drift: Vec<FieldChange>,
}

impl ObjectStatus {
    pub fn drifted(&self) -> bool {
        !self.drift.is_empty() || self.health == ObjectHealth::Missing
    }
}

/// How one cluster runs the release, in one word: what on-call reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterHealth {
    /// Every workload ready, every recorded object live, the revision deployed.
    Healthy,
    /// A workload on its way (a rollout in progress); nothing is stuck.
    Progressing,
    /// Something will not get better by itself: a container stuck (CrashLoopBackOff,
    /// ImagePullBackOff, ...), a workload failed, a recorded object missing, or the
    /// latest revision failed or left pending.
    Failing,
}

impl std::fmt::Display for ClusterHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClusterHealth::Healthy => "healthy",
            ClusterHealth::Progressing => "progressing",
            ClusterHealth::Failing => "failing",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The cluster: its kube context (docs/json.md).
    #[serde(rename = "cluster")]
    pub context: String,
    pub release: String,
    pub revision: u32,
    pub status: Status,
    pub deployment_id: String,
    pub app_version: String,
    pub health: ClusterHealth,
    /// Why it is not healthy, the first cause (`pod web-1 container web:
    /// CrashLoopBackOff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every pod of the release with a stuck container, as `pod NAME container C:
    /// REASON`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing_pods: Vec<String>,
    pub objects: Vec<ObjectStatus>,
}

/// A cluster's health from its revision's status, its objects' health and its stuck
/// pods: the first thing that will not get better by itself, else what is still on
/// its way.
pub fn judge(
    status: Status,
    revision: u32,
    objects: &[ObjectStatus],
    failing_pods: &[String],
) -> (ClusterHealth, Option<String>) {
    if let Some(pod) = failing_pods.first() {
        return (ClusterHealth::Failing, Some(pod.clone()));
    }
    if let Some(o) = objects
        .iter()
        .find(|o| matches!(o.health, ObjectHealth::Failed(_) | ObjectHealth::Missing))
    {
        return (
            ClusterHealth::Failing,
            Some(format!("{}: {}", o.object, o.health)),
        );
    }
    if matches!(status, Status::Failed | Status::Pending) {
        return (
            ClusterHealth::Failing,
            Some(format!("revision {revision} is {status}")),
        );
    }
    match objects.iter().find(|o| o.health.is_unhealthy()) {
        Some(o) => (
            ClusterHealth::Progressing,
            Some(format!("{}: {}", o.object, o.health)),
        ),
        None => (ClusterHealth::Healthy, None),
    }
}

impl StatusReport {
    pub fn drifted(&self) -> bool {
        self.objects.iter().any(ObjectStatus::drifted)
    }

    /// The objects that are neither ready nor without a health.
    pub fn unhealthy(&self) -> impl Iterator<Item = &ObjectStatus> {
        self.objects.iter().filter(|o| o.health.is_unhealthy())
    }
}

/// Live health of the recorded revision (the deployed one, else the latest) and drift
/// of every object from it.
pub async fn status(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
) -> Result<StatusReport, ClusterError> {
    let history = history(cluster, namespace, release).await?;
    status_of(cluster, namespace, release, &history).await
}

/// [`status`] from the records `history` already read (a caller that needs them too
/// reads them once).
pub async fn status_of(
    cluster: &ClusterHandle,
    namespace: &str,
    release: &str,
    history: &History,
) -> Result<StatusReport, ClusterError> {
    let record = history.current().ok_or_else(|| {
        release_error(
            cluster.context(),
            format!("release `{release}` is not installed in namespace `{namespace}`"),
        )
    })?;
    if record.status == Status::Uninstalled {
        return Err(release_error(
            cluster.context(),
            format!(
                "release `{release}` is not installed in namespace `{namespace}`: it was uninstalled with its history kept (revision {}, deployment {}); `flotilla rollback` brings it back",
                record.revision, record.deployment_id
            ),
        ));
    }
    let opts = ApplyOptions::new(namespace, release);
    let mut objects = Vec::new();
    // The selectors of the revision's pods, by namespace: its workloads' as they are
    // live, and the release's own labels for a Pod of the revision.
    let mut pods: BTreeMap<String, Vec<kube::core::Selector>> = BTreeMap::new();
    for recorded in &record.manifest {
        let (id, drift) = cluster.drift(recorded, &opts).await?;
        let ns = id.namespace.clone().unwrap_or_else(|| namespace.to_owned());
        let health = match drift {
            None => ObjectHealth::Missing,
            Some(_) => {
                let live = cluster.health_of(&id, namespace).await?;
                let selector = if id.kind == "Pod" && id.group().is_empty() {
                    Some(labels::own_pods(release))
                } else {
                    let selector = live.as_ref().and_then(|(_, s)| s.as_ref());
                    labels::selectors(selector).pop()
                };
                pods.entry(ns).or_default().extend(selector);
                ObjectHealth::of(live.map(|(health, _)| health))
            }
        };
        objects.push(ObjectStatus {
            object: id,
            health,
            drift: drift.unwrap_or_default(),
        });
    }
    // A crashlooping pod leaves its Deployment merely "progressing": the pods say why.
    let failing_pods: Vec<String> = cluster
        .release_pods(release, &pods)
        .await?
        .into_iter()
        .filter_map(|p| Some(format!("pod {}: {}", p.name, p.stuck?)))
        .collect();
    let (health, reason) = judge(record.status, record.revision, &objects, &failing_pods);
    Ok(StatusReport {
        context: cluster.context().to_owned(),
        release: release.to_owned(),
        revision: record.revision,
        status: record.status,
        deployment_id: record.deployment_id.clone(),
        app_version: record.app_version.clone(),
        health,
        reason,
        failing_pods,
        objects,
    })
}

/// What deploying `rendered` would change on one cluster (server-side dry run), given
/// the cluster's `history` (what the deployed revision has that `rendered` drops is a
/// delete).
pub async fn diff(
    cluster: &ClusterHandle,
    history: &History,
    rendered: &Rendered,
) -> Result<Vec<ObjectDiff>, ClusterError> {
    let deployed = history.deployed();
    let previous: Vec<ObjectRef> = deployed.map(|r| r.objects.clone()).unwrap_or_default();
    // What may be live: the deployed revision, and a later one that failed or halted.
    let mut recorded: Vec<serde_json::Value> =
        deployed.map(|r| r.manifest.clone()).unwrap_or_default();
    if let Some(latest) = history
        .latest()
        .filter(|l| deployed.map(|d| d.revision) != Some(l.revision))
    {
        recorded.extend(latest.manifest.iter().cloned());
    }
    let opts = ApplyOptions::new(&rendered.namespace, &rendered.release);
    let mut diffs = cluster
        .diff(
            &rendered.objects,
            &rendered.stored,
            &recorded,
            &previous,
            &opts,
        )
        .await?;
    // The hooks a deploy would run, as recorded (secret fields digests), in order.
    let hooks: Vec<(crate::engine::Hook, serde_json::Value)> = rendered
        .hooks
        .iter()
        .map(|h| (h.hook.clone(), h.stored.clone()))
        .collect();
    for (event, object) in super::hooks::would_run(&hooks, deployed.is_some()) {
        let mut id =
            ObjectRef::of(&object).map_err(|message| release_error(cluster.context(), message))?;
        id.namespace
            .get_or_insert_with(|| rendered.namespace.clone());
        diffs.push(ObjectDiff {
            object: id,
            action: DiffAction::RunHook,
            changes: Vec::new(),
            owner: None,
            hook: Some(event.to_string()),
        });
    }
    Ok(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(health: ObjectHealth) -> ObjectStatus {
        ObjectStatus {
            object: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("ns".into()),
                name: "web".into(),
            },
            health,
            drift: Vec::new(),
        }
    }

    #[test]
    fn a_crashlooping_pod_makes_the_cluster_failing_not_progressing() {
        let progressing = [object(ObjectHealth::Progressing(
            "0 of 1 updated replicas available".into(),
        ))];
        let stuck = ["pod web-1: container web: CrashLoopBackOff (back-off 40s)".to_owned()];
        assert_eq!(
            judge(Status::Deployed, 4, &progressing, &stuck),
            (ClusterHealth::Failing, Some(stuck[0].clone()))
        );
        let (health, reason) = judge(Status::Deployed, 4, &progressing, &[]);
        assert_eq!(health, ClusterHealth::Progressing);
        assert!(reason.unwrap_or_default().contains("0 of 1 updated"));
        let (health, reason) = judge(Status::Deployed, 4, &[object(ObjectHealth::Missing)], &[]);
        assert_eq!(
            (health, reason.as_deref()),
            (ClusterHealth::Failing, Some("Deployment ns/web: missing"))
        );
        let (health, reason) = judge(Status::Failed, 4, &[object(ObjectHealth::Ready)], &[]);
        assert_eq!(
            (health, reason.as_deref()),
            (ClusterHealth::Failing, Some("revision 4 is failed"))
        );
        assert_eq!(
            judge(
                Status::Deployed,
                4,
                &[
                    object(ObjectHealth::Ready),
                    object(ObjectHealth::NotApplicable)
                ],
                &[]
            ),
            (ClusterHealth::Healthy, None)
        );
    }

    #[test]
    fn health_reads_as_before_in_tables_and_json() {
        let cases = [
            (ObjectHealth::Ready, "ready", false),
            (
                ObjectHealth::Progressing("1 of 2".into()),
                "progressing: 1 of 2",
                true,
            ),
            (
                ObjectHealth::Failed("CrashLoopBackOff".into()),
                "failed: CrashLoopBackOff",
                true,
            ),
            (ObjectHealth::Missing, "missing", true),
            (ObjectHealth::NotApplicable, "-", false),
        ];
        for (health, text, unhealthy) in cases {
            assert_eq!(health.to_string(), text);
            assert_eq!(
                serde_json::to_value(&health).unwrap(),
                serde_json::Value::String(text.into())
            );
            assert_eq!(health.is_unhealthy(), unhealthy, "{text}");
        }
    }
}
