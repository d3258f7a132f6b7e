//! What a failed cluster looked like when it was judged failed, for the report: the
//! failing pods of the release (pod, container, reason, restart count), the last
//! Kubernetes Events of those pods and of the workloads that failed, and the last log
//! lines of each failing container when the API server serves them. Everything is
//! bounded (pods, events, lines, bytes, time) and scrubbed of secret values; nothing
//! here fails a run: what cannot be read is said in one short line.

use super::{ClusterError, ClusterHandle};
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use serde::Serialize;
use std::time::Duration;

/// Failing pods described, at most.
pub const MAX_PODS: usize = 3;
/// Events shown per failed cluster, the newest.
pub const MAX_EVENTS: usize = 10;
/// Log lines per failing container, the last.
pub const MAX_LOG_LINES: i64 = 20;
/// Bytes of log read per container, at most.
const MAX_LOG_BYTES: i64 = 16 * 1024;
/// Characters kept of one log line, event message or reason message.
pub const MAX_LINE: usize = 300;
/// The whole gathering for one cluster: a failed run must not wait on its diagnosis.
const BUDGET: Duration = Duration::from_secs(10);

/// Waiting reasons that say nothing is wrong yet.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Why a cluster failed, as far as the API server tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub pods: Vec<FailingPod>,
    /// The newest Events of the failing pods and workloads, oldest first.
    pub events: Vec<EventNote>,
    /// Why the diagnosis is incomplete (events could not be listed, the time ran out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One container of the release that does not run as it should.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingPod {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// `CrashLoopBackOff`, `ImagePullBackOff`, `Error (exit code 1)`, `not ready`.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub restarts: i32,
    /// The last lines of its log (of the previous run when it restarted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// Why there are no log lines, when the API server serves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_unavailable: Option<String>,
}

/// One Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventNote {
    /// `Pod ns/name`, `Deployment ns/name`.
    pub object: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    /// RFC 3339, when the server says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// `Kind ns/name` of the workloads a health-wait error names (`Deployment ns/web`, or
/// `Deployment ns/web (why)` for each one a timeout still waited for).
pub fn failing_workloads(err: &ClusterError) -> Vec<(String, String, String)> {
    let texts: Vec<&str> = match err {
        ClusterError::Unhealthy { object, .. } => vec![object.as_str()],
        ClusterError::Timeout { pending, .. } => pending.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    texts
        .into_iter()
        .filter_map(|text| {
            let (kind, rest) = text.split_once(' ')?;
            let id = rest.split(' ').next()?;
            let (ns, name) = id.split_once('/')?;
            Some((kind.to_owned(), ns.to_owned(), name.to_owned()))
        })
        .collect()
}

/// Whether an error of a deploy or restore is one a diagnosis explains (the release
/// ran and did not become healthy), not one of reaching the cluster.
pub fn worth_diagnosing(err: &ClusterError) -> bool {
    matches!(
        err,
        ClusterError::Unhealthy { .. } | ClusterError::Timeout { .. }
    )
}

/// `text` scrubbed of secret values, on one line, at most [`MAX_LINE`] characters.
pub fn clean(text: &str) -> String {
    // Scrubbed before anything else, so that no cut can split a value.
    let scrubbed = crate::redact::scrub(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match scrubbed.char_indices().nth(MAX_LINE) {
        Some((cut, _)) => format!("{}…", &scrubbed[..cut]),
        None => scrubbed,
    }
}

/// A container that does not run as it should: its name, reason, message and restart
/// count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck(pub String, pub String, pub Option<String>, pub i32);

/// The first container of a pod (init containers first) that is not running as it
/// should. `None` for a healthy pod.
pub fn failing_container(pod: &Pod) -> Option<Stuck> {
    let status = pod.status.as_ref()?;
    let all: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    let stuck = all.iter().find_map(|c| {
        let state = c.state.as_ref()?;
        if let Some(w) = &state.waiting {
            let reason = w.reason.clone().unwrap_or_else(|| "Waiting".into());
            if !STARTING.contains(&reason.as_str()) {
                return Some(Stuck(
                    c.name.clone(),
                    reason,
                    w.message.clone(),
                    c.restart_count,
                ));
            }
        }
        if let Some(t) = state.terminated.as_ref().filter(|t| t.exit_code != 0) {
            let reason = format!(
                "{} (exit code {})",
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            );
            return Some(Stuck(
                c.name.clone(),
                reason,
                t.message.clone(),
                c.restart_count,
            ));
        }
        None
    });
    stuck.or_else(|| {
        status
            .container_statuses
            .iter()
            .flatten()
            .find(|c| !c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()))
            .map(|c| Stuck(c.name.clone(), "not ready".into(), None, c.restart_count))
    })
}

/// A margin for the events' one-second timestamps and a cluster's clock a little
/// behind ours: a run's diagnosis leaves out events last seen before the run started
/// ([`super::client::run_started`]) less this (an earlier run's `ScalingReplicaSet`).
const CLOCK_MARGIN: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_secs(2);

/// The newest `MAX_EVENTS` of `events` last seen at `since` or later (every one without
/// `since`), oldest first, as notes.
pub fn newest_events(mut events: Vec<Event>, since: Option<Timestamp>) -> Vec<EventNote> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    if let Some(since) = since {
        events.retain(|e| when(e).is_none_or(|t| t >= since));
    }
    events.sort_by_key(when);
    let skip = events.len().saturating_sub(MAX_EVENTS);
    events
        .iter()
        .skip(skip)
        .map(|e| {
            let object = &e.involved_object;
            EventNote {
                object: format!(
                    "{} {}/{}",
                    object.kind.as_deref().unwrap_or("?"),
                    object.namespace.as_deref().unwrap_or_default(),
                    object.name.as_deref().unwrap_or_default()
                ),
                kind: e.type_.clone().unwrap_or_else(|| "Normal".into()),
                reason: e.reason.clone().unwrap_or_default(),
                message: clean(e.message.as_deref().unwrap_or_default()),
                count: e.count.unwrap_or(1),
                last_seen: when(e).map(|t| t.to_string()),
            }
        })
        .collect()
}

