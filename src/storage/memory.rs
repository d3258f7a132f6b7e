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

/// Cheap to clone; clones share the records and what they read (one writer). Each
/// record has a resourceVersion as in a cluster, and every write has the precondition
/// [`super::SecretStore`]'s has: [`MemoryStore::another_writer`] is a second writer on
/// the same records, whose writes make this one's stale.
#[derive(Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<Kept>>,
    /// The resourceVersion of each record as this writer last read or wrote it.
    seen: Arc<Mutex<BTreeMap<u32, u64>>>,
    /// After this many more successful writes, every write fails as an unreachable
    /// cluster would (a cluster lost mid-run).
    writes_left: Arc<Mutex<Option<usize>>>,
    /// How long each request takes to be answered (zero: at once): with the clock
    /// paused, a run's time is its round trips in sequence.
    round_trip: Arc<Mutex<std::time::Duration>>,
}

/// The records, encoded, each with its resourceVersion.
#[derive(Default)]
struct Kept {
    records: BTreeMap<u32, (u64, Vec<u8>)>,
    /// The last resourceVersion given out.
    version: u64,
}

impl Kept {
    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding `records`.
    pub fn with(records: impl IntoIterator<Item = ReleaseRecord>) -> MemoryStore {
        let store = MemoryStore::new();
        {
            let mut kept = store.lock();
            for record in records {
                let version = kept.next_version();
                let bytes = encoded(&record).expect("a record of a test encodes");
                kept.records.insert(record.revision, (version, bytes));
            }
        }
        store
    }

    /// Another writer of the same records (another run, another process): it has read
    /// nothing yet, and what it writes is a change this one has not read.
    pub fn another_writer(&self) -> MemoryStore {
        MemoryStore {
            records: self.records.clone(),
            seen: Arc::default(),
            writes_left: self.writes_left.clone(),
            round_trip: self.round_trip.clone(),
        }
    }

    /// Every request from now on is answered after `rtt`.
    pub fn answer_after(&self, rtt: std::time::Duration) {
        *self
            .round_trip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = rtt;
    }

    /// One request's round trip.
    async fn round_trip(&self) {
        let rtt = *self
            .round_trip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !rtt.is_zero() {
            tokio::time::sleep(rtt).await;
        }
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
        let mut kept = self.lock();
        let version = kept.next_version();
        kept.records.insert(revision, (version, bytes));
    }

    /// A copy of the records that read, oldest first.
    pub fn records(&self) -> Vec<ReleaseRecord> {
        self.decoded(false).0
    }

