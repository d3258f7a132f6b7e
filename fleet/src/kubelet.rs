//! `flotilla-fleet kubelet`: a simulated kubelet (the KWOK idea) for one cluster.
//!
//! Watch-driven: it registers `--nodes` Ready nodes (`fake-node-1`, `fake-node-2`, ..),
//! binds every unscheduled pod to one of them (a DaemonSet's pod to the node its node
//! affinity names, any other pod to a node chosen by its uid), reports pod status from
//! the image tag of each container, and completes the deletion of pods (a pod bound to a
//! node stays `Terminating` until its kubelet confirms). Timers (tokio sleeps that fire
//! once per pod, not polling loops) drive the time-based modes:
//!
//! | tag         | reported status                                               | log (last line) |
//! |-------------|---------------------------------------------------------------|-----------------|
//! | (any other) | Running, Ready (pods that run to completion: Succeeded)        | `ready: ...` (completed: `done: ... exited 0`) |
//! | `jobfail`   | pods that run to completion: Failed, container exit code 1; other pods: as `crashloop` | `simulated job failure: container C of pod P exited 1 (fake kubelet)` |
//! | `crashloop` | Running, waiting `CrashLoopBackOff`, restartCount +1 every 2 s | previous run: `simulated crash: container C of pod P exited 1 (fake kubelet)` |
//! | `pullfail`  | Pending, waiting `ImagePullBackOff`                            | none: 400 "is waiting to start: trying and failing to pull image" |
//! | `slow-N`    | Running, Ready only N seconds after the pod started            | `warming up, ready in Ns`, then `ready: ...` |
//! | `crashafter-N` | Running, Ready; N seconds after the pod started, as `crashloop` | as `ready`, then as `crashloop` |
//! | `never`     | Running, never Ready                                           | `waiting for a dependency that never answers ...` |
//!
//! A pod runs to completion when a Job owns it or its `restartPolicy` is `Never` or
//! `OnFailure` (a Helm hook or test Pod); other pods run until deleted. Every log starts
//! with `starting container C of pod P (image I, simulated by flotilla-fleet)` and has
//! four lines ([`crate::kubelet_logs`]).
//!
//! Like a real kubelet it records a Warning Event on the pod when a container enters
//! `CrashLoopBackOff` (`BackOff`, "Back-off restarting failed container ...") or
//! `ImagePullBackOff` (`Failed`, "Error: ImagePullBackOff"), once per container and
//! reason. It serves made-up container logs through the API server, as a kubelet does
//! (`kubelet_logs`: the last line of a crashed run is `simulated crash: container C of
//! pod P exited 1 (fake kubelet)`).
//!
//! Must not: run anything, or touch objects other than pods, their Events and its own
//! Node.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// The first node (every cluster has it).
pub const NODE: &str = "fake-node-1";

/// The names of `n` simulated nodes.
pub fn node_names(n: u32) -> Vec<String> {
    (1..=n.max(1)).map(|i| format!("fake-node-{i}")).collect()
}
/// Between two simulated crashes of a `crashloop` container.
pub const CRASH_INTERVAL: Duration = Duration::from_secs(2);

/// What a container does, from its image tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Ready,
    CrashLoop,
    PullFail,
    Slow(u64),
    /// Ready, then from N seconds after the start as `CrashLoop` (a release that breaks
    /// under traffic after its rollout looked healthy).
    CrashAfter(u64),
    Never,
    JobFail,
}

impl Behaviour {
    pub fn of_image(image: &str) -> Behaviour {
        // `registry:5000/app:tag@sha256:...`: the tag is after the last ':' of the last
        // path segment, before any digest.
        let image = image.split('@').next().unwrap_or(image);
        let last = image.rsplit('/').next().unwrap_or(image);
        let tag = last.split_once(':').map(|(_, t)| t).unwrap_or("latest");
        match tag {
            "crashloop" => Behaviour::CrashLoop,
            "pullfail" => Behaviour::PullFail,
            "never" => Behaviour::Never,
            "jobfail" => Behaviour::JobFail,
            t => {
                let secs = |prefix: &str| t.strip_prefix(prefix).and_then(|n| n.parse().ok());
                match (secs("slow-"), secs("crashafter-")) {
                    (Some(secs), _) => Behaviour::Slow(secs),
                    (_, Some(secs)) => Behaviour::CrashAfter(secs),
                    _ => Behaviour::Ready,
                }
            }
        }
    }
}

pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ensure_node(client: &Client, name: &str, version: &str, port: u16) -> kube::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let params = PatchParams::apply("flotilla-fleet-kubelet").force();
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "type": "flotilla-fleet"
        }},
    });
    nodes.patch(name, &params, &Patch::Apply(&node)).await?;
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let capacity = json!({ "cpu": "64", "memory": "256Gi", "pods": "1000" });
    let status = json!({ "status": {
        "capacity": capacity, "allocatable": capacity,
        "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady",
                         "message": "simulated by flotilla-fleet", "lastHeartbeatTime": now,
                         "lastTransitionTime": now }],
        "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" },
                      { "type": "Hostname", "address": name }],
        // Where the API server sends a pod's log request (at the InternalIP).
        "daemonEndpoints": { "kubeletEndpoint": { "Port": port } },
        "nodeInfo": { "kubeletVersion": version, "kubeProxyVersion": version,
                      "operatingSystem": "linux", "architecture": "amd64",
                      "containerRuntimeVersion": "fake://1", "kernelVersion": "", "osImage": "",
                      "machineID": "", "systemUUID": "", "bootID": "" },
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    // Admission taints a new node not-ready; a real kubelet's controller lifts it once the
    // node reports Ready. DaemonSets schedule nothing while it is there.
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "taints": null } })),
        )
        .await?;
    Ok(())
}

/// Why a pod is looked at again: a timer fired (a crash is due, or a slow container's
/// delay passed).
struct Recheck {
    namespace: String,
    name: String,
    crash: bool,
}

pub async fn run(client: Client, node_count: u32) -> anyhow::Result<()> {
    // The nodes say the apiserver's version, as a real kubelet of the same release would.
    let version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|_| "v0.0.0".into());
    let nodes = node_names(node_count);
    let port = crate::kubelet_logs::serve(client.clone(), nodes.clone()).await?;
    for node in &nodes {
        ensure_node(&client, node, &version, port).await?;
    }
    let all: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(all, watcher::Config::default())
        .default_backoff()
        .boxed();
    let (tx, mut rx) = mpsc::unbounded_channel::<Recheck>();
    let mut kubelet = Kubelet {
        client,
        nodes,
        timers: HashMap::new(),
        tx,
    };
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => kubelet.handle(pod, false).await,
                Some(Ok(Event::Delete(pod))) => kubelet.forget(&pod),
                Some(Ok(Event::Init | Event::InitDone)) => {}
                Some(Err(e)) => tracing::warn!("watch: {e}"),
                None => return Ok(()),
            },
            Some(recheck) = rx.recv() => {
                let api: Api<Pod> = Api::namespaced(kubelet.client.clone(), &recheck.namespace);
                match api.get_opt(&recheck.name).await {
                    Ok(Some(pod)) => kubelet.handle(pod, recheck.crash).await,
                    Ok(None) => {}
                    Err(e) => tracing::warn!("pod {}/{}: {e}", recheck.namespace, recheck.name),
                }
            }
        }
    }
}

struct Kubelet {
    client: Client,
    /// The nodes this kubelet runs (`fake-node-1` ..).
    nodes: Vec<String>,
    /// One timer per pod uid at most.
    timers: HashMap<String, AbortHandle>,
    tx: mpsc::UnboundedSender<Recheck>,
}

impl Kubelet {
    fn forget(&mut self, pod: &Pod) {
        if let Some(timer) = pod
            .metadata
            .uid
            .as_ref()
            .and_then(|u| self.timers.remove(u))
        {
            timer.abort();
        }
    }

