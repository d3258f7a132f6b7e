//! Talking to one Kubernetes cluster: client per kubeconfig context, discovery,
//! server-side apply, prune, health wait, locks.
//!
//! Must not: render charts, read Vault, or decide about other clusters (that is the
//! action layer's job).

use crate::error::ExitKind;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("{0}")]
    Todo(String),
}

impl ClusterError {
    pub fn exit_kind(&self) -> ExitKind {
        ExitKind::Environment
    }
}
