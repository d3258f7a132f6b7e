//! Release records: where the revisions of one release in one cluster are kept.
//!
//! As Helm's `pkg/storage` over its drivers: [`RecordStore`] is what the per-cluster
//! operations need of a store; [`SecretStore`] keeps records as Secrets in the cluster
//! (production), [`MemoryStore`] in memory (unit tests of the operations, no cluster);
//! [`UnderLease`] answers lists from what was read under the caller's lease.
//! The rules that apply whatever the store (the history limit) are provided methods of
//! the trait, so both behave alike.
//!
//! Must not: apply workload objects or decide what to deploy.

mod codec;
pub mod freeze;
mod key;
mod memory;
mod secrets;
mod under_lease;

pub use key::{
    checksum_key, checksum_key_name, create_checksum_key, new_checksum_key, read_checksum_key,
};
pub use memory::MemoryStore;
pub use secrets::{namespaces_with_records, record_name, SecretStore, RECORD_PREFIX, RECORD_TYPE};
pub use under_lease::UnderLease;

use crate::cluster::ClusterError;
use crate::release::{beyond_limit, History, RecordHead, ReleaseRecord};

/// Revisions kept per release and cluster unless `--history-max` says otherwise.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// The records of one release in one cluster.
// Every caller awaits these futures on the task that made them (no spawn), so their
// auto traits need not be named.
#[allow(async_fn_in_trait)]
pub trait RecordStore {
    /// Every record of the release, oldest revision first.
    async fn list(&self) -> Result<Vec<ReleaseRecord>, ClusterError>;
    async fn create(&self, record: &ReleaseRecord) -> Result<(), ClusterError>;
    /// Rewrites a record (its status, description, timestamps).
    async fn update(&self, record: &ReleaseRecord) -> Result<(), ClusterError>;
    /// Deletes a revision; one that is not there is no error.
    async fn delete(&self, revision: u32) -> Result<(), ClusterError>;

    /// The records as a [`History`].
    async fn history(&self) -> Result<History, ClusterError> {
        Ok(History::new(self.list().await?))
    }

    /// What the history limit reads of every record, oldest first.
    async fn heads(&self) -> Result<Vec<RecordHead>, ClusterError> {
        Ok(self.list().await?.iter().map(RecordHead::from).collect())
    }

    /// Deletes the oldest records beyond `limit`, as [`beyond_limit`] says (never the
    /// deployed one, a pending one, what a rollback goes back to, or the records of the
    /// deployments in `keep`).
    async fn prune_history(&self, limit: usize, keep: &[String]) -> Result<Vec<u32>, ClusterError> {
        let doomed = beyond_limit(&self.heads().await?, limit, keep);
        for revision in &doomed {
            self.delete(*revision).await?;
        }
        Ok(doomed)
    }
}

/// Record bytes as a cluster may hold them, for the unit tests of every layer that
/// reads records.
#[cfg(test)]
pub(crate) mod tests_support {
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    /// `bytes`, gzip-compressed.
    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A gzip stream of a few hundred kilobytes that inflates past what a record may
    /// decode to ([`super::codec::MAX_DECODED`]).
    pub(crate) fn gzip_bomb() -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..super::codec::MAX_DECODED / zeros.len() + 1 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap()
    }
}