    async fn handle(&mut self, pod: Pod, crash: bool) {
        let (Some(namespace), Some(name)) =
            (pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            return;
        };
        if let Err(e) = self.reconcile(&pod, &namespace, &name, crash).await {
            // A pod that went away meanwhile is no news; anything else is worth a line.
            if !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409) {
                tracing::warn!("pod {namespace}/{name}: {e}");
            }
        }
    }

    async fn reconcile(
        &mut self,
        pod: &Pod,
        namespace: &str,
        name: &str,
        crash: bool,
    ) -> kube::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let spec = pod.spec.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.forget(pod);
            if spec
                .node_name
                .as_deref()
                .is_some_and(|n| self.nodes.iter().any(|m| m == n))
            {
                // What a kubelet does once the containers stopped: confirm the deletion,
                // of this pod only: a stale event must not delete a new pod created
                // under the same name meanwhile (a Helm hook Pod run again).
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                api.delete(name, &params).await?;
            }
            return Ok(());
        }
        let Some(node) = spec.node_name.as_deref() else {
            let Some(target) = self.node_for(pod) else {
                // Its affinity names no node of ours: it stays Pending, as with a scheduler.
                return Ok(());
            };
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": { "name": name },
                "target": { "apiVersion": "v1", "kind": "Node", "name": target },
            });
            api.create_subresource::<Value, Value>(
                "binding",
                name,
                &PostParams::default(),
                &binding,
            )
            .await?;
            return Ok(());
        };
        if !self.nodes.iter().any(|n| n == node) {
            return Ok(());
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            self.forget(pod);
            return Ok(());
        }
        let now = Timestamp::now();
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or(now);
        let behaviours: Vec<Behaviour> = spec
            .containers
            .iter()
            .map(|c| Behaviour::of_image(c.image.as_deref().unwrap_or_default()))
            .collect();
        let restarts = |container: &str| -> i32 {
            pod.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == container))
                .map(|c| c.restart_count)
                .unwrap_or(0)
        };
        let elapsed = Duration::try_from(now.duration_since(started)).unwrap_or_default();
        // A Job's pod, or any pod whose containers are not restarted (a Helm hook or
        // test Pod, `restartPolicy: Never`), runs to completion as on a real node.
        let is_job = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Job")
            || matches!(spec.restart_policy.as_deref(), Some("Never" | "OnFailure"));

        let mut statuses = Vec::new();
        let mut all_ready = true;
        let mut pending = false;
        let mut next_wake: Option<Duration> = None;
        let mut crashing = false;
        let mut failed = false;
        let ts = started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        for (container, behaviour) in spec.containers.iter().zip(&behaviours) {
            // A crashafter-N container is a crashloop one once its N seconds are up.
            let behaviour = match behaviour {
                Behaviour::CrashAfter(secs) if elapsed >= Duration::from_secs(*secs) => {
                    &Behaviour::CrashLoop
                }
                Behaviour::CrashAfter(secs) => {
                    let wait = Duration::from_secs(*secs) - elapsed;
                    next_wake = Some(next_wake.map_or(wait, |w| w.min(wait)));
                    &Behaviour::Ready
                }
                other => other,
            };
            let restart_count =
                restarts(&container.name) + i32::from(crash && *behaviour == Behaviour::CrashLoop);
            let (ready, state, last) = match behaviour {
                Behaviour::Ready | Behaviour::CrashAfter(_) => {
                    (true, json!({ "running": { "startedAt": ts } }), json!({}))
                }
                Behaviour::Never => (false, json!({ "running": { "startedAt": ts } }), json!({})),
                Behaviour::Slow(secs) => {
                    let delay = Duration::from_secs(*secs);
                    if elapsed < delay {
                        let wait = delay - elapsed;
                        next_wake = Some(next_wake.map_or(wait, |w| w.min(wait)));
                    }
                    (
                        elapsed >= delay,
                        json!({ "running": { "startedAt": ts } }),
                        json!({}),
                    )
                }
                Behaviour::JobFail if is_job => {
                    failed = true;
                    (
                        false,
                        json!({ "terminated": { "exitCode": 1, "reason": "Error", "startedAt": ts, "finishedAt": ts } }),
                        json!({}),
                    )
                }
                Behaviour::CrashLoop | Behaviour::JobFail => {
                    crashing = true;
                    (
                        false,
                        json!({ "waiting": { "reason": "CrashLoopBackOff",
                            "message": format!("back-off restarting failed container {} (simulated)", container.name) } }),
                        json!({ "terminated": { "exitCode": 1, "reason": "Error", "startedAt": ts, "finishedAt": ts } }),
                    )
                }
                Behaviour::PullFail => {
                    pending = true;
                    (
                        false,
                        json!({ "waiting": { "reason": "ImagePullBackOff",
                            "message": format!("Back-off pulling image {:?} (simulated)", container.image.as_deref().unwrap_or_default()) } }),
                        json!({}),
                    )
                }
            };
            all_ready &= ready;
            statuses.push(container_status(
                container,
                ready,
                restart_count,
                state,
                last,
            ));
        }

        let succeeded = is_job && all_ready;
        let phase = if failed {
            "Failed"
        } else if succeeded {
            "Succeeded"
        } else if pending {
            "Pending"
        } else {
            "Running"
        };
        if succeeded {
            for (status, container) in statuses.iter_mut().zip(&spec.containers) {
                *status = container_status(
                    container,
                    false,
                    0,
                    json!({ "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts } }),
                    json!({}),
                );
            }
        }
        let ready_word = if all_ready && !succeeded {
            "True"
        } else {
            "False"
        };
        let condition = |type_: &str, status: &str, since: &str| json!({ "type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since });
        // A Deployment's minReadySeconds counts from the Ready condition's transition: for
        // slow-N that is N seconds after the start, not the start.
        let slowest = behaviours
            .iter()
            .filter_map(|b| match b {
                Behaviour::Slow(secs) => Some(*secs),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let ready_since = started
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                i64::try_from(slowest).unwrap_or(i64::MAX),
            ))
            .unwrap_or(started)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let ready_since = if ready_word == "True" {
            ready_since
        } else {
            ts.clone()
        };
        let init_statuses: Vec<Value> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                container_status(
                    c,
                    true,
                    0,
                    json!({ "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts } }),
                    json!({}),
                )
            })
            .collect();
        let desired = json!({
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": pod_ip(pod),
            "podIPs": [{ "ip": pod_ip(pod) }],
            "startTime": ts,
            // No qosClass: the apiserver sets it when the pod is created (from its
            // resources) and Kubernetes 1.37 refuses any change to it (1.20 allowed one).
            "conditions": [
                condition("Initialized", "True", &ts),
                condition("Ready", ready_word, &ready_since),
                condition("ContainersReady", ready_word, &ready_since),
                condition("PodScheduled", "True", &ts),
            ],
            "containerStatuses": statuses,
            "initContainerStatuses": init_statuses,
        });

        if signature(&desired) != current_signature(pod) {
            // The Event first: whoever sees the pod back off finds why among its Events.
            let before = pod
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_default();
            for (container, reason) in newly_waiting(&before, &desired) {
                self.record_event(pod, node, &container, &reason).await?;
            }
            api.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": desired })),
            )
            .await?;
        }

        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if succeeded || failed {
            self.forget(pod);
        } else if crashing {
            // A crashafter-N pod's one-shot timer has fired: the crash ticks replace it.
            if self.timers.get(&uid).is_some_and(|t| t.is_finished()) {
                self.timers.remove(&uid);
            }
            if !self.timers.contains_key(&uid) {
                // The wall-clock moment of the first report: the start of the failure
                // detection latency that scripts/bench-vs-helm.sh measures.
                tracing::info!(
                    pod = %format!("{namespace}/{name}"),
                    at = %Timestamp::now(),
                    "reported CrashLoopBackOff"
                );
            }
            self.timers.entry(uid).or_insert_with(|| {
                let tx = self.tx.clone();
                let (namespace, name) = (namespace.to_string(), name.to_string());
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(CRASH_INTERVAL);
                    ticks.tick().await;
                    loop {
                        ticks.tick().await;
                        let recheck = Recheck {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            crash: true,
                        };
                        if tx.send(recheck).is_err() {
                            return;
                        }
                    }
                })
                .abort_handle()
            });
        } else if let Some(wait) = next_wake {
            if !self.timers.contains_key(&uid) {
                let tx = self.tx.clone();
                let (namespace, name) = (namespace.to_string(), name.to_string());
                let handle = tokio::spawn(async move {
                    // A little past the deadline, so the recheck sees it passed.
                    tokio::time::sleep(wait + Duration::from_millis(50)).await;
                    let _ = tx.send(Recheck {
                        namespace,
                        name,
                        crash: false,
                    });
                })
                .abort_handle();
                self.timers.insert(uid, handle);
            }
        } else if let Some(timer) = self.timers.remove(&uid) {
            timer.abort();
        }
        Ok(())
    }
}

