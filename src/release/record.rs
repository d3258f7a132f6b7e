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
use std::fmt;

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
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Deployed => "deployed",
            Status::Failed => "failed",
            Status::Superseded => "superseded",
            Status::RolledBack => "rolled-back",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Deployed,
            Status::Failed,
            Status::Superseded,
            Status::RolledBack,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl Status {
    /// Whether a revision in this state was healthy once: what a deployment id may be
    /// found as, and what a rollback may go back to.
    pub fn was_healthy(self) -> bool {
        matches!(
            self,
            Status::Deployed | Status::Superseded | Status::RolledBack
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

/// One revision of one release in one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: Status,
    pub operation: Operation,
    /// Shared by every cluster of one `deploy` run; what `rollback --to` names.
    pub deployment_id: String,
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
    /// `user@host`, as the lock holder is written.
    pub user: String,
    pub host: String,
    /// Why it failed, or other notes for `history`; never a secret value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
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
