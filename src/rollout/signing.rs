//! The environment's record key (`vault.record_key`): read from Vault once per run,
//! before any cluster is touched, to check the records a run relies on and to sign the
//! ones it writes.

use crate::config::LoadedEnvironment;
use crate::release::RecordKey;
use crate::vault::VaultEnv;
use crate::Result;
use std::sync::Arc;

/// The key of `env`'s record MACs (`vault.record_key`), read from Vault; `None` when
/// the environment names none. A key named but not readable is an error (exit 3): a run
/// that writes or trusts records must not go on without it.
pub async fn record_key(env: &LoadedEnvironment) -> Result<Option<Arc<RecordKey>>> {
    let Some(value) = crate::vault::read_record_key(env, &VaultEnv::from_process()).await? else {
        return Ok(None);
    };
    let origin = env
        .environment
        .vault
        .as_ref()
        .and_then(|v| v.record_key.as_ref())
        .map(|k| k.origin())
        .unwrap_or_default();
    Ok(Some(Arc::new(RecordKey::new(
        &env.environment.name,
        &origin,
        value.expose().as_bytes(),
    ))))
}

/// Says once that `env`'s records carry no MAC: their digests are checked, but a
/// namespace writer who recomputes them is not detected.
pub fn warn_unsigned(env: &LoadedEnvironment, namespace: &str) {
    crate::output::eprint_line(&format!(
        "warning: environment {} names no vault.record_key in {}: its records are not signed; their digests are checked, but whoever may write Secrets in namespace {namespace} can forge one that passes (docs/design.md, \"Records are evidence, not code\")",
        env.environment.name,
        env.file.display()
    ));
}
