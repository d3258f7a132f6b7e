//! A cluster in memory for the unit tests of the operations: objects applied and
//! deleted in a map, health as scripted, a lock that is always granted. No Kubernetes
//! here: what these tests show is the state machine (records, prune, repair), not the
//! API server's behaviour, which the fleet tests cover.

use super::{HeldLock, KubeClient};
use crate::cluster::labels::{self, LiveMeta, Removal};
use crate::cluster::{
    ApplyOptions, CancellationToken, ClusterError, Event, Kept, LockOptions, ObjectRef, Progress,
    Removed, SoakSample, WaitOptions,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How the scripted cluster answers the health wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Healthy,
    /// A pod of the new revision crashloops.
    Crash,
    /// Another run takes the lease during the wait (which then stops, cancelled).
    LoseLease,
}

pub struct FakeKube {
    pub live: Mutex<BTreeMap<ObjectRef, Value>>,
    pub wait: Wait,
    /// The apply of the object with this name fails (after the ones before it).
    pub reject: Option<String>,
    /// The apply of the object with this name gets no answer: the cluster is lost.
    pub lost_at: Option<String>,
    /// The lease every lock hands out; cancel it to make the run lose its lease.
    pub lease: CancellationToken,
    pub log: Mutex<Vec<String>>,
    /// What a soak sees, one sample per look; the last one repeats.
    pub samples: Mutex<std::collections::VecDeque<SoakSample>>,
    pub samples_taken: std::sync::atomic::AtomicUsize,
}

impl Default for FakeKube {
    fn default() -> FakeKube {
        FakeKube::new()
    }
}

impl FakeKube {
    pub fn new() -> FakeKube {
        FakeKube {
            live: Mutex::new(BTreeMap::new()),
            wait: Wait::Healthy,
            reject: None,
            lost_at: None,
            lease: CancellationToken::new(),
            log: Mutex::new(Vec::new()),
            samples: Mutex::new(Default::default()),
            samples_taken: Default::default(),
        }
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

pub struct FakeLock(CancellationToken);

impl HeldLock for FakeLock {
    fn lost(&self) -> CancellationToken {
        self.0.clone()
    }

    fn lost_why(&self) -> Option<String> {
        self.0
            .is_cancelled()
            .then(|| "lease ns/flotilla.hello was taken by bob@laptop pid 22 run 1".into())
    }

    async fn release(self) {}
}

impl KubeClient for FakeKube {
    type Lock = FakeLock;

    fn context(&self) -> &str {
        "fake"
    }

    async fn ensure_namespace(&self, _: &str, _: bool) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn lock(
        &self,
        _: &str,
        _: &str,
        _: &LockOptions,
        _: &(dyn Fn(&str) + Sync),
    ) -> Result<FakeLock, ClusterError> {
        Ok(FakeLock(self.lease.clone()))
    }

    async fn identity(&self, object: &Value, namespace: &str) -> Result<ObjectRef, ClusterError> {
        let mut id = ObjectRef::of(object).map_err(|message| ClusterError::InvalidObject {
            context: "fake".into(),
            object: "an object".into(),
            message,
        })?;
        if id.kind != "Namespace" {
            id.namespace.get_or_insert_with(|| namespace.to_owned());
        }
        Ok(id)
    }

    async fn is_live(&self, id: &ObjectRef, _: &str) -> Result<bool, ClusterError> {
        Ok(self.live.lock().unwrap().contains_key(id))
    }

    async fn live_meta(&self, id: &ObjectRef, _: &str) -> Result<Option<LiveMeta>, ClusterError> {
        self.note(format!("read {}/{}", id.kind, id.name));
        Ok(self.live.lock().unwrap().get(id).map(|o| LiveMeta {
            labels: labels::string_map(o, "labels").unwrap_or_default(),
            annotations: labels::string_map(o, "annotations").unwrap_or_default(),
            managers: Vec::new(),
        }))
    }

    async fn live_object(&self, id: &ObjectRef, _: &str) -> Result<Option<Value>, ClusterError> {
        Ok(self.live.lock().unwrap().get(id).cloned())
    }

    async fn apply_all(
        &self,
        objects: &[Value],
        opts: &ApplyOptions,
        progress: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        let mut applied = Vec::new();
        for object in objects {
            let id = self.identity(object, &opts.namespace).await?;
            if self.lost_at.as_deref() == Some(id.name.as_str()) {
                return Err(ClusterError::Unreachable {
                    context: "fake".into(),
                    message: format!("no answer to the apply of {id} within 15s"),
                });
            }
            if self.reject.as_deref() == Some(id.name.as_str()) {
                return Err(ClusterError::Api {
                    context: "fake".into(),
                    action: "apply".into(),
                    object: id.to_string(),
                    message: "admission webhook denied the request".into(),
                });
            }
            self.note(format!("apply {}/{}", id.kind, id.name));
            let mut object = object.clone();
            labels::stamp(&mut object, &opts.release);
            if opts.adopted.contains(&id) {
                labels::annotate(&mut object, labels::ADOPTED_BY, &opts.deployment_id);
            }
            // As a server-side apply: the live object takes the apiVersion sent.
            let mut live = self.live.lock().unwrap();
            live.remove(&id);
            live.insert(id.clone(), object);
            progress("fake", Event::Applied(id.clone()));
            applied.push(id);
        }
        Ok(applied)
    }

    async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        opts: &ApplyOptions,
        removal: Removal,
        _: &Progress,
    ) -> Result<Removed, ClusterError> {
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
        self.note("wait".into());
        match self.wait {
            Wait::Healthy => Ok(()),
            Wait::LoseLease => {
                self.lease.cancel();
                cancel.cancelled().await;
                Err(ClusterError::Cancelled {
                    context: "fake".into(),
                })
            }
            Wait::Crash => Err(ClusterError::Unhealthy {
                context: "fake".into(),
                object: "Deployment ns/web".into(),
                reason: "pod web-1 container web: CrashLoopBackOff".into(),
            }),
        }
    }

    async fn soak_sample(&self, _: &str, _: &str) -> Result<SoakSample, ClusterError> {
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
