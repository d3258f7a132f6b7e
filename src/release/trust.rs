//! Whether a record may be acted on. Records are Secrets in the release's namespace:
//! whoever may write Secrets there may rewrite them, and `promote` and `rollback` act
//! on them with CI's or the on-call's credentials (docs/design.md, "Records are
//! evidence, not code"). Two checks, without I/O:
//! - the digests a record carries are recomputed from its own content (its manifest,
//!   version and chart; its artifact): a record edited without recomputing them is
//!   refused;
//! - its keyed digest (`mac`, HMAC-SHA256 with the environment's `vault.record_key`)
//!   is checked: a record edited by someone who cannot read that key is refused, even
//!   with its plain digests recomputed.
//!
//! The Vault paths a record reads are checked by the caller, against the environment's
//! KV mount and the release's mappings (`vault::check_recorded_path`).

use super::artifact::canonical;
use super::{content_digest, ReleaseRecord};
use serde_json::Value;
use std::fmt;

const MAC_PREFIX: &str = "hmac-sha256:";

/// The fields a run changes after it wrote a record (its outcome, timestamps, notes,
/// and the object identities as the server resolved them), and the MAC itself: the
/// only ones the MAC does not cover. Every other field, present or future, is covered.
const NOT_SIGNED: &[&str] = &[
    "status",
    "updated",
    "healthyAt",
    "description",
    "objects",
    "mac",
    "replaced",
];

