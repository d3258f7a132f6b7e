//! Health wait driven by watches: workloads become ready, or a pod of the new revision
//! fails, or the deadline passes. No fixed-interval polling: every decision is taken on
//! a watch event.

use super::{CancellationToken, ClusterError, ClusterHandle, Event, ObjectRef, Progress};
use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Waiting reasons of a container that mean the new revision is broken: fail at once.
const FATAL_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
];

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The release namespace (default for objects without one).
    pub namespace: String,
    /// Per cluster, for everything to be ready.
    pub timeout: Duration,
}

/// Where one workload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Not yet; the text says what it waits for.
    Progressing(String),
    /// Will not get better by itself (ProgressDeadlineExceeded, Job failed).
    Failed(String),
}

enum Update {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    Job(Box<Job>),
    Pod(Box<Pod>),
}

fn watch<K>(api: Api<K>, name: Option<&str>) -> BoxStream<'static, Result<K, watcher::Error>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = match name {
        Some(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
        None => watcher::Config::default(),
    };
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed()
}

impl ClusterHandle {
    /// Waits until every workload among `objects` is healthy. Objects of other kinds
    /// are ready once applied.
    pub async fn wait_healthy(
        &self,
        objects: &[ObjectRef],
        opts: &WaitOptions,
        cancel: &CancellationToken,
        progress: &Progress,
    ) -> Result<(), ClusterError> {
        let ns_of = |id: &ObjectRef| {
            id.namespace
                .clone()
                .unwrap_or_else(|| opts.namespace.clone())
        };
        let mut pending: BTreeMap<(String, String, String), String> = BTreeMap::new();
        let mut streams: Vec<BoxStream<'static, Result<Update, watcher::Error>>> = Vec::new();
        let mut pod_namespaces = Vec::new();
        for id in objects {
            let ns = ns_of(id);
            let client = self.client();
            let stream = match (id.api_version.as_str(), id.kind.as_str()) {
                ("apps/v1", "Deployment") => {
                    watch(Api::<Deployment>::namespaced(client, &ns), Some(&id.name))
                        .map(|r| r.map(|o| Update::Deployment(Box::new(o))))
                        .boxed()
                }
                ("apps/v1", "StatefulSet") => {
                    watch(Api::<StatefulSet>::namespaced(client, &ns), Some(&id.name))
                        .map(|r| r.map(|o| Update::StatefulSet(Box::new(o))))
                        .boxed()
                }
                ("apps/v1", "DaemonSet") => {
                    watch(Api::<DaemonSet>::namespaced(client, &ns), Some(&id.name))
                        .map(|r| r.map(|o| Update::DaemonSet(Box::new(o))))
                        .boxed()
                }
                ("batch/v1", "Job") => watch(Api::<Job>::namespaced(client, &ns), Some(&id.name))
                    .map(|r| r.map(|o| Update::Job(Box::new(o))))
                    .boxed(),
                _ => continue,
            };
            streams.push(stream);
            pending.insert(
                (id.kind.clone(), ns.clone(), id.name.clone()),
                "not seen yet".into(),
            );
            if !pod_namespaces.contains(&ns) {
                pod_namespaces.push(ns);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        for ns in &pod_namespaces {
            streams.push(
                watch(Api::<Pod>::namespaced(self.client(), ns), None)
                    .map(|r| r.map(|o| Update::Pod(Box::new(o))))
                    .boxed(),
            );
        }
        let mut updates = stream::select_all(streams);
        // Latest revision number seen per Deployment, to tell new pods from old ones.
        let mut deployment_revisions: HashMap<(String, String), u64> = HashMap::new();
        // Pods with a stuck container whose revision is not known yet.
        let mut suspects: HashMap<(String, String), Pod> = HashMap::new();
        let describe = |pending: &BTreeMap<(String, String, String), String>| -> Vec<String> {
            pending
                .iter()
                .map(|((kind, ns, name), why)| format!("{kind} {ns}/{name} ({why})"))
                .collect()
        };
        let mut reported = describe(&pending);
        progress(
            self.context(),
            Event::Waiting {
                pending: reported.clone(),
            },
        );
        let deadline = tokio::time::sleep(opts.timeout);
        tokio::pin!(deadline);
        loop {
            let update = tokio::select! {
                _ = cancel.cancelled() => return Err(ClusterError::Cancelled { context: self.context().to_owned() }),
                _ = &mut deadline => {
                    return Err(ClusterError::Timeout {
                        context: self.context().to_owned(),
                        timeout: opts.timeout,
                        pending: describe(&pending),
                    });
                }
                next = updates.next() => next,
            };
            let update = match update {
                Some(Ok(update)) => update,
                // The watcher retries with backoff by itself; a lasting failure ends in the timeout.
                Some(Err(err)) => {
                    tracing::debug!(cluster = self.context(), "watch error: {err}");
                    continue;
                }
                None => {
                    return Err(ClusterError::Unreachable {
                        context: self.context().to_owned(),
                        message: "the watches ended".into(),
                    })
                }
            };
            let (kind, ns, name, health) = match update {
                Update::Pod(pod) => {
                    let key = (pod.namespace().unwrap_or_default(), pod.name_any());
                    if fatal_container(&pod).is_none() {
                        suspects.remove(&key);
                        continue;
                    }
                    suspects.insert(key, *pod);
                    self.judge(&mut suspects, &deployment_revisions, &pending)
                        .await?;
                    continue;
                }
                Update::Deployment(d) => {
                    let key = (d.namespace().unwrap_or_default(), d.name_any());
                    // The revision counts only once the controller has seen the new
                    // generation: before that, the previous revision's pods look new.
                    let revision = d
                        .annotations()
                        .get(REVISION_ANNOTATION)
                        .and_then(|r| r.parse().ok());
                    match revision.filter(|_| {
                        observed(
                            d.as_ref(),
                            d.status.as_ref().and_then(|s| s.observed_generation),
                        )
                    }) {
                        Some(revision) => deployment_revisions.insert(key, revision),
                        None => deployment_revisions.remove(&key),
                    };
                    if !suspects.is_empty() {
                        self.judge(&mut suspects, &deployment_revisions, &pending)
                            .await?;
                    }
                    (
                        "Deployment",
                        d.namespace(),
                        d.name_any(),
                        deployment_health(&d),
                    )
                }
                Update::StatefulSet(s) => (
                    "StatefulSet",
                    s.namespace(),
                    s.name_any(),
                    statefulset_health(&s),
                ),
                Update::DaemonSet(d) => (
                    "DaemonSet",
                    d.namespace(),
                    d.name_any(),
                    daemonset_health(&d),
                ),
                Update::Job(j) => ("Job", j.namespace(), j.name_any(), job_health(&j)),
            };
            let ns = ns.unwrap_or_default();
            let key = (kind.to_owned(), ns.clone(), name.clone());
            if let (Health::Progressing(why), Some(slot)) = (&health, pending.get_mut(&key)) {
                slot.clone_from(why);
                let now = describe(&pending);
                if now != reported {
                    reported = now;
                    progress(
                        self.context(),
                        Event::Waiting {
                            pending: reported.clone(),
                        },
                    );
                }
            }
            match health {
                Health::Ready => {
                    if pending.remove(&key).is_some() {
                        let id = objects
                            .iter()
                            .find(|o| o.kind == kind && o.name == name && ns_of(o) == ns)
                            .cloned();
                        if let Some(id) = id {
                            progress(self.context(), Event::Ready(id));
                        }
                    }
                    if pending.is_empty() {
                        return Ok(());
                    }
                }
                Health::Progressing(why) => {
                    if let Some(slot) = pending.get_mut(&key) {
                        *slot = why;
                    }
                }
                Health::Failed(reason) => {
                    return Err(ClusterError::Unhealthy {
                        context: self.context().to_owned(),
                        object: format!("{kind} {ns}/{name}"),
                        reason,
                    })
                }
            }
        }
    }

    /// Judges the suspects: the first one that belongs to the new revision of a
    /// workload we wait for fails the wait; pods of older revisions are dropped; pods
    /// whose Deployment has not shown its new revision yet stay suspects.
    async fn judge(
        &self,
        suspects: &mut HashMap<(String, String), Pod>,
        deployment_revisions: &HashMap<(String, String), u64>,
        pending: &BTreeMap<(String, String, String), String>,
    ) -> Result<(), ClusterError> {
        let mut innocent = Vec::new();
        for (key, pod) in suspects.iter() {
            match self.verdict(pod, deployment_revisions, pending).await {
                Verdict::Broken(err) => return Err(err),
                Verdict::Innocent => innocent.push(key.clone()),
                Verdict::Undecided => {}
            }
        }
        for key in innocent {
            suspects.remove(&key);
        }
        Ok(())
    }

    async fn verdict(
        &self,
        pod: &Pod,
        deployment_revisions: &HashMap<(String, String), u64>,
        pending: &BTreeMap<(String, String, String), String>,
    ) -> Verdict {
        let Some((container, reason, message)) = fatal_container(pod) else {
            return Verdict::Innocent;
        };
        let ns = pod.namespace().unwrap_or_default();
        let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
        else {
            return Verdict::Innocent;
        };
        let workload = match owner.kind.as_str() {
            "ReplicaSet" => {
                // Read each time: a rollback gives an old ReplicaSet a new revision.
                let rs = Api::<ReplicaSet>::namespaced(self.client(), &ns)
                    .get_opt(&owner.name)
                    .await;
                let Ok(Some(rs)) = rs else {
                    return Verdict::Undecided;
                };
                let Some(deployment) = rs
                    .owner_references()
                    .iter()
                    .find(|o| o.kind == "Deployment")
                    .map(|o| o.name.clone())
                else {
                    return Verdict::Innocent;
                };
                let revision: u64 = rs
                    .annotations()
                    .get(REVISION_ANNOTATION)
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                match deployment_revisions.get(&(ns.clone(), deployment.clone())) {
                    None => return Verdict::Undecided,
                    // An older ReplicaSet's pods are the previous revision going away.
                    Some(current) if revision < *current => return Verdict::Innocent,
                    Some(_) => ("Deployment", deployment),
                }
            }
            kind @ ("StatefulSet" | "DaemonSet" | "Job") => (kind, owner.name.clone()),
            _ => return Verdict::Innocent,
        };
        if !pending.contains_key(&(workload.0.to_owned(), ns.clone(), workload.1.clone())) {
            return Verdict::Innocent;
        }
        let detail = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        Verdict::Broken(ClusterError::Unhealthy {
            context: self.context().to_owned(),
            object: format!("{} {ns}/{}", workload.0, workload.1),
            reason: format!(
                "pod {} container {container} is in {reason}{detail}",
                pod.name_any()
            ),
        })
    }
}

enum Verdict {
    Broken(ClusterError),
    Innocent,
    Undecided,
}

/// The first container (init containers included) waiting for a fatal reason.
fn fatal_container(pod: &Pod) -> Option<(String, String, String)> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(reason) = waiting.and_then(|w| w.reason.as_deref()) {
            if FATAL_WAITING.contains(&reason) {
                let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
                return Some((c.name.clone(), reason.to_owned(), message));
            }
        }
    }
    None
}

