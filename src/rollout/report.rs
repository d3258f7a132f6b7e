//! What a run did, per cluster and overall: the summary table, the JSON document, and
//! the exact commands that finish a job a run could not (a cluster unreachable while
//! rolling back).

use super::gates::GateResult;
use super::progress::seconds;
use crate::cluster::diagnosis_lines;
use serde::Serialize;
use std::time::Duration;
use tabled::{Table, Tabled};

/// A recorded revision and the run that recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionRef {
    pub revision: u32,
    pub deployment_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// Deployed and healthy, and kept.
    Deployed,
    /// Failed before changing anything (lock held, cluster unreachable).
    FailedUnchanged,
    /// Never started: the run was stopping, or a later wave.
    NotStarted,
    /// Changed by this run, then put back to its revision from before the run.
    RolledBack,
    /// Changed by this run; putting it back failed: see the command in the report.
    RollbackFailed,
    /// Changed by this run and left as it is (`on_failure: halt`), healthy.
    LeftDeployed,
    /// Changed by this run and left as it is (`on_failure: halt`), not healthy.
    LeftFailed,
    /// Its step was abandoned by a second signal: it may be half-done; see the command
    /// in the report.
    Abandoned,
}

impl RunResult {
    /// How a cluster's row reads on a terminal: red when it was not put where the run
    /// meant and needs a look.
    fn tone(self) -> Option<crate::output::Tone> {
        match self {
            RunResult::FailedUnchanged
            | RunResult::RollbackFailed
            | RunResult::LeftFailed
            | RunResult::Abandoned => Some(crate::output::Tone::Bad),
            RunResult::Deployed
            | RunResult::NotStarted
            | RunResult::RolledBack
            | RunResult::LeftDeployed => None,
        }
    }
}

impl std::fmt::Display for RunResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunResult::Deployed => "deployed",
            RunResult::FailedUnchanged => "failed (unchanged)",
            RunResult::NotStarted => "not started",
            RunResult::RolledBack => "rolled back",
            RunResult::RollbackFailed => "ROLLBACK FAILED",
            RunResult::LeftDeployed => "deployed (halt: left)",
            RunResult::LeftFailed => "FAILED (halt: left)",
            RunResult::Abandoned => "ABANDONED (second signal)",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterResult {
    /// The cluster: its kube context (docs/json.md).
    #[serde(rename = "cluster")]
    pub context: String,
    pub wave: u32,
    /// What it ran before this run (none: the release was not installed).
    pub before: Option<RevisionRef>,
    /// The revision this run recorded (a deploy, or a rollback of `rollout`).
    pub deployed: Option<u32>,
    /// The revision a restore recorded (none when it uninstalled a first install).
    pub restored: Option<u32>,
    pub result: RunResult,
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    /// Why it failed, or why its restore did; never a secret value.
    pub error: Option<String>,
    /// The command that finishes this cluster's job later, when this run could not.
    pub finish_with: Option<String>,
    /// Refused before any change for a reason of the environment (lock held,
    /// unreachable, permission denied).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// Objects a rollback kept as they are live, and why (their secrets could not be
    /// read now, and their values are never recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_live: Vec<KeptLive>,
    /// Why it failed as the cluster showed it then (pods, events, logs), gathered
    /// before any restore, so it describes the failing revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Box<crate::cluster::Diagnosis>>,
    /// The gates of its wave on this cluster (soak, verify commands), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// Deployed by an earlier part of the same deployment (`deploy --resume`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub earlier: bool,
}

/// The gate that failed the run, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedGate {
    pub cluster: String,
    /// `soak`, or `verify \`COMMAND\``.
    pub gate: String,
    pub detail: String,
    /// The command's last lines of output, scrubbed.
    pub output: Vec<String>,
}

/// An object a rollback left as it is live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptLive {
    /// `Secret ns/name`.
    pub object: String,
    pub why: String,
}

