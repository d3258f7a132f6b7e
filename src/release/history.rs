//! One release's records in one cluster, and every question the commands ask of them:
//! what is deployed, what a deployment id is here, what ran before. Each rule lives here
//! once, so that `deploy`, `rollback`, `status`, `diff`, `history` and `promote` cannot
//! disagree about which revision is which.

use super::{ReleaseRecord, Status};
use crate::cluster::ObjectRef;
use std::collections::BTreeSet;

/// The records of one release in one cluster, oldest revision first. Reads as the
/// slice of its records; serialises as their list.
///
/// The records are shared, never copied, by a clone: a run keeps each cluster's
/// history for its whole length and hands it to every step, and a record (its
/// manifest, values and chart) is tens of kilobytes once read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    records: std::sync::Arc<[ReleaseRecord]>,
    /// Records of the release that could not be read (docs/cluster.md, "Records that
    /// cannot be read").
    skipped: std::sync::Arc<[SkippedRecord]>,
}

/// A record of the release that could not be read (not gzip, larger than a record may
/// decode to, not a record of this format, a status this version does not know): left
/// out of the history, named in a warning, and in the way of a change where it could
/// be what runs ([`History::check_skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub namespace: String,
    /// The Secret that holds it (`flotilla.hello.v4`).
    pub secret: String,
    /// Its revision, from its name; `None` for a name flotilla never gives a record.
    pub revision: Option<u32>,
    pub why: String,
}

impl std::fmt::Display for SkippedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record Secret {}/{} skipped: {}",
            self.namespace, self.secret, self.why
        )
    }
}

impl serde::Serialize for History {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.records.as_ref().serialize(serializer)
    }
}

impl std::ops::Deref for History {
    type Target = [ReleaseRecord];

    fn deref(&self) -> &[ReleaseRecord] {
        &self.records
    }
}

impl History {
    pub fn new(mut records: Vec<ReleaseRecord>) -> History {
        records.sort_by_key(|r| r.revision);
        // A revision marked replaced by one whose run never recorded it healthy still
        // has the status it had: the mark and that run's `deployed` record are written
        // at once, and only the mark may have landed.
        let never_healthy: Vec<u32> = records
            .iter()
            .filter(|r| matches!(r.status, Status::Pending | Status::Failed))
            .map(|r| r.revision)
            .collect();
        for record in &mut records {
            if let Some(replaced) = record.replaced {
                if never_healthy.contains(&replaced.by) {
                    record.status = replaced.was;
                }
            }
        }
        History {
            records: records.into(),
            skipped: std::sync::Arc::new([]),
        }
    }

    /// `records`, and `skipped`: the records that could not be read.
    pub fn with_skipped(records: Vec<ReleaseRecord>, skipped: Vec<SkippedRecord>) -> History {
        History {
            skipped: skipped.into(),
            ..History::new(records)
        }
    }

    /// The records that could not be read.
    pub fn skipped(&self) -> &[SkippedRecord] {
        &self.skipped
    }

    /// Refuses a change when a record that could not be read may be the revision that
    /// runs, or one a killed or failed run left (whose objects may be live): one newer
    /// than the newest deployed revision that reads (or any, when none does). A deploy
    /// would then prune and repair without knowing it, and a rollback decide what runs
    /// now without it. An older one is history only: what runs and what may be live are
    /// in the records that read.
    pub fn check_skipped(&self) -> Result<(), String> {
        let deployed = self.deployed().map(|r| r.revision);
        let Some(skipped) = self
            .skipped
            .iter()
            .find(|s| s.revision.is_some_and(|r| deployed.is_none_or(|d| r > d)))
        else {
            return Ok(());
        };
        let newest = match deployed {
            Some(d) => format!("newer than the deployed revision {d}"),
            None => "and no revision that reads is deployed".into(),
        };
        Err(format!(
            "{skipped}; it is {newest}, so it may be what runs now or what a killed or failed run left, and nothing was changed here: look at it (`kubectl -n {ns} get secret {name} -o yaml`), and once you know it is neither, delete it (`kubectl -n {ns} delete secret {name}`) and run again",
            ns = skipped.namespace,
            name = skipped.secret,
        ))
    }

