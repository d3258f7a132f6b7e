//! A cluster in memory for the unit tests of the operations and of the multi-cluster
//! run: objects applied and deleted in a map, health as scripted, the release's records
//! in a [`MemoryStore`], a lock granted unless a test says another run holds it. No
//! Kubernetes here: what these tests show is the state machine (records, prune,
//! repair, waves, restores), not the API server's behaviour, which the fleet tests
//! cover.

use super::{HeldLock, KubeClient, ReleaseCluster};
use crate::cluster::labels::{self, LiveMeta, Removal};
use crate::cluster::{
    ApplyOptions, CancellationToken, ClusterError, Diagnosis, Event, Kept, LockOptions, ObjectRef,
    Progress, Removed, SoakSample, WaitOptions,
};
use crate::storage::MemoryStore;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// How the scripted cluster answers the health wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Healthy,
    /// A pod of the new revision crashloops.
    Crash,
    /// Another run takes the lease during the wait (which then stops, cancelled).
    LoseLease,
}

/// One cluster in memory. Cheap to clone: clones are the same cluster (as clones of a
/// [`crate::cluster::ClusterHandle`] are), so a test keeps one to look at and script
/// while a run holds another.
#[derive(Clone, Default)]
pub struct FakeKube(Arc<FakeState>);

impl std::ops::Deref for FakeKube {
    type Target = FakeState;

    fn deref(&self) -> &FakeState {
        &self.0
    }
}

pub struct FakeState {
    context: String,
    pub live: Mutex<BTreeMap<ObjectRef, Value>>,
    wait: Mutex<Wait>,
    /// The next health wait only answers this; the later ones answer `wait`.
    wait_once: Mutex<Option<Wait>>,
    /// The apply of the object with this name fails (after the ones before it); with
    /// `true`, only the next apply of it.
    reject: Mutex<Option<(String, bool)>>,
    /// The apply of the object with this name gets no answer: the cluster is lost.
    lost_at: Mutex<Option<String>>,
    /// The lease every lock hands out; cancel it to make the run lose its lease.
    pub lease: CancellationToken,
    /// Who holds the lease for another run: every lock is then refused.
    held_by: Mutex<Option<String>>,
    /// How long each request takes to be answered (zero: at once).
    round_trip: Mutex<std::time::Duration>,
    /// The release's namespace is not there (until created).
    no_namespace: std::sync::atomic::AtomicBool,
    pub log: Mutex<Vec<String>>,
    /// What a soak sees, one sample per look; the last one repeats.
    pub samples: Mutex<std::collections::VecDeque<SoakSample>>,
    pub samples_taken: std::sync::atomic::AtomicUsize,
    /// The release's records in this cluster.
    pub records: MemoryStore,
    /// The release's checksum key, once written.
    key: Mutex<Option<Zeroizing<Vec<u8>>>>,
    /// Run when the next health wait starts (a signal that arrives mid-rollout).
    on_next_wait: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// A rollout's own time, taken by every health wait, and who counts it.
    rollout_time: Mutex<Option<(std::time::Duration, Arc<InFlight>)>>,
}

