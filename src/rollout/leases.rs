//! The leases of a run: one per cluster, taken for the whole run before any cluster is
//! changed ([`take_every_lease`]: every one at once, else one after the other in name
//! order), renewed through its deploy and its restore, given back once it is over
//! ([`Leases`]). A restore first checks that the newest record in the cluster is the
//! one this run wrote, and that the lease is still this run's; otherwise it refuses,
//! saying why.

use super::progress::{Phase, Reporter};
use super::step::{LeaseWait, StepError};
use crate::cluster::{CancellationToken, ClusterError, ClusterHandle, LockOptions};
use crate::ops::{self, HeldLock, ReleaseCluster};
use crate::release::History;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Takes the lease of every one of `contexts` before any cluster is changed: first
/// every one at once without waiting (one round of requests, not one per cluster); if
/// any is refused, every lease taken is given back (`release`) and they are taken again
/// one after the other in name order, waiting for another run as configured. Two runs
/// then never each hold a part of what the other needs while they wait, and a run that
/// cannot have them all changes nothing. The first cluster that refused (or that a
/// signal, `stop`, stopped), its error and how long it waited.
pub async fn take_every_lease<'a, A, AF, R, RF>(
    contexts: &[&'a str],
    stop: &CancellationToken,
    acquire: A,
    release: R,
) -> Result<(), (String, StepError, Duration)>
where
    A: Fn(&'a str, LeaseWait) -> AF,
    AF: Future<Output = Result<(), StepError>>,
    R: Fn() -> RF,
    RF: Future<Output = ()>,
{
    let mut order = contexts.to_vec();
    order.sort_unstable();
    let at_once = futures::future::join_all(order.iter().map(|c| acquire(c, LeaseWait::No)));
    let taken = tokio::select! {
        taken = at_once => taken.iter().all(Result::is_ok),
        _ = stop.cancelled() => false,
    };
    if taken {
        return Ok(());
    }
    release().await;
    for context in order {
        let t = Instant::now();
        let taken = tokio::select! {
            taken = acquire(context, LeaseWait::AsConfigured) => taken,
            _ = stop.cancelled() => Err(StepError::new(format!(
                "cluster `{context}`: stopped by a signal before any change"
            ))),
        };
        if let Err(err) = taken {
            return Err((context.to_owned(), err, t.elapsed()));
        }
    }
    Ok(())
}

/// A cluster error as a step reports it: whether it is the environment's (a lease
/// held, a cluster unreachable, a permission denied) or a stop at a safe point.
pub fn step_error(err: &ClusterError) -> StepError {
    match err {
        ClusterError::Cancelled { context } => StepError::cancelled(context),
        other => StepError {
            unreachable: matches!(other, ClusterError::Unreachable { .. }),
            environment: matches!(
                other,
                ClusterError::Unreachable { .. }
                    | ClusterError::Locked { .. }
                    | ClusterError::Denied { .. }
            ),
            ..StepError::new(other.to_string())
        },
    }
}

/// The leases a run holds, one per cluster, and what it recorded in each.
pub struct Leases<K: ReleaseCluster = ClusterHandle> {
    held: Mutex<HashMap<String, Arc<K::Lock>>>,
    /// The revision (and its deployment id) this run recorded in each cluster: what a
    /// restore must find as the newest record there.
    recorded: Mutex<HashMap<String, (u32, String)>>,
    /// Each cluster's records as read once its lease was taken: what ran before this
    /// run, which another run may have changed since the run was prepared, and their
    /// resourceVersions (the preconditions of the run's writes).
    seen: Mutex<HashMap<String, ops::LeasedRead<K::Records>>>,
    /// The ownership of each cluster's objects as read under its lease, and when:
    /// what its deploy step does not read again while fresh ([`Leases::fresh_owners`]).
    owners: Mutex<HashMap<String, (ops::Ownership, Instant)>>,
    /// Create the release namespace where missing before taking the lease in it
    /// (`--create-namespace`).
    create_namespace: bool,
    /// The checksum key drawn for each cluster that had none, which its deploy step
    /// writes once every lease is held (a refused run writes none).
    keys: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl<K: ReleaseCluster> Default for Leases<K> {
    fn default() -> Self {
        Leases::new(false)
    }
}

impl<K: ReleaseCluster> Leases<K> {
    /// No lease held yet; `create_namespace` as `--create-namespace` says.
    pub fn new(create_namespace: bool) -> Leases<K> {
        Leases {
            held: Mutex::default(),
            recorded: Mutex::default(),
            seen: Mutex::default(),
            owners: Mutex::default(),
            create_namespace,
            keys: Mutex::default(),
        }
    }

    /// `key` is the release's new checksum key in `context`, to write once the run
    /// holds its leases ([`Leases::write_key`]).
    pub fn write_key_once_held(&self, context: &str, key: Zeroizing<Vec<u8>>) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(context.to_owned(), key);
    }

    /// Takes the lease of `release` in every one of `clusters` before any of them is
    /// changed ([`take_every_lease`]), the records read under each: for a command that
    /// changes them outside a run's steps (`uninstall`). Refused: every lease taken is
    /// given back, and the first refusal is the error.
    pub async fn take_every(
        &self,
        clusters: &[&K],
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
    ) -> Result<(), StepError> {
        let contexts: Vec<&str> = clusters.iter().map(|c| c.context()).collect();
        let acquire = |context: &str, wait| {
            let cluster = clusters.iter().find(|c| c.context() == context);
            async move {
                let Some(cluster) = cluster else {
                    return Ok(());
                };
                self.take_or_defer(
                    cluster,
                    namespace,
                    release,
                    &lease_options(opts, wait),
                    reporter,
                    None,
                )
                .await
                .map_err(|e| step_error(&e))
            }
        };
        let stop = CancellationToken::new();
        match take_every_lease(&contexts, &stop, acquire, || self.release_all()).await {
            Ok(()) => Ok(()),
            Err((_, err, _)) => {
                self.release_all().await;
                Err(err)
            }
        }
    }

    /// Writes the checksum key drawn for `context` in `prepare`, if any (once).
    pub(super) async fn write_key(
        &self,
        handle: &K,
        namespace: &str,
        release: &str,
    ) -> Result<(), ClusterError> {
        let key = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(handle.context());
        match key {
            Some(key) => handle.create_checksum_key(namespace, release, &key).await,
            None => Ok(()),
        }
    }

    /// For [`ClusterSteps::acquire`]: the lease taken now, or none to take yet where
    /// the release namespace does not exist and the run may create it: nobody can hold
    /// a lease there, and creating the namespace is a change, made by the cluster's own
    /// step once every other lease is held (so a run refused elsewhere creates nothing).
    pub(super) async fn take_or_defer(
        &self,
        handle: &K,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
        prepared: Option<&History>,
    ) -> Result<(), ClusterError> {
        // Where the namespace is missing, taking the lease fails on it, before any
        // change (nothing is created here).
        match self
            .lock_and_read(handle, namespace, release, opts, false, reporter, prepared)
            .await
        {
            Ok(_) => Ok(()),
            Err(ClusterError::NoNamespace { .. }) if self.create_namespace => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `read`: the ownership of the objects of `context` as just read, when the
    /// run holds its lease there (otherwise nothing is noted: the step reads it under
    /// the lease).
    pub fn note_owners(&self, context: &str, read: ops::Ownership) {
        if self.get(context).is_some() {
            self.owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(context.to_owned(), (read, Instant::now()));
        }
    }

    /// The ownership noted for `context`, once, if read under the lease held now less
    /// than [`OWNERS_FRESH`] ago: a deploy step of the first wave goes on from the
    /// check made under its lease a moment before. A later wave's step reads again: in
    /// between, a writer that takes no lease (kubectl, another tool) may have created
    /// one of its objects.
    pub(super) fn fresh_owners(&self, context: &str) -> Option<ops::Ownership> {
        let (read, at) = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(context)?;
        (at.elapsed() < OWNERS_FRESH).then_some(read)
    }

    pub(super) fn get(&self, context: &str) -> Option<Arc<K::Lock>> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .cloned()
    }

    /// This run's lease of `release` in the cluster: held already, or taken now
    /// (waiting up to `opts.wait` for another run, and saying so).
    pub(super) async fn take(
        &self,
        handle: &K,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
        prepared: Option<&History>,
    ) -> Result<Arc<K::Lock>, ClusterError> {
        self.lock_and_read(
            handle,
            namespace,
            release,
            opts,
            self.create_namespace,
            reporter,
            prepared,
        )
        .await
    }

    /// The lease held already (and not lost), or taken now (creating its namespace
    /// first with `create_namespace`) and the records read under it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn lock_and_read(
        &self,
        handle: &K,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        create_namespace: bool,
        reporter: &Reporter,
        prepared: Option<&History>,
    ) -> Result<Arc<K::Lock>, ClusterError> {
        let context = handle.context();
        if let Some(lock) = self.get(context).filter(|l| !l.lost().is_cancelled()) {
            return Ok(lock);
        }
        let on_wait = |message: &str| reporter.phase(context, Phase::Waiting(message.to_owned()));
        let lock =
            ops::take_lease(handle, namespace, release, opts, create_namespace, &on_wait).await?;
        let lock = Arc::new(lock);
        // What was read under a lease held before is no read under this one.
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(context);
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(context.to_owned(), lock.clone());
        // Read again under the lease: a run that waited for another one must go back
        // to what that one deployed, not to what ran when this run was prepared.
        // (Once: a lease taken again for a restore must not make this run's own
        // revision "what ran before".) Unchanged, it is the prepared one, shared.
        if self.seen_history(context).is_none() {
            let read = ops::read_leased(handle, namespace, release).await?;
            let read = match prepared {
                Some(prepared) if *prepared == read.history => read.with_history(prepared.clone()),
                _ => read,
            };
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(context.to_owned())
                .or_insert(read);
        }
        Ok(lock)
    }

    /// The history of `context` as read under this run's lease, else `prepared`.
    pub(super) fn history(&self, context: &str, prepared: &History) -> History {
        self.seen_history(context)
            .unwrap_or_else(|| prepared.clone())
    }

    pub(super) fn seen_history(&self, context: &str) -> Option<History> {
        self.seen_read(context).map(|read| read.history)
    }

    /// The records of `context` as read under this run's lease.
    pub fn seen_read(&self, context: &str) -> Option<ops::LeasedRead<K::Records>> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .cloned()
    }

    /// [`Leases::seen_read`], or an error when the lease was never taken.
    pub(super) fn read_under_lease(
        &self,
        context: &str,
    ) -> Result<ops::LeasedRead<K::Records>, ClusterError> {
        self.seen_read(context)
            .ok_or_else(|| ClusterError::Release {
                context: context.to_owned(),
                message: "the records were not read under this run's lease".into(),
            })
    }

    /// The revision this run recorded in `context`, if it recorded one.
    pub(super) fn recorded_in(&self, context: &str) -> Option<u32> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .map(|(revision, _)| *revision)
    }

    pub(super) fn note_recorded(&self, context: &str, revision: u32, deployment_id: &str) {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(context.to_owned(), (revision, deployment_id.to_owned()));
    }

    /// The lease for a restore: still this run's (taken again at once if a renewal
    /// failure dropped it and nobody took it since), and the newest record in the
    /// cluster is the one this run wrote. Otherwise the restore is refused, saying why:
    /// another run changed the release since, and putting back what ran before this
    /// run would overwrite it.
    pub(super) async fn for_restore(
        &self,
        handle: &K,
        namespace: &str,
        release: &str,
        opts: &LockOptions,
        reporter: &Reporter,
    ) -> Result<(Arc<K::Lock>, ops::LeasedRead<K::Records>), StepError> {
        let context = handle.context();
        let lost = self
            .get(context)
            .filter(|l| l.lost().is_cancelled())
            .and_then(|l| l.lost_why());
        let retake = LockOptions {
            wait: Duration::ZERO,
            ..opts.clone()
        };
        let lock = self
            .take(handle, namespace, release, &retake, reporter, None)
            .await
            .map_err(|err| match (&err, &lost) {
                (ClusterError::Locked { .. }, Some(why)) => StepError::new(format!(
                    "cluster `{context}`: not restored: this run lost the lock of `{release}` ({why}) and another run holds it now: {err}"
                )),
                _ => step_error(&err),
            })?;
        let recorded = self
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(context)
            .cloned();
        let read = ops::read_leased(handle, namespace, release)
            .await
            .map_err(|e| step_error(&e))?;
        if let Some((revision, deployment_id)) = recorded {
            newest_is_ours(&read.history, revision, &deployment_id).map_err(|why| {
                StepError::new(format!(
                    "cluster `{context}`: not restored: {why}; another run changed `{release}` since (see `flotilla history`)"
                ))
            })?;
        }
        Ok((lock, read))
    }

    /// Gives every lease back (compare-and-swap: never one another run took), and
    /// forgets what was read under them: taken again, they are read again.
    pub async fn release_all(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let held: Vec<Arc<K::Lock>> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        futures::future::join_all(
            held.into_iter()
                .filter_map(|l| Arc::try_unwrap(l).ok())
                .map(HeldLock::release),
        )
        .await;
    }
}