impl Kubelet {
    /// A Warning Event on the pod, as a kubelet records one when a container starts
    /// backing off.
    async fn record_event(
        &self,
        pod: &Pod,
        node: &str,
        container: &str,
        reason: &str,
    ) -> kube::Result<()> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let image = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .find(|c| c.name == container)
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let (event_reason, message) = match reason {
            "CrashLoopBackOff" => (
                "BackOff",
                format!("Back-off restarting failed container {container} in pod {name}_{namespace} (simulated)"),
            ),
            _ => ("Failed", format!("Error: {reason} (image {image:?}, simulated)")),
        };
        let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "generateName": format!("{name}."), "namespace": namespace },
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name,
                "uid": pod.metadata.uid, "fieldPath": format!("spec.containers{{{container}}}"),
            },
            "reason": event_reason, "message": message, "type": "Warning",
            "source": { "component": "kubelet", "host": node },
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": "kubelet", "reportingInstance": node,
        });
        let event: k8s_openapi::api::core::v1::Event =
            serde_json::from_value(event).map_err(kube::Error::SerdeError)?;
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(())
    }

    /// The node an unscheduled pod goes to: the one its required node affinity names
    /// (how the DaemonSet controller pins its pods), else one chosen by its uid.
    fn node_for(&self, pod: &Pod) -> Option<String> {
        let terms = pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| r.node_selector_terms.clone())
            .unwrap_or_default();
        let pinned: Vec<String> = terms
            .iter()
            .flat_map(|t| t.match_fields.iter().flatten())
            .filter(|f| f.key == "metadata.name" && f.operator == "In")
            .flat_map(|f| f.values.clone().unwrap_or_default())
            .collect();
        if !pinned.is_empty() {
            return pinned.into_iter().find(|p| self.nodes.contains(p));
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let hash = uid
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let index = usize::try_from(hash).unwrap_or_default() % self.nodes.len().max(1);
        self.nodes.get(index).cloned()
    }
}

