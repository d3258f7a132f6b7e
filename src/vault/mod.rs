//! Secrets from Vault: login, KV v1/v2 reads, per-cluster mapping resolution, the
//! minimal policy a release needs, and the [`SecretValue`] type whose Debug and Display
//! never show the value.
//!
//! The flow, for one release in one environment:
//! 1. [`SecretPlan::build`]: each cluster's entry for each `secret_id` (its own context,
//!    else `default`), the path rendered with Handlebars over the cluster's globals and
//!    checked against the KV mount. No Vault; `secrets policy` stops here.
//! 2. [`VaultSession::connect`]: address, namespace, CA and login (token, AppRole,
//!    Kubernetes) from the environment file and the variables the vault CLI reads.
//! 3. [`SecretReader::resolve`]: each distinct (path, version) read once, concurrently
//!    with a bound, then each cluster's `secret_id → value` map, or every failure named
//!    by secret_id, context, path and key.
//!
//! [`resolve_for_environment`] does all three for the commands that need values
//! (`deploy`, `diff`, `template --show-secrets`).
//!
//! Must not: render charts or talk to a cluster; log or format a secret value (values
//! leave [`SecretValue`] only through [`SecretValue::expose`] and
//! [`ResolvedSecrets::render_values`]).

mod client;
mod error;
mod plan;
mod resolve;
mod secret;

pub use client::{api_path, SecretData, VaultEnv, VaultSession, DEFAULT_JWT_FILE};
pub use error::{ReadProblem, SecretFailure, VaultError};
pub use plan::{PlannedSecret, ReadKey, SecretPlan};
pub use resolve::{CheckRow, ResolvedSecrets, SecretReader, READ_CONCURRENCY};
pub use secret::{SecretValue, REDACTED};

use crate::config::{Environment, ReleaseSpec};
use std::path::Path;

/// A release's secrets in an environment, with what it took to get them.
#[derive(Debug)]
pub struct Resolution {
    pub plan: SecretPlan,
    pub secrets: ResolvedSecrets,
    /// KV reads made (0 when the release maps no secrets: Vault is not contacted).
    pub reads: usize,
}

/// Plans, logs in and reads every secret of `spec` for every cluster of `environment`.
/// A release without secrets never contacts Vault.
pub async fn resolve_for_environment(
    release_name: &str,
    release_file: &Path,
    spec: &ReleaseSpec,
    env_file: &Path,
    environment: &Environment,
    env: &VaultEnv,
) -> Result<Resolution, VaultError> {
    let plan = SecretPlan::build(release_name, release_file, spec, env_file, environment)?;
    let (Some(config), false) = (&environment.vault, plan.entries.is_empty()) else {
        return Ok(Resolution {
            plan,
            secrets: ResolvedSecrets::default(),
            reads: 0,
        });
    };
    let session = VaultSession::connect(config, env_file, env).await?;
    let reader = SecretReader::new(&session);
    let secrets = reader.resolve(&plan).await?;
    Ok(Resolution {
        plan,
        secrets,
        reads: session.read_count(),
    })
}
