//! Health wait driven by watches: workloads become ready, or a pod of the new revision
//! fails, or the deadline passes. No fixed-interval polling: every decision is taken on
//! a watch event (or when the grace of a transient pod failure runs out).

use super::{labels, CancellationToken, ClusterError, ClusterHandle, Event, ObjectRef, Progress};
use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// Waiting reasons of a container that mean the new revision is broken: fail at once.
const FATAL_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerError",
];

/// Waiting reasons that are often transient (a registry hiccup, a ConfigMap or Secret
/// applied a moment later): they fail only once they last longer than the grace.
const TRANSIENT_WAITING: &[&str] = &["ErrImagePull", "CreateContainerConfigError"];

/// The grace of [`TRANSIENT_WAITING`] reasons unless configured.
pub const DEFAULT_TRANSIENT_GRACE: Duration = Duration::from_secs(30);

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The label a StatefulSet puts on its pods: the controller revision they run.
const STATEFULSET_REVISION_LABEL: &str = "controller-revision-hash";
/// The label a DaemonSet puts on its pods: the template generation they run.
const DAEMONSET_GENERATION_LABEL: &str = "pod-template-generation";

#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The release namespace (default for objects without one).
    pub namespace: String,
    /// Per cluster, for everything to be ready.
    pub timeout: Duration,
    /// How long a transient waiting reason may last before it fails the wait.
    pub transient_grace: Duration,
    /// The release: its workloads are watched by its labels.
    pub release: String,
    /// Whether Pods among the objects are waited for until they completed (Helm
    /// hooks); otherwise a Pod is done once applied, as other kinds without a health.
    pub pods_complete: bool,
    /// The pod selectors the rendered workloads declare ([`WaitOptions::declared`]): a
    /// namespace where every workload waited for declares its own has its pods watched
    /// from the start, with the workloads (an apps/v1 selector cannot change, so it is
    /// the one the server has); else once the workloads are seen (a Job's selector is
    /// made by the server).
    pub declared: Vec<(ObjectRef, LabelSelector)>,
}

impl WaitOptions {
    /// The pod selectors that rendered workloads among `objects` declare.
    pub fn declared(objects: &[serde_json::Value]) -> Vec<(ObjectRef, LabelSelector)> {
        objects
            .iter()
            .filter_map(|object| {
                let id = ObjectRef::of(object).ok()?;
                if !matches!(
                    (id.group(), id.kind.as_str()),
                    ("apps", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch", "Job")
                ) {
                    return None;
                }
                let selector = object.get("spec")?.get("selector")?.clone();
                Some((id, serde_json::from_value(selector).ok()?))
            })
            .collect()
    }
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

/// What an update says of a workload: its kind, namespace, name, health and revision.
type Seen = (
    &'static str,
    Option<String>,
    String,
    Health,
    Option<Current>,
);

impl Update {
    /// The workload's key and the label selector of its pods.
    fn pod_selector(&self) -> Option<(Key, &LabelSelector)> {
        fn key<K: Resource>(kind: &str, object: &K) -> Key {
            (
                kind.to_owned(),
                object.meta().namespace.clone().unwrap_or_default(),
                object.meta().name.clone().unwrap_or_default(),
            )
        }
        match self {
            Update::Deployment(d) => Some((key("Deployment", &**d), &d.spec.selector)),
            Update::StatefulSet(s) => Some((key("StatefulSet", &**s), &s.spec.selector)),
            Update::DaemonSet(d) => Some((key("DaemonSet", &**d), &d.spec.selector)),
            Update::Job(j) => Some((key("Job", &**j), j.spec.as_ref()?.selector.as_ref()?)),
            Update::Pod(_) => None,
        }
    }

    /// The workload's state as the wait judges it; a pod's update is none.
    fn workload(self) -> Result<Seen, Box<Pod>> {
        Ok(match self {
            Update::Pod(pod) => return Err(pod),
            Update::Deployment(d) => (
                "Deployment",
                d.namespace(),
                d.name_any(),
                deployment_health(&d),
                observed_revision(&d).map(Current::Deployment),
            ),
            Update::StatefulSet(s) => (
                "StatefulSet",
                s.namespace(),
                s.name_any(),
                statefulset_health(&s),
                statefulset_revision(&s).map(Current::StatefulSet),
            ),
            Update::DaemonSet(d) => (
                "DaemonSet",
                d.namespace(),
                d.name_any(),
                daemonset_health(&d),
                daemonset_generation(&d).map(Current::DaemonSet),
            ),
            Update::Job(j) => (
                "Job",
                j.namespace(),
                j.name_any(),
                job_health(&j),
                j.uid().map(Current::Job),
            ),
        })
    }
}

/// The objects `selector` selects, as they change, starting with their current state,
/// in one request: a streaming list (`sendInitialEvents`) with no resourceVersion, which
/// the API server answers as a consistent read: its first events are at least as new as
/// the moment it got the request, so they hold what this run applied before. (Not kube's
/// watcher in its streaming mode: it asks at resourceVersion "0", from the watch cache
/// as it happens to be, where a Deployment may still look as it was before its apply,
/// healthy.) When that stream ends (the server's watch timeout, a dropped connection, a
/// server that does not serve streaming lists or refuses the watch), the watcher goes
/// on: a list, a consistent read too, then a watch from it, retried with backoff; a
/// refusal then comes as the watcher's error.
fn watch<K>(api: Api<K>, selector: &str) -> BoxStream<'static, Result<K, watcher::Error>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    // No selector: every object of the kind in the namespace.
    let label_selector = Some(selector).filter(|s| !s.is_empty()).map(str::to_owned);
    let streaming = {
        let api = api.clone();
        let params = WatchParams {
            label_selector: label_selector.clone(),
            ..WatchParams::streaming_lists()
        };
        async move {
            match api.watch(&params, "").await {
                Ok(events) => events
                    .take_while(|event| {
                        std::future::ready(
                            matches!(event, Ok(e) if !matches!(e, WatchEvent::Error(_))),
                        )
                    })
                    .filter_map(|event| {
                        std::future::ready(match event {
                            Ok(WatchEvent::Added(object) | WatchEvent::Modified(object)) => {
                                Some(Ok(object))
                            }
                            _ => None,
                        })
                    })
                    .boxed(),
                Err(_) => stream::empty().boxed(),
            }
        }
    }
    .flatten_stream();
    let config = watcher::Config {
        label_selector,
        ..watcher::Config::default()
    };
    let then = watcher(api, config).default_backoff().applied_objects();
    streaming.chain(then).boxed()
}

/// A container stuck waiting for a reason that fails the wait (at once, or after the
/// grace when `transient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stuck {
    pub(super) container: String,
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) transient: bool,
}

/// The revision a workload's pods must run to count as new: what tells a pod of the
/// new revision from one of an older revision going away.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Current {
    /// A Deployment's revision number (its ReplicaSets carry theirs).
    Deployment(u64),
    /// A StatefulSet's `updateRevision` (pods: `controller-revision-hash`).
    StatefulSet(String),
    /// A DaemonSet's generation (pods: `pod-template-generation`).
    DaemonSet(i64),
    /// A Job's uid (a replaced Job's pods belong to the old uid).
    Job(String),
}

/// A suspect pod: stuck, and since when (for the grace of transient reasons).
struct Suspect {
    pod: Pod,
    since: Instant,
}

/// Whether a stuck container fails the wait now.
fn is_due(stuck: &Stuck, since: Instant, now: Instant, grace: Duration) -> bool {
    !stuck.transient || now.saturating_duration_since(since) >= grace
}

