//! Notifications: the environment's webhooks hear of every run (started, succeeded,
//! failed, rolled back) with release, environment, deployment id, version and the
//! result of each cluster. A Slack-compatible incoming webhook gets `{"text": ...}`;
//! a generic webhook the [`Notice`] as JSON.
//!
//! A notification never fails or holds up a run: each is sent with a short deadline
//! ([`TIMEOUT`]), all targets at once, and a failure (refused, timed out, a non-2xx
//! answer, the URL variable unset) is one warning per target and run, scrubbed. The
//! URLs are read from the environment variables the environment file names and are
//! registered with the scrubber (a webhook URL is a credential): they never show. A
//! notice carries no secret value: only names, ids, results and the scrubbed cause.

use crate::config::{NotifyEvent, NotifyKind, NotifyTarget};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// The whole time one notification may take (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What a run tells its webhooks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub event: NotifyEvent,
    /// `deploy`, `rollback`, `promote`, `uninstall`.
    pub operation: String,
    pub release: String,
    pub environment: String,
    /// The run's deployment id (an uninstall's: the id of its run).
    pub deployment_id: String,
    /// The application version deployed (for a rollback: the target deployment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// For a finished run: the report's overall result (`succeeded`, `rolled-back`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall: Option<String>,
    /// The first failure, scrubbed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub clusters: Vec<ClusterNotice>,
}

/// One cluster of a notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterNotice {
    #[serde(rename = "cluster")]
    pub context: String,
    /// `pending` in a `started` notice; else the report's result (`deployed`,
    /// `rolled-back`, ...).
    pub result: String,
    /// `1 → 2`, `1 → 2 → 3 (= 1)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl Notice {
    /// The Slack-compatible message: one line of what happened, one per cluster.
    pub fn slack_text(&self) -> String {
        let what = match self.event {
            NotifyEvent::Started => "started",
            NotifyEvent::Succeeded => "succeeded",
            NotifyEvent::Failed => "FAILED",
            NotifyEvent::RolledBack if self.operation == "rollback" => "rolled back",
            NotifyEvent::RolledBack => "FAILED, every changed cluster rolled back",
        };
        let version = self
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        // An uninstall takes the release away, under the id of its own run.
        let (to, id) = match self.operation.as_str() {
            "uninstall" => ("from", "run"),
            _ => ("to", "deployment"),
        };
        let mut text = format!(
            "flotilla {} *{}*{version} {to} *{}*: {what} ({id} {})",
            self.operation, self.release, self.environment, self.deployment_id
        );
        if let Some(cause) = &self.cause {
            text.push_str(&format!("\ncause: {cause}"));
        }
        for c in &self.clusters {
            let revision = c
                .revision
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            text.push_str(&format!("\n• {}: {}{revision}", c.context, c.result));
        }
        text
    }

    fn body(&self, kind: NotifyKind) -> String {
        let body = match kind {
            NotifyKind::Slack => serde_json::json!({ "text": self.slack_text() }).to_string(),
            NotifyKind::Webhook => serde_json::to_string(self).unwrap_or_default(),
        };
        crate::redact::scrub(&body)
    }
}

/// Where a notifier's warnings go (stderr, or a test's list).
pub type WarnSink = Box<dyn Fn(&str) + Send + Sync>;

/// The webhooks of one environment, for one run.
pub struct Notifier {
    targets: Vec<NotifyTarget>,
    client: Option<reqwest::Client>,
    timeout: Duration,
    /// Targets (by index) already warned about: one warning per target and run.
    warned: Mutex<BTreeSet<usize>>,
    warn: WarnSink,
}

impl Notifier {
    /// The environment's webhooks; warnings go to stderr.
    pub fn new(targets: &[NotifyTarget]) -> Notifier {
        Notifier::with(targets, TIMEOUT, Box::new(crate::output::eprint_line))
    }

    /// With a deadline and a warning sink of the caller's (tests).
    pub fn with(targets: &[NotifyTarget], timeout: Duration, warn: WarnSink) -> Notifier {
        let client = if targets.is_empty() {
            None
        } else {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
                .build()
                .ok()
        };
        Notifier {
            targets: targets.to_vec(),
            client,
            timeout,
            warned: Mutex::new(BTreeSet::new()),
            warn,
        }
    }