    /// The records that read, and those that do not, named as the cluster's store
    /// names them. `read`: as this writer's read, which its next writes are
    /// conditioned on (a test's look at the records is none).
    fn decoded(&self, read: bool) -> (Vec<ReleaseRecord>, Vec<SkippedRecord>) {
        let kept = self.lock();
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        for (revision, (_, bytes)) in kept.records.iter() {
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
        if read {
            let mut seen = self.seen();
            seen.clear();
            seen.extend(
                kept.records
                    .iter()
                    .map(|(revision, (v, _))| (*revision, *v)),
            );
        }
        (records, skipped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A test that panicked while holding the lock left consistent data: each
        // operation is one insert or remove.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u64>> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The version this writer last saw of `revision`: the precondition of its write.
    fn precondition(&self, verb: &str, revision: u32) -> Result<u64, ClusterError> {
        self.seen().get(&revision).copied().ok_or_else(|| {
            store_error(
                format!("cannot {verb} revision {revision}: this run never read it"),
                None,
            )
        })
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
                source: None,
            }),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// A write whose precondition failed, as [`super::SecretStore`] reports it.
fn raced(verb: &str, revision: u32, what: &str) -> ClusterError {
    ClusterError::LockLost {
        context: "memory".into(),
        message: format!(
            "cannot {verb} the record of revision {revision}: {what} since this run read it; another writer holds the records now, nothing was overwritten"
        ),
    }
}

impl RecordStore for MemoryStore {
    async fn list(&self) -> Result<Vec<ReleaseRecord>, ClusterError> {
        self.round_trip().await;
        Ok(self.decoded(true).0)
    }

    async fn history(&self) -> Result<History, ClusterError> {
        self.round_trip().await;
        let (records, skipped) = self.decoded(true);
        Ok(History::with_skipped(records, skipped))
    }

    async fn create(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.round_trip().await;
        self.write()?;
        let bytes = encoded(record)?;
        let mut kept = self.lock();
        if kept.records.contains_key(&record.revision) {
            return Err(raced("create", record.revision, "another run recorded it"));
        }
        let version = kept.next_version();
        kept.records.insert(record.revision, (version, bytes));
        self.seen().insert(record.revision, version);
        Ok(())
    }

    async fn update(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.round_trip().await;
        self.write()?;
        let expected = self.precondition("update", record.revision)?;
        let bytes = encoded(record)?;
        let mut kept = self.lock();
        match kept.records.get(&record.revision) {
            None => return Err(raced("update", record.revision, "it was deleted")),
            Some((version, _)) if *version != expected => {
                return Err(raced("update", record.revision, "it was changed"))
            }
            Some(_) => {}
        }
        let version = kept.next_version();
        kept.records.insert(record.revision, (version, bytes));
        self.seen().insert(record.revision, version);
        Ok(())
    }

    async fn delete(&self, revision: u32) -> Result<(), ClusterError> {
        self.round_trip().await;
        self.write()?;
        let expected = self.precondition("delete", revision)?;
        let mut kept = self.lock();
        if let Some((version, _)) = kept.records.get(&revision) {
            if *version != expected {
                return Err(raced("delete", revision, "it was changed"));
            }
            kept.records.remove(&revision);
        }
        self.seen().remove(&revision);
        Ok(())
    }
}

fn encoded(record: &ReleaseRecord) -> Result<Vec<u8>, ClusterError> {
    codec::compress(record)
        .map_err(|e| store_error(format!("revision {}", record.revision), Some(e)))
}

fn store_error(message: String, source: Option<codec::CodecError>) -> ClusterError {
    ClusterError::Records {
        context: "memory".into(),
        namespace: String::new(),
        release: String::new(),
        message,
        source: source.map(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::Status;

    fn lost(err: ClusterError) -> String {
        match err {
            ClusterError::LockLost { message, .. } => message,
            other => panic!("not a concurrent writer: {other}"),
        }
    }

    #[tokio::test]
    async fn a_write_over_another_writers_change_is_refused_never_applied() {
        let ours = MemoryStore::with([
            record(1, "d1", Status::Superseded),
            record(2, "d2", Status::Deployed),
        ]);
        ours.list().await.unwrap();
        let theirs = ours.another_writer();
        theirs.list().await.unwrap();
        // They mark revision 2 superseded and record revision 3.
        let mut two = record(2, "d2", Status::Superseded);
        two.description = "theirs".into();
        theirs.update(&two).await.unwrap();
        theirs
            .create(&record(3, "d3", Status::Deployed))
            .await
            .unwrap();

        // Our update, delete and create were made on what we read before.
        let why = lost(
            ours.update(&record(2, "d2", Status::Failed))
                .await
                .unwrap_err(),
        );
        assert!(
            why.contains("revision 2") && why.contains("changed"),
            "{why}"
        );
        assert!(ours.delete(2).await.is_err());
        let why = lost(
            ours.create(&record(3, "dx", Status::Pending))
                .await
                .unwrap_err(),
        );
        assert!(why.contains("revision 3"), "{why}");
        let now: Vec<_> = ours
            .records()
            .into_iter()
            .map(|r| (r.revision, r.deployment_id, r.status, r.description))
            .collect();
        assert_eq!(
            now,
            [
                (1, "d1".into(), Status::Superseded, String::new()),
                (2, "d2".into(), Status::Superseded, "theirs".into()),
                (3, "d3".into(), Status::Deployed, String::new()),
            ]
        );

        // What we have not seen changed is still ours to write; once read again, all is.
        ours.update(&record(1, "d1", Status::Superseded))
            .await
            .unwrap();
        ours.list().await.unwrap();
        ours.update(&record(2, "d2", Status::Failed)).await.unwrap();
        ours.delete(3).await.unwrap();
        // Their view is stale now.
        assert!(theirs
            .update(&record(2, "d2", Status::Deployed))
            .await
            .is_err());
        assert!(theirs.delete(1).await.is_err());
    }

    #[tokio::test]
    async fn a_record_never_read_is_never_written_and_a_deleted_one_is_no_update() {
        let ours = MemoryStore::with([record(1, "d1", Status::Deployed)]);
        // Not listed yet: nothing to write on.
        assert!(ours
            .update(&record(1, "d1", Status::Superseded))
            .await
            .is_err());
        ours.list().await.unwrap();
        let theirs = ours.another_writer();
        theirs.list().await.unwrap();
        theirs.delete(1).await.unwrap();
        let why = lost(
            ours.update(&record(1, "d1", Status::Superseded))
                .await
                .unwrap_err(),
        );
        assert!(why.contains("deleted"), "{why}");
        assert!(ours.records().is_empty(), "not written back");
        // Deleting what is gone already is done.
        ours.delete(1).await.unwrap();
    }
}