impl FailedGate {
    /// The run's cause when this gate failed it.
    pub fn cause(&self) -> String {
        format!(
            "gate {} failed on {}: {}",
            self.gate, self.cluster, self.detail
        )
    }
}

impl ClusterResult {
    /// The row of `context` in wave `wave` before anything happened there.
    pub fn new(context: &str, wave: u32) -> ClusterResult {
        ClusterResult {
            context: context.to_owned(),
            wave,
            before: None,
            deployed: None,
            restored: None,
            result: RunResult::NotStarted,
            duration: Duration::ZERO,
            error: None,
            finish_with: None,
            refused: false,
            kept_live: Vec::new(),
            diagnosis: None,
            gates: Vec::new(),
            earlier: false,
        }
    }

    /// The row of a cluster the run did not start.
    pub fn not_started(cluster: &crate::config::Cluster) -> ClusterResult {
        ClusterResult::new(&cluster.context, cluster.wave)
    }
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overall {
    Succeeded,
    /// Something failed and every changed cluster is back where it was.
    RolledBack,
    /// Something failed and some restore did not finish: see `finish_with`.
    RollbackIncomplete,
    /// Something failed and, as configured, nothing was put back.
    Halted,
    /// A cluster refused the run before anything was changed anywhere (its lease held
    /// by another run, unreachable, permission denied): nothing was changed.
    Refused,
    /// Stopped as asked after a wave (`--until-wave`), every wave so far healthy and
    /// past its gates: `deploy --resume ID` goes on with the next.
    Paused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `deploy`, `rollback`, `promote`.
    pub operation: String,
    pub release: String,
    pub environment: String,
    /// The run's own id.
    pub deployment_id: String,
    /// For a rollback: the deployment every cluster goes back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The application version the run deployed (or a rollback went back to), when
    /// the command knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub overall: Overall,
    /// Stopped by SIGINT/SIGTERM.
    pub interrupted: bool,
    /// The signal that abandoned the run (a second one): the report is partial.
    pub signal: Option<i32>,
    /// The first failure, as it was reported.
    pub cause: Option<String>,
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    pub clusters: Vec<ClusterResult>,
    /// The gate that failed the run, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_gate: Option<FailedGate>,
    /// For a run paused by `--until-wave`: the last wave it deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_after_wave: Option<u32>,
}

/// What a run is called in its report and in the commands that finish it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// `deploy`, `rollback`, `promote`.
    pub operation: String,
    pub release: String,
    /// The run's own id, recorded by every revision it writes.
    pub deployment_id: String,
    /// For a rollback: the deployment it goes back to.
    pub target: Option<String>,
}

impl Report {
    /// The report of run `info` in `environment` before any cluster is in it: a
    /// success until a row or a cause says otherwise.
    pub fn new(info: &RunInfo, environment: &str) -> Report {
        Report {
            operation: info.operation.clone(),
            release: info.release.clone(),
            environment: environment.to_owned(),
            deployment_id: info.deployment_id.clone(),
            target: info.target.clone(),
            version: None,
            overall: Overall::Succeeded,
            interrupted: false,
            signal: None,
            cause: None,
            duration: Duration::ZERO,
            clusters: Vec::new(),
            failed_gate: None,
            paused_after_wave: None,
        }
    }
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "CLUSTER")]
    cluster: String,
    #[tabled(rename = "WAVE")]
    wave: u32,
    #[tabled(rename = "REVISION")]
    revision: String,
    #[tabled(rename = "RESULT")]
    result: String,
    #[tabled(rename = "DURATION")]
    duration: String,
}

/// `1 → 2`, `1 → 2 → 3 (= 1)`: what the run did to a cluster's revision.
pub fn revision_text(c: &ClusterResult) -> String {
    let before = c
        .before
        .as_ref()
        .map_or("-".to_owned(), |b| b.revision.to_string());
    match (c.deployed, c.result) {
        (None, _) => before,
        (Some(d), RunResult::RolledBack | RunResult::RollbackFailed) => match c.restored {
            Some(r) => format!("{before} → {d} → {r} (= {before})"),
            None if c.result == RunResult::RolledBack => format!("{before} → {d} → uninstalled"),
            None => format!("{before} → {d} → ?"),
        },
        (Some(d), _) => format!("{before} → {d}"),
    }
}