/// How long an ownership check made under a cluster's lease stands for its deploy step.
pub const OWNERS_FRESH: Duration = Duration::from_secs(5);

/// The lock options of an attempt at a lease: `LeaseWait::No` waits for nobody.
pub fn lease_options(configured: &LockOptions, wait: LeaseWait) -> LockOptions {
    match wait {
        LeaseWait::No => LockOptions {
            wait: Duration::ZERO,
            ..configured.clone()
        },
        LeaseWait::AsConfigured => configured.clone(),
    }
}

/// Whether the newest record of a cluster is the one this run wrote (`revision` of
/// `deployment_id`), or older (this run's pending record never landed): a restore may
/// then go ahead. Otherwise another run recorded since, and why not.
fn newest_is_ours(history: &History, revision: u32, deployment_id: &str) -> Result<(), String> {
    let Some(newest) = history.latest() else {
        return Ok(());
    };
    let other = newest.revision > revision
        || (newest.revision == revision && newest.deployment_id != deployment_id);
    if other {
        return Err(format!(
            "the newest record is revision {} (deployment {}, {} by {}@{}), not revision {revision} that this run wrote",
            newest.revision, newest.deployment_id, newest.status, newest.user, newest.host
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::Status;

    #[test]
    fn a_restore_goes_ahead_only_over_this_runs_own_newest_record() {
        let history = |records: &[(u32, &str, Status)]| {
            History::new(
                records
                    .iter()
                    .map(|(n, id, s)| record(*n, id, *s))
                    .collect(),
            )
        };
        let ours = history(&[(1, "d1", Status::Deployed), (2, "d2", Status::Failed)]);
        assert_eq!(newest_is_ours(&ours, 2, "d2"), Ok(()));
        // This run's pending record never landed: what is there is older.
        let never_landed = history(&[(1, "d1", Status::Deployed)]);
        assert_eq!(newest_is_ours(&never_landed, 2, "d2"), Ok(()));
        assert_eq!(newest_is_ours(&History::new(Vec::new()), 1, "d1"), Ok(()));
        // Another run recorded after ours, or took our revision number.
        let newer = history(&[(2, "d2", Status::Failed), (3, "d3", Status::Deployed)]);
        let why = newest_is_ours(&newer, 2, "d2").unwrap_err();
        assert!(why.contains("revision 3 (deployment d3"), "{why}");
        let same_number = history(&[(1, "d1", Status::Deployed), (2, "dx", Status::Deployed)]);
        assert!(newest_is_ours(&same_number, 2, "d2").is_err());
    }

    /// What `take_every_lease` asked, in order, of a run whose clusters answer as
    /// `refuses` says (the contexts refused at the first, waitless attempt; those
    /// refused at the second).
    async fn asked(
        contexts: &[&str],
        refused_at_once: &[&str],
        refused_waiting: &[&str],
    ) -> (Vec<String>, Result<(), String>) {
        let log = Mutex::new(Vec::new());
        let acquire = |context: &str, wait: LeaseWait| {
            let refused = match wait {
                LeaseWait::No => refused_at_once.contains(&context),
                LeaseWait::AsConfigured => refused_waiting.contains(&context),
            };
            log.lock().unwrap().push(format!("{context} {wait:?}"));
            let context = context.to_owned();
            async move {
                if refused {
                    Err(StepError::new(format!("{context}: held by another run")))
                } else {
                    Ok(())
                }
            }
        };
        let release = || {
            log.lock().unwrap().push("release".to_owned());
            async {}
        };
        let result = take_every_lease(contexts, &CancellationToken::new(), acquire, release)
            .await
            .map_err(|(context, err, _)| format!("{context}: {}", err.message));
        (log.into_inner().unwrap(), result)
    }

    #[tokio::test]
    async fn every_lease_is_taken_at_once_when_nobody_holds_one() {
        let (log, result) = asked(&["us", "eu", "asia"], &[], &[]).await;
        assert_eq!(result, Ok(()));
        // One round, in name order, nothing given back.
        assert_eq!(log, ["asia No", "eu No", "us No"]);
    }

    #[tokio::test]
    async fn a_lease_refused_at_once_gives_every_lease_back_and_waits_in_name_order() {
        let (log, result) = asked(&["us", "eu", "asia"], &["eu"], &[]).await;
        assert_eq!(result, Ok(()));
        assert_eq!(
            log,
            [
                "asia No",
                "eu No",
                "us No",
                "release",
                "asia AsConfigured",
                "eu AsConfigured",
                "us AsConfigured"
            ]
        );
    }

    #[tokio::test]
    async fn a_lease_still_refused_after_waiting_stops_the_run_at_that_cluster() {
        let (log, result) = asked(&["us", "eu", "asia"], &["eu"], &["eu"]).await;
        assert_eq!(result, Err("eu: eu: held by another run".to_owned()));
        // The clusters after it in name order are never asked: nothing waits in vain.
        assert_eq!(log.last().map(String::as_str), Some("eu AsConfigured"));
        assert!(!log.iter().any(|l| l == "us AsConfigured"), "{log:?}");
    }

    #[tokio::test]
    async fn a_signal_while_waiting_for_a_lease_stops_the_run_before_any_change() {
        let stop = CancellationToken::new();
        stop.cancel();
        let acquire = |context: &str, wait: LeaseWait| {
            let context = context.to_owned();
            async move {
                match wait {
                    LeaseWait::No => Err(StepError::new(format!("{context}: held"))),
                    // Waits for ever: only the signal ends it.
                    LeaseWait::AsConfigured => std::future::pending().await,
                }
            }
        };
        let result = take_every_lease(&["eu"], &stop, acquire, || async {}).await;
        let Err((context, err, _)) = result else {
            panic!("taken although stopped");
        };
        assert_eq!(context, "eu");
        assert!(
            err.message.contains("stopped by a signal"),
            "{}",
            err.message
        );
    }
}