/// How many clusters are in a rollout at once, and the most there were: what the
/// scale benchmark holds against the run's concurrency bound.
#[derive(Default)]
pub struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl InFlight {
    /// The most in a rollout at once since the last call (which starts counting anew).
    pub fn take_most(&self) -> usize {
        self.most.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

impl Default for FakeState {
    fn default() -> FakeState {
        FakeState {
            context: "fake".into(),
            live: Mutex::new(BTreeMap::new()),
            wait: Mutex::new(Wait::Healthy),
            wait_once: Mutex::new(None),
            reject: Mutex::new(None),
            lost_at: Mutex::new(None),
            lease: CancellationToken::new(),
            held_by: Mutex::new(None),
            no_namespace: Default::default(),
            round_trip: Mutex::new(std::time::Duration::ZERO),
            log: Mutex::new(Vec::new()),
            samples: Mutex::new(Default::default()),
            samples_taken: Default::default(),
            records: MemoryStore::new(),
            key: Mutex::new(None),
            rollout_time: Mutex::new(None),
            on_next_wait: Mutex::new(None),
        }
    }
}

impl FakeKube {
    /// A cluster named `fake`.
    pub fn new() -> FakeKube {
        FakeKube::default()
    }

    /// A cluster of kube context `context`, for runs of many clusters.
    pub fn named(context: &str) -> FakeKube {
        FakeKube(Arc::new(FakeState {
            context: context.to_owned(),
            ..FakeState::default()
        }))
    }

    /// How the health waits from now on end (and no one-off answer is pending).
    pub fn set_wait(&self, wait: Wait) {
        *self.wait.lock().unwrap() = wait;
        *self.wait_once.lock().unwrap() = None;
    }

    /// How the next health wait ends (a crash of the revision a run applies, which
    /// the restore after it does not have).
    pub fn next_wait(&self, wait: Wait) {
        *self.wait_once.lock().unwrap() = Some(wait);
    }

    /// The apply of the object named `name` fails from now on (`None`: none does).
    pub fn reject(&self, name: Option<&str>) {
        *self.reject.lock().unwrap() = name.map(|n| (n.to_owned(), false));
    }

    /// The next apply of the object named `name` fails (an admission webhook that
    /// refused once).
    pub fn reject_next(&self, name: &str) {
        *self.reject.lock().unwrap() = Some((name.to_owned(), true));
    }

    /// The apply of the object named `name` gets no answer from now on.
    pub fn lose_at(&self, name: Option<&str>) {
        *self.lost_at.lock().unwrap() = name.map(str::to_owned);
    }

    /// Every request from now on, to the cluster and to its records, is answered after
    /// `rtt`: with the clock paused, a run's time is then its round trips in sequence
    /// (requests sent at once overlap). One apply or health wait is one request here,
    /// where a real cluster needs two rounds for each (the apply in dependency order,
    /// the wait's list then watch).
    pub fn answer_after(&self, rtt: std::time::Duration) {
        *self.round_trip.lock().unwrap() = rtt;
        self.records.answer_after(rtt);
    }

    async fn round_trip(&self) {
        let rtt = *self.round_trip.lock().unwrap();
        if !rtt.is_zero() {
            tokio::time::sleep(rtt).await;
        }
    }

    /// The release's namespace is not there: a lock is refused until it is created.
    pub fn without_namespace(&self) {
        self.no_namespace
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Another run (`holder`) holds the release's lease: every lock is refused.
    pub fn hold_lease(&self, holder: Option<&str>) {
        *self.held_by.lock().unwrap() = holder.map(str::to_owned);
    }

    /// `then` runs when the next health wait starts.
    pub fn during_next_wait(&self, then: impl FnOnce() + Send + 'static) {
        *self.on_next_wait.lock().unwrap() = Some(Box::new(then));
    }

    /// Every health wait first takes `time` (an apply and a rollout's own time, which
    /// costs no CPU), counted in `in_flight` while it lasts.
    pub fn take_rollout_time(&self, time: std::time::Duration, in_flight: Arc<InFlight>) {
        *self.rollout_time.lock().unwrap() = Some((time, in_flight));
    }

    pub fn script_samples(&self, samples: Vec<SoakSample>) {
        *self.samples.lock().unwrap() = samples.into();
    }

    pub fn samples_taken(&self) -> usize {
        self.samples_taken.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn live_names(&self) -> Vec<String> {
        self.live
            .lock()
            .unwrap()
            .keys()
            .map(|id| format!("{}/{}", id.kind, id.name))
            .collect()
    }

    /// Every live object as JSON text: what the API server was sent.
    pub fn live_text(&self) -> String {
        let live = self.live.lock().unwrap();
        serde_json::to_string(&live.values().collect::<Vec<_>>()).unwrap()
    }

    pub fn logged(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

/// The lease, and the round trip its release takes.
pub struct FakeLock(CancellationToken, std::time::Duration);

impl HeldLock for FakeLock {
    fn lost(&self) -> CancellationToken {
        self.0.clone()
    }

    fn lost_why(&self) -> Option<String> {
        self.0
            .is_cancelled()
            .then(|| "lease ns/flotilla.hello was taken by bob@laptop pid 22 run 1".into())
    }

    async fn release(self) {
        if !self.1.is_zero() {
            tokio::time::sleep(self.1).await;
        }
    }
}

impl KubeClient for FakeKube {
    type Lock = FakeLock;

    fn context(&self) -> &str {
        &self.context
    }

    async fn ensure_namespace(&self, namespace: &str, create: bool) -> Result<(), ClusterError> {
        self.round_trip().await;
        use std::sync::atomic::Ordering::SeqCst;
        if !self.no_namespace.load(SeqCst) {
            return Ok(());
        }
        if !create {
            return Err(ClusterError::NoNamespace {
                context: self.context.clone(),
                namespace: namespace.to_owned(),
            });
        }
        self.note(format!("create namespace {namespace}"));
        self.no_namespace.store(false, SeqCst);
        Ok(())
    }

    async fn lock(
        &self,
        namespace: &str,
        release: &str,
        _: &LockOptions,
        _: &(dyn Fn(&str) + Sync),
    ) -> Result<FakeLock, ClusterError> {
        self.round_trip().await;
        if self.no_namespace.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ClusterError::NoNamespace {
                context: self.context.clone(),
                namespace: namespace.to_owned(),
            });
        }
        self.note("lock".into());
        match self.held_by.lock().unwrap().clone() {
            Some(holder) => Err(ClusterError::Locked {
                context: self.context.clone(),
                release: release.to_owned(),
                lease: format!("{namespace}/flotilla.{release}"),
                holder,
                since: "2026-12-07T09:00:00Z".into(),
            }),
            None => Ok(FakeLock(
                self.lease.clone(),
                *self.round_trip.lock().unwrap(),
            )),
        }
    }

    async fn identity(&self, object: &Value, namespace: &str) -> Result<ObjectRef, ClusterError> {
        let mut id = ObjectRef::of(object).map_err(|message| ClusterError::InvalidObject {
            context: self.context.clone(),
            object: "an object".into(),
            message,
        })?;
        if id.kind != "Namespace" {
            id.namespace.get_or_insert_with(|| namespace.to_owned());
        }
        Ok(id)
    }

    async fn is_live(&self, id: &ObjectRef, _: &str) -> Result<bool, ClusterError> {
        self.round_trip().await;
        Ok(self.live.lock().unwrap().contains_key(id))
    }

    async fn live_meta(&self, id: &ObjectRef, _: &str) -> Result<Option<LiveMeta>, ClusterError> {
        self.round_trip().await;
        self.note(format!("read {}/{}", id.kind, id.name));
        Ok(self.live.lock().unwrap().get(id).map(LiveMeta::of))
    }

    async fn live_object(&self, id: &ObjectRef, _: &str) -> Result<Option<Value>, ClusterError> {
        self.round_trip().await;
        Ok(self.live.lock().unwrap().get(id).cloned())
    }

    async fn apply_all(
        &self,
        objects: &[Value],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        self.round_trip().await;
        let mut applied = Vec::new();
        for object in objects {
            let id = self.identity(object, &opts.namespace).await?;
            if self.lost_at.lock().unwrap().as_deref() == Some(id.name.as_str()) {
                return Err(ClusterError::Unreachable {
                    context: self.context.clone(),
                    message: format!("no answer to the apply of {id} within 15s"),
                    source: None,
                });
            }
            let rejected = {
                let mut reject = self.reject.lock().unwrap();
                let hit = reject.as_ref().is_some_and(|(name, _)| *name == id.name);
                if hit && reject.as_ref().is_some_and(|(_, once)| *once) {
                    *reject = None;
                }
                hit
            };
            if rejected {
                return Err(ClusterError::Api {
                    context: self.context.clone(),
                    action: "apply".into(),
                    object: id.to_string(),
                    message: "admission webhook denied the request".into(),
                    source: None,
                });
            }
            self.note(format!("apply {}/{}", id.kind, id.name));
            let mut object = object.clone();
            labels::stamp(&mut object, &opts.release);
            if opts.labelled_templates.contains(&id) {
                labels::keep_pod_template_label(&mut object, &opts.release);
            }
            if opts.adopted.contains(&id) {
                labels::annotate(&mut object, labels::ADOPTED_BY, &opts.deployment_id);
            }
            // As a server-side apply: the live object takes the apiVersion sent.
            let mut live = self.live.lock().unwrap();
            live.remove(&id);
            live.insert(id.clone(), object);
            progress(&self.context, Event::Applied(id.clone()));
            applied.push(id);
        }
        Ok(applied)
    }

    async fn wait_gone(
        &self,
        _id: &ObjectRef,
        _namespace: &str,
        _timeout: std::time::Duration,
    ) -> Result<(), ClusterError> {
        // A deletion here takes effect at once.
        Ok(())
    }

    async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        opts: &ApplyOptions,
        removal: Removal,
        _: &Progress,
    ) -> Result<Removed, ClusterError> {
        // Nothing to delete is no request (as on a real cluster).
        if !ids.is_empty() {
            self.round_trip().await;
        }
        let mut removed = Removed::default();
        for id in ids {
            let mut live = self.live.lock().unwrap();
            let Some(object) = live.get(id) else { continue };
            let reason = labels::keep_reason(
                &id.kind,
                labels::string_map(object, "labels").as_ref(),
                labels::string_map(object, "annotations").as_ref(),
                &opts.release,
                removal,
            );
            let annotations = labels::string_map(object, "annotations");
            if reason.is_some() && labels::handed_back(annotations.as_ref(), removal) {
                if let Some(meta) = live.get_mut(id).and_then(|o| o.get_mut("metadata")) {
                    meta["labels"] = json!({});
                    meta["annotations"] = json!({});
                }
            }
            match reason {
                Some(reason) => removed.kept.push(Kept {
                    object: id.clone(),
                    reason,
                }),
                None => {
                    live.remove(id);
                    drop(live);
                    self.note(format!("delete {}/{}", id.kind, id.name));
                    removed.deleted.push(id.clone());
                }
            }
        }
        Ok(removed)
    }

    async fn wait_healthy(
        &self,
        _: &[ObjectRef],
        _: &WaitOptions,
        cancel: &CancellationToken,
        _: &Progress,
    ) -> Result<(), ClusterError> {
        self.round_trip().await;
        self.note("wait".into());
        let then = self.on_next_wait.lock().unwrap().take();
        if let Some(then) = then {
            then();
        }
        let rollout_time = self.rollout_time.lock().unwrap().clone();
        if let Some((time, in_flight)) = rollout_time {
            use std::sync::atomic::Ordering::SeqCst;
            let now = in_flight.now.fetch_add(1, SeqCst) + 1;
            in_flight.most.fetch_max(now, SeqCst);
            tokio::time::sleep(time).await;
            in_flight.now.fetch_sub(1, SeqCst);
        }
        let once = self.wait_once.lock().unwrap().take();
        let wait = once.unwrap_or(*self.wait.lock().unwrap());
        match wait {
            Wait::Healthy => Ok(()),
            Wait::LoseLease => {
                self.lease.cancel();
                cancel.cancelled().await;
                Err(ClusterError::Cancelled {
                    context: self.context.clone(),
                })
            }
            Wait::Crash => Err(ClusterError::Unhealthy {
                context: self.context.clone(),
                object: "Deployment ns/web".into(),
                reason: "pod web-1 container web: CrashLoopBackOff".into(),
            }),
        }
    }

    async fn soak_sample(&self, _: &str, _: &str) -> Result<SoakSample, ClusterError> {
        self.round_trip().await;
        self.samples_taken
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut samples = self.samples.lock().unwrap();
        let sample = if samples.len() > 1 {
            samples.pop_front()
        } else {
            samples.front().cloned()
        };
        Ok(sample.unwrap_or_default())
    }
}

impl ReleaseCluster for FakeKube {
    type Records = MemoryStore;

    /// The one release's records, whatever the names (a fake holds one release).
    fn records(&self, _: &str, _: &str) -> MemoryStore {
        self.records.clone()
    }

    async fn checksum_key(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ClusterError> {
        self.round_trip().await;
        Ok(self.key.lock().unwrap().clone())
    }

    async fn create_checksum_key(&self, _: &str, _: &str, key: &[u8]) -> Result<(), ClusterError> {
        self.round_trip().await;
        *self.key.lock().unwrap() = Some(Zeroizing::new(key.to_vec()));
        Ok(())
    }

    /// A failed health wait, as the fleet's diagnosis would name it: the crashing pod.
    async fn diagnose(&self, _: &str, _: &str, err: &ClusterError) -> Option<Diagnosis> {
        matches!(err, ClusterError::Unhealthy { .. }).then(|| Diagnosis {
            pods: vec![crate::cluster::FailingPod {
                namespace: "ns".into(),
                pod: "web-1".into(),
                container: "web".into(),
                reason: "CrashLoopBackOff".into(),
                message: None,
                restarts: 3,
                logs: vec!["panic: no database".into()],
                logs_unavailable: None,
            }],
            ..Default::default()
        })
    }
}