type Key = (String, String, String);

/// A watch error in a user's words (kube's `Display` of an API error is a `Debug` dump).
fn describe_watch_error(err: &watcher::Error) -> String {
    match err {
        watcher::Error::InitialListFailed(e) => {
            format!("cannot list: {}", super::describe_kube_error(e))
        }
        watcher::Error::WatchStartFailed(e) => {
            format!("cannot start watching: {}", super::describe_kube_error(e))
        }
        watcher::Error::WatchFailed(e) => {
            format!("the watch failed: {}", super::describe_kube_error(e))
        }
        watcher::Error::WatchError(status) => {
            format!("the server ended the watch: {}", super::status_text(status))
        }
        other => other.to_string(),
    }
}

impl ClusterHandle {
    /// A watch error that is a refusal (401, 403): the verb and the server's message,
    /// which names the resource (`cannot watch resource "pods" in ...`).
    fn watch_denied(&self, err: &watcher::Error) -> Option<ClusterError> {
        let (verb, status) = match err {
            watcher::Error::InitialListFailed(kube::Error::Api(s)) => ("list", s),
            watcher::Error::WatchStartFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s))
            | watcher::Error::WatchError(s) => ("watch", s),
            _ => return None,
        };
        (status.code == 401 || status.code == 403).then(|| ClusterError::Denied {
            context: self.context().to_owned(),
            action: verb.to_owned(),
            object: "the workloads of the health wait".to_owned(),
            source: Box::new(kube::Error::Api(status.clone())),
        })
    }

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
        let (mut pending, streams) = self.watch_workloads(objects, opts);
        // Every workload waited for, ready or not: a ready one that fails later still
        // fails the wait.
        let waited_for: BTreeSet<Key> = pending.keys().cloned().collect();
        if pending.is_empty() {
            return Ok(());
        }
        let mut updates = stream::select_all(streams);
        // The current revision of each workload seen, to tell new pods from old ones.
        let mut current: HashMap<Key, Current> = HashMap::new();
        // The pod selector of each workload waited for, once seen (`None`: one the
        // server would not have taken, which selects nothing).
        let mut selectors: HashMap<Key, Option<kube::core::Selector>> = HashMap::new();
        for (id, selector) in &opts.declared {
            let key = (id.kind.clone(), ns_of(id), id.name.clone());
            if waited_for.contains(&key) {
                selectors.insert(key, labels::selectors([selector]).pop());
            }
        }
        // The namespaces whose pods are not watched yet.
        let mut unwatched: BTreeSet<String> = waited_for.iter().map(|k| k.1.clone()).collect();
        self.watch_pods(&mut unwatched, &waited_for, &selectors, opts, &mut updates);
        // Pods with a stuck container not judged yet (revision unknown, or grace).
        let mut suspects: HashMap<(String, String), Suspect> = HashMap::new();
        let describe = |pending: &BTreeMap<Key, String>| -> Vec<String> {
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
        let grace = opts.transient_grace;
        let deadline = tokio::time::sleep(opts.timeout);
        tokio::pin!(deadline);
        loop {
            // The next moment a transient suspect's grace runs out.
            let next_due = suspects
                .values()
                .filter(|s| fatal_container(&s.pod).is_some_and(|st| st.transient))
                .map(|s| s.since + grace)
                .filter(|at| *at > Instant::now())
                .min();
            let grace_over = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let update = tokio::select! {
                _ = cancel.cancelled() => return Err(ClusterError::Cancelled { context: self.context().to_owned() }),
                _ = &mut deadline => {
                    return Err(ClusterError::Timeout {
                        context: self.context().to_owned(),
                        timeout: opts.timeout,
                        pending: describe(&pending),
                    });
                }
                _ = grace_over => {
                    self.judge(&mut suspects, &current, &pending, grace).await?;
                    continue;
                }
                next = updates.next() => next,
            };
            let update = match update {
                Some(Ok(update)) => update,
                // A refusal (RBAC without `watch` or `list`) fails at once, naming verb and
                // resource: waiting would only end in the timeout. Otherwise the watcher
                // retries with backoff by itself; a lasting failure ends in the timeout.
                Some(Err(err)) => {
                    if let Some(denied) = self.watch_denied(&err) {
                        return Err(denied);
                    }
                    tracing::debug!(
                        cluster = self.context(),
                        "watch error: {}",
                        describe_watch_error(&err)
                    );
                    continue;
                }
                None => {
                    return Err(ClusterError::Unreachable {
                        context: self.context().to_owned(),
                        message: "the watches ended".into(),
                        source: None,
                    })
                }
            };
            if let Some((key, selector)) = update.pod_selector() {
                if waited_for.contains(&key) && !selectors.contains_key(&key) {
                    selectors.insert(key, labels::selectors([selector]).pop());
                    self.watch_pods(&mut unwatched, &waited_for, &selectors, opts, &mut updates);
                }
            }
            let (kind, ns, name, health, revision) = match update.workload() {
                Ok(seen) => seen,
                Err(pod) => {
                    let key = (pod.namespace().unwrap_or_default(), pod.name_any());
                    let own = ("Pod".to_owned(), key.0.clone(), key.1.clone());
                    let waited = waited_for.contains(&own);
                    // The watch of the namespace's pods takes in more than the pods
                    // of the workloads (one label selector for all of them): those no
                    // workload waited for selects are none of the wait's business.
                    if !waited && !selected(&pod, &selectors, &waited_for) {
                        continue;
                    }
                    if fatal_container(&pod).is_none() {
                        suspects.remove(&key);
                    } else {
                        let since = suspects.get(&key).map_or_else(Instant::now, |s| s.since);
                        suspects.insert(
                            key,
                            Suspect {
                                pod: (*pod).clone(),
                                since,
                            },
                        );
                        self.judge(&mut suspects, &current, &pending, grace).await?;
                    }
                    if !waited {
                        continue;
                    }
                    // A Pod waited for itself (a Helm hook): done once it completed.
                    (
                        "Pod",
                        pod.namespace(),
                        pod.name_any(),
                        pod_health(&pod),
                        None,
                    )
                }
            };
            let ns = ns.unwrap_or_default();
            let key = (kind.to_owned(), ns.clone(), name.clone());
            if !waited_for.contains(&key) {
                continue;
            }
            match revision {
                Some(revision) => current.insert(key.clone(), revision),
                None => current.remove(&key),
            };
            if !suspects.is_empty() {
                self.judge(&mut suspects, &current, &pending, grace).await?;
            }
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
                Health::Failed(mut reason) => {
                    if kind == "Job" {
                        if let Some(pod) = self.job_pod_failure(&ns, &name).await {
                            reason.push_str(&format!("; {pod}"));
                        }
                    }
                    return Err(ClusterError::Unhealthy {
                        context: self.context().to_owned(),
                        object: format!("{kind} {ns}/{name}"),
                        reason,
                    });
                }
            }
        }
    }

    /// The workloads among `objects` to wait for, each "not seen yet", and the watches
    /// that tell of them: one per kind and namespace, of the release's objects (every
    /// object it applies carries its labels), so that two Deployments cost one watch,
    /// not two. Updates of objects not waited for are dropped by the caller; the pods
    /// are watched once their selectors are known ([`Self::watch_pods`]).
    #[allow(clippy::type_complexity)]
    fn watch_workloads(
        &self,
        objects: &[ObjectRef],
        opts: &WaitOptions,
    ) -> (
        BTreeMap<Key, String>,
        Vec<BoxStream<'static, Result<Update, watcher::Error>>>,
    ) {
        let ns_of = |id: &ObjectRef| {
            id.namespace
                .clone()
                .unwrap_or_else(|| opts.namespace.clone())
        };
        let mut pending: BTreeMap<Key, String> = BTreeMap::new();
        let mut streams: Vec<BoxStream<'static, Result<Update, watcher::Error>>> = Vec::new();
        let release_objects = labels::selector(&opts.release);
        let mut watched: BTreeSet<(&'static str, String)> = BTreeSet::new();
        for id in objects {
            let ns = ns_of(id);
            let kind = match (id.group(), id.kind.as_str()) {
                ("apps", "Deployment") => "Deployment",
                ("apps", "StatefulSet") => "StatefulSet",
                ("apps", "DaemonSet") => "DaemonSet",
                ("batch", "Job") => "Job",
                ("", "Pod") if opts.pods_complete => "Pod",
                _ => continue,
            };
            pending.insert(
                (id.kind.clone(), ns.clone(), id.name.clone()),
                "not seen yet".into(),
            );
            // A Pod is seen through the watch of its namespace's pods.
            if kind == "Pod" || !watched.insert((kind, ns.clone())) {
                continue;
            }
            let client = self.client();
            let config = &release_objects;
            streams.push(match kind {
                "Deployment" => watch(Api::<Deployment>::namespaced(client, &ns), config)
                    .map(|r| r.map(|o| Update::Deployment(Box::new(o))))
                    .boxed(),
                "StatefulSet" => watch(Api::<StatefulSet>::namespaced(client, &ns), config)
                    .map(|r| r.map(|o| Update::StatefulSet(Box::new(o))))
                    .boxed(),
                "DaemonSet" => watch(Api::<DaemonSet>::namespaced(client, &ns), config)
                    .map(|r| r.map(|o| Update::DaemonSet(Box::new(o))))
                    .boxed(),
                _ => watch(Api::<Job>::namespaced(client, &ns), config)
                    .map(|r| r.map(|o| Update::Job(Box::new(o))))
                    .boxed(),
            });
        }
        (pending, streams)
    }

    /// Starts the watch of the pods of each namespace in `unwatched` where the selector
    /// of every workload waited for is known now: one watch per namespace, by one label
    /// selector that takes in the pods of them all (`labels::pods_selector`; a Pod
    /// waited for itself, a Helm hook, by the release's labels). Pod templates carry no
    /// label of flotilla's (one there would restart the pods of a workload taken over),
    /// so the workloads' own selectors are what leaves the other pods of a shared
    /// namespace out; the caller keeps the ones a workload selects. The watch starts
    /// with a consistent read of the pods, so starting it after the workloads' misses
    /// nothing.
    fn watch_pods(
        &self,
        unwatched: &mut BTreeSet<String>,
        waited_for: &BTreeSet<Key>,
        selectors: &HashMap<Key, Option<kube::core::Selector>>,
        opts: &WaitOptions,
        updates: &mut stream::SelectAll<BoxStream<'static, Result<Update, watcher::Error>>>,
    ) {
        unwatched.retain(|ns| {
            let mut of_pods = Vec::new();
            for key in waited_for.iter().filter(|key| &key.1 == ns) {
                if key.0 == "Pod" {
                    of_pods.push(labels::own_pods(&opts.release));
                    continue;
                }
                match selectors.get(key) {
                    Some(selector) => of_pods.extend(selector.clone()),
                    None => return true,
                }
            }
            if let Some(selector) = labels::pods_query(self.context(), ns, &of_pods) {
                updates.push(
                    watch(Api::<Pod>::namespaced(self.client(), ns), &selector)
                        .map(|r| r.map(|o| Update::Pod(Box::new(o))))
                        .boxed(),
                );
            }
            false
        });
    }

    /// Why a failed Job's pods ended: the first terminated container of its pods, as
    /// `pod NAME container C terminated: REASON (exit code N): MESSAGE`.
    async fn job_pod_failure(&self, namespace: &str, job: &str) -> Option<String> {
        let pods = Api::<Pod>::namespaced(self.client(), namespace)
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .ok()?;
        pods.items.iter().find_map(pod_failure)
    }

    /// Judges the suspects: the first one that is due (its grace over, for a transient
    /// reason) and belongs to the new revision of a workload we wait for fails the
    /// wait; pods of older revisions are dropped; pods whose workload has not shown its
    /// new revision yet stay suspects.
    async fn judge(
        &self,
        suspects: &mut HashMap<(String, String), Suspect>,
        current: &HashMap<Key, Current>,
        pending: &BTreeMap<Key, String>,
        grace: Duration,
    ) -> Result<(), ClusterError> {
        let now = Instant::now();
        let mut innocent = Vec::new();
        for (key, suspect) in suspects.iter() {
            let Some(stuck) = fatal_container(&suspect.pod) else {
                innocent.push(key.clone());
                continue;
            };
            match self.verdict(&suspect.pod, current, pending).await {
                Verdict::Broken(_) if !is_due(&stuck, suspect.since, now, grace) => {}
                Verdict::Broken(workload) => {
                    let detail = if stuck.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", stuck.message)
                    };
                    let lasted = if stuck.transient {
                        format!(" for more than {}", humantime::format_duration(grace))
                    } else {
                        String::new()
                    };
                    return Err(ClusterError::Unhealthy {
                        context: self.context().to_owned(),
                        object: workload,
                        reason: format!(
                            "pod {} container {} is in {}{lasted}{detail}",
                            suspect.pod.name_any(),
                            stuck.container,
                            stuck.reason
                        ),
                    });
                }
                Verdict::Innocent => innocent.push(key.clone()),
                Verdict::Undecided => {}
            }
        }
        for key in innocent {
            suspects.remove(&key);
        }
        Ok(())
    }

    /// Whether a pod is of the new revision of a workload we wait for (`Broken` with
    /// the workload's name), of an older revision or of no workload of ours
    /// (`Innocent`), or cannot be told yet (`Undecided`).
    async fn verdict(
        &self,
        pod: &Pod,
        current: &HashMap<Key, Current>,
        pending: &BTreeMap<Key, String>,
    ) -> Verdict {
        let ns = pod.namespace().unwrap_or_default();
        let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
        else {
            // A Pod waited for itself (a Helm hook).
            let key = ("Pod".to_owned(), ns.clone(), pod.name_any());
            if pending.contains_key(&key) {
                return Verdict::Broken(format!("Pod {ns}/{}", pod.name_any()));
            }
            return Verdict::Innocent;
        };
        let (kind, name) = match owner.kind.as_str() {
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
                let key = ("Deployment".to_owned(), ns.clone(), deployment.clone());
                let revision = match current.get(&key) {
                    Some(Current::Deployment(revision)) => Some(*revision),
                    _ => None,
                };
                match of_current_revision(&rs, revision) {
                    None => return Verdict::Undecided,
                    Some(false) => return Verdict::Innocent,
                    Some(true) => ("Deployment", deployment),
                }
            }
            kind @ ("StatefulSet" | "DaemonSet" | "Job") => {
                let key = (kind.to_owned(), ns.clone(), owner.name.clone());
                match current
                    .get(&key)
                    .map(|c| pod_of_current(pod, &owner.uid, c))
                {
                    None => return Verdict::Undecided,
                    Some(false) => return Verdict::Innocent,
                    Some(true) => (kind, owner.name.clone()),
                }
            }
            _ => return Verdict::Innocent,
        };
        if !pending.contains_key(&(kind.to_owned(), ns.clone(), name.clone())) {
            return Verdict::Innocent;
        }
        Verdict::Broken(format!("{kind} {ns}/{name}"))
    }
}

