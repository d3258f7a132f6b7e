//! Records kept in memory: the store of the per-cluster operations' unit tests, as
//! Helm's memory driver is for its actions. Each record is kept encoded as the cluster
//! keeps it ([`super::codec`]): what a test writes must read back through the same
//! encoding, and a store of many clusters (the scale benchmark) holds what their API
//! servers would, not the decoded records.

use super::{codec, RecordStore};
use crate::cluster::ClusterError;
use crate::release::{History, ReleaseRecord, SkippedRecord};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Cheap to clone; clones share the records.
#[derive(Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<BTreeMap<u32, Vec<u8>>>>,
    /// After this many more successful writes, every write fails as an unreachable
    /// cluster would (a cluster lost mid-run).
    writes_left: Arc<Mutex<Option<usize>>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding `records`.
    pub fn with(records: impl IntoIterator<Item = ReleaseRecord>) -> MemoryStore {
        let store = MemoryStore::new();
        store.lock().extend(
            records
                .into_iter()
                .map(|r| (r.revision, encoded(&r).expect("a record of a test encodes"))),
        );
        store
    }

    /// Lets `writes` more writes succeed, then fails every later one.
    pub fn fail_after_writes(&self, writes: usize) {
        *self
            .writes_left
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(writes);
    }

    /// Puts `bytes` where revision `revision`'s record is kept, as a cluster may hold
    /// one: damaged, written by another version or tool.
    pub fn put_bytes(&self, revision: u32, bytes: Vec<u8>) {
        self.lock().insert(revision, bytes);
    }

    /// A copy of the records that read, oldest first.
    pub fn records(&self) -> Vec<ReleaseRecord> {
        self.decoded().0
    }

    /// The records that read, and those that do not, named as the cluster's store
    /// names them.
    fn decoded(&self) -> (Vec<ReleaseRecord>, Vec<SkippedRecord>) {
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        for (revision, bytes) in self.lock().iter() {
            match codec::decompress(bytes) {
                Ok(record) => records.push(record),
                Err(e) => skipped.push(SkippedRecord {
                    namespace: "memory".into(),
                    secret: format!("{}.v{revision}", super::RECORD_PREFIX),
                    revision: Some(*revision),
                    why: format!("its `release` data {e}"),
                }),
            }
        }
        (records, skipped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Vec<u8>>> {
        // A test that panicked while holding the lock left consistent data: each
        // operation is one insert or remove.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> Result<(), ClusterError> {
        let mut left = self
            .writes_left
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match left.as_mut() {
            Some(0) => Err(ClusterError::Unreachable {
                context: "memory".into(),
                message: "the record store went away".into(),
            }),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl RecordStore for MemoryStore {
    async fn list(&self) -> Result<Vec<ReleaseRecord>, ClusterError> {
        Ok(self.decoded().0)
    }

    async fn history(&self) -> Result<History, ClusterError> {
        let (records, skipped) = self.decoded();
        Ok(History::with_skipped(records, skipped))
    }

    async fn create(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.write()?;
        let mut records = self.lock();
        if records.contains_key(&record.revision) {
            return Err(ClusterError::Records {
                context: "memory".into(),
                namespace: record.namespace.clone(),
                release: record.name.clone(),
                message: format!("revision {} exists already", record.revision),
            });
        }
        records.insert(record.revision, encoded(record)?);
        Ok(())
    }

    async fn update(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.write()?;
        let bytes = encoded(record)?;
        self.lock().insert(record.revision, bytes);
        Ok(())
    }

    async fn delete(&self, revision: u32) -> Result<(), ClusterError> {
        self.write()?;
        self.lock().remove(&revision);
        Ok(())
    }
}

fn encoded(record: &ReleaseRecord) -> Result<Vec<u8>, ClusterError> {
    codec::compress(record).map_err(|e| store_error(format!("revision {}: {e}", record.revision)))
}

fn store_error(message: String) -> ClusterError {
    ClusterError::Records {
        context: "memory".into(),
        namespace: String::new(),
        release: String::new(),
        message,
    }
}
