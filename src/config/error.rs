use std::path::PathBuf;
use thiserror::Error;

/// A problem in an environment file or a release descriptor. Always bad input: exit 2.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A YAML syntax error or a value of the wrong type or an unknown field, as found by
    /// the parser; `field` is the path serde was at.
    #[error("{file}{}: {field}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        file: PathBuf,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
}
