//! What can go wrong between a descriptor's `secrets` list and the values: bad mappings
//! and settings (found before Vault is asked, exit 2) and what Vault answers or fails to
//! answer (exit 3). No message here ever holds a secret value, a token or a secret id.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VaultError {
    /// A descriptor or environment that fails the config checks of its secrets (no
    /// `vault:` section, no source for a cluster, a path outside the mount...).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    #[error("no Vault address: set `vault.address` in {} or the VAULT_ADDR variable", file.display())]
    NoAddress { file: PathBuf },

    /// A setting (file field or variable, named by `origin`) with a value that cannot work.
    #[error("{origin}: {message}")]
    Setting { origin: String, message: String },

    /// A mapping whose rendered path Vault or a policy would misread (wildcards,
    /// whitespace, `..`), found without asking Vault.
    #[error("{}: {field}: {message}", file.display())]
    Mapping {
        file: PathBuf,
        field: String,
        message: String,
    },

    /// Vault refused the credentials (token, AppRole, Kubernetes or JWT login).
    #[error("Vault at {address} refused the {method} credentials ({origin}): {reason}")]
    Login {
        address: String,
        method: &'static str,
        origin: String,
        reason: String,
    },

    /// The JWT of a `jwt` login could not be had from where the environment file says
    /// (GitHub Actions' token endpoint refused or did not answer).
    #[error("the JWT for Vault's jwt login could not be had from {source_name}: {reason}")]
    TokenSource { source_name: String, reason: String },

    /// Vault could not be asked at all, before any secret was read.
    #[error("{problem}")]
    Server { problem: ReadProblem },

    /// One or more mappings that Vault could not resolve; each names its secret_id,
    /// contexts, path and key.
    #[error("{}", display_failures(.0))]
    Unresolved(Vec<SecretFailure>),

    /// `secrets check` found mappings that do not resolve; its table says which.
    #[error("{failed} of {total} secret mappings do not resolve (see the table above)")]
    CheckFailed { failed: usize, total: usize },

    /// The key of the environment's record MACs (`vault.record_key`) could not be read.
    #[error("the record key {origin} (vault.record_key in {}) could not be read: {problem}", file.display())]
    RecordKey {
        file: PathBuf,
        origin: String,
        problem: ReadProblem,
    },

    /// Several independent problems (all bad mappings of a descriptor, say).
    #[error("{}", display_many(.0))]
    Many(Vec<VaultError>),
}

impl VaultError {
    /// One error for a list of them: itself when alone.
    pub(crate) fn from_many(mut errors: Vec<VaultError>) -> Option<VaultError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(VaultError::Many(errors)),
        }
    }
}

/// A mapping (one secret_id, one path and key, the contexts that share them) that Vault
/// did not resolve, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFailure {
    pub secret_id: String,
    pub contexts: Vec<String>,
    pub path: String,
    pub key: String,
    pub version: Option<u64>,
    pub problem: ReadProblem,
}

impl fmt::Display for SecretFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let contexts = if self.contexts.len() == 1 {
            format!("context {}", self.contexts[0])
        } else {
            format!("contexts {}", self.contexts.join(", "))
        };
        write!(
            f,
            "secret_id {}, {contexts}, path {}",
            self.secret_id, self.path
        )?;
        if let Some(version) = self.version {
            write!(f, " (version {version})")?;
        }
        write!(f, ", key {}: {}", self.key, self.problem)
    }
}

/// Why one read or one key did not give a value. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadProblem {
    MissingPath,
    MissingVersion(u64),
    /// A KV v2 version that exists but was deleted (soft, `vault kv undelete` brings it
    /// back) or destroyed.
    DeletedVersion {
        version: Option<u64>,
        destroyed: bool,
    },
    MissingKey {
        available: Vec<String>,
    },
    NotString {
        found: &'static str,
    },
    PermissionDenied {
        api_path: String,
        detail: String,
    },
    TokenExpired {
        origin: String,
    },
    Sealed {
        address: String,
    },
    Unreachable {
        address: String,
        reason: String,
    },
    /// An answer Vault should not give: an unexpected status or a body that is not a
    /// Vault API response.
    Unexpected {
        address: String,
        detail: String,
    },
}