fn container_status(
    container: &Container,
    ready: bool,
    restarts: i32,
    state: Value,
    last: Value,
) -> Value {
    let image = container.image.clone().unwrap_or_default();
    let running = state.get("running").is_some();
    json!({
        "name": container.name,
        "image": image,
        "imageID": format!("fake://{image}"),
        "containerID": format!("fake://{}", container.name),
        "ready": ready,
        "started": running,
        "restartCount": restarts,
        "state": state,
        "lastState": last,
    })
}

/// What decides whether a patch is needed: phase, readiness, and per container its
/// readiness, state, reason and restart count. Timestamps do not count.
fn signature(status: &Value) -> String {
    let mut out = format!(
        "{}|{}|",
        status["phase"].as_str().unwrap_or_default(),
        status["podIP"].as_str().unwrap_or_default()
    );
    for c in status["conditions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}={};",
            c["type"].as_str().unwrap_or_default(),
            c["status"].as_str().unwrap_or_default()
        ));
    }
    for key in ["containerStatuses", "initContainerStatuses"] {
        let mut containers: Vec<String> = status[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let state = c["state"].as_object();
                let kind = state
                    .and_then(|s| s.keys().next().cloned())
                    .unwrap_or_default();
                let reason = state
                    .and_then(|s| s.values().next())
                    .and_then(|v| v["reason"].as_str())
                    .unwrap_or_default()
                    .to_string();
                format!(
                    "{}:{}:{}:{}:{}",
                    c["name"].as_str().unwrap_or_default(),
                    c["ready"].as_bool().unwrap_or_default(),
                    kind,
                    reason,
                    c["restartCount"].as_i64().unwrap_or_default()
                )
            })
            .collect();
        containers.sort();
        out.push_str(&containers.join(","));
        out.push('|');
    }
    out
}