/// The report's lines of a diagnosis, each to be prefixed by the cluster's name.
pub fn text_lines(d: &Diagnosis) -> Vec<String> {
    let mut lines = Vec::new();
    for p in &d.pods {
        let mut line = format!(
            "pod {}/{} container {}: {}, {} restart{}",
            p.namespace,
            p.pod,
            p.container,
            p.reason,
            p.restarts,
            if p.restarts == 1 { "" } else { "s" }
        );
        if let Some(message) = &p.message {
            line.push_str(&format!(" ({message})"));
        }
        lines.push(line);
        match &p.logs_unavailable {
            Some(why) => lines.push(format!("  logs: {why}")),
            None if p.logs.is_empty() => lines.push("  logs: (empty)".into()),
            None => {
                lines.push("  last log lines:".into());
                lines.extend(p.logs.iter().map(|l| format!("    {l}")));
            }
        }
    }
    if !d.events.is_empty() {
        lines.push("events:".into());
    }
    for e in &d.events {
        let count = if e.count > 1 {
            format!(" (x{})", e.count)
        } else {
            String::new()
        };
        lines.push(format!(
            "  {} {} {}: {}{count}",
            e.kind, e.object, e.reason, e.message
        ));
    }
    if let Some(note) = &d.note {
        lines.push(note.clone());
    }
    lines
}

impl ClusterHandle {
    /// The diagnosis of `release` in `namespace` after `err` failed its health wait;
    /// `None` for an error that is not about health. Never fails: what cannot be read
    /// is said in [`Diagnosis::note`] or [`FailingPod::logs_unavailable`].
    pub async fn diagnose(
        &self,
        namespace: &str,
        release: &str,
        err: &ClusterError,
    ) -> Option<Diagnosis> {
        if !worth_diagnosing(err) {
            return None;
        }
        let workloads = failing_workloads(err);
        let gathered = tokio::time::timeout(BUDGET, self.gather(namespace, release, &workloads));
        Some(gathered.await.unwrap_or_else(|_| Diagnosis {
            note: Some(format!(
                "diagnosis: the API server did not answer within {}s",
                BUDGET.as_secs()
            )),
            ..Diagnosis::default()
        }))
    }

