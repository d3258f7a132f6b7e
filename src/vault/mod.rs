//! Secrets from Vault: login, KV v1/v2 reads, per-cluster mapping resolution, and the
//! [`SecretValue`] type whose Debug and Display never show the value.
//!
//! Must not: render charts or talk to a cluster; log or format a secret value.

use crate::error::ExitKind;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VaultError {
    #[error("{0}")]
    Todo(String),
}

impl VaultError {
    pub fn exit_kind(&self) -> ExitKind {
        ExitKind::Environment
    }
}
