//! The release record type: what one revision of a release in one cluster was (rendered
//! manifest, values without secret values, versions, deployment id, status, who and when).
//!
//! Secret values are *removed*, not encrypted: a rollback reads secrets afresh from
//! Vault (docs/design.md), so a credential rotated since must not come back, and an
//! encrypted copy would only be a second place to leak or to rotate keys for. The
//! rendered manifest is stored with the data of `Secret` objects replaced by a digest
//! (see [`redact_manifest`]); a rollback re-renders nothing: it re-applies the manifest
//! with the secret objects taken from what is live or from a fresh Vault read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Where a promoted revision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The environment promoted from.
    pub environment: String,
    /// The deployment id every cluster of that environment ran healthy.
    pub deployment_id: String,
}

/// Where a revision stands. Stored as a label too, so listing by status needs no decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Being applied; left behind by a run that was killed, repaired by the next one.
    Pending,
    /// The live revision.
    Deployed,
    /// Applied but not healthy (or the apply itself failed).
    Failed,
    /// Was deployed, replaced by a later deploy.
    Superseded,
    /// Was deployed, replaced by a rollback to an earlier revision.
    RolledBack,
    /// Was deployed; the release was removed by `uninstall --keep-history`, which kept
    /// its records so that a rollback can bring it back.
    Uninstalled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Deployed => "deployed",
            Status::Failed => "failed",
            Status::Superseded => "superseded",
            Status::RolledBack => "rolled-back",
            Status::Uninstalled => "uninstalled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Deployed,
            Status::Failed,
            Status::Superseded,
            Status::RolledBack,
            Status::Uninstalled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What renders a revision again without the checkout, besides the record's values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSource {
    /// The chart's files by path inside its folder (`Chart.yaml`, `templates/web.yaml`).
    pub chart: BTreeMap<String, String>,
    /// Where each secret of this cluster was read (never its value).
    pub secrets: Vec<SecretSource>,
    /// The descriptor's `spec.values` as deployed: with `chart`, the version and
    /// `command_line`, the environment-independent part of the values (the
    /// [`Artifact`](super::Artifact)). `None` in records written before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
    /// The command-line values of the deploy (`--set`), merged into one map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<Value>,
    /// The artifact digest (chart files and environment-independent values): what
    /// promotion chains compare. Empty in records written before this field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact: String,
    /// Set when the revision was deployed by `promote`: from which environment and
    /// deployment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<Promotion>,
    /// A Helm chart's: what `helm template` was given besides files and values. Its
    /// presence is what makes the recorded chart a Helm chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// A revision taken over from another tool (`helm/<release>/<revision>`): there is
    /// no chart to render it again; its recorded objects are what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<String>,
    /// A chart by reference: its registry or repository, version and package digest, so
    /// that `promote` takes exactly that package and a tag moved under the version is
    /// told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::engine::ChartOrigin>,
}

/// What renders a Helm chart's revision again as it was rendered: the cluster's
/// `.Capabilities` then, and the chart's files that are not text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// `--kube-version` (`v1.37.2`).
    pub kube_version: String,
    /// Every `--api-versions`.
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// Packed subcharts (`charts/db-1.2.0.tgz`), base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_files: BTreeMap<String, String>,
}

/// Where one secret was read for one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    pub secret_id: String,
    /// The path as the descriptor rendered it, mount included (`kv/prod/app1/db`).
    pub path: String,
    /// The same path under the KV mount (`prod/app1/db`).
    pub relative: String,
    pub key: String,
    /// The KV engine version of the mount (1 or 2).
    pub kv_version: u8,
    /// KV v2: the pinned version read; `None` reads the latest again (a credential
    /// rotated since must not come back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl ReleaseRecord {
    /// The deployment whose content this revision runs: the one it restores, else its
    /// own.
    pub fn content_id(&self) -> &str {
        self.restores.as_deref().unwrap_or(&self.deployment_id)
    }

    /// Whether this revision was written by the deploy of its deployment id (not by a
    /// rollback that restored another one).
    pub fn is_deploy(&self) -> bool {
        self.operation != Operation::Rollback
    }
}

