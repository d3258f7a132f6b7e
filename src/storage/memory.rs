//! Records kept in memory: the store of the per-cluster operations' unit tests, as
//! Helm's memory driver is for its actions.

use super::RecordStore;
use crate::cluster::ClusterError;
use crate::release::ReleaseRecord;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Cheap to clone; clones share the records.
#[derive(Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<BTreeMap<u32, ReleaseRecord>>>,
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
        store
            .lock()
            .extend(records.into_iter().map(|r| (r.revision, r)));
        store
    }

    /// Lets `writes` more writes succeed, then fails every later one.
    pub fn fail_after_writes(&self, writes: usize) {
        *self
            .writes_left
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(writes);
    }

    /// A copy of the records, oldest first.
    pub fn records(&self) -> Vec<ReleaseRecord> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, ReleaseRecord>> {
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
        Ok(self.records())
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
        records.insert(record.revision, record.clone());
        Ok(())
    }

    async fn update(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.write()?;
        self.lock().insert(record.revision, record.clone());
        Ok(())
    }

    async fn delete(&self, revision: u32) -> Result<(), ClusterError> {
        self.write()?;
        self.lock().remove(&revision);
        Ok(())
    }
}
