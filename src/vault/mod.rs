//! Secrets from Vault: login, KV v1/v2 reads, per-cluster mapping resolution, the
//! minimal policy a release needs, and the [`SecretValue`] type whose Debug and Display
//! never show the value.
//!
//! The flow, for one release in one environment:
//! 1. [`SecretPlan::build`]: each cluster's entry for each `secret_id` (its own context,
//!    else `default`), the path rendered with Handlebars over the cluster's globals and
//!    checked against the KV mount. No Vault; `secrets policy` stops here.
//! 2. [`VaultSession::connect`]: address, namespace, CA and login (token, AppRole,
//!    Kubernetes, JWT) from the environment file and the variables the vault CLI reads.
//! 3. [`SecretReader::resolve`]: each distinct (path, version) read once, concurrently
//!    with a bound, then each cluster's `secret_id → value` map, or every failure named
//!    by secret_id, context, path and key.
//!
//! [`resolve_for_environment`] does all three for the commands that need values
//! (`deploy`, `diff`, `template --show-secrets`).
//!
//! Must not: render charts or talk to a cluster; log or format a secret value (values
//! leave [`SecretValue`] only through [`SecretValue::expose`], which
//! [`ResolvedSecrets::exposed`] calls for the render).

mod client;
mod credentials;
mod error;
mod jwt;
mod plan;
mod resolve;
mod secret;

pub use client::{api_path, SecretData, VaultEnv, VaultSession, DEFAULT_JWT_FILE};
pub use error::{ReadProblem, SecretFailure, VaultError};
pub use jwt::{role_for_policy as jwt_role_for_policy, REQUEST_TOKEN_VAR, REQUEST_URL_VAR};
pub use plan::{check_recorded_path, PlannedSecret, ReadKey, SecretPlan};
pub use resolve::{check_failures, CheckRow, ResolvedSecrets, SecretReader, READ_CONCURRENCY};
pub use secret::{SecretValue, REDACTED};

use crate::config::{LoadedEnvironment, LoadedRelease};

/// A release's secrets in an environment, with what it took to get them.
#[derive(Debug)]
pub struct Resolution {
    pub plan: SecretPlan,
    pub secrets: ResolvedSecrets,
    /// KV reads made (0 when the release maps no secrets: Vault is not contacted).
    pub reads: usize,
}

/// Plans, logs in and reads every secret of `release` for every cluster of `env`.
/// A release without secrets never contacts Vault.
pub async fn resolve_for_environment(
    release: &LoadedRelease,
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<Resolution, VaultError> {
    let plan = SecretPlan::build(release, env)?;
    let (secrets, reads) = read_plan(&plan, env, vars).await?;
    Ok(Resolution {
        plan,
        secrets,
        reads,
    })
}

/// [`resolve_plan`], keeping what could be read: the secrets that resolved and the
/// mappings that did not. Vault unreachable, sealed or refusing the login is still an
/// error (nothing could be read).
pub async fn resolve_available(
    plan: &SecretPlan,
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<(ResolvedSecrets, Vec<SecretFailure>), VaultError> {
    match session_for(plan, env, vars).await? {
        Some(session) => {
            let answer = SecretReader::new(&session).resolve_available(plan).await;
            // A login token is revoked once read with, whatever the answer.
            session.close().await;
            answer
        }
        None => Ok((ResolvedSecrets::default(), Vec::new())),
    }
}

/// A logged-in session for reading `plan`, or `None` when it reads nothing (a release
/// without secrets never contacts Vault).
async fn session_for(
    plan: &SecretPlan,
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<Option<VaultSession>, VaultError> {
    match env.environment.vault.as_ref() {
        Some(config) if !plan.entries.is_empty() => {
            Ok(Some(VaultSession::connect(config, &env.file, vars).await?))
        }
        _ => Ok(None),
    }
}

/// Logs in and reads the secrets of a plan already built (and perhaps narrowed to some
/// clusters with [`SecretPlan::retain_contexts`]).
pub async fn resolve_plan(
    plan: &SecretPlan,
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<ResolvedSecrets, VaultError> {
    Ok(read_plan(plan, env, vars).await?.0)
}

async fn read_plan(
    plan: &SecretPlan,
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<(ResolvedSecrets, usize), VaultError> {
    let Some(session) = session_for(plan, env, vars).await? else {
        return Ok((ResolvedSecrets::default(), 0));
    };
    let secrets = SecretReader::new(&session).resolve(plan).await;
    let reads = session.read_count();
    session.close().await;
    Ok((secrets?, reads))
}

/// The shortest record key accepted: a key shorter than this could be guessed.
const RECORD_KEY_MIN: usize = 16;

/// The key of `env`'s record MACs (`vault.record_key`), read from Vault in a session of
/// its own; `None` when the environment names no key. The value is registered with the
/// scrubber as every value read is.
pub async fn read_record_key(
    env: &LoadedEnvironment,
    vars: &VaultEnv,
) -> Result<Option<SecretValue>, VaultError> {
    let Some(config) = env.environment.vault.as_ref() else {
        return Ok(None);
    };
    let Some(record_key) = &config.record_key else {
        return Ok(None);
    };
    let failed = |problem: ReadProblem| VaultError::RecordKey {
        file: env.file.clone(),
        origin: record_key.origin(),
        problem,
    };
    // Validated with the environment: inside the mount.
    let relative = record_key
        .path
        .strip_prefix(config.kv.mount.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(&record_key.path);
    let session = VaultSession::connect(config, &env.file, vars)
        .await
        .map_err(|err| match err {
            VaultError::Server { problem } => failed(problem),
            other => other,
        })?;
    let answer = session
        .read(relative, None)
        .await
        .and_then(|data| data.string(&record_key.key));
    session.close().await;
    let value = answer.map_err(failed)?;
    if value.expose().len() < RECORD_KEY_MIN {
        return Err(VaultError::Setting {
            origin: format!("vault.record_key in {}", env.file.display()),
            message: format!(
                "the value at {} is {} characters; a record key needs {RECORD_KEY_MIN} or more (32 random bytes, base64, is usual)",
                record_key.origin(),
                value.expose().len()
            ),
        });
    }
    Ok(Some(value))
}
