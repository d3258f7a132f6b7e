//! The crate's error type and its mapping to exit codes.
//!
//! Every module has its own error enum (thiserror) carrying the context a user needs:
//! file, field path and value; or cluster, secret and path. This module only gathers
//! them; [`crate::exit`] decides the exit code. Messages never contain secret values.

use thiserror::Error;

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
    /// A run refused in every cluster before any change (all locked, all unreachable,
    /// permission denied); the report has been printed.
    #[error("{0}")]
    Refused(String),
    /// `status` found a cluster failing (a container stuck, a workload failed, an
    /// object missing, a failed revision); the report has been printed.
    #[error("{0}")]
    Unhealthy(String),
    /// A record a `promote` or `rollback` would act on that was changed after it was
    /// written (digests or MAC that do not verify, a Vault path it may not read), or
    /// whose MAC cannot be checked; nothing was changed.
    #[error("{0}")]
    Untrusted(String),
    /// A comparison that found a difference (`promote --check`); what differs has been
    /// printed.
    #[error("{0}")]
    Differs(String),
    /// A run abandoned by a second signal (its number); the partial report has been
    /// printed.
    #[error("{message}")]
    Abandoned { signal: i32, message: String },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
