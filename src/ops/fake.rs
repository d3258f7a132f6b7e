//! A cluster in memory for the unit tests of the operations: objects applied and
//! deleted in a map, health as scripted, a lock that is always granted. No Kubernetes
//! here: what these tests show is the state machine (records, prune, repair), not the
//! API server's behaviour, which the fleet tests cover.

use super::{HeldLock, KubeClient};
use crate::cluster::{
    ApplyOptions, CancellationToken, ClusterError, Event, LockOptions, ObjectRef, Progress,
    WaitOptions,
};
use serde_json::Value;
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
        }
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

    async fn ensure_namespace(&self, _: &str) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn lock(&self, _: &str, _: &str, _: &LockOptions) -> Result<FakeLock, ClusterError> {
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
            self.live.lock().unwrap().insert(id.clone(), object.clone());
            progress("fake", Event::Applied(id.clone()));
            applied.push(id);
        }
        Ok(applied)
    }

    async fn delete_owned(
        &self,
        ids: &[ObjectRef],
        _: &ApplyOptions,
        _: &Progress,
    ) -> Result<Vec<ObjectRef>, ClusterError> {
        let mut deleted = Vec::new();
        for id in ids {
            if self.live.lock().unwrap().remove(id).is_some() {
                self.note(format!("delete {}/{}", id.kind, id.name));
                deleted.push(id.clone());
            }
        }
        Ok(deleted)
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
}
