//! The fleet's errors. Exit code 2 for bad input (unknown cluster, unreadable seed file),
//! 3 for an environment problem (a missing binary, a server that would not start).

use std::path::PathBuf;
use thiserror::Error;

pub type Result<T, E = FleetError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum FleetError {
    #[error("{what} not found: set {var}, put it on PATH, or run scripts/install-deps.sh (it writes {cache})")]
    MissingBinary {
        what: &'static str,
        var: &'static str,
        cache: PathBuf,
    },
    #[error("{file}: {message}")]
    BadInput { file: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    /// The cause is in the message (not a `#[source]`), so chains do not print it twice.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {process}: {message} (log: {log})")]
    Start {
        process: String,
        message: String,
        log: PathBuf,
    },
    #[error("cluster {cluster}: {message}")]
    Cluster { cluster: String, message: String },
    #[error("vault set-up: {0}")]
    Vault(String),
    #[error("certificates: {0}")]
    Certs(String),
    #[error("no fleet is up in {0} (run flotilla-fleet up)")]
    NotUp(PathBuf),
}

impl FleetError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FleetError::Io {
            path: path.into(),
            source,
        }
    }

    /// Exit code as flotilla's own: 2 bad input, 3 environment problem.
    pub fn exit_code(&self) -> i32 {
        match self {
            FleetError::BadInput { .. } | FleetError::Usage(_) => 2,
            _ => 3,
        }
    }
}