fn current_signature(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .map(|v| signature(&v))
        .unwrap_or_default()
}

/// The (container, reason) pairs that back off in `after` and did not in `before`:
/// what a kubelet records an Event for.
fn newly_waiting(before: &Value, after: &Value) -> Vec<(String, String)> {
    let waiting = |status: &Value| -> Vec<(String, String)> {
        status["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let reason = c["state"]["waiting"]["reason"].as_str()?;
                matches!(reason, "CrashLoopBackOff" | "ImagePullBackOff").then(|| {
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        reason.to_owned(),
                    )
                })
            })
            .collect()
    };
    let old = waiting(before);
    waiting(after)
        .into_iter()
        .filter(|pair| !old.contains(pair))
        .collect()
}

/// A stable, distinct-enough address per pod (from its uid).
fn pod_ip(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let hash = uid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.244.{}.{}", (hash >> 8) % 250 + 1, hash % 250 + 2)
}

#[cfg(test)]
mod tests {
    use super::{newly_waiting, Behaviour};
    use serde_json::{json, Value};

    #[test]
    fn an_event_is_recorded_once_per_container_entering_back_off() {
        let status = |reason: &str, restarts: i32| {
            json!({ "containerStatuses": [
                { "name": "web", "restartCount": restarts, "state": { "waiting": { "reason": reason } } },
                { "name": "side", "state": { "running": {} } },
            ] })
        };
        let pending = status("ContainerCreating", 0);
        assert_eq!(
            newly_waiting(&pending, &status("CrashLoopBackOff", 1)),
            vec![("web".to_owned(), "CrashLoopBackOff".to_owned())]
        );
        // The next crash of the same container is no new Event.
        assert!(newly_waiting(
            &status("CrashLoopBackOff", 1),
            &status("CrashLoopBackOff", 2)
        )
        .is_empty());
        assert_eq!(
            newly_waiting(&Value::Null, &status("ImagePullBackOff", 0)),
            vec![("web".to_owned(), "ImagePullBackOff".to_owned())]
        );
    }

    #[test]
    fn tags_choose_the_behaviour() {
        assert_eq!(Behaviour::of_image("nginx"), Behaviour::Ready);
        assert_eq!(Behaviour::of_image("nginx:1.25"), Behaviour::Ready);
        assert_eq!(Behaviour::of_image("app:crashloop"), Behaviour::CrashLoop);
        assert_eq!(
            Behaviour::of_image("reg:5000/team/app:pullfail"),
            Behaviour::PullFail
        );
        assert_eq!(Behaviour::of_image("reg:5000/app"), Behaviour::Ready);
        assert_eq!(Behaviour::of_image("app:slow-7"), Behaviour::Slow(7));
        assert_eq!(Behaviour::of_image("app:slow-x"), Behaviour::Ready);
        assert_eq!(
            Behaviour::of_image("app:crashafter-20"),
            Behaviour::CrashAfter(20)
        );
        assert_eq!(Behaviour::of_image("app:crashafter-"), Behaviour::Ready);
        assert_eq!(
            Behaviour::of_image("app:never@sha256:abc"),
            Behaviour::Never
        );
        assert_eq!(Behaviour::of_image("app:jobfail"), Behaviour::JobFail);
        assert_eq!(
            super::node_names(2),
            vec!["fake-node-1".to_string(), "fake-node-2".to_string()]
        );
    }
}
