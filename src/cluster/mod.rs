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
mod helm;
pub mod labels;
mod lock;
mod objects;
mod soak;
mod wait;

pub use api_error::{describe as describe_kube_error, status_text};
pub use apply::{ApplyOptions, Conflict, DiffAction, FieldChange, ObjectDiff, Removed};
pub use client::{load_kubeconfig, ClusterHandle, LoadedKubeconfig};
pub use diagnose::{text_lines as diagnosis_lines, Diagnosis, EventNote, FailingPod};
pub use helm::{HelmRelease, HELM_MANAGER};
pub use labels::Removal;
pub use lock::{
    holder_identity, host_name as lock_host, lease_name, run_id, user_at_host, Lock, LockOptions,
    LEASE_DURATION,
};

/// The user part of `user@host`, as records store it.
pub fn lock_user() -> String {
    user_at_host()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}
pub use objects::{sort_for_apply, ObjectRef};
pub use soak::{PodSample, SoakSample, WorkloadSample};
pub use tokio_util::sync::CancellationToken;
pub use wait::{Health, WaitOptions, DEFAULT_TRANSIENT_GRACE};

use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

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

#[derive(Debug, Error)]
pub enum ClusterError {
    /// A kubeconfig file that cannot be read: which one, why it was chosen, what is wrong.
    #[error("cannot read the kubeconfig {file} ({chosen}): {problem}; name the right one with --kubeconfig FILE or KUBECONFIG=FILE")]
    Kubeconfig {
        file: String,
        chosen: String,
        problem: String,
    },
    #[error("kube context `{context}`: {message}")]
    Context { context: String, message: String },
    #[error("cluster `{context}` is unreachable: {message}")]
    Unreachable { context: String, message: String },
    #[error("cluster `{context}`: {object}: {message}")]
    InvalidObject {
        context: String,
        object: String,
        message: String,
    },
    #[error("cluster `{context}`: the server does not know kind `{kind}` of `{api_version}` (object {object})")]
    UnknownKind {
        context: String,
        api_version: String,
        kind: String,
        object: String,
    },
    #[error("cluster `{context}`: {object}: fields owned by another manager (rerun with --force-conflicts to take them): {}",
        conflicts.iter().map(|c| format!("{} owned by `{}`", c.field, c.manager)).collect::<Vec<_>>().join(", "))]
    Conflict {
        context: String,
        object: String,
        conflicts: Vec<Conflict>,
    },
    #[error("cluster `{context}`: cannot {action} {object}: {message}")]
    Api {
        context: String,
        action: String,
        object: String,
        message: String,
    },
    #[error("cluster `{context}`: {object} failed: {reason}")]
    Unhealthy {
        context: String,
        object: String,
        reason: String,
    },
    #[error("cluster `{context}`: not healthy after {}: still waiting for {}", humantime::format_duration(*timeout), pending.join(", "))]
    Timeout {
        context: String,
        timeout: Duration,
        pending: Vec<String>,
    },
    #[error("cluster `{context}`: release `{release}` is locked by {holder} since {since} (lease {lease}), still held when this run's --lock-timeout ran out; wait for that run to finish (or for its lease to go stale), or raise --lock-timeout")]
    Locked {
        context: String,
        release: String,
        /// `namespace/name` of the Lease.
        lease: String,
        holder: String,
        since: String,
    },
    /// 401, 403 or a credential (exec plugin, token) that could not be had.
    #[error("cluster `{context}`: permission denied: cannot {action} {object}: {message}")]
    Denied {
        context: String,
        action: String,
        object: String,
        message: String,
    },
    /// This run no longer holds the release's lease: another run may own it now.
    #[error("cluster `{context}`: stopped: this run lost the lock of the release ({message})")]
    LockLost { context: String, message: String },
    #[error(
        "cluster `{context}`: release records of `{release}` in namespace `{namespace}`: {message}"
    )]
    Records {
        context: String,
        namespace: String,
        release: String,
        message: String,
    },
    #[error("cluster `{context}`: {object} exists and is not release `{release}`'s: it belongs to {owner}; nothing was changed (rerun with --adopt to take it over)")]
    NotOwned {
        context: String,
        release: String,
        object: String,
        owner: String,
    },
    #[error("cluster `{context}`: {message}")]
    Release { context: String, message: String },
    #[error("cluster `{context}`: cancelled")]
    Cancelled { context: String },
}