enum Verdict {
    /// Of the new revision of this workload (`Kind ns/name`).
    Broken(String),
    Innocent,
    Undecided,
}

/// Whether a StatefulSet's, DaemonSet's or Job's pod runs its `current` revision:
/// `controller-revision-hash` against `updateRevision`, `pod-template-generation`
/// against the DaemonSet's generation, the owner's uid against the Job's. A pod without
/// the label is of an older revision (the controllers always set it).
fn pod_of_current(pod: &Pod, owner_uid: &str, current: &Current) -> bool {
    let label = |key: &str| pod.labels().get(key).cloned();
    match current {
        Current::StatefulSet(revision) => {
            label(STATEFULSET_REVISION_LABEL).as_deref() == Some(revision.as_str())
        }
        Current::DaemonSet(generation) => {
            label(DAEMONSET_GENERATION_LABEL).and_then(|g| g.parse::<i64>().ok())
                == Some(*generation)
        }
        Current::Job(uid) => owner_uid == uid,
        Current::Deployment(_) => false,
    }
}

/// The StatefulSet's update revision, once the controller has observed its newest
/// generation (before that, `updateRevision` is still the previous one).
fn statefulset_revision(s: &StatefulSet) -> Option<String> {
    let status = s.status.as_ref()?;
    if !observed(s, status.observed_generation) {
        return None;
    }
    status.update_revision.clone()
}