/// The content digest of a revision: its manifest as recorded (secret data redacted),
/// the application version and the chart, so that a CI re-run of the same commit is
/// recognised as the same content.
pub fn content_digest(manifest: &[Value], app_version: &str, chart: &ChartRef) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    // Objects are serialised as they are recorded (key order preserved), which is
    // stable for one chart and values.
    for object in manifest {
        hasher.update(object.to_string().as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(app_version.as_bytes());
    hasher.update(b"\n");
    hasher.update(chart.name.as_bytes());
    hasher.update(b"\n");
    hasher.update(chart.version.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Status {
    /// Whether a revision in this state was healthy once: what a deployment id may be
    /// found as, and what a rollback may go back to.
    pub fn was_healthy(self) -> bool {
        matches!(
            self,
            Status::Deployed | Status::Superseded | Status::RolledBack | Status::Uninstalled
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a revision exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Install,
    Upgrade,
    /// Re-applies the objects of `ReleaseRecord::rollback_of`.
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartRef {
    pub name: String,
    pub version: String,
}

/// Where a run asked to stop (`deploy --until-wave N`): a deployment whose clusters of
/// waves up to `wave` all recorded it healthy is partial by request, and `deploy
/// --resume` goes on with the next wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UntilWave {
    pub wave: u32,
    /// The kube contexts of the waves up to `wave`.
    pub clusters: Vec<String>,
}

/// One revision of one release in one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: Status,
    pub operation: Operation,
    /// The run that recorded this revision, shared by every cluster of that run: a
    /// `deploy` (what `rollback --to` names), or the `rollback` that restored it.
    pub deployment_id: String,
    /// For a rollback: the deployment id whose content it re-applies. Records written
    /// before this field carried that id as their `deployment_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<String>,
    /// The kube contexts the run targeted: a deployment id is complete when every one of
    /// them recorded it healthy. Empty in records written before this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// The run was asked to stop after a wave (`deploy --until-wave`): that wave and
    /// the clusters of it and of every wave before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_wave: Option<UntilWave>,
    /// What the revision puts in the cluster, as a digest of its manifest (secret data
    /// redacted), application and chart version: equal digests, equal content. Empty in
    /// records written before this field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// What renders this revision again without the checkout: the chart and where each
    /// secret was read. `None` in records written before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RevisionSource>,
    pub chart: ChartRef,
    /// The application version (`spec.version` of the descriptor).
    pub app_version: String,
    /// The objects as applied (before our labels), `Secret` data redacted.
    pub manifest: Vec<Value>,
    /// Identities of the objects as applied (namespace filled in): what prune and
    /// uninstall look for.
    #[serde(default)]
    pub objects: Vec<crate::cluster::ObjectRef>,
    /// Merged values with `Values.secrets` removed.
    pub values: Value,
    /// For a rollback: the revision whose objects it re-applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u32>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// When the revision was recorded healthy (`deployed`); with `updated` of a
    /// `superseded` revision, how long it ran healthy. `None` in records written before
    /// this field and in revisions that never became healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_at: Option<DateTime<Utc>>,
    /// `user@host`, as the lock holder is written.
    pub user: String,
    pub host: String,
    /// Why it failed, or other notes for `history`; never a secret value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// From where and with what the run was made. `None` in records written before
    /// this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,
    /// `hmac-sha256:<hex>`: the keyed digest of what the record renders, reads and
    /// applies, made with the environment's `vault.record_key`
    /// ([`RecordKey`](super::RecordKey)), so that whoever may write Secrets in the
    /// namespace but not read that key cannot forge a record. Empty when the
    /// environment names no key, and in records written before this field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The revision's Helm hooks (`engine::hooks`), as recorded: never objects of the
    /// release (not in `objects`, never pruned), kept so that a rollback to this
    /// revision runs its `pre-rollback` and `post-rollback` hooks. Empty in records of
    /// charts without hooks and in records written before this field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<RecordedHook>,
    /// Set by the run that marked this revision `superseded` (or `rolled-back`), in
    /// the same round trip as that run's own `deployed` record, not after it: the
    /// revision that run wrote, and the status this one had. The mark counts once that
    /// revision is recorded healthy; one that never was (its run lost before its
    /// `deployed` record landed) leaves this one as it was ([`super::History::new`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
    /// Where the run's minutes went in this cluster, in order (what the dashboard
    /// draws on a time axis). Written with the outcome, so not covered by the MAC;
    /// empty in records written before this field and in a run killed before its end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseTime>,
}

/// Which revision replaced a revision, and what the replaced one was before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    pub by: u32,
    pub was: Status,
}

/// A part of a run in one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// From the run's first connection to a cluster until this cluster's first
    /// change: secrets read, clusters connected, the release rendered, the lease.
    Prepare,
    /// The hooks before the apply and the apply.
    Apply,
    /// The health wait (and the hooks after it), until healthy or failed.
    Wait,
    Soak,
    Verify,
    /// A restore: back to a recorded revision.
    Restore,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Apply => "apply",
            Phase::Wait => "wait",
            Phase::Soak => "soak",
            Phase::Verify => "verify",
            Phase::Restore => "restore",
        }
    }
}