    /// Oldest revision first.
    pub fn records(&self) -> &[ReleaseRecord] {
        &self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn latest(&self) -> Option<&ReleaseRecord> {
        self.records.last()
    }

    pub fn get(&self, revision: u32) -> Option<&ReleaseRecord> {
        self.records.iter().find(|r| r.revision == revision)
    }

    /// The revision the next run records: after every record, those that could not be
    /// read included (their Secrets hold those names).
    pub fn next_revision(&self) -> u32 {
        let latest = self.latest().map_or(0, |r| r.revision);
        let skipped = self.skipped.iter().filter_map(|s| s.revision).max();
        latest.max(skipped.unwrap_or(0)) + 1
    }

    /// The live revision: the newest one recorded `deployed`.
    pub fn deployed(&self) -> Option<&ReleaseRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| r.status == Status::Deployed)
    }

    /// Every revision recorded `deployed` (one, unless a run died between recording
    /// its own and superseding the old): what a successful run supersedes.
    pub fn every_deployed(&self) -> impl Iterator<Item = &ReleaseRecord> {
        self.records.iter().filter(|r| r.status == Status::Deployed)
    }

    /// What `status` reports on: the deployed revision, else the latest (a first install
    /// that failed has no deployed one).
    pub fn current(&self) -> Option<&ReleaseRecord> {
        self.deployed().or(self.latest())
    }

    /// What this cluster runs healthy now: its latest revision, when that one is
    /// deployed (a failed or killed run on top of a deployed one leaves the cluster
    /// running neither for sure).
    pub fn runs_now(&self) -> Option<&ReleaseRecord> {
        self.latest().filter(|r| r.status == Status::Deployed)
    }

    /// The revision that runs deployment `id`'s content here: the newest that was
    /// healthy (its deploy, or a restore of it), or `None` when this cluster never ran
    /// it healthy (a failed run is no target).
    pub fn revision_of(&self, id: &str) -> Option<&ReleaseRecord> {
        self.records
            .iter()
            .rev()
            .find(|r| r.content_id() == id && r.status.was_healthy())
    }

    /// Runs that were killed before they finished (their record is still `pending`).
    pub fn pending(&self) -> impl Iterator<Item = &ReleaseRecord> {
        self.records.iter().filter(|r| r.status == Status::Pending)
    }

    /// The objects that may be live: those of the deployed revision and of every later
    /// one (a failed or killed run may have applied its objects). What a new revision
    /// does not have of these is pruned.
    pub fn maybe_live(&self) -> BTreeSet<ObjectRef> {
        let deployed = self.deployed().map(|r| r.revision);
        self.records
            .iter()
            .filter(|r| deployed.is_none_or(|d| r.revision >= d))
            .flat_map(|r| r.objects.iter().cloned())
            .collect()
    }

    /// Every object any record lists: what `uninstall` looks for.
    pub fn every_object(&self) -> BTreeSet<ObjectRef> {
        self.records
            .iter()
            .flat_map(|r| r.objects.iter().cloned())
            .collect()
    }

    /// `1 superseded, 2 deployed`: the revisions, for error messages.
    pub fn summary(&self) -> String {
        if self.records.is_empty() {
            return "no revisions".into();
        }
        self.records
            .iter()
            .map(|r| format!("{} rev {} {}", r.deployment_id, r.revision, r.status))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the history limit reads of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead {
    pub revision: u32,
    pub status: Status,
    /// [`ReleaseRecord::content_id`]: the deployment whose content it runs.
    pub content_id: String,
    /// [`ReleaseRecord::is_deploy`]: written by the deploy of its deployment id.
    pub deploy: bool,
}

impl From<&ReleaseRecord> for RecordHead {
    fn from(record: &ReleaseRecord) -> RecordHead {
        RecordHead {
            revision: record.revision,
            status: record.status,
            content_id: record.content_id().to_owned(),
            deploy: record.is_deploy(),
        }
    }
}

/// The revisions to delete so that at most `limit` (at least 1) are kept, oldest first:
/// never the deployed one or a pending one (what `status` and the repair of a killed
/// run read), and never the newest superseded one whose content is not the deployed
/// one's: what a rollback goes back to. A run of failed deploys on top of a deployed
/// revision must not push the last good one before it out of the history. Nor the
/// deploy records of those two contents: the state of a deployment in the environment
/// (complete or not, so a rollback target or not) is judged on its deploy records, and a
/// restore of it is no such record. Nor the deploy record and the newest healthy record
/// of each deployment in `keep`: what the environment may roll back to after the run
/// that prunes ([`super::EnvironmentHistory::kept_by_history_limit`]), which one
/// cluster's records alone cannot tell. Nor the newest restore marked rolled back of a
/// content whose deploy record is not: that mark is all that says it was undone.
/// `heads`: oldest first.
pub fn beyond_limit(heads: &[RecordHead], limit: usize, keep: &[String]) -> Vec<u32> {
    let deployed = heads.iter().rev().find(|h| h.status == Status::Deployed);
    let rollback_target = heads
        .iter()
        .rev()
        .filter(|h| deployed.is_none_or(|d| h.revision < d.revision))
        .find(|h| {
            h.status == Status::Superseded && deployed.is_none_or(|d| h.content_id != d.content_id)
        })
        .map(|h| h.revision);
    let deploy_of = |content: &str| {
        heads
            .iter()
            .rev()
            .find(|h| h.deploy && h.content_id == content)
            .map(|h| h.revision)
    };
    let newest_healthy_of = |content: &str| {
        heads
            .iter()
            .rev()
            .find(|h| h.status.was_healthy() && h.content_id == content)
            .map(|h| h.revision)
    };
    let mut kept: Vec<u32> = [
        rollback_target,
        deployed.and_then(|d| deploy_of(&d.content_id)),
        rollback_target
            .and_then(|t| heads.iter().find(|h| h.revision == t))
            .and_then(|t| deploy_of(&t.content_id)),
    ]
    .into_iter()
    .flatten()
    .collect();
    for content in keep {
        kept.extend(deploy_of(content));
        kept.extend(newest_healthy_of(content));
    }
    // A restore marked rolled back is the only mark that its content was undone while
    // that content's deploy record is not marked: pruned, the undone content would
    // look complete again, and a rollback could go forward to it.
    for head in heads.iter().rev() {
        let only_mark = !head.deploy
            && head.status == Status::RolledBack
            && heads.iter().any(|d| {
                d.deploy && d.content_id == head.content_id && d.status != Status::RolledBack
            })
            && !heads.iter().any(|other| {
                other.revision > head.revision
                    && !other.deploy
                    && other.status == Status::RolledBack
                    && other.content_id == head.content_id
            });
        if only_mark {
            kept.push(head.revision);
        }
    }
    let excess = heads.len().saturating_sub(limit.max(1));
    heads
        .iter()
        .filter(|h| !matches!(h.status, Status::Deployed | Status::Pending))
        .filter(|h| !kept.contains(&h.revision))
        .take(excess)
        .map(|h| h.revision)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;

    fn heads(records: &[(u32, &str, Status)]) -> Vec<RecordHead> {
        records
            .iter()
            .map(|(n, id, status)| RecordHead::from(&record(*n, id, *status)))
            .collect()
    }

    #[test]
    fn the_history_limit_keeps_the_deployed_the_pending_and_the_rollback_target() {
        use Status::*;
        // Ten failed runs on top of B, deployed over A: A is what a rollback goes to.
        let mut records = vec![
            (1, "Z", Superseded),
            (2, "A", Superseded),
            (3, "B", Deployed),
        ];
        let failed: Vec<String> = (4..=13).map(|n| format!("F{n}")).collect();
        for (n, id) in (4..=13).zip(&failed) {
            records.push((n, id.as_str(), Failed));
        }
        assert_eq!(beyond_limit(&heads(&records), 10, &[]), [1, 4, 5]);
        // Within the limit: nothing.
        assert_eq!(
            beyond_limit(&heads(&records[..3]), 10, &[]),
            Vec::<u32>::new()
        );
        // A superseded revision of the deployed content is no rollback target: the one
        // before it is.
        let same = heads(&[
            (1, "A", Superseded),
            (2, "B", Superseded),
            (3, "B", Deployed),
        ]);
        assert_eq!(beyond_limit(&same, 2, &[]), [2]);
        // A pending one is never deleted; the limit is at least 1.
        let pending = heads(&[(1, "A", Failed), (2, "B", Pending)]);
        assert_eq!(beyond_limit(&pending, 0, &[]), [1]);
        // The deploy record of the content a restore brought back, and of the rollback
        // target's content, are kept: the environment judges a deployment on them.
        let mut restored = heads(&[
            (1, "A", Superseded),
            (2, "X", Failed),
            (3, "X", Superseded),
            (4, "B", Deployed),
        ]);
        restored[2].content_id = "A".into();
        restored[2].deploy = false;
        assert_eq!(beyond_limit(&restored, 3, &[]), [2]);
        // What the environment says it may go back to is kept too.
        assert_eq!(beyond_limit(&restored, 3, &["X".into()]), Vec::<u32>::new());
        // Nothing deployed (a first install failed, then another): the newest superseded
        // is still kept.
        let none = heads(&[(1, "A", Superseded), (2, "B", RolledBack), (3, "C", Failed)]);
        assert_eq!(beyond_limit(&none, 1, &[]), [2, 3]);
    }

    fn config_map(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    fn history(records: &[(u32, &str, Status)]) -> History {
        History::new(
            records
                .iter()
                .map(|(n, id, status)| record(*n, id, *status))
                .collect(),
        )
    }

    fn revision(found: Option<&ReleaseRecord>) -> Option<u32> {
        found.map(|r| r.revision)
    }

    /// The marks of what a run replaced are written with its `deployed` record, at
    /// once: where only the marks landed, the revision before it is still what runs.
    #[test]
    fn a_mark_counts_only_once_the_revision_that_replaced_it_is_recorded_healthy() {
        use Status::*;
        let marked = |revision, id, status, by, was| {
            let mut r = record(revision, id, status);
            r.replaced = Some(crate::release::Replaced { by, was });
            r
        };
        let statuses = |h: &History| h.iter().map(|r| r.status).collect::<Vec<_>>();
        // The run of revision 3 was lost before its `deployed` record landed.
        let h = History::new(vec![
            marked(1, "A", Superseded, 2, Deployed),
            marked(2, "B", Superseded, 3, Deployed),
            record(3, "C", Pending),
        ]);
        assert_eq!(statuses(&h), [Superseded, Deployed, Pending]);
        assert_eq!(revision(h.deployed()), Some(2));
        // A restore's fix of its own earlier mark goes back to that mark.
        let h = History::new(vec![
            marked(1, "A", Superseded, 2, RolledBack),
            record(2, "B", Failed),
        ]);
        assert_eq!(statuses(&h), [RolledBack, Failed]);
        // Recorded healthy, or pruned since (a newer revision than the kept one): the
        // mark stands.
        let h = History::new(vec![
            marked(1, "A", Superseded, 2, Deployed),
            record(2, "B", Deployed),
        ]);
        assert_eq!(statuses(&h), [Superseded, Deployed]);
        let h = History::new(vec![
            marked(1, "A", Superseded, 5, Deployed),
            record(6, "F", Deployed),
        ]);
        assert_eq!(statuses(&h), [Superseded, Deployed]);
    }

    #[test]
    fn a_deployment_id_names_only_revisions_that_were_healthy() {
        use Status::*;
        let h = history(&[(1, "A", Superseded), (2, "B", Failed), (3, "A", Deployed)]);
        assert_eq!(revision(h.revision_of("A")), Some(3));
        assert_eq!(
            revision(h.revision_of("B")),
            None,
            "a failed run is no target"
        );
        assert_eq!(revision(h.revision_of("Z")), None);
        // A restore of A runs A's content.
        let mut records = vec![record(1, "A", Superseded), record(2, "B", RolledBack)];
        let mut restore = record(3, "R", Deployed);
        restore.operation = crate::release::Operation::Rollback;
        restore.restores = Some("A".into());
        records.push(restore);
        let h = History::new(records);
        assert_eq!(revision(h.revision_of("A")), Some(3));
        assert_eq!(
            revision(h.revision_of("R")),
            None,
            "a rollback run is no deployment"
        );
        assert_eq!(revision(h.runs_now()), Some(3));
    }

    #[test]
    fn a_cluster_with_a_failed_run_on_top_runs_nothing_for_sure() {
        use Status::*;
        let h = history(&[(1, "A", Deployed), (2, "B", Failed)]);
        assert_eq!(revision(h.runs_now()), None);
        assert_eq!(revision(h.deployed()), Some(1));
        assert_eq!(revision(history(&[(1, "A", Deployed)]).runs_now()), Some(1));
    }

    #[test]
    fn deployed_current_and_next_revision() {
        use Status::*;
        let h = history(&[(2, "B", Failed), (1, "A", Deployed)]);
        assert_eq!(h.records()[0].revision, 1, "sorted oldest first");
        assert_eq!(revision(h.deployed()), Some(1));
        assert_eq!(revision(h.current()), Some(1));
        assert_eq!(h.next_revision(), 3);
        let failed_install = history(&[(1, "A", Failed)]);
        assert_eq!(revision(failed_install.deployed()), None);
        assert_eq!(revision(failed_install.current()), Some(1));
        assert_eq!(History::default().next_revision(), 1);
        assert_eq!(revision(History::default().current()), None);
    }

    #[test]
    fn maybe_live_is_the_deployed_revision_and_every_later_one() {
        use Status::*;
        let mut records = vec![
            record(1, "A", Superseded),
            record(2, "B", Deployed),
            record(3, "C", Failed),
            record(4, "D", Pending),
        ];
        for (r, name) in records.iter_mut().zip(["old", "live", "failed", "killed"]) {
            r.objects = vec![config_map(name)];
        }
        let h = History::new(records);
        let names: Vec<String> = h.maybe_live().into_iter().map(|o| o.name).collect();
        assert_eq!(names, ["failed", "killed", "live"]);
        assert_eq!(h.every_object().len(), 4);
        assert_eq!(
            h.pending().map(|r| r.revision).collect::<Vec<_>>(),
            [4],
            "the killed run"
        );
        // Nothing deployed yet: every record's objects may be live.
        let mut only_failed = record(1, "A", Failed);
        only_failed.objects = vec![config_map("x")];
        assert_eq!(History::new(vec![only_failed]).maybe_live().len(), 1);
    }

    #[test]
    fn healthy_once_statuses() {
        use Status::*;
        assert!(Deployed.was_healthy() && Superseded.was_healthy() && RolledBack.was_healthy());
        assert!(!Failed.was_healthy() && !Pending.was_healthy());
    }
}
