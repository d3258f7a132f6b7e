//! Releases as recorded in a cluster: the record of one revision ([`record`]), the
//! questions asked of one release's records in one cluster ([`History`]), and of its
//! records in every cluster of an environment ([`EnvironmentHistory`]).
//!
//! Must not: talk to a cluster or encode itself for storage (that is [`crate::storage`]).

mod artifact;
mod environment;
pub mod freeze;
mod history;
mod promotion;
mod record;
mod trust;

pub use crate::redact::{is_secret, redact_manifest};
pub use artifact::Artifact;
pub use environment::{
    DeploymentState, EnvironmentHistory, NextRun, NoRollback, RollbackRevisions,
};
pub use freeze::{ClusterFreeze, Freeze, Verdict};
pub use history::{beyond_limit, History, RecordHead, SkippedRecord};
pub use promotion::{agreed, soak_problems, SourceCluster};
pub use record::{
    content_digest, values_without_secrets, Audit, ChartRef, HelmSource, Operation, Promotion,
    RecordedHook, ReleaseRecord, Replaced, RevisionSource, SecretSource, Status, UntilWave,
};
pub use trust::{check_record, content_digest_problem, describe_record, RecordKey, RecordTrust};

/// Record fixtures for the unit tests of every layer that reads records.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::{ChartRef, Operation, ReleaseRecord, Status};

    /// Revision `revision` of deployment `id` of release `hello` in namespace `ns`,
    /// with no objects.
    pub(crate) fn record(revision: u32, id: &str, status: Status) -> ReleaseRecord {
        let now = chrono::Utc::now();
        ReleaseRecord {
            hooks: Vec::new(),
            name: "hello".into(),
            namespace: "ns".into(),
            revision,
            status,
            operation: Operation::Upgrade,
            deployment_id: id.into(),
            restores: None,
            targets: Vec::new(),
            until_wave: None,
            digest: format!("digest-of-{id}"),
            source: None,
            chart: ChartRef {
                name: "hello".into(),
                version: "0.1.0".into(),
            },
            app_version: "v".into(),
            manifest: Vec::new(),
            objects: Vec::new(),
            values: serde_json::Value::Null,
            rollback_of: None,
            created: now,
            updated: now,
            healthy_at: None,
            user: "u".into(),
            host: "h".into(),
            description: String::new(),
            audit: None,
            mac: String::new(),
            replaced: None,
        }
    }
}
