//! The one place that decides exit codes, at the edge of the program. Scripts and CI
//! rely on them:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a deploy or rollback that ran and failed (after its own rollback); for `promote --check`, the checkout differs from what the source environment runs (as diff(1)); for `diff --exit-code`, a deploy would change something; for `status`, a cluster is failing (a container stuck, a workload failed, an object missing, a failed revision) |
//! | 2 | bad input or configuration; nothing was changed |
//! | 3 | an environment problem (a cluster or Vault unreachable, permission denied, a lock held) found before anything was changed; also a run refused in every cluster before any change, and a `promote` or `rollback` refused because a record it would act on was changed after it was written (its digests or MAC do not verify) or its MAC cannot be checked |
//! | 130, 143 | a run abandoned by a second SIGINT or SIGTERM (128 + the signal): its partial report is printed |
//!
//! `diff --exit-code` adds one meaning, as `git diff --exit-code` and diff(1) do: 1 when
//! a deploy would change something, 0 when not. Its errors keep the codes above (2 bad
//! input, 3 a cluster or Vault unreachable), so a CI step tells "changes pending" from
//! "broken"; an error that would otherwise be 1 (a cluster's API refusing the dry run)
//! is 3 there, so that 1 means changes only ([`ExitScheme::Detailed`]).
//!
//! The layers below only describe what went wrong (their error enums); none of them
//! imports this module, so the classification lives here once and the layers keep
//! pointing one way.

use crate::cluster::ClusterError;
use crate::error::Error;
use crate::vault::VaultError;

/// The exit codes as the man pages' EXIT STATUS section lists them (the table above).
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    ("1", "A deploy or rollback that ran and failed (after its own rollback); status: a cluster is failing; promote --check: the checkout differs; diff --exit-code: a deploy would change something (changes pending)."),
    ("2", "Bad input or configuration; nothing was changed (diff --exit-code too)."),
    ("3", "An environment problem found before any change: a cluster or Vault unreachable, permission denied, a lock held, a frozen environment, a record that does not verify; diff --exit-code: also a cluster's API refusing the dry run."),
    ("130, 143", "A run abandoned by a second SIGINT or SIGTERM; its partial report names the commands that finish the job."),
];

/// What an error means to the caller of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// A deploy or rollback that failed (after its own rollback).
    Failed,
    /// A comparison found a difference (`promote --check`), as diff(1) exits 1.
    Differs,
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
            ExitKind::Failed | ExitKind::Differs => 1,
            ExitKind::UserError => 2,
            ExitKind::Environment => 3,
            ExitKind::Signal(n) => 128u8.saturating_add(n),
        }
    }
}

/// How the outcome of a run becomes the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitScheme {
    /// The table above.
    Standard,
    /// `diff --exit-code`: 0 no change, 1 changes; errors as [`ExitScheme::Standard`],
    /// but never 1.
    Detailed,
}

/// What a command that succeeded tells the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Finished {
    #[default]
    Done,
    /// A diff that found changes.
    Changes,
}

/// The exit code of a run that parsed its command line and ran.
pub fn code(result: &Result<Finished, Error>, scheme: ExitScheme) -> u8 {
    match (result, scheme) {
        (Ok(Finished::Changes), ExitScheme::Detailed) => ExitKind::Differs.code(),
        (Ok(_), _) => 0,
        (Err(err), scheme) => match err.exit_kind() {
            // 1 is "changes" under --exit-code: a cluster that answered the dry run with
            // an error is the environment's problem, found before any change.
            ExitKind::Failed | ExitKind::Differs if scheme == ExitScheme::Detailed => {
                ExitKind::Environment.code()
            }
            kind => kind.code(),
        },
    }
}

/// The exit code of a command line clap did not run: help and version are success; a
/// refused command line is bad input (2), `--exit-code` or not.
pub fn usage_code(is_error: bool) -> u8 {
    if is_error {
        ExitKind::UserError.code()
    } else {
        0
    }
}

/// Errors that have an exit kind.
pub trait Classify {
    fn exit_kind(&self) -> ExitKind;
}

impl Classify for Error {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Error::Render(err) if err.is_unreachable() => ExitKind::Environment,
            Error::Config(_) | Error::Render(_) | Error::Reported(_) => ExitKind::UserError,
            Error::Vault(err) => err.exit_kind(),
            Error::Cluster(err) => err.exit_kind(),
            Error::Failed(_) | Error::Unhealthy(_) => ExitKind::Failed,
            Error::Differs(_) => ExitKind::Differs,
            Error::Refused(_) | Error::Untrusted(_) => ExitKind::Environment,
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
            | ClusterError::Release { .. }
            | ClusterError::NoNamespace { .. } => ExitKind::UserError,
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
            | VaultError::TokenSource { .. }
            | VaultError::Server { .. }
            | VaultError::RecordKey { .. }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_exit_code_1_means_changes_and_nothing_else() {
        let bad_input = || Err(Error::Reported("lint found 1 problem".into()));
        let unreachable = || Err(Error::Refused("every cluster refused".into()));
        let api_refused = || Err(Error::Failed("the dry run was refused".into()));
        let detailed = ExitScheme::Detailed;
        assert_eq!(code(&Ok(Finished::Done), detailed), 0);
        assert_eq!(code(&Ok(Finished::Changes), detailed), 1);
        // Errors keep the codes of every other command: never 1, never "changes".
        assert_eq!(code(&bad_input(), detailed), 2);
        assert_eq!(code(&unreachable(), detailed), 3);
        assert_eq!(code(&api_refused(), detailed), 3);
        assert_eq!(code(&api_refused(), ExitScheme::Standard), 1);
        assert_eq!(usage_code(true), 2);
        assert_eq!(usage_code(false), 0);
    }

    #[test]
    fn the_standard_scheme_ignores_changes() {
        let standard = ExitScheme::Standard;
        assert_eq!(code(&Ok(Finished::Changes), standard), 0);
        assert_eq!(code(&Err(Error::Reported("x".into())), standard), 2);
        assert_eq!(code(&Err(Error::Refused("x".into())), standard), 3);
        // A record that does not verify is the cluster's state, not the command line.
        assert_eq!(code(&Err(Error::Untrusted("x".into())), standard), 3);
    }
}