impl Report {
    pub fn succeeded(&self) -> bool {
        matches!(self.overall, Overall::Succeeded | Overall::Paused)
    }

    /// Failed with nothing changed anywhere, every cluster that was tried refused for a
    /// reason of the environment (all locked, all unreachable): exit code 3, not 1.
    pub fn refused_before_any_change(&self) -> bool {
        let tried: Vec<&ClusterResult> = self
            .clusters
            .iter()
            .filter(|c| c.result != RunResult::NotStarted)
            .collect();
        !self.succeeded()
            && !tried.is_empty()
            && tried
                .iter()
                .all(|c| c.result == RunResult::FailedUnchanged && c.refused)
    }

    /// How the run ended, in a few words: the heading's, and an error's when the run
    /// recorded no cause.
    pub fn outcome(&self) -> &'static str {
        match self.overall {
            Overall::Succeeded => "succeeded",
            Overall::RolledBack => "FAILED, every changed cluster rolled back",
            Overall::RollbackIncomplete => "FAILED, rollback INCOMPLETE",
            Overall::Halted => "FAILED, clusters left as they are (on_failure: halt)",
            Overall::Refused => "REFUSED before any change, nothing was changed",
            Overall::Paused => "paused as asked (--until-wave)",
        }
    }

    pub fn table(&self) -> String {
        let rows = self.clusters.iter().map(|c| Row {
            cluster: c.context.clone(),
            wave: c.wave,
            revision: revision_text(c),
            result: c.result.to_string(),
            duration: seconds(c.duration),
        });
        let tones: Vec<_> = self.clusters.iter().map(|c| c.result.tone()).collect();
        crate::output::paint_rows(&crate::output::table_text(Table::new(rows)), &tones)
    }

    /// The table and, below it, what happened and what is left to do.
    pub fn text(&self) -> String {
        let mut run = match &self.target {
            Some(target) => format!("to deployment {target}, run {}", self.deployment_id),
            None => format!("deployment {}", self.deployment_id),
        };
        if let Some(version) = &self.version {
            run.push_str(&format!(", version {version}"));
        }
        let mut out = format!(
            "{} {} to {} ({run}): {}\n{}",
            self.operation,
            self.release,
            self.environment,
            crate::output::paint(
                self.outcome(),
                if self.succeeded() {
                    crate::output::Tone::Good
                } else {
                    crate::output::Tone::Bad
                }
            ),
            self.table()
        );
        if self.interrupted {
            out.push_str("interrupted by a signal\n");
        }
        if let Some(signal) = self.signal {
            out.push_str(&format!(
                "abandoned by a second signal ({signal}): this report is partial\n"
            ));
        }
        if let Some(cause) = &self.cause {
            out.push_str(&format!("cause: {cause}\n"));
        }
        for c in &self.clusters {
            if let (Some(err), true) = (&c.error, c.result != RunResult::Deployed) {
                if let Some(line) = self.unsaid_error(c, err) {
                    out.push_str(&format!("{}: {line}\n", c.context));
                }
            }
            for line in c.diagnosis.iter().flat_map(|d| diagnosis_lines(d)) {
                out.push_str(&format!("{}:   {line}\n", c.context));
            }
            for kept in &c.kept_live {
                out.push_str(&format!(
                    "{}: kept live {} ({})\n",
                    c.context, kept.object, kept.why
                ));
            }
        }
        if let Some(gate) = &self.failed_gate {
            if self.cause.as_deref() != Some(gate.cause().as_str()) {
                out.push_str(&format!("{}\n", gate.cause()));
            }
            if !gate.output.is_empty() {
                out.push_str(&format!("last output on {}:\n", gate.cluster));
                for line in &gate.output {
                    out.push_str(&format!("  | {line}\n"));
                }
            }
        }
        if let Some(wave) = self.paused_after_wave {
            out.push_str(&format!(
                "stopped after wave {wave} as asked; to go on with the next wave, run:\n  flotilla deploy {} --env {} --resume {}\n",
                self.release, self.environment, self.deployment_id
            ));
        }
        for line in self.now_and_next() {
            out.push_str(&line);
            out.push('\n');
        }
        let todo: Vec<&str> = self
            .clusters
            .iter()
            .filter_map(|c| c.finish_with.as_deref())
            .collect();
        if !todo.is_empty() {
            out.push_str(if self.signal.is_some() {
                "to finish the job, run:\n"
            } else {
                "to finish the job once those clusters are reachable, run:\n"
            });
            for cmd in todo {
                out.push_str(&format!("  {cmd}\n"));
            }
        }
        out
    }

    /// The cluster whose failure is the run's cause, if one is.
    pub fn failed_cluster(&self) -> Option<&str> {
        if let Some(gate) = &self.failed_gate {
            return Some(&gate.cluster);
        }
        let cause = self.cause.as_deref()?;
        self.clusters
            .iter()
            .find(|c| c.error.as_deref() == Some(cause))
            .map(|c| c.context.as_str())
    }

    /// What the text report says of a cluster's error, the cause being said once: not
    /// at all when it is the cause, and without the gate's name (a verify's whole shell
    /// line) when it failed the same gate as the cause, which names it.
    fn unsaid_error(&self, cluster: &ClusterResult, err: &str) -> Option<String> {
        if self.cause.as_deref() == Some(err) {
            return None;
        }
        let Some(failed) = &self.failed_gate else {
            return Some(err.to_owned());
        };
        let same_gate = cluster
            .gates
            .iter()
            .find(|g| !g.passed)
            .filter(|g| g.name() == failed.gate && err == g.failure());
        match same_gate {
            Some(_) if cluster.context == failed.cluster => None,
            Some(gate) => Some(format!("{} failed here too: {}", gate.gate, gate.detail)),
            None => Some(err.to_owned()),
        }
    }

    /// After a run that did not succeed: what each cluster runs now, and what to do
    /// next, in a line each.
    fn now_and_next(&self) -> Vec<String> {
        let (release, env) = (&self.release, &self.environment);
        let put_back: Vec<String> = {
            let mut ids: Vec<String> = self
                .clusters
                .iter()
                .filter(|c| c.result == RunResult::RolledBack)
                .map(|c| match &c.before {
                    Some(before) => format!("deployment {}", before.deployment_id),
                    None => "uninstalled".to_owned(),
                })
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let left: Vec<&str> = self
            .clusters
            .iter()
            .filter(|c| matches!(c.result, RunResult::LeftDeployed | RunResult::LeftFailed))
            .map(|c| c.context.as_str())
            .collect();
        let status =
            format!("`flotilla status {release} --env {env}` shows every cluster's health");
        match self.overall {
            Overall::Succeeded | Overall::Paused => Vec::new(),
            Overall::RolledBack => vec![
                format!(
                    "now running: what ran before this run, in every cluster it changed ({}); the others were not touched",
                    if put_back.is_empty() { "none".to_owned() } else { put_back.join(", ") }
                ),
                format!("next: fix the cause above, then run it again; {status}"),
            ],
            Overall::Halted => vec![
                format!(
                    "now running: this run's revision, as it is, in {} (on_failure: halt)",
                    if left.is_empty() { "no cluster".to_owned() } else { left.join(", ") }
                ),
                format!(
                    "next: `flotilla rollback {release} --env {env}` puts every cluster back on the last complete deployment; {status}"
                ),
            ],
            Overall::RollbackIncomplete => vec![
                "now running: what ran before in the clusters put back; the others as the table says".to_owned(),
                format!("next: run the commands below once those clusters answer; {status}"),
            ],
            Overall::Refused => vec![
                "now running: what ran before, everywhere: nothing was changed".to_owned(),
                "next: fix the cause above (or wait for the run that holds the lock), then run it again".to_owned(),
            ],
        }
    }

    pub fn json(&self) -> String {
        // Plain data: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Diagnosis, EventNote, FailingPod};

    fn failed_report() -> Report {
        let diagnosis = Diagnosis {
            pods: vec![FailingPod {
                namespace: "ns".into(),
                pod: "hello-web-7d9-x2".into(),
                container: "web".into(),
                reason: "ImagePullBackOff".into(),
                message: None,
                restarts: 0,
                logs: Vec::new(),
                logs_unavailable: Some("not served by the API server (500): no kubelet".into()),
            }],
            events: vec![EventNote {
                object: "Pod ns/hello-web-7d9-x2".into(),
                kind: "Warning".into(),
                reason: "Failed".into(),
                message: "Error: ImagePullBackOff".into(),
                count: 2,
                last_seen: None,
            }],
            note: None,
        };
        let info = RunInfo {
            operation: "deploy".into(),
            release: "hello".into(),
            deployment_id: "d2".into(),
            target: None,
        };
        Report {
            overall: Overall::RolledBack,
            cause: Some("pull".into()),
            duration: Duration::from_secs(3),
            clusters: vec![ClusterResult {
                before: Some(RevisionRef {
                    revision: 1,
                    deployment_id: "d1".into(),
                }),
                deployed: Some(2),
                restored: Some(3),
                result: RunResult::RolledBack,
                error: Some("cluster `eu`: Deployment ns/hello-web failed".into()),
                diagnosis: Some(Box::new(diagnosis)),
                duration: Duration::from_secs(2),
                ..ClusterResult::new("eu", 0)
            }],
            ..Report::new(&info, "prod")
        }
    }

    #[test]
    fn a_failed_cluster_shows_its_diagnosis_under_its_error() {
        let text = failed_report().text();
        assert!(
            text.contains(
                "eu: cluster `eu`: Deployment ns/hello-web failed\n\
                 eu:   pod ns/hello-web-7d9-x2 container web: ImagePullBackOff, 0 restarts\n\
                 eu:     logs: not served by the API server (500): no kubelet\n\
                 eu:   events:\n\
                 eu:     Warning Pod ns/hello-web-7d9-x2 Failed: Error: ImagePullBackOff (x2)\n"
            ),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&failed_report().json()).unwrap();
        let d = &json["clusters"][0]["diagnosis"];
        assert_eq!(d["pods"][0]["pod"], "hello-web-7d9-x2");
        assert_eq!(d["pods"][0]["reason"], "ImagePullBackOff");
        assert_eq!(d["pods"][0]["restarts"], 0);
        assert_eq!(d["events"][0]["type"], "Warning");
    }

    #[test]
    fn the_cause_is_said_once_with_the_version_and_what_runs_now_and_next() {
        let mut report = failed_report();
        report.version = Some("2.4.0".into());
        report.cause = Some("cluster `eu`: Deployment ns/hello-web failed".into());
        let text = report.text();
        assert_eq!(
            text.matches("Deployment ns/hello-web failed").count(),
            1,
            "{text}"
        );
        assert!(
            text.starts_with("deploy hello to prod (deployment d2, version 2.4.0): FAILED"),
            "{text}"
        );
        // The diagnosis is still under the cluster's name.
        assert!(text.contains("eu:   pod ns/hello-web-7d9-x2"), "{text}");
        assert!(
            text.contains("now running: what ran before this run, in every cluster it changed (deployment d1)"),
            "{text}"
        );
        assert!(
            text.contains(
                "next: fix the cause above, then run it again; `flotilla status hello --env prod`"
            ),
            "{text}"
        );
        report.overall = Overall::Halted;
        report.clusters[0].result = RunResult::LeftFailed;
        let text = report.text();
        assert!(
            text.contains("now running: this run's revision, as it is, in eu (on_failure: halt)")
                && text.contains("next: `flotilla rollback hello --env prod`"),
            "{text}"
        );
    }
}