/// When one phase of a run started and ended in one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub phase: Phase,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
}

/// One Helm hook of a revision as its record keeps it: what the annotations say, and
/// the object as recorded (secret data redacted, every field a secret changes a
/// digest, as the release's objects are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedHook {
    #[serde(flatten)]
    pub hook: crate::engine::Hook,
    pub manifest: Value,
}

/// From where a run was made, besides `user` and `host`: the deployment repo's git
/// state, the CI job, the flotilla version. Every field is optional, so records from
/// anywhere (a laptop outside git, a CI flotilla does not know) still say what is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// The version of flotilla that wrote the record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flotilla_version: String,
    /// The commit checked out in the deployment repo (CI's variable where git has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// Its branch: git's, else CI's (a CI checkout is often a detached HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    /// Whether the working tree had changes not committed (what ran is not the commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
    /// The CI job that ran flotilla (GitHub Actions, GitLab CI, Jenkins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job_url: Option<String>,
    /// Who CI ran it for (the user who pushed or started the job), when CI says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_actor: Option<String>,
    /// The freeze this run went through with `--override-freeze`, and the reason given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_override: Option<String>,
}

/// Values as stored: `secrets` (resolved from Vault) removed.
pub fn values_without_secrets(values: &Value) -> Value {
    let mut values = values.clone();
    if let Value::Object(map) = &mut values {
        map.remove("secrets");
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_of_the_first_format_still_reads() {
        // As written before restores, targets, digest and source existed: a restore then
        // carried the id of the deployment it brought back.
        let old = json!({
            "name": "hello", "namespace": "ns", "revision": 3, "status": "deployed",
            "operation": "rollback", "deploymentId": "20261101T000000Z-aaaa",
            "chart": {"name": "hello", "version": "0.1.0"}, "appVersion": "1.0.0",
            "manifest": [], "objects": [], "values": {"log": "info"}, "rollbackOf": 1,
            "created": "2026-11-01T00:00:00Z", "updated": "2026-11-01T00:00:00Z",
            "user": "ci", "host": "runner"
        });
        let record: ReleaseRecord = serde_json::from_value(old).unwrap();
        assert_eq!(record.content_id(), "20261101T000000Z-aaaa");
        assert_eq!(record.audit, None);
        assert!(record.targets.is_empty() && record.digest.is_empty());
        assert!(record.source.is_none() && record.restores.is_none());
        assert!(record.healthy_at.is_none() && record.artifact().is_none());
        assert!(!record.is_deploy());
        // Written again, it reads the same.
        let again: ReleaseRecord =
            serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn a_record_with_a_source_but_no_artifact_still_reads_and_new_fields_round_trip() {
        // As written before the artifact, its values, provenance and healthy_at existed.
        let old = json!({
            "name": "hello", "namespace": "ns", "revision": 2, "status": "superseded",
            "operation": "upgrade", "deploymentId": "20261101T000000Z-bbbb",
            "digest": "sha256:00",
            "source": {"chart": {"Chart.yaml": "name: hello\nversion: 0.1.0\n"}, "secrets": []},
            "chart": {"name": "hello", "version": "0.1.0"}, "appVersion": "1.0.0",
            "manifest": [], "objects": [], "values": {},
            "created": "2026-11-01T00:00:00Z", "updated": "2026-11-01T00:00:00Z",
            "user": "ci", "host": "runner"
        });
        let mut record: ReleaseRecord = serde_json::from_value(old).unwrap();
        assert!(
            record.artifact().is_none(),
            "no spec.values recorded: no artifact"
        );
        assert_eq!(record.artifact_digest(), "");
        assert!(record.promoted_from().is_none() && record.healthy_at.is_none());
        let source = record.source.as_mut().unwrap();
        source.values = Some(json!({"log": "info"}));
        source.artifact = "sha256:11".into();
        source.promoted_from = Some(super::super::Promotion {
            environment: "dev".into(),
            deployment_id: "20261101T000000Z-aaaa".into(),
        });
        record.healthy_at = Some(record.updated);
        let text = serde_json::to_string(&record).unwrap();
        assert!(
            text.contains("\"promotedFrom\":{\"environment\":\"dev\""),
            "{text}"
        );
        let again: ReleaseRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(again, record);
        let artifact = again.artifact().unwrap();
        assert_eq!(
            (artifact.version.as_str(), artifact.command_line),
            ("1.0.0", Value::Null)
        );
    }

    #[test]
    fn a_record_with_audit_fields_round_trips_and_a_partial_one_reads() {
        let mut record: ReleaseRecord = serde_json::from_value(json!({
            "name": "hello", "namespace": "ns", "revision": 1, "status": "deployed",
            "operation": "install", "deploymentId": "20261101T000000Z-aaaa",
            "chart": {"name": "hello", "version": "0.1.0"}, "appVersion": "1.0.0",
            "manifest": [], "values": {},
            "created": "2026-11-01T00:00:00Z", "updated": "2026-11-01T00:00:00Z",
            "user": "ci", "host": "runner",
            "audit": {"gitCommit": "abc123"}
        }))
        .unwrap();
        let partial = record.audit.clone().unwrap();
        assert_eq!(partial.git_commit.as_deref(), Some("abc123"));
        assert_eq!(partial.flotilla_version, "");
        assert_eq!(partial.git_dirty, None);
        record.audit = Some(Audit {
            flotilla_version: "0.1.0".into(),
            git_commit: Some("abc123".into()),
            git_branch: Some("main".into()),
            git_dirty: Some(false),
            ci_job_url: Some("https://ci.example/job/1".into()),
            ci_actor: Some("alice".into()),
            freeze_override: None,
        });
        let text = serde_json::to_string(&record).unwrap();
        assert!(
            text.contains("\"ciJobUrl\":\"https://ci.example/job/1\""),
            "{text}"
        );
        let again: ReleaseRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(again, record);
    }

    #[test]
    fn equal_content_has_equal_digests() {
        let chart = ChartRef {
            name: "hello".into(),
            version: "0.1.0".into(),
        };
        let manifest = vec![json!({"kind": "ConfigMap", "data": {"a": "1"}})];
        let digest = content_digest(&manifest, "1.0", &chart);
        assert_eq!(digest, content_digest(&manifest.clone(), "1.0", &chart));
        assert_ne!(digest, content_digest(&manifest, "1.1", &chart));
        let other = vec![json!({"kind": "ConfigMap", "data": {"a": "2"}})];
        assert_ne!(digest, content_digest(&other, "1.0", &chart));
    }

    #[test]
    fn status_round_trips_through_its_label_text() {
        for status in [Status::Pending, Status::RolledBack, Status::Deployed] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("pending-upgrade"), None);
    }

    #[test]
    fn values_lose_their_secrets() {
        let values = json!({"secrets": {"db-password": "x"}, "log": {"level": "info"}});
        assert_eq!(
            values_without_secrets(&values),
            json!({"log": {"level": "info"}})
        );
    }
}