    async fn gather(
        &self,
        namespace: &str,
        release: &str,
        workloads: &[(String, String, String)],
    ) -> Diagnosis {
        let mut namespaces: Vec<String> = workloads.iter().map(|(_, ns, _)| ns.clone()).collect();
        if namespaces.is_empty() {
            namespaces.push(namespace.to_owned());
        }
        namespaces.dedup();
        let mut notes = Vec::new();
        let mut failing: Vec<(Pod, Stuck)> = Vec::new();
        for ns in &namespaces {
            // Found through the release's workloads' selectors (and hook Pods by their
            // labels): pod templates carry no label of flotilla's. Every pod of the
            // namespace in the same round as the workloads: the restore waits for this.
            match self.release_workloads(ns, release, true).await {
                Ok(found) => failing.extend(
                    found
                        .pods
                        .into_iter()
                        .filter_map(|p| failing_container(&p).map(|c| (p, c))),
                ),
                Err(e) => notes.push(format!("pods of {ns}: {}", clean(&e.to_string()))),
            }
        }
        // The newest pods first: those of the revision that failed.
        failing.sort_by_key(|(p, _)| std::cmp::Reverse(p.creation_timestamp().map(|t| t.0)));
        failing.truncate(MAX_PODS);

        let mut objects: Vec<(String, String, String)> = workloads.to_vec();
        let mut pods = Vec::new();
        for (pod, Stuck(container, reason, message, restarts)) in failing {
            let ns = pod.namespace().unwrap_or_default();
            objects.push(("Pod".into(), ns.clone(), pod.name_any()));
            let (logs, logs_unavailable) = self
                .log_tail(&ns, &pod.name_any(), &container, restarts)
                .await;
            pods.push(FailingPod {
                namespace: ns,
                pod: pod.name_any(),
                container,
                reason,
                message: message.as_deref().map(clean).filter(|m| !m.is_empty()),
                restarts,
                logs,
                logs_unavailable,
            });
        }
        let mut events = Vec::new();
        for (kind, ns, name) in &objects {
            let params = ListParams::default().fields(&format!(
                "involvedObject.kind={kind},involvedObject.name={name}"
            ));
            match Api::<Event>::namespaced(self.client(), ns)
                .list(&params)
                .await
            {
                Ok(list) => events.extend(list.items),
                Err(e) => {
                    notes.push(format!(
                        "events of {kind} {ns}/{name}: {}",
                        clean(&e.to_string())
                    ));
                    break;
                }
            }
        }
        Diagnosis {
            pods,
            events: newest_events(
                events,
                super::client::run_started().and_then(|t| t.checked_sub(CLOCK_MARGIN).ok()),
            ),
            note: (!notes.is_empty())
                .then(|| format!("diagnosis incomplete: {}", notes.join("; "))),
        }
    }

    /// The last log lines of a container (of its previous run when it restarted: the
    /// one that crashed), else why there are none in one short line.
    async fn log_tail(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        restarts: i32,
    ) -> (Vec<String>, Option<String>) {
        let params = LogParams {
            container: Some(container.to_owned()),
            tail_lines: Some(MAX_LOG_LINES),
            limit_bytes: Some(MAX_LOG_BYTES),
            previous: restarts > 0,
            ..LogParams::default()
        };
        match Api::<Pod>::namespaced(self.client(), namespace)
            .logs(pod, &params)
            .await
        {
            Ok(text) => (log_lines(whole_lines(&text)), None),
            Err(e) => (Vec::new(), Some(logs_unavailable(&e))),
        }
    }
}

/// A log read up to `limitBytes` without its last line when the limit cut it: that
/// line may end in the first characters of a secret value, which the scrubber (it knows
/// whole values) would not recognise.
fn whole_lines(text: &str) -> &str {
    let limit = usize::try_from(MAX_LOG_BYTES).unwrap_or(usize::MAX);
    if text.len() < limit || text.ends_with('\n') {
        return text;
    }
    match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    }
}

/// The last [`MAX_LOG_LINES`] lines of a log, each cleaned.
pub fn log_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines
        .len()
        .saturating_sub(usize::try_from(MAX_LOG_LINES).unwrap_or(0));
    lines[skip..].iter().map(|l| clean(l)).collect()
}

/// One short line for a log request the API server did not serve.
fn logs_unavailable(err: &kube::Error) -> String {
    match err {
        // The kubelet's own word that the container has no log to show (waiting for its
        // image, no earlier run), which the API server passes on as a Bad Request.
        kube::Error::Api(s) if s.code == 400 => format!("none: {}", clean(&s.message)),
        kube::Error::Api(s) => short_refusal(&s.message, s.code),
        other => format!("not read: {}", clean(&other.to_string())),
    }
}