/// The key of an environment's record MACs, read from Vault (`vault.record_key`). Its
/// bytes never leave this type but into the HMAC; `Debug` names only where it is kept.
pub struct RecordKey {
    environment: String,
    origin: String,
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKey")
            .field("environment", &self.environment)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl RecordKey {
    /// The key of `environment`'s records, kept at `origin` (`kv/flotilla/prod/record-key#hmac`).
    pub fn new(environment: &str, origin: &str, key: &[u8]) -> RecordKey {
        RecordKey {
            environment: environment.to_owned(),
            origin: origin.to_owned(),
            key: zeroize::Zeroizing::new(key.to_vec()),
        }
    }

    /// Where the key is kept in Vault, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The MAC of `record` as written in the cluster `context` of this key's
    /// environment: bound to both, so a record copied to another cluster or another
    /// environment's namespace does not verify there.
    pub fn sign(&self, record: &ReleaseRecord, context: &str) -> String {
        let message = signed_content(record, &self.environment, context);
        format!(
            "{MAC_PREFIX}{}",
            crate::engine::helpers::hmac_sha256_hex(&self.key, &message)
        )
    }

    fn verifies(&self, record: &ReleaseRecord, context: &str) -> bool {
        let expected = self.sign(record, context);
        // Compared in constant time: the MAC is what an attacker would guess byte by byte.
        expected.len() == record.mac.len()
            && expected
                .bytes()
                .zip(record.mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// What the MAC covers: the record without [`NOT_SIGNED`], keys sorted, with the
/// environment and the cluster it was written in.
fn signed_content(record: &ReleaseRecord, environment: &str, context: &str) -> Vec<u8> {
    // Signed as a cluster gives it back (decoded from its JSON), so that what serde
    // reads differently from what it was given (an optional layer written `null`
    // reads as absent) signs alike on both sides. A record is plain data with string
    // keys: it always serialises.
    let written = serde_json::to_value(record).unwrap_or(Value::Null);
    let mut value = serde_json::from_value::<ReleaseRecord>(written.clone())
        .and_then(serde_json::to_value)
        .unwrap_or(written);
    if let Value::Object(map) = &mut value {
        for field in NOT_SIGNED {
            map.remove(*field);
        }
    }
    serde_json::json!({
        "flotillaRecordMac": 1,
        "environment": environment,
        "context": context,
        "record": canonical(&value),
    })
    .to_string()
    .into_bytes()
}

/// What is wrong with a record before anything may use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordTrust {
    /// Digests that do not match the content they are recomputed from: the record was
    /// changed after it was written. Always refused.
    pub content: Vec<String>,
    /// The MAC is missing or does not verify with the environment's key (only asked
    /// when there is a key).
    pub signature: Option<String>,
}

impl RecordTrust {
    pub fn is_clean(&self) -> bool {
        self.content.is_empty() && self.signature.is_none()
    }

    /// Every problem, content first, each prefixed with `what` (the record named).
    pub fn problems(&self, what: &str) -> Vec<String> {
        self.content
            .iter()
            .chain(&self.signature)
            .map(|p| format!("{what}: {p}"))
            .collect()
    }
}

/// `revision 4 of hello (deployment 20261207T…) in cluster dev-1`: how a refusal names
/// a record.
pub fn describe_record(record: &ReleaseRecord, context: &str) -> String {
    format!(
        "revision {} of {} (deployment {}) in cluster {context}",
        record.revision, record.name, record.deployment_id
    )
}

/// Why `record`'s content digest (what tells one revision's content from another's) is
/// not the digest of its manifest, version and chart, if it is not.
pub fn content_digest_problem(record: &ReleaseRecord) -> Option<String> {
    if record.digest.is_empty() {
        return None;
    }
    let computed = content_digest(&record.manifest, &record.app_version, &record.chart);
    (computed != record.digest).then(|| {
        format!(
            "its content digest says {} but its manifest, version and chart hash to {computed}: the record was changed after it was written",
            record.digest
        )
    })
}

/// Checks `record`, read in the cluster `context`: its digests recomputed from its
/// content, and its MAC when the environment has a `key`.
pub fn check_record(record: &ReleaseRecord, context: &str, key: Option<&RecordKey>) -> RecordTrust {
    let mut trust = RecordTrust::default();
    trust.content.extend(content_digest_problem(record));
    let recorded = record.artifact_digest();
    if !recorded.is_empty() {
        if let Some(artifact) = record.artifact() {
            let computed = artifact.digest();
            if computed != recorded {
                trust.content.push(format!(
                    "its artifact digest says {recorded} but its chart files, version and values hash to {computed}: the record was changed after it was written"
                ));
            }
        }
    }
    if let Some(key) = key {
        trust.signature = if record.mac.is_empty() {
            Some(format!(
                "it is not signed (written before vault.record_key was set, by a rollback that could not read {}, or its mac was removed)",
                key.origin()
            ))
        } else if !key.verifies(record, context) {
            Some(format!(
                "its keyed digest (mac) does not verify with {}: the record was changed after it was written, copied from elsewhere, or signed with another key",
                key.origin()
            ))
        } else {
            None
        };
    }
    trust
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::{RevisionSource, SecretSource, Status};
    use serde_json::json;
    use std::collections::BTreeMap;

    const CONTEXT: &str = "dev-1";

    type Edit = fn(&mut ReleaseRecord);

    fn key() -> RecordKey {
        RecordKey::new(
            "dev",
            "kv/flotilla/dev/record-key#hmac",
            b"a key nobody guesses",
        )
    }

    /// A record as a deploy writes it: digests computed from its content, signed.
    fn written() -> ReleaseRecord {
        let mut r = record(4, "d4", Status::Deployed);
        r.manifest = vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "config"}, "data": {"a": "1"}})];
        r.values = json!({"log": "info"});
        r.digest = content_digest(&r.manifest, &r.app_version, &r.chart);
        r.source = Some(RevisionSource {
            chart: BTreeMap::from([(
                "templates/config.yaml".to_owned(),
                "kind: ConfigMap\n".to_owned(),
            )]),
            secrets: vec![SecretSource {
                secret_id: "db".into(),
                path: "kv/dev/hello/db".into(),
                relative: "dev/hello/db".into(),
                key: "password".into(),
                kv_version: 1,
                version: None,
            }],
            values: Some(json!({"log": "info"})),
            ..RevisionSource::default()
        });
        let artifact = r.artifact().unwrap().digest();
        r.source.as_mut().unwrap().artifact = artifact;
        r.mac = key().sign(&r, CONTEXT);
        r
    }

    /// The record as a cluster gives it back: through its JSON.
    fn stored(r: &ReleaseRecord) -> ReleaseRecord {
        serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap()
    }

    #[test]
    fn an_untampered_record_passes_and_its_outcome_may_change() {
        let r = stored(&written());
        assert!(check_record(&r, CONTEXT, Some(&key())).is_clean());
        // What later runs change (superseded, timestamps, notes, identities) is not
        // signed.
        let mut later = r.clone();
        later.status = Status::Superseded;
        later.updated = chrono::Utc::now();
        later.healthy_at = Some(later.updated);
        later.description = "repaired".into();
        later.objects.clear();
        assert!(check_record(&stored(&later), CONTEXT, Some(&key())).is_clean());
        // Without a key only the digests are asked.
        let mut unsigned = r;
        unsigned.mac.clear();
        assert!(check_record(&unsigned, CONTEXT, None).is_clean());
    }

    #[test]
    fn a_tampered_chart_is_refused_by_its_artifact_digest_and_its_mac() {
        let mut r = written();
        let source = r.source.as_mut().unwrap();
        source.chart.insert(
            "templates/zz-admin.yaml".into(),
            "kind: ClusterRoleBinding\n".into(),
        );
        let trust = check_record(&stored(&r), CONTEXT, Some(&key()));
        assert_eq!(trust.content.len(), 1, "{trust:?}");
        assert!(trust.content[0].contains("its artifact digest says sha256:"));
        assert!(trust.signature.unwrap().contains("does not verify"));
        // Without a key, the digest alone refuses it.
        assert!(!check_record(&r, CONTEXT, None).content.is_empty());
    }

    #[test]
    fn a_tampered_record_with_digests_recomputed_is_refused_by_its_mac() {
        let mut r = written();
        r.source.as_mut().unwrap().chart.insert(
            "templates/zz-admin.yaml".into(),
            "kind: ClusterRoleBinding\n".into(),
        );
        let artifact = r.artifact().unwrap().digest();
        r.source.as_mut().unwrap().artifact = artifact;
        let trust = check_record(&r, CONTEXT, Some(&key()));
        assert!(trust.content.is_empty(), "{trust:?}");
        assert!(trust.signature.is_some());
        // Nor does a MAC made with another key, or for another cluster, verify.
        let other = RecordKey::new("dev", "elsewhere", b"a guess");
        r.mac = other.sign(&r, CONTEXT);
        assert!(check_record(&r, CONTEXT, Some(&key())).signature.is_some());
        let r = written();
        assert!(check_record(&r, "dev-2", Some(&key())).signature.is_some());
        let prod = RecordKey::new(
            "prod",
            "kv/flotilla/dev/record-key#hmac",
            b"a key nobody guesses",
        );
        assert!(check_record(&r, CONTEXT, Some(&prod)).signature.is_some());
    }

    #[test]
    fn every_rendered_or_read_field_is_covered_by_the_mac() {
        let edits: Vec<(&str, Edit)> = vec![
            ("vault path", |r| {
                r.source.as_mut().unwrap().secrets[0].path = "kv/other-team/db".into()
            }),
            ("vault key", |r| {
                r.source.as_mut().unwrap().secrets[0].key = "root".into()
            }),
            ("values", |r| r.values = json!({"log": "debug"})),
            ("spec.values", |r| {
                r.source.as_mut().unwrap().values = Some(json!({"log": "debug"}))
            }),
            ("command line", |r| {
                r.source.as_mut().unwrap().command_line = Some(json!({"x": 1}))
            }),
            ("version", |r| r.app_version = "v9".into()),
            ("deployment id", |r| r.deployment_id = "other".into()),
            ("revision", |r| r.revision = 9),
            ("namespace", |r| r.namespace = "other".into()),
            ("release", |r| r.name = "other".into()),
            ("restores", |r| r.restores = Some("d1".into())),
            ("helm", |r| {
                r.source.as_mut().unwrap().helm = Some(Default::default())
            }),
        ];
        for (what, edit) in edits {
            let mut r = written();
            edit(&mut r);
            assert!(
                check_record(&stored(&r), CONTEXT, Some(&key()))
                    .signature
                    .is_some(),
                "{what}"
            );
        }
        // The manifest too, and its content digest says so without a key.
        let mut r = written();
        r.manifest[0]["data"]["a"] = json!("2");
        let trust = check_record(&r, CONTEXT, None);
        assert!(
            trust.content[0].contains("its content digest says"),
            "{trust:?}"
        );
        assert!(check_record(&r, CONTEXT, Some(&key())).signature.is_some());
    }

    #[test]
    fn an_unsigned_record_is_named_as_such_and_the_key_is_never_shown() {
        let mut r = written();
        r.mac.clear();
        let trust = check_record(&r, CONTEXT, Some(&key()));
        let problems = trust.problems(&describe_record(&r, CONTEXT));
        assert_eq!(
            problems,
            ["revision 4 of hello (deployment d4) in cluster dev-1: it is not signed (written before vault.record_key was set, by a rollback that could not read kv/flotilla/dev/record-key#hmac, or its mac was removed)"]
        );
        let shown = format!("{:?} {:?}", key(), written());
        assert!(!shown.contains("a key nobody guesses"), "{shown}");
    }
}