    /// Sends `notice` to every target that hears of its event, all at once; returns
    /// once each answered or its deadline passed. Never fails.
    pub async fn send(&self, notice: &Notice) {
        let sends = self
            .targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.on.as_ref().is_none_or(|on| on.contains(&notice.event)))
            .map(|(i, target)| async move {
                if let Err(why) = self.send_one(target, notice).await {
                    self.warn_once(i, target, &why);
                }
            });
        futures::future::join_all(sends).await;
    }

    async fn send_one(&self, target: &NotifyTarget, notice: &Notice) -> Result<(), String> {
        let url = match std::env::var(&target.url_env) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => return Err(format!("${} is not set", target.url_env)),
        };
        // A webhook URL is a credential (Slack's carries its token): never shown.
        crate::redact::register(&url);
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| "no HTTP client could be built".to_owned())?;
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(notice.body(target.kind))
            .send();
        // The client's own timeout covers the answer; this covers a body that stalls.
        let response = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| format!("no answer within {}s", self.timeout.as_secs()))?
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {}s", self.timeout.as_secs())
                } else if e.is_connect() {
                    "connection refused or unreachable".to_owned()
                } else {
                    e.without_url().to_string()
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the webhook answered {status}"));
        }
        Ok(())
    }

    fn warn_once(&self, index: usize, target: &NotifyTarget, why: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(index);
        if first {
            let kind = match target.kind {
                NotifyKind::Slack => "slack",
                NotifyKind::Webhook => "webhook",
            };
            (self.warn)(&crate::redact::scrub(&format!(
                "warning: notification to {kind} ${} failed: {why}; the run goes on (no further warning for it in this run)",
                target.url_env
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_fleet::testing::HookReceiver;
    use std::sync::Arc;

    fn notice(event: NotifyEvent) -> Notice {
        Notice {
            event,
            operation: "deploy".into(),
            release: "hello".into(),
            environment: "prod".into(),
            deployment_id: "20261201T120000Z-abcd".into(),
            version: Some("1.4.2".into()),
            overall: Some("rolled-back".into()),
            cause: Some("cluster `eu`: Deployment ns/web failed".into()),
            clusters: vec![ClusterNotice {
                context: "eu".into(),
                result: "rolled-back".into(),
                revision: Some("1 → 2 → 3 (= 1)".into()),
            }],
        }
    }

    fn target(kind: NotifyKind, var: &str, on: Option<Vec<NotifyEvent>>) -> NotifyTarget {
        NotifyTarget {
            kind,
            url_env: var.into(),
            on,
        }
    }

    fn collecting() -> (Arc<Mutex<Vec<String>>>, WarnSink) {
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let sink = warnings.clone();
        (
            warnings,
            Box::new(move |line: &str| sink.lock().unwrap().push(line.to_owned())),
        )
    }

    #[tokio::test]
    async fn a_slack_and_a_json_webhook_receive_the_run() {
        let slack = HookReceiver::start(Some(200));
        let hook = HookReceiver::start(Some(204));
        std::env::set_var("NOTIFY_TEST_SLACK_OK", &slack.url);
        std::env::set_var("NOTIFY_TEST_HOOK_OK", &hook.url);
        let (warnings, sink) = collecting();
        let notifier = Notifier::with(
            &[
                target(NotifyKind::Slack, "NOTIFY_TEST_SLACK_OK", None),
                target(NotifyKind::Webhook, "NOTIFY_TEST_HOOK_OK", None),
            ],
            Duration::from_secs(5),
            sink,
        );
        notifier.send(&notice(NotifyEvent::RolledBack)).await;
        let text: serde_json::Value = serde_json::from_str(&slack.received()[0]).unwrap();
        let text = text["text"].as_str().unwrap();
        assert!(
            text.starts_with("flotilla deploy *hello* 1.4.2 to *prod*: FAILED, every changed cluster rolled back (deployment 20261201T120000Z-abcd)"),
            "{text}"
        );
        assert!(
            text.contains("• eu: rolled-back (1 → 2 → 3 (= 1))"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&hook.received()[0]).unwrap();
        assert_eq!(json["event"], "rolled-back");
        assert_eq!(json["release"], "hello");
        assert_eq!(json["environment"], "prod");
        assert_eq!(json["version"], "1.4.2");
        assert_eq!(json["clusters"][0]["cluster"], "eu");
        assert!(warnings.lock().unwrap().is_empty(), "{warnings:?}");
    }

    #[tokio::test]
    async fn only_the_events_a_target_hears_of_are_sent() {
        let hook = HookReceiver::start(Some(200));
        std::env::set_var("NOTIFY_TEST_FILTER", &hook.url);
        let (_, sink) = collecting();
        let notifier = Notifier::with(
            &[target(
                NotifyKind::Webhook,
                "NOTIFY_TEST_FILTER",
                Some(vec![NotifyEvent::Failed]),
            )],
            Duration::from_secs(5),
            sink,
        );
        notifier.send(&notice(NotifyEvent::Started)).await;
        notifier.send(&notice(NotifyEvent::Failed)).await;
        let received = hook.received();
        assert_eq!(received.len(), 1, "{received:?}");
        let json: serde_json::Value = serde_json::from_str(&received[0]).unwrap();
        assert_eq!(json["event"], "failed");
    }

    #[tokio::test]
    async fn a_failing_refusing_silent_or_unset_webhook_warns_once_without_its_url() {
        let failing = HookReceiver::start(Some(500));
        let silent = HookReceiver::start(None);
        std::env::set_var("NOTIFY_TEST_500", &failing.url);
        std::env::set_var("NOTIFY_TEST_SILENT", &silent.url);
        std::env::set_var("NOTIFY_TEST_REFUSED", HookReceiver::refusing_url());
        std::env::remove_var("NOTIFY_TEST_UNSET");
        let (warnings, sink) = collecting();
        let notifier = Notifier::with(
            &[
                target(NotifyKind::Webhook, "NOTIFY_TEST_500", None),
                target(NotifyKind::Slack, "NOTIFY_TEST_SILENT", None),
                target(NotifyKind::Webhook, "NOTIFY_TEST_REFUSED", None),
                target(NotifyKind::Webhook, "NOTIFY_TEST_UNSET", None),
            ],
            Duration::from_secs(1),
            sink,
        );
        notifier.send(&notice(NotifyEvent::Started)).await;
        notifier.send(&notice(NotifyEvent::Failed)).await;
        let warnings = warnings.lock().unwrap().clone();
        assert_eq!(warnings.len(), 4, "{warnings:#?}");
        let of = |var: &str| {
            warnings
                .iter()
                .find(|w| w.contains(&format!("${var} failed")))
                .unwrap_or_else(|| panic!("no warning for {var}: {warnings:#?}"))
                .clone()
        };
        assert!(
            of("NOTIFY_TEST_500").contains("answered 500"),
            "{warnings:#?}"
        );
        assert!(
            of("NOTIFY_TEST_SILENT").contains("no answer within 1s"),
            "{warnings:#?}"
        );
        assert!(
            of("NOTIFY_TEST_REFUSED").contains("connection refused"),
            "{warnings:#?}"
        );
        assert!(
            of("NOTIFY_TEST_UNSET").contains("is not set"),
            "{warnings:#?}"
        );
        for w in &warnings {
            assert!(!w.contains("T0KEN-in-the-url"), "{w}");
            assert!(!w.contains("127.0.0.1"), "{w}");
        }
    }

    #[test]
    fn an_uninstall_reads_from_its_environment_under_its_run_id() {
        let mut n = notice(NotifyEvent::Succeeded);
        n.operation = "uninstall".into();
        n.version = None;
        n.cause = None;
        n.clusters[0].result = "uninstalled".into();
        n.clusters[0].revision = None;
        assert_eq!(
            n.slack_text(),
            "flotilla uninstall *hello* from *prod*: succeeded (run 20261201T120000Z-abcd)\n• eu: uninstalled"
        );
    }

    #[test]
    fn a_notice_body_is_scrubbed_of_secret_values() {
        crate::redact::register("notify-canary-s3cr3t");
        let mut n = notice(NotifyEvent::Failed);
        n.cause = Some("the API server echoed notify-canary-s3cr3t".into());
        for kind in [NotifyKind::Slack, NotifyKind::Webhook] {
            assert!(!n.body(kind).contains("notify-canary-s3cr3t"), "{kind:?}");
        }
    }
}