fn observed<T: Resource>(object: &T, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= object.meta().generation.unwrap_or(0)
}

/// As `kubectl rollout status`: the new generation observed, every replica updated and
/// available, no old replica left; ProgressDeadlineExceeded is a failure.
pub fn deployment_health(d: &Deployment) -> Health {
    let Some(status) = &d.status else {
        return Health::Progressing("no status yet".into());
    };
    if !observed(d, status.observed_generation) {
        return Health::Progressing("new generation not observed yet".into());
    }
    for c in status.conditions.iter().flatten() {
        if c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        {
            return Health::Failed(format!(
                "ProgressDeadlineExceeded: {}",
                c.message.clone().unwrap_or_default()
            ));
        }
    }
    let want = d.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < want {
        Health::Progressing(format!("{updated} of {want} replicas updated"))
    } else if total > updated {
        Health::Progressing(format!("{} old replicas terminating", total - updated))
    } else if available < updated {
        Health::Progressing(format!(
            "{available} of {updated} updated replicas available"
        ))
    } else {
        Health::Ready
    }
}

pub fn statefulset_health(s: &StatefulSet) -> Health {
    let Some(status) = &s.status else {
        return Health::Progressing("no status yet".into());
    };
    if !observed(s, status.observed_generation) {
        return Health::Progressing("new generation not observed yet".into());
    }
    let want = s.spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if ready < want {
        Health::Progressing(format!("{ready} of {want} replicas ready"))
    } else if updated < want {
        Health::Progressing(format!("{updated} of {want} replicas updated"))
    } else if status.update_revision.is_some() && status.current_revision != status.update_revision
    {
        Health::Progressing("rolling update in progress".into())
    } else {
        Health::Ready
    }
}

