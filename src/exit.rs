//! The one place that decides exit codes, at the edge of the program. Scripts and CI
//! rely on them:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a deploy or rollback that ran and failed (after its own rollback) |
//! | 2 | bad input or configuration; nothing was changed |
//! | 3 | an environment problem (a cluster or Vault unreachable, permission denied, a lock held) found before anything was changed; also a run refused in every cluster before any change |
//! | 130, 143 | a run abandoned by a second SIGINT or SIGTERM (128 + the signal): its partial report is printed |
//!
//! The layers below only describe what went wrong (their error enums); none of them
//! imports this module, so the classification lives here once and the layers keep
//! pointing one way.

use crate::cluster::ClusterError;
use crate::error::Error;
use crate::vault::VaultError;

/// What an error means to the caller of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// A deploy or rollback that failed (after its own rollback).
    Failed,
    /// Bad input or configuration; nothing was changed.
    UserError,
    /// A cluster or Vault unreachable, or permission denied, found before any change.
    Environment,
    /// Abandoned by a second signal (its number): 128 + the number, as shells report.
    Signal(u8),
}

impl ExitKind {
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failed => 1,
            ExitKind::UserError => 2,
            ExitKind::Environment => 3,
            ExitKind::Signal(n) => 128u8.saturating_add(n),
        }
    }
}

/// Errors that have an exit kind.
pub trait Classify {
    fn exit_kind(&self) -> ExitKind;
}

impl Classify for Error {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Error::Config(_) | Error::Render(_) | Error::Reported(_) => ExitKind::UserError,
            Error::Vault(err) => err.exit_kind(),
            Error::Cluster(err) => err.exit_kind(),
            Error::Failed(_) => ExitKind::Failed,
            Error::Refused(_) => ExitKind::Environment,
            Error::Abandoned { signal, .. } => ExitKind::Signal(u8::try_from(*signal).unwrap_or(0)),
            Error::Output(_) => ExitKind::Environment,
        }
    }
}

impl Classify for ClusterError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            ClusterError::Kubeconfig { .. }
            | ClusterError::Context { .. }
            | ClusterError::InvalidObject { .. }
            | ClusterError::UnknownKind { .. }
            | ClusterError::Release { .. } => ExitKind::UserError,
            ClusterError::Unreachable { .. }
            | ClusterError::Locked { .. }
            | ClusterError::NotOwned { .. }
            | ClusterError::Denied { .. } => ExitKind::Environment,
            ClusterError::Conflict { .. }
            | ClusterError::Api { .. }
            | ClusterError::Unhealthy { .. }
            | ClusterError::Timeout { .. }
            | ClusterError::Records { .. }
            | ClusterError::LockLost { .. }
            | ClusterError::Cancelled { .. } => ExitKind::Failed,
        }
    }
}

/// 2 for what is wrong in files, variables or mappings (nothing asked of Vault yet);
/// 3 for what Vault answered or failed to answer: missing secrets, denials, bad
/// credentials, sealed or unreachable.
impl Classify for VaultError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            VaultError::Config(_)
            | VaultError::NoAddress { .. }
            | VaultError::Setting { .. }
            | VaultError::Mapping { .. } => ExitKind::UserError,
            VaultError::Login { .. }
            | VaultError::Server { .. }
            | VaultError::Unresolved(_)
            | VaultError::CheckFailed { .. } => ExitKind::Environment,
            VaultError::Many(errors) => {
                if errors
                    .iter()
                    .any(|e| e.exit_kind() == ExitKind::Environment)
                {
                    ExitKind::Environment
                } else {
                    ExitKind::UserError
                }
            }
        }
    }
}