/// `not served by the API server (CODE): WHY`, where WHY drops the URL of the
/// kubelet request the API server made (`Get "https://node:10250/...": `) and is cut
/// to 100 characters.
fn short_refusal(message: &str, code: u16) -> String {
    let why = match message
        .strip_prefix("Get \"")
        .and_then(|m| m.split_once("\": "))
    {
        Some((_url, rest)) => rest,
        None => message,
    };
    let why = clean(why);
    let short: String = why.chars().take(100).collect();
    let cut = if short.len() < why.len() { "…" } else { "" };
    format!("not served by the API server ({code}): {short}{cut}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "web-1", "namespace": "ns" },
            "status": { "containerStatuses": statuses },
        }))
        .unwrap()
    }

    #[test]
    fn the_failing_container_is_named_with_reason_and_restarts() {
        let p = pod(json!([
            { "name": "ok", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
              "state": { "running": {} } },
            { "name": "web", "ready": false, "restartCount": 7, "image": "i", "imageID": "",
              "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off" } } },
        ]));
        assert_eq!(
            failing_container(&p),
            Some(Stuck(
                "web".into(),
                "CrashLoopBackOff".into(),
                Some("back-off".into()),
                7
            ))
        );
    }

    #[test]
    fn starting_containers_are_not_failing_and_unready_running_ones_are() {
        let creating = pod(json!([
            { "name": "web", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
              "state": { "waiting": { "reason": "ContainerCreating" } } },
        ]));
        assert_eq!(failing_container(&creating), None);
        let unready = pod(json!([
            { "name": "web", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
              "state": { "running": {} } },
        ]));
        assert_eq!(
            failing_container(&unready),
            Some(Stuck("web".into(), "not ready".into(), None, 0))
        );
        let crashed = pod(json!([
            { "name": "job", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
              "state": { "terminated": { "exitCode": 2, "reason": "Error" } } },
        ]));
        assert_eq!(
            failing_container(&crashed).map(|c| c.1),
            Some("Error (exit code 2)".into())
        );
    }

    #[test]
    fn workloads_are_read_from_unhealthy_and_timeout_errors() {
        let unhealthy = ClusterError::Unhealthy {
            context: "c".into(),
            object: "Deployment ns/web".into(),
            reason: "pod x".into(),
        };
        assert_eq!(
            failing_workloads(&unhealthy),
            vec![("Deployment".into(), "ns".into(), "web".into())]
        );
        let timeout = ClusterError::Timeout {
            context: "c".into(),
            timeout: Duration::from_secs(1),
            pending: vec!["StatefulSet ns/db (0 of 1 ready)".into()],
        };
        assert_eq!(
            failing_workloads(&timeout),
            vec![("StatefulSet".into(), "ns".into(), "db".into())]
        );
        let unreachable = ClusterError::Unreachable {
            context: "c".into(),
            message: "gone".into(),
            source: None,
        };
        assert!(!worth_diagnosing(&unreachable));
    }

    fn event(name: &str, reason: &str, at: &str, count: i32) -> Event {
        serde_json::from_value(json!({
            "metadata": { "name": format!("{name}.{reason}"), "namespace": "ns" },
            "involvedObject": { "kind": "Pod", "namespace": "ns", "name": name },
            "type": "Warning", "reason": reason, "message": format!("{reason} happened"),
            "count": count, "lastTimestamp": at,
        }))
        .unwrap()
    }

    #[test]
    fn only_the_newest_events_are_kept_oldest_first() {
        let events: Vec<Event> = (0..15)
            .rev()
            .map(|i| {
                event(
                    "web-1",
                    &format!("R{i:02}"),
                    &format!("2026-01-01T00:00:{i:02}Z"),
                    1,
                )
            })
            .collect();
        let notes = newest_events(events, None);
        assert_eq!(notes.len(), MAX_EVENTS);
        assert_eq!(notes[0].reason, "R05");
        assert_eq!(notes[MAX_EVENTS - 1].reason, "R14");
        assert_eq!(notes[0].object, "Pod ns/web-1");
    }

    #[test]
    fn events_from_before_the_run_are_left_out() {
        let events = vec![
            event("web-1", "ScalingReplicaSet", "2026-01-01T00:00:05Z", 1),
            event("web-1", "BackOff", "2026-01-01T00:00:20Z", 2),
        ];
        let since = "2026-01-01T00:00:10Z".parse().unwrap();
        let notes = newest_events(events, Some(since));
        let reasons: Vec<&str> = notes.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, ["BackOff"]);
    }

    #[test]
    fn log_tails_are_bounded_and_lines_cut() {
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let lines = log_lines(&text);
        assert_eq!(lines.len(), 20);
        assert_eq!(lines[0], "line 30");
        let long = "x".repeat(1000);
        assert_eq!(clean(&long).chars().count(), MAX_LINE + 1);
    }

    #[test]
    fn a_line_the_byte_limit_cut_is_dropped_with_the_prefix_of_a_value_it_may_end_in() {
        crate::redact::register("diagnose-cut-canary-0a9f7c");
        let limit = usize::try_from(MAX_LOG_BYTES).unwrap();
        let last = "connecting with password=diagnose-cut-canary-0a9f7c\n";
        let before = "a line before\n";
        let pad = limit - before.len() - "connecting with password=diagnose-cut".len() - 1;
        let text = format!("{before}{}\n{last}", "z".repeat(pad));
        // What the API server sends: the first MAX_LOG_BYTES bytes.
        let cut = &text[..limit];
        assert!(cut.ends_with("password=diagnose-cut"));
        let lines = log_lines(whole_lines(cut));
        assert!(
            lines.iter().all(|l| !l.contains("diagnose-cut")),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "a line before");
        // A log under the limit keeps its last line, ended or not.
        assert_eq!(whole_lines("one\ntwo"), "one\ntwo");
        assert_eq!(whole_lines(&cut[..100]), &cut[..100]);
    }

    #[test]
    fn a_refused_log_request_is_one_short_line_without_the_kubelet_url() {
        let message = "Get \"https://fake-node-1:10250/containerLogs/ns/web-1/web?tailLines=20\": dial tcp: lookup fake-node-1: no such host";
        assert_eq!(
            short_refusal(message, 500),
            "not served by the API server (500): dial tcp: lookup fake-node-1: no such host"
        );
        let long = "x".repeat(300);
        assert_eq!(short_refusal(&long, 400).chars().count(), 137);
        let why = "container \"web\" in pod \"web-1\" is waiting to start: trying and failing to pull image";
        let waiting = kube::Error::Api(Box::new(kube::core::Status {
            code: 400,
            ..kube::core::Status::failure(why, "BadRequest")
        }));
        assert_eq!(
            logs_unavailable(&waiting),
            "none: container \"web\" in pod \"web-1\" is waiting to start: trying and failing to pull image"
        );
    }

    #[test]
    fn secret_values_are_scrubbed_from_logs_and_messages() {
        crate::redact::register("diagnose-canary-s3cr3t");
        let lines = log_lines("connecting with password=diagnose-canary-s3cr3t\n");
        assert!(!lines[0].contains("diagnose-canary-s3cr3t"), "{lines:?}");
        assert!(!clean("auth diagnose-canary-s3cr3t failed").contains("s3cr3t"));
    }

    #[test]
    fn the_text_names_pod_container_reason_restarts_logs_and_events() {
        let d = Diagnosis {
            pods: vec![FailingPod {
                namespace: "ns".into(),
                pod: "web-1".into(),
                container: "web".into(),
                reason: "CrashLoopBackOff".into(),
                message: Some("back-off".into()),
                restarts: 4,
                logs: Vec::new(),
                logs_unavailable: Some("not served by the API server (500): no kubelet".into()),
            }],
            events: newest_events(
                vec![event("web-1", "BackOff", "2026-01-01T00:00:00Z", 3)],
                None,
            ),
            note: None,
        };
        assert_eq!(
            text_lines(&d),
            vec![
                "pod ns/web-1 container web: CrashLoopBackOff, 4 restarts (back-off)",
                "  logs: not served by the API server (500): no kubelet",
                "events:",
                "  Warning Pod ns/web-1 BackOff: BackOff happened (x3)",
            ]
        );
        let with_logs = Diagnosis {
            pods: vec![FailingPod {
                logs: vec!["panic: no db".into()],
                logs_unavailable: None,
                restarts: 1,
                message: None,
                ..d.pods[0].clone()
            }],
            ..Diagnosis::default()
        };
        assert_eq!(
            text_lines(&with_logs),
            vec![
                "pod ns/web-1 container web: CrashLoopBackOff, 1 restart",
                "  last log lines:",
                "    panic: no db",
            ]
        );
    }
}