/// The DaemonSet's generation, once its controller has observed it.
fn daemonset_generation(d: &DaemonSet) -> Option<i64> {
    let status = d.status.as_ref()?;
    if !observed(d, status.observed_generation) {
        return None;
    }
    d.meta().generation
}

/// The first container (init containers included) waiting for a reason that fails
/// the wait, at once or (`transient`) after the grace.
pub(super) fn fatal_container(pod: &Pod) -> Option<Stuck> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let mut transient = None;
    for c in containers {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        let Some(reason) = waiting.and_then(|w| w.reason.as_deref()) else {
            continue;
        };
        let fatal = FATAL_WAITING.contains(&reason);
        if !fatal && !TRANSIENT_WAITING.contains(&reason) {
            continue;
        }
        let stuck = Stuck {
            container: c.name.clone(),
            reason: reason.to_owned(),
            message: waiting.and_then(|w| w.message.clone()).unwrap_or_default(),
            transient: !fatal,
        };
        if fatal {
            return Some(stuck);
        }
        transient.get_or_insert(stuck);
    }
    transient
}

/// How a pod of a Job ended badly: its first terminated container with a non-zero
/// exit code (or the pod's own failure reason).
fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for c in status.container_statuses.iter().flatten() {
        let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
            continue;
        };
        if t.exit_code == 0 {
            continue;
        }
        let mut text = format!(
            "pod {} container {} terminated: {} (exit code {})",
            pod.name_any(),
            c.name,
            t.reason.as_deref().unwrap_or("Error"),
            t.exit_code
        );
        if let Some(message) = t.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(&format!(": {message}"));
        }
        return Some(text);
    }
    let reason = status.reason.as_deref()?;
    Some(format!("pod {} failed: {reason}", pod.name_any()))
}

/// Whether a pod may be of a workload waited for: selected by one of their
/// `selectors`, or any pod while a workload's selector is not known yet.
fn selected(
    pod: &Pod,
    selectors: &HashMap<Key, Option<kube::core::Selector>>,
    waited_for: &BTreeSet<Key>,
) -> bool {
    use kube::core::SelectorExt;
    let all_known = waited_for
        .iter()
        .all(|key| key.0 == "Pod" || selectors.contains_key(key));
    !all_known
        || selectors
            .values()
            .flatten()
            .any(|s| s.matches(pod.labels()))
}

/// A Pod waited for until it completes (a Helm hook, `restartPolicy: Never`): ready
/// once `Succeeded`, failed once `Failed`, naming the container that ended in error.
pub fn pod_health(pod: &Pod) -> Health {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Health::Ready,
        Some("Failed") => Health::Failed(
            pod_failure(pod).unwrap_or_else(|| format!("pod {} failed", pod.name_any())),
        ),
        Some(phase) => Health::Progressing(format!("pod {}", phase.to_lowercase())),
        None => Health::Progressing("not scheduled yet".into()),
    }
}

fn observed<T: Resource>(object: &T, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= object.meta().generation.unwrap_or(0)
}

/// The Deployment's revision, but only once the controller has observed its newest
/// generation: before that, the previous revision's pods would look new.
fn observed_revision(d: &Deployment) -> Option<u64> {
    let revision = d
        .annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok());
    revision.filter(|_| observed(d, d.status.as_ref().and_then(|s| s.observed_generation)))
}

/// Whether the pods of ReplicaSet `rs` belong to its Deployment's `current` revision
/// (`None` while that revision is not known yet). An older ReplicaSet's pods are the
/// previous revision going away.
fn of_current_revision(rs: &ReplicaSet, current: Option<u64>) -> Option<bool> {
    let revision: u64 = rs
        .annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    current.map(|current| revision >= current)
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

/// As `kubectl rollout status`: the new generation observed, every replica ready,
/// then with a `partition` the replicas from the partition up updated ("partitioned
/// roll out complete"), else every replica updated and `currentRevision ==
/// updateRevision`. With `OnDelete` the controller replaces a pod only when someone
/// deletes it: ready replicas are all that can be waited for (kubectl refuses to wait).
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
    let strategy = s.spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete");
    let partition = strategy
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if ready < want {
        Health::Progressing(format!("{ready} of {want} replicas ready"))
    } else if on_delete {
        Health::Ready
    } else if partition > 0 {
        let expected = (want - partition).max(0);
        if updated < expected {
            Health::Progressing(format!(
                "{updated} of {expected} replicas updated (partition {partition})"
            ))
        } else {
            Health::Ready
        }
    } else if updated < want {
        Health::Progressing(format!("{updated} of {want} replicas updated"))
    } else if status.update_revision.is_some() && status.current_revision != status.update_revision
    {
        Health::Progressing("rolling update in progress".into())
    } else {
        Health::Ready
    }
}

