//! A record store read once per lease.
//!
//! While a run holds a release's lease in a cluster nobody else writes that release's
//! records there (every writer takes the lease first), so the list the run read when it
//! took the lease stays true for as long as the run's own writes are applied to it. A
//! deploy step would otherwise list (and decode) every record again twice: for its
//! state machine, and for the history limit after the outcome is recorded.

use super::RecordStore;
use crate::cluster::ClusterError;
use crate::release::{History, RecordHead, ReleaseRecord};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// `inner`, whose records the caller read under the lease it holds: lists answer from
/// them and from the store's own writes, which go to `inner` first.
pub struct UnderLease<S> {
    inner: S,
    /// As read; shared with the caller, never copied.
    read: History,
    /// What this store wrote since, by revision: `None` deleted.
    written: Mutex<BTreeMap<u32, Option<ReleaseRecord>>>,
}

impl<S: RecordStore> UnderLease<S> {
    /// `read` must have been read from `inner` after the caller's lease was taken.
    pub fn new(inner: S, read: &History) -> UnderLease<S> {
        UnderLease {
            inner,
            read: read.clone(),
            written: Mutex::new(BTreeMap::new()),
        }
    }

    fn written(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Option<ReleaseRecord>>> {
        // Each change is one insert: a panic elsewhere leaves it consistent.
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The records now, oldest first, borrowed: `f` of each.
    fn each<T>(&self, f: impl Fn(&ReleaseRecord) -> T) -> Vec<T> {
        let written = self.written();
        let mut now: BTreeMap<u32, T> = self
            .read
            .iter()
            .filter(|r| !written.contains_key(&r.revision))
            .map(|r| (r.revision, f(r)))
            .collect();
        now.extend(
            written
                .iter()
                .filter_map(|(revision, r)| r.as_ref().map(|r| (*revision, f(r)))),
        );
        now.into_values().collect()
    }

    fn note(&self, revision: u32, record: Option<&ReleaseRecord>) {
        self.written().insert(revision, record.cloned());
    }
}

impl<S: RecordStore> RecordStore for UnderLease<S> {
    async fn list(&self) -> Result<Vec<ReleaseRecord>, ClusterError> {
        Ok(self.each(ReleaseRecord::clone))
    }

    /// What was read, shared, until this store writes.
    async fn history(&self) -> Result<History, ClusterError> {
        if self.written().is_empty() {
            return Ok(self.read.clone());
        }
        Ok(History::with_skipped(
            self.list().await?,
            self.read.skipped().to_vec(),
        ))
    }

    async fn heads(&self) -> Result<Vec<RecordHead>, ClusterError> {
        Ok(self.each(|r| RecordHead::from(r)))
    }

    async fn create(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.inner.create(record).await?;
        self.note(record.revision, Some(record));
        Ok(())
    }

    async fn update(&self, record: &ReleaseRecord) -> Result<(), ClusterError> {
        self.inner.update(record).await?;
        self.note(record.revision, Some(record));
        Ok(())
    }

    async fn delete(&self, revision: u32) -> Result<(), ClusterError> {
        self.inner.delete(revision).await?;
        self.note(revision, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::Status;
    use crate::storage::MemoryStore;

    fn revisions(records: &[ReleaseRecord]) -> Vec<(u32, Status)> {
        records.iter().map(|r| (r.revision, r.status)).collect()
    }

    #[tokio::test]
    async fn answers_from_what_was_read_and_keeps_up_with_its_own_writes() {
        let inner = MemoryStore::with([record(1, "d1", Status::Deployed)]);
        let read = inner.history().await.unwrap();
        let store = UnderLease::new(inner.clone(), &read);
        assert_eq!(store.history().await.unwrap(), read);

        let mut second = record(2, "d2", Status::Pending);
        store.create(&second).await.unwrap();
        second.status = Status::Deployed;
        store.update(&second).await.unwrap();
        let mut first = record(1, "d1", Status::Deployed);
        first.status = Status::Superseded;
        store.update(&first).await.unwrap();
        store
            .create(&record(3, "d3", Status::Failed))
            .await
            .unwrap();
        store.delete(1).await.unwrap();

        let listed = store.list().await.unwrap();
        assert_eq!(
            revisions(&listed),
            [(2, Status::Deployed), (3, Status::Failed)]
        );
        assert_eq!(listed, inner.records(), "the copy is what the store holds");
        assert_eq!(store.history().await.unwrap().records(), listed);
        // The history limit reads the copy too.
        assert_eq!(store.prune_history(1, &[]).await.unwrap(), [3]);
        assert_eq!(revisions(&inner.records()), [(2, Status::Deployed)]);
    }

    #[tokio::test]
    async fn a_write_the_store_refused_is_not_in_the_copy() {
        let inner = MemoryStore::with([record(1, "d1", Status::Deployed)]);
        let store = UnderLease::new(inner.clone(), &inner.history().await.unwrap());
        inner.fail_after_writes(0);
        assert!(store
            .create(&record(2, "d2", Status::Pending))
            .await
            .is_err());
        assert!(store.delete(1).await.is_err());
        assert_eq!(
            revisions(&store.list().await.unwrap()),
            [(1, Status::Deployed)]
        );
    }
}