pub fn daemonset_health(d: &DaemonSet) -> Health {
    let Some(status) = &d.status else {
        return Health::Progressing("no status yet".into());
    };
    if !observed(d, status.observed_generation) {
        return Health::Progressing("new generation not observed yet".into());
    }
    let want = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < want {
        Health::Progressing(format!("{updated} of {want} pods updated"))
    } else if available < want {
        Health::Progressing(format!("{available} of {want} pods available"))
    } else {
        Health::Ready
    }
}

pub fn job_health(j: &Job) -> Health {
    for c in j
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if c.status == "True" && c.type_ == "Complete" {
            return Health::Ready;
        }
        if c.status == "True" && c.type_ == "Failed" {
            return Health::Failed(format!(
                "job failed: {}",
                c.message.clone().or(c.reason.clone()).unwrap_or_default()
            ));
        }
    }
    Health::Progressing("not complete".into())
}

impl ClusterHandle {
    /// The health of one object now (for `status`); `None` for kinds without one.
    pub async fn health_of(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<Health>, ClusterError> {
        let ns = id.namespace.clone().unwrap_or_else(|| namespace.to_owned());
        let client = self.client();
        let read = |e| self.error("read", id, e);
        let health = match (id.api_version.as_str(), id.kind.as_str()) {
            ("apps/v1", "Deployment") => Api::<Deployment>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|d| deployment_health(&d)),
            ("apps/v1", "StatefulSet") => Api::<StatefulSet>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|s| statefulset_health(&s)),
            ("apps/v1", "DaemonSet") => Api::<DaemonSet>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|d| daemonset_health(&d)),
            ("batch/v1", "Job") => Api::<Job>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|j| job_health(&j)),
            _ => return Ok(None),
        };
        Ok(Some(
            health.unwrap_or_else(|| Health::Failed("missing".into())),
        ))
    }
}