/// As `kubectl rollout status`: the new generation observed, one updated and available
/// pod per scheduled node. With `OnDelete`, pods are replaced only when deleted: every
/// scheduled pod available is all that can be waited for.
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
    let on_delete = d
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete");
    if updated < want && !on_delete {
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
    /// Waits until the object `id` is gone (a deleted Pod stays, terminating, until its
    /// kubelet confirms; a Helm hook of the same name cannot be created before), at
    /// most `timeout`. Watched, not polled.
    pub async fn wait_gone(
        &self,
        id: &ObjectRef,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let (api, _) = self.api(id, namespace, None).await?;
        let uid = match api.get_opt(&id.name).await {
            Ok(Some(live)) => live.metadata.uid,
            Ok(None) => return Ok(()),
            Err(err) => return Err(self.error("read", id, err)),
        };
        let Some(uid) = uid else {
            return Ok(());
        };
        let gone = kube::runtime::wait::await_condition(
            api,
            &id.name,
            kube::runtime::wait::conditions::is_deleted(&uid),
        );
        let still_there = |why: String| ClusterError::Api {
            context: self.context().to_owned(),
            action: "delete".into(),
            object: id.to_string(),
            message: why,
            source: None,
        };
        match tokio::time::timeout(timeout, gone).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(still_there(format!("watching it go: {err}"))),
            Err(_) => Err(still_there(format!(
                "still there {} after its deletion",
                humantime::format_duration(timeout)
            ))),
        }
    }

    /// The health of one object now (for `status`) and the selector of its pods, as
    /// the server has it (a Job's is the one the server made); `None` for kinds without
    /// a health.
    pub async fn health_of(
        &self,
        id: &ObjectRef,
        namespace: &str,
    ) -> Result<Option<(Health, Option<LabelSelector>)>, ClusterError> {
        let ns = id.namespace.clone().unwrap_or_else(|| namespace.to_owned());
        let client = self.client();
        let read = |e| self.error("read", id, e);
        let health = match (id.group(), id.kind.as_str()) {
            ("apps", "Deployment") => Api::<Deployment>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|d| (deployment_health(&d), Some(d.spec.selector))),
            ("apps", "StatefulSet") => Api::<StatefulSet>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|s| (statefulset_health(&s), Some(s.spec.selector))),
            ("apps", "DaemonSet") => Api::<DaemonSet>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|d| (daemonset_health(&d), Some(d.spec.selector))),
            ("batch", "Job") => Api::<Job>::namespaced(client, &ns)
                .get_opt(&id.name)
                .await
                .map_err(read)?
                .map(|j| (job_health(&j), j.spec.and_then(|s| s.selector))),
            _ => return Ok(None),
        };
        Ok(Some(health.unwrap_or_else(|| {
            (Health::Failed("missing".into()), None)
        })))
    }
}

#[cfg(test)]
mod tests {
    //! The health rules on status fixtures, as the controllers write them. Each test
    //! shows both sides of a rule: the status that is not healthy yet, and the one
    //! change that makes it healthy (or failed).
    use super::*;
    use serde_json::{json, Value};

    fn from<K: serde::de::DeserializeOwned>(fixture: Value) -> K {
        serde_json::from_value(fixture).expect("a valid fixture")
    }

    fn progressing(why: &str) -> Health {
        Health::Progressing(why.into())
    }

