//! Talking to one Kubernetes cluster: client per kubeconfig context, discovery,
//! server-side apply, prune, health wait, locks.
//!
//! Must not: render charts, read Vault, read or write release records (that is
//! [`crate::storage`]), or decide about other clusters (that is the action layer's job).
//! Every operation works on one [`ClusterHandle`]; many run concurrently, one per
//! cluster, so nothing here holds global state, and long waits take a
//! [`CancellationToken`] checked only at points where stopping leaves nothing half-done.

mod api_error;
mod apply;
mod client;
mod diagnose;
pub mod discovery;
mod error;
mod helm;
pub mod labels;
mod lock;
mod objects;
mod soak;
mod wait;

pub use api_error::{describe as describe_kube_error, status_text};
pub use apply::{settled_key, ApplyOptions, DiffAction, FieldChange, ObjectDiff, Removed};
pub use client::{load_kubeconfig, ClusterHandle, LoadedKubeconfig};
pub use diagnose::{text_lines as diagnosis_lines, Diagnosis, EventNote, FailingPod};
pub use error::{ClusterError, Conflict};
pub use helm::{HelmRelease, HELM_MANAGER};
pub use labels::Removal;
pub use lock::{
    holder_identity, host_name as lock_host, lease_name, lock_user, run_id, user_at_host, Lock,
    LockOptions, LEASE_DURATION,
};

pub use objects::{seen_by_dependents, sort_for_apply, ObjectRef};
pub use soak::{PodSample, SoakSample, WorkloadSample};
pub use tokio_util::sync::CancellationToken;
pub use wait::{Health, WaitOptions, DEFAULT_TRANSIENT_GRACE};

use std::sync::Arc;

/// The field manager of every server-side apply flotilla makes.
pub const FIELD_MANAGER: &str = "flotilla";

/// What a cluster operation reports while it runs (for progress bars and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Applied(ObjectRef),
    /// A Secret of a rollback left as it is live: its recorded data was redacted.
    KeptLive(ObjectRef),
    Pruned(ObjectRef),
    /// An object a prune or uninstall left in place, and why.
    Kept(Kept),
    Ready(ObjectRef),
    /// What the health wait still waits for (`Deployment ns/web (1 of 2 updated
    /// replicas available)`); sent when that changes.
    Waiting {
        pending: Vec<String>,
    },
}

/// An object of the release that a prune or uninstall did not delete, and why
/// (`annotated helm.sh/resource-policy: keep`, `a PersistentVolumeClaim is never pruned
/// ...`, or not this release's labels).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    pub object: ObjectRef,
    pub reason: String,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.object, self.reason)
    }
}

/// A progress callback; cheap to clone, safe to call from any task.
pub type Progress = Arc<dyn Fn(&str, Event) + Send + Sync>;

/// A progress callback that drops every event.
pub fn no_progress() -> Progress {
    Arc::new(|_, _| {})
}
