//! The release record type: what one revision of a release in one cluster was (rendered
//! manifest, values without secret values, versions, deployment id, status, who and when).
//!
//! Must not: talk to a cluster or encode itself for storage (that is [`crate::storage`]).
//!
//! Secret values are *removed*, not encrypted: MISSION.md settles that a rollback reads
//! secrets afresh from Vault, so a credential rotated since must not come back, and an
//! encrypted copy would only be a second place to leak or to rotate keys for. The
//! rendered manifest is stored with the data of `Secret` objects replaced by a digest
//! (see [`redact_manifest`]); a rollback re-renders nothing: it re-applies the manifest
//! with the secret objects taken from what is live or from a fresh Vault read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
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

/// The digest that replaces a secret value in stored manifests: enough to tell a drift
/// or a change, useless to recover the value.
pub fn redacted(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("<redacted sha256:{hex}>")
}

pub fn is_redacted(text: &str) -> bool {
    text.starts_with("<redacted sha256:") && text.ends_with('>')
}

/// Whether a manifest object is a core `Secret` (whose data never goes into a record).
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// A copy of the manifest with every `Secret`'s `data` and `stringData` values replaced
/// by [`redacted`] digests.
pub fn redact_manifest(manifest: &[Value]) -> Vec<Value> {
    manifest
        .iter()
        .map(|object| {
            let mut object = object.clone();
            if is_secret(&object) {
                redact_secret_object(&mut object);
            }
            object
        })
        .collect()
}

/// Replaces, in place, every value of a `Secret` object's `data` and `stringData`.
/// `stringData` is first folded into `data` (base64), as the API server does, so the
/// digests of a recorded Secret and of the live one compare equal when the values do.
pub fn redact_secret_object(object: &mut Value) {
    use base64::Engine;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(data) = data {
            for (key, value) in strings {
                let text = value.as_str().unwrap_or_default();
                let folded = if is_redacted(text) {
                    text.to_owned()
                } else {
                    base64::engine::general_purpose::STANDARD.encode(text)
                };
                data.insert(key, Value::String(folded));
            }
        }
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        for value in data.values_mut() {
            let text = value.as_str().unwrap_or_default().to_owned();
            // Idempotent: a recorded manifest is redacted already.
            if !is_redacted(&text) {
                *value = Value::String(redacted(&text));
            }
        }
    }
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
    fn secret_data_is_redacted_and_other_objects_kept() {
        let manifest = vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0ps3cret"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"password": "not-a-secret"}}),
        ];
        let stored = redact_manifest(&manifest);
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains("aHVudGVyMg=="));
        assert!(!text.contains("t0ps3cret"));
        assert_eq!(stored[1], manifest[1]);
        // stringData is folded into data as the API server does: same digest as live.
        assert_eq!(stored[0]["data"]["token"], json!(redacted("dDBwczNjcmV0")));
        assert!(stored[0].get("stringData").is_none());
        assert_eq!(
            stored[0]["data"]["password"],
            json!(redacted("aHVudGVyMg=="))
        );
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
