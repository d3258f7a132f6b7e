//! The crate's error type and its mapping to exit codes.
//!
//! Every module has its own error enum (thiserror) carrying the context a user needs:
//! file, field path and value; or cluster, secret and path. This module only gathers
//! them and decides the exit code. Messages never contain secret values.

use thiserror::Error;

/// The exit codes scripts and CI rely on (MISSION.md, "Conventions").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// A deploy or rollback that failed (after its own rollback).
    Failed = 1,
    /// Bad input or configuration; nothing was changed.
    UserError = 2,
    /// A cluster or Vault unreachable, or permission denied, found before any change.
    Environment = 3,
}

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Render(#[from] crate::engine::RenderError),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A problem found by `lint` or another check that has already printed its report.
    #[error("{0}")]
    Reported(String),
    /// A deploy or rollback that ran and failed; the report has been printed.
    #[error("{0}")]
    Failed(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn kind(&self) -> ExitKind {
        match self {
            Error::Config(_) | Error::Render(_) | Error::Reported(_) => ExitKind::UserError,
            Error::Vault(err) => err.exit_kind(),
            Error::Cluster(err) => err.exit_kind(),
            Error::Failed(_) => ExitKind::Failed,
            Error::Output(_) => ExitKind::Environment,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.kind() as u8
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