    /// A Deployment of `want` replicas at generation 2, its controller done with it;
    /// `status` fields override the finished status.
    fn deployment(want: Option<i32>, status: Value) -> Deployment {
        let mut finished = json!({
            "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]
        });
        override_fields(&mut finished, status);
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web:2"}]}}
        });
        if let Some(want) = want {
            spec["replicas"] = json!(want);
        }
        from(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "generation": 2,
                         "annotations": {REVISION_ANNOTATION: "2"}},
            "spec": spec,
            "status": finished
        }))
    }

    /// Overrides top-level status fields; `null` removes one.
    fn override_fields(status: &mut Value, changes: Value) {
        let (Value::Object(status), Value::Object(changes)) = (status, changes) else {
            panic!("status fixtures are objects");
        };
        for (key, value) in changes {
            if value.is_null() {
                status.remove(&key);
            } else {
                status.insert(key, value);
            }
        }
    }

    #[test]
    fn deployment_without_status_is_progressing() {
        let mut d = deployment(Some(3), json!({}));
        assert_eq!(deployment_health(&d), Health::Ready);
        d.status = None;
        assert_eq!(deployment_health(&d), progressing("no status yet"));
    }

    #[test]
    fn deployment_waits_for_its_generation_to_be_observed() {
        // The status still describes generation 1: all its replicas look fine.
        let stale = deployment(Some(3), json!({"observedGeneration": 1}));
        assert_eq!(
            deployment_health(&stale),
            progressing("new generation not observed yet")
        );
        let unobserved = deployment(Some(3), json!({"observedGeneration": null}));
        assert_eq!(
            deployment_health(&unobserved),
            progressing("new generation not observed yet")
        );
        let seen = deployment(Some(3), json!({"observedGeneration": 2}));
        assert_eq!(deployment_health(&seen), Health::Ready);
    }

    #[test]
    fn deployment_progress_deadline_exceeded_is_a_failure() {
        let stuck = deployment(
            Some(3),
            json!({"updatedReplicas": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-2\" has timed out progressing."}
            ]}),
        );
        assert_eq!(
            deployment_health(&stuck),
            Health::Failed(
                "ProgressDeadlineExceeded: ReplicaSet \"web-2\" has timed out progressing.".into()
            )
        );
        // The same status while the controller still counts it as progressing.
        let moving = deployment(
            Some(3),
            json!({"updatedReplicas": 1, "conditions": [
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
            ]}),
        );
        assert_eq!(
            deployment_health(&moving),
            progressing("1 of 3 replicas updated")
        );
    }

    #[test]
    fn deployment_progress_deadline_of_an_older_generation_is_not_judged() {
        // A deadline the controller reported before it saw the new spec says nothing
        // about the new revision.
        let d = deployment(
            Some(3),
            json!({"observedGeneration": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ]}),
        );
        assert_eq!(
            deployment_health(&d),
            progressing("new generation not observed yet")
        );
    }

    #[test]
    fn deployment_needs_every_replica_updated() {
        let d = deployment(Some(3), json!({"updatedReplicas": 2, "replicas": 3}));
        assert_eq!(
            deployment_health(&d),
            progressing("2 of 3 replicas updated")
        );
        let d = deployment(Some(3), json!({"updatedReplicas": null}));
        assert_eq!(
            deployment_health(&d),
            progressing("0 of 3 replicas updated")
        );
        let d = deployment(Some(3), json!({"updatedReplicas": 3}));
        assert_eq!(deployment_health(&d), Health::Ready);
    }

    #[test]
    fn deployment_waits_for_old_replicas_to_go() {
        // Surge: 3 new replicas, 1 old one still counted in `replicas`.
        let d = deployment(Some(3), json!({"replicas": 4}));
        assert_eq!(
            deployment_health(&d),
            progressing("1 old replicas terminating")
        );
        let d = deployment(Some(3), json!({"replicas": 3}));
        assert_eq!(deployment_health(&d), Health::Ready);
    }

    #[test]
    fn deployment_needs_its_updated_replicas_available() {
        let d = deployment(Some(3), json!({"availableReplicas": 2, "readyReplicas": 2}));
        assert_eq!(
            deployment_health(&d),
            progressing("2 of 3 updated replicas available")
        );
        // Ready but not yet available for minReadySeconds counts as not available.
        let d = deployment(
            Some(3),
            json!({"availableReplicas": null, "readyReplicas": 3}),
        );
        assert_eq!(
            deployment_health(&d),
            progressing("0 of 3 updated replicas available")
        );
        let d = deployment(Some(3), json!({"availableReplicas": 3}));
        assert_eq!(deployment_health(&d), Health::Ready);
    }

    #[test]
    fn deployment_replicas_default_to_one_and_zero_is_ready_at_once() {
        let one = json!({"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert_eq!(deployment_health(&deployment(None, one)), Health::Ready);
        let none = json!({"replicas": 0, "updatedReplicas": 0, "availableReplicas": 0});
        assert_eq!(
            deployment_health(&deployment(None, none.clone())),
            progressing("0 of 1 replicas updated")
        );
        // Scaled to zero (the status then omits its counts).
        let zero = json!({"replicas": null, "updatedReplicas": null, "availableReplicas": null});
        assert_eq!(deployment_health(&deployment(Some(0), zero)), Health::Ready);
        assert_eq!(deployment_health(&deployment(Some(0), none)), Health::Ready);
    }

    fn statefulset(status: Value) -> StatefulSet {
        let mut finished = json!({
            "observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
            "currentReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
            "currentRevision": "db-7d4b9c", "updateRevision": "db-7d4b9c"
        });
        override_fields(&mut finished, status);
        from(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "generation": 2},
            "spec": {"replicas": 3, "serviceName": "db",
                     "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "db:2"}]}}},
            "status": finished
        }))
    }

    #[test]
    fn statefulset_waits_for_status_and_its_generation() {
        let mut s = statefulset(json!({}));
        assert_eq!(statefulset_health(&s), Health::Ready);
        s.status = None;
        assert_eq!(statefulset_health(&s), progressing("no status yet"));
        let stale = statefulset(json!({"observedGeneration": 1}));
        assert_eq!(
            statefulset_health(&stale),
            progressing("new generation not observed yet")
        );
    }

    #[test]
    fn statefulset_needs_every_replica_ready_then_updated() {
        let s = statefulset(json!({"readyReplicas": 2}));
        assert_eq!(statefulset_health(&s), progressing("2 of 3 replicas ready"));
        let s = statefulset(json!({"readyReplicas": null}));
        assert_eq!(statefulset_health(&s), progressing("0 of 3 replicas ready"));
        let s = statefulset(json!({"updatedReplicas": 2}));
        assert_eq!(
            statefulset_health(&s),
            progressing("2 of 3 replicas updated")
        );
        let s = statefulset(json!({"readyReplicas": 3, "updatedReplicas": 3}));
        assert_eq!(statefulset_health(&s), Health::Ready);
    }

    #[test]
    fn statefulset_rolling_update_ends_when_current_revision_is_the_update_revision() {
        // Every replica counted updated and ready, but the controller has not yet moved
        // currentRevision: the last old pod is still being replaced.
        let rolling =
            statefulset(json!({"currentRevision": "db-5f8d2a", "updateRevision": "db-7d4b9c"}));
        assert_eq!(
            statefulset_health(&rolling),
            progressing("rolling update in progress")
        );
        let done =
            statefulset(json!({"currentRevision": "db-7d4b9c", "updateRevision": "db-7d4b9c"}));
        assert_eq!(statefulset_health(&done), Health::Ready);
        // A status without revisions (an older controller) is judged by its counts.
        let counts_only = statefulset(json!({"currentRevision": null, "updateRevision": null}));
        assert_eq!(statefulset_health(&counts_only), Health::Ready);
        let no_current = statefulset(json!({"currentRevision": null}));
        assert_eq!(
            statefulset_health(&no_current),
            progressing("rolling update in progress")
        );
    }

    fn daemonset(status: Value) -> DaemonSet {
        let mut finished = json!({
            "observedGeneration": 2, "desiredNumberScheduled": 2,
            "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 2,
            "updatedNumberScheduled": 2, "numberAvailable": 2
        });
        override_fields(&mut finished, status);
        from(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}},
            "status": finished
        }))
    }

    #[test]
    fn daemonset_waits_for_status_and_its_generation() {
        let mut d = daemonset(json!({}));
        assert_eq!(daemonset_health(&d), Health::Ready);
        d.status = None;
        assert_eq!(daemonset_health(&d), progressing("no status yet"));
        let stale = daemonset(json!({"observedGeneration": 1}));
        assert_eq!(
            daemonset_health(&stale),
            progressing("new generation not observed yet")
        );
    }

    #[test]
    fn daemonset_needs_an_updated_pod_on_every_scheduled_node() {
        let d = daemonset(json!({"updatedNumberScheduled": 1}));
        assert_eq!(daemonset_health(&d), progressing("1 of 2 pods updated"));
        let d = daemonset(json!({"updatedNumberScheduled": null}));
        assert_eq!(daemonset_health(&d), progressing("0 of 2 pods updated"));
        let d = daemonset(json!({"updatedNumberScheduled": 2}));
        assert_eq!(daemonset_health(&d), Health::Ready);
    }

    #[test]
    fn daemonset_needs_every_pod_available() {
        // The controller reports the unavailable pod both ways; the rule reads
        // numberAvailable, as `kubectl rollout status` does.
        let d = daemonset(json!({"numberAvailable": 1, "numberUnavailable": 1}));
        assert_eq!(daemonset_health(&d), progressing("1 of 2 pods available"));
        let d = daemonset(json!({"numberAvailable": null, "numberUnavailable": 2}));
        assert_eq!(daemonset_health(&d), progressing("0 of 2 pods available"));
        let d = daemonset(json!({"numberAvailable": 2, "numberUnavailable": null}));
        assert_eq!(daemonset_health(&d), Health::Ready);
    }

    #[test]
    fn daemonset_on_no_matching_node_is_ready() {
        let none = json!({"desiredNumberScheduled": 0, "currentNumberScheduled": 0,
                          "numberReady": 0, "updatedNumberScheduled": null,
                          "numberAvailable": null});
        assert_eq!(daemonset_health(&daemonset(none)), Health::Ready);
        let one = json!({"desiredNumberScheduled": 1, "updatedNumberScheduled": null,
                         "numberAvailable": null});
        assert_eq!(
            daemonset_health(&daemonset(one)),
            progressing("0 of 1 pods updated")
        );
    }

    fn job(conditions: Value) -> Job {
        from(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "ns"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "migrate", "image": "migrate:2"}]}}},
            "status": {"active": 1, "conditions": conditions}
        }))
    }

    #[test]
    fn job_is_ready_only_when_complete() {
        let mut j = job(json!([]));
        assert_eq!(job_health(&j), progressing("not complete"));
        j.status = None;
        assert_eq!(job_health(&j), progressing("not complete"));
        let not_yet = job(json!([{"type": "Complete", "status": "False"}]));
        assert_eq!(job_health(&not_yet), progressing("not complete"));
        let done = job(json!([
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}
        ]));
        assert_eq!(job_health(&done), Health::Ready);
    }

    #[test]
    fn job_failed_is_a_failure_with_its_message_else_its_reason() {
        let with_message = job(json!([{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]));
        assert_eq!(
            job_health(&with_message),
            Health::Failed("job failed: Job has reached the specified backoff limit".into())
        );
        let reason_only = job(json!([{"type": "Failed", "status": "True",
                                      "reason": "DeadlineExceeded"}]));
        assert_eq!(
            job_health(&reason_only),
            Health::Failed("job failed: DeadlineExceeded".into())
        );
        // Not failed yet: the condition is false, or only the target of a failure
        // (Kubernetes >= 1.31 sets FailureTarget before it terminates the pods).
        let cleared = job(json!([{"type": "Failed", "status": "False"}]));
        assert_eq!(job_health(&cleared), progressing("not complete"));
        let target = job(json!([{"type": "FailureTarget", "status": "True",
                                 "reason": "BackoffLimitExceeded"}]));
        assert_eq!(job_health(&target), progressing("not complete"));
    }

    #[test]
    fn suspended_job_is_not_complete() {
        let suspended = job(json!([{"type": "Suspended", "status": "True"}]));
        assert_eq!(job_health(&suspended), progressing("not complete"));
    }

    /// A pod whose containers are in the given states (`init` for init containers).
    fn pod(init: Value, containers: Value) -> Pod {
        from(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-2-abcde", "namespace": "ns"},
            "spec": {"containers": [{"name": "web", "image": "web:2"}]},
            "status": {"phase": "Running",
                       "initContainerStatuses": init,
                       "containerStatuses": containers}
        }))
    }

    fn container(name: &str, state: Value, restarts: i32) -> Value {
        json!({"name": name, "image": "web:2", "imageID": "", "ready": false,
               "restartCount": restarts, "state": state})
    }

    fn waiting(reason: &str) -> Value {
        json!({"waiting": {"reason": reason, "message": format!("{reason} for web")}})
    }

    fn fatal(pod: &Pod) -> Option<(String, String)> {
        fatal_container(pod).map(|s| (s.container, s.reason))
    }

    #[test]
    fn every_fatal_waiting_reason_fails_the_pod() {
        for (reasons, transient) in [(FATAL_WAITING, false), (TRANSIENT_WAITING, true)] {
            for reason in reasons {
                let p = pod(json!([]), json!([container("web", waiting(reason), 0)]));
                assert_eq!(
                    fatal_container(&p),
                    Some(Stuck {
                        container: "web".into(),
                        reason: reason.to_string(),
                        message: format!("{reason} for web"),
                        transient,
                    }),
                    "{reason}"
                );
            }
        }
        // What every pod goes through on its way up is not fatal.
        for reason in ["ContainerCreating", "PodInitializing"] {
            let p = pod(json!([]), json!([container("web", waiting(reason), 0)]));
            assert_eq!(fatal(&p), None, "{reason}");
        }
    }

    #[test]
    fn a_broken_init_container_fails_the_pod_before_its_containers() {
        let p = pod(
            json!([container("migrate", waiting("CrashLoopBackOff"), 3)]),
            json!([container("web", waiting("PodInitializing"), 0)]),
        );
        assert_eq!(
            fatal(&p),
            Some(("migrate".into(), "CrashLoopBackOff".into()))
        );
        let p = pod(
            json!([container(
                "migrate",
                json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                0
            )]),
            json!([container("web", waiting("PodInitializing"), 0)]),
        );
        assert_eq!(fatal(&p), None);
    }

    #[test]
    fn the_first_broken_container_is_named() {
        let p = pod(
            json!([]),
            json!([
                container("sidecar", json!({"running": {}}), 0),
                container("web", waiting("ImagePullBackOff"), 0),
                container("worker", waiting("CrashLoopBackOff"), 4)
            ]),
        );
        assert_eq!(fatal(&p), Some(("web".into(), "ImagePullBackOff".into())));
    }

    #[test]
    fn restart_counts_alone_do_not_fail_a_pod_the_waiting_reason_does() {
        // Restarted often, running again now: it may have recovered.
        let recovered = pod(
            json!([]),
            json!([container("web", json!({"running": {}}), 7)]),
        );
        assert_eq!(fatal(&recovered), None);
        // Just exited with an error: the kubelet has not backed off yet.
        let exited = pod(
            json!([]),
            json!([container(
                "web",
                json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
                1
            )]),
        );
        assert_eq!(fatal(&exited), None);
        // Backing off after its first restart.
        let looping = pod(
            json!([]),
            json!([container("web", waiting("CrashLoopBackOff"), 1)]),
        );
        assert_eq!(
            fatal(&looping),
            Some(("web".into(), "CrashLoopBackOff".into()))
        );
    }

    #[test]
    fn a_pod_without_container_statuses_is_not_failing() {
        let mut p = pod(json!(null), json!(null));
        assert_eq!(fatal(&p), None);
        p.status = None;
        assert_eq!(fatal(&p), None);
        let waiting_without_reason = pod(
            json!([]),
            json!([container("web", json!({"waiting": {}}), 0)]),
        );
        assert_eq!(fatal(&waiting_without_reason), None);
    }

    #[test]
    fn a_deployment_revision_counts_once_its_generation_is_observed() {
        let observed = deployment(Some(3), json!({"observedGeneration": 2}));
        assert_eq!(observed_revision(&observed), Some(2));
        let stale = deployment(Some(3), json!({"observedGeneration": 1}));
        assert_eq!(observed_revision(&stale), None);
        let mut unannotated = observed.clone();
        unannotated.metadata.annotations = None;
        assert_eq!(observed_revision(&unannotated), None);
        let mut garbled = observed;
        garbled.metadata.annotations =
            Some([(REVISION_ANNOTATION.to_string(), "two".to_string())].into());
        assert_eq!(observed_revision(&garbled), None);
    }

    fn replicaset(revision: Option<&str>) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(revision) = revision {
            annotations.insert(REVISION_ANNOTATION.into(), json!(revision));
        }
        from(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-2", "namespace": "ns", "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}
        }))
    }

    #[test]
    fn pods_of_older_replicasets_are_the_previous_revision_going_away() {
        assert_eq!(
            of_current_revision(&replicaset(Some("1")), Some(2)),
            Some(false)
        );
        assert_eq!(
            of_current_revision(&replicaset(Some("2")), Some(2)),
            Some(true)
        );
        // A rollback gives an old ReplicaSet the newest revision number.
        assert_eq!(
            of_current_revision(&replicaset(Some("3")), Some(2)),
            Some(true)
        );
        assert_eq!(of_current_revision(&replicaset(None), Some(1)), Some(false));
        // Until the Deployment shows its observed revision, nothing can be told.
        assert_eq!(of_current_revision(&replicaset(Some("2")), None), None);
    }

    #[test]
    fn err_image_pull_and_config_errors_fail_only_after_the_grace() {
        let grace = Duration::from_secs(30);
        let start = Instant::now();
        for reason in TRANSIENT_WAITING {
            let p = pod(json!([]), json!([container("web", waiting(reason), 0)]));
            let stuck = fatal_container(&p).unwrap();
            assert!(stuck.transient, "{reason}");
            assert!(!is_due(&stuck, start, start, grace), "{reason}");
            assert!(!is_due(
                &stuck,
                start,
                start + Duration::from_secs(29),
                grace
            ));
            assert!(is_due(&stuck, start, start + grace, grace), "{reason}");
        }
        // The backoff that follows a failed pull fails at once.
        let p = pod(
            json!([]),
            json!([container("web", waiting("ImagePullBackOff"), 0)]),
        );
        let stuck = fatal_container(&p).unwrap();
        assert!(!stuck.transient);
        assert!(is_due(&stuck, start, start, grace));
    }

    #[test]
    fn an_immediate_reason_outweighs_a_transient_one_in_another_container() {
        let p = pod(
            json!([]),
            json!([
                container("sidecar", waiting("CreateContainerConfigError"), 0),
                container("web", waiting("CrashLoopBackOff"), 2)
            ]),
        );
        assert_eq!(fatal(&p), Some(("web".into(), "CrashLoopBackOff".into())));
        let only_transient = pod(
            json!([]),
            json!([
                container("sidecar", json!({"running": {}}), 0),
                container("web", waiting("ErrImagePull"), 0)
            ]),
        );
        assert_eq!(
            fatal(&only_transient),
            Some(("web".into(), "ErrImagePull".into()))
        );
    }

    fn labelled_pod(labels: Value) -> Pod {
        from(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-0", "namespace": "ns", "labels": labels},
            "spec": {"containers": [{"name": "db", "image": "db:1"}]}}))
    }

    #[test]
    fn statefulset_pods_of_the_old_revision_never_count_as_new() {
        let current = Current::StatefulSet("db-7d4b9c".into());
        let old = labelled_pod(json!({"controller-revision-hash": "db-5f8d2a"}));
        let new = labelled_pod(json!({"controller-revision-hash": "db-7d4b9c"}));
        assert!(!pod_of_current(&old, "uid", &current));
        assert!(pod_of_current(&new, "uid", &current));
        assert!(!pod_of_current(&labelled_pod(json!({})), "uid", &current));
    }

    #[test]
    fn statefulset_update_revision_counts_once_its_generation_is_observed() {
        let s = statefulset(json!({"currentRevision": "db-5f8d2a", "updateRevision": "db-7d4b9c"}));
        assert_eq!(statefulset_revision(&s).as_deref(), Some("db-7d4b9c"));
        let stale = statefulset(json!({"observedGeneration": 1, "updateRevision": "db-5f8d2a"}));
        assert_eq!(statefulset_revision(&stale), None);
    }

    #[test]
    fn daemonset_pods_of_an_older_template_generation_never_count_as_new() {
        let d = daemonset(json!({}));
        assert_eq!(daemonset_generation(&d), Some(2));
        let current = Current::DaemonSet(2);
        let old = labelled_pod(json!({"pod-template-generation": "1"}));
        let new = labelled_pod(json!({"pod-template-generation": "2"}));
        assert!(!pod_of_current(&old, "uid", &current));
        assert!(pod_of_current(&new, "uid", &current));
        let garbled = labelled_pod(json!({"pod-template-generation": "two"}));
        assert!(!pod_of_current(&garbled, "uid", &current));
        let stale = daemonset(json!({"observedGeneration": 1}));
        assert_eq!(daemonset_generation(&stale), None);
    }

    #[test]
    fn pods_of_a_replaced_job_are_not_the_new_jobs() {
        let current = Current::Job("new-uid".into());
        let p = labelled_pod(json!({"job-name": "migrate"}));
        assert!(pod_of_current(&p, "new-uid", &current));
        assert!(!pod_of_current(&p, "old-uid", &current));
    }

    fn with_strategy(mut s: StatefulSet, strategy: Value) -> StatefulSet {
        s.spec.update_strategy = Some(from(strategy));
        s
    }

    #[test]
    fn statefulset_on_delete_is_ready_once_every_replica_is_ready() {
        // OnDelete: the controller replaces no pod by itself; nothing is updated.
        let s = statefulset(json!({"updatedReplicas": 0, "currentRevision": "db-5f8d2a"}));
        let s = with_strategy(s, json!({"type": "OnDelete"}));
        assert_eq!(statefulset_health(&s), Health::Ready);
        let not_ready = with_strategy(
            statefulset(json!({"readyReplicas": 2, "updatedReplicas": 0})),
            json!({"type": "OnDelete"}),
        );
        assert_eq!(
            statefulset_health(&not_ready),
            progressing("2 of 3 replicas ready")
        );
    }

    #[test]
    fn statefulset_partition_waits_for_the_replicas_from_the_partition_up() {
        let partitioned = |updated: i32| {
            with_strategy(
                statefulset(json!({"updatedReplicas": updated, "currentRevision": "db-5f8d2a"})),
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
            )
        };
        // 3 replicas, partition 2: only db-2 is updated; currentRevision stays old.
        assert_eq!(
            statefulset_health(&partitioned(0)),
            progressing("0 of 1 replicas updated (partition 2)")
        );
        assert_eq!(statefulset_health(&partitioned(1)), Health::Ready);
        // A partition above the replicas updates none.
        let none = with_strategy(
            statefulset(json!({"updatedReplicas": 0, "currentRevision": "db-5f8d2a"})),
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 5}}),
        );
        assert_eq!(statefulset_health(&none), Health::Ready);
        // partition 0 is a plain rolling update.
        let zero = with_strategy(
            statefulset(json!({"currentRevision": "db-5f8d2a"})),
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
        );
        assert_eq!(
            statefulset_health(&zero),
            progressing("rolling update in progress")
        );
    }

    #[test]
    fn daemonset_on_delete_is_ready_once_every_pod_is_available() {
        let mut d = daemonset(json!({"updatedNumberScheduled": 0}));
        assert_eq!(daemonset_health(&d), progressing("0 of 2 pods updated"));
        d.spec.update_strategy = Some(from(json!({"type": "OnDelete"})));
        assert_eq!(daemonset_health(&d), Health::Ready);
        let mut unavailable = daemonset(json!({"updatedNumberScheduled": 0, "numberAvailable": 1}));
        unavailable.spec.update_strategy = Some(from(json!({"type": "OnDelete"})));
        assert_eq!(
            daemonset_health(&unavailable),
            progressing("1 of 2 pods available")
        );
    }

    #[test]
    fn a_failed_jobs_pod_says_how_it_ended() {
        let failed: Pod = from(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "migrate-x1", "namespace": "ns"},
            "spec": {"containers": [{"name": "migrate", "image": "m:jobfail"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "migrate", "image": "m:jobfail", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "no table"}}}]}}));
        assert_eq!(
            pod_failure(&failed).as_deref(),
            Some("pod migrate-x1 container migrate terminated: Error (exit code 3): no table")
        );
        let succeeded: Pod = from(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "migrate-x2", "namespace": "ns"},
            "spec": {"containers": [{"name": "migrate", "image": "m:1"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "migrate", "image": "m:1", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}));
        assert_eq!(pod_failure(&succeeded), None);
        let evicted: Pod = from(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "migrate-x3", "namespace": "ns"},
            "spec": {"containers": [{"name": "migrate", "image": "m:1"}]},
            "status": {"phase": "Failed", "reason": "DeadlineExceeded"}}));
        assert_eq!(
            pod_failure(&evicted).as_deref(),
            Some("pod migrate-x3 failed: DeadlineExceeded")
        );
    }

    #[test]
    fn a_hook_pod_is_ready_once_succeeded_and_failed_naming_its_container() {
        let with_phase = |phase: Option<&str>, containers: Value| {
            let mut p = pod(json!([]), containers);
            if let Some(status) = p.status.as_mut() {
                status.phase = phase.map(str::to_owned);
            }
            p
        };
        let ended = |code: i32| {
            json!([container(
                "smoke",
                json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}),
                0
            )])
        };
        assert_eq!(
            pod_health(&with_phase(Some("Succeeded"), ended(0))),
            Health::Ready
        );
        assert_eq!(
            pod_health(&with_phase(Some("Failed"), ended(1))),
            Health::Failed(
                "pod web-2-abcde container smoke terminated: Error (exit code 1)".into()
            )
        );
        assert_eq!(
            pod_health(&with_phase(Some("Running"), json!([]))),
            progressing("pod running")
        );
        assert_eq!(
            pod_health(&with_phase(None, json!([]))),
            progressing("not scheduled yet")
        );
    }

    #[test]
    fn the_declared_pod_selectors_are_the_workloads_and_never_a_services() {
        let objects = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}}}),
            // A Job's selector is made by the server: none declared.
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
                "spec": {"template": {}}}),
        ];
        let declared = WaitOptions::declared(&objects);
        assert_eq!(declared.len(), 1, "{declared:?}");
        assert_eq!(declared[0].0.kind, "Deployment");
        assert_eq!(
            declared[0].1.match_labels,
            Some([("app".to_owned(), "web".to_owned())].into())
        );
    }

    #[test]
    fn a_pod_concerns_the_wait_when_a_waited_workload_selects_it_or_a_selector_is_unknown() {
        let key = |kind: &str, name: &str| (kind.to_owned(), "ns".to_owned(), name.to_owned());
        let waited: BTreeSet<Key> = [key("Deployment", "web"), key("Pod", "hook")].into();
        let mut labelled = pod(json!([]), json!([]));
        labelled.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
        let other = pod(json!([]), json!([]));
        let mut selectors = HashMap::new();
        // The Deployment not seen yet: any pod may be its.
        assert!(selected(&other, &selectors, &waited));
        let selector: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap();
        selectors.insert(
            key("Deployment", "web"),
            labels::selectors([&selector]).pop(),
        );
        assert!(selected(&labelled, &selectors, &waited));
        assert!(!selected(&other, &selectors, &waited));
    }
}