impl ReadProblem {
    /// A problem that every other read would hit as well: stop reading, report once.
    pub fn is_global(&self) -> bool {
        matches!(
            self,
            ReadProblem::TokenExpired { .. }
                | ReadProblem::Sealed { .. }
                | ReadProblem::Unreachable { .. }
        )
    }

    /// A short label for tables (`secrets check`).
    pub fn label(&self) -> &'static str {
        match self {
            ReadProblem::MissingPath => "missing path",
            ReadProblem::MissingVersion(_) => "missing version",
            ReadProblem::DeletedVersion { .. } => "deleted version",
            ReadProblem::MissingKey { .. } => "missing key",
            ReadProblem::NotString { .. } => "not a string",
            ReadProblem::PermissionDenied { .. } => "permission denied",
            ReadProblem::TokenExpired { .. } => "token expired",
            ReadProblem::Sealed { .. } => "vault sealed",
            ReadProblem::Unreachable { .. } => "vault unreachable",
            ReadProblem::Unexpected { .. } => "unexpected answer",
        }
    }
}

impl fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadProblem::MissingPath => f.write_str("no secret at this path (404)"),
            ReadProblem::MissingVersion(v) => write!(
                f,
                "version {v} of this secret does not exist, or was deleted or destroyed (404)"
            ),
            ReadProblem::DeletedVersion { version, destroyed } => {
                let which = version.map_or("the latest version".to_string(), |v| format!("version {v}"));
                if *destroyed {
                    write!(f, "{which} of this secret was destroyed (404); write a new version, or pin another")
                } else {
                    write!(f, "{which} of this secret was deleted (404): `vault kv undelete -versions=N` brings it back, or pin another")
                }
            }
            ReadProblem::MissingKey { available } if available.is_empty() => {
                f.write_str("the secret has no such key (it has no keys at all)")
            }
            ReadProblem::MissingKey { available } => write!(
                f,
                "the secret has no such key (its keys: {})",
                available.join(", ")
            ),
            ReadProblem::NotString { found } => {
                write!(f, "the value under this key is {found}, not a string")
            }
            ReadProblem::PermissionDenied { api_path, detail } => write!(
                f,
                "permission denied: the token's policies do not allow `read` on {api_path} ({detail}); \
                 `flotilla secrets policy` prints the policy this release needs"
            ),
            ReadProblem::TokenExpired { origin } => write!(
                f,
                "the Vault token ({origin}) expired or was revoked during the run; \
                 log in again and rerun"
            ),
            ReadProblem::Sealed { address } => {
                write!(f, "Vault at {address} is sealed; unseal it and rerun")
            }
            ReadProblem::Unreachable { address, reason } => {
                write!(f, "Vault at {address} is unreachable: {reason}")
            }
            ReadProblem::Unexpected { address, detail } => {
                write!(f, "Vault at {address} gave an unexpected answer: {detail}")
            }
        }
    }
}

fn display_failures(failures: &[SecretFailure]) -> String {
    match failures {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} secret mappings do not resolve:", many.len());
            for failure in many {
                text.push_str("\n  ");
                text.push_str(&failure.to_string());
            }
            text
        }
    }
}

fn display_many(errors: &[VaultError]) -> String {
    let mut text = format!("{} problems with secrets:", errors.len());
    for error in errors {
        text.push_str("\n  ");
        text.push_str(&error.to_string().replace('\n', "\n  "));
    }
    text
}

/// An error and its sources in one line, every quoted part cut (Vault quotes what it
/// was sent, which may be a secret).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(next) = source {
        let text = next.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = next.source();
    }
    scrub_quoted(&parts.join(": "))
}

pub(super) fn scrub_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}
