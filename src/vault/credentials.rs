//! Where a login's credentials come from: the process variables Vault settings are read
//! from ([`VaultEnv`]), a variable or a file the environment names. Every credential
//! read is registered with the scrubber at once.

use super::error::VaultError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// The process variables Vault settings come from (`VAULT_ADDR`, `VAULT_TOKEN`, the
/// AppRole variables an environment names, `HOME` for `~/.vault-token`), captured once so
/// that tests can pass their own without touching the process environment. Debug shows
/// variable names only.
#[derive(Clone, Default)]
pub struct VaultEnv {
    vars: BTreeMap<String, String>,
}

impl VaultEnv {
    pub fn from_process() -> Self {
        VaultEnv {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        VaultEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value; set-but-empty counts as unset, as the vault CLI does.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for VaultEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultEnv")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A login credential (an AppRole id, a JWT) from the variable the environment names
/// (it must be set), or the file it names; `None` when it names neither.
pub(super) fn credential(
    env_file: &Path,
    env: &VaultEnv,
    field: &str,
    var: Option<&str>,
    file: Option<&str>,
) -> Result<Option<(Zeroizing<String>, String)>, VaultError> {
    if let Some(name) = var {
        return match env.get(name) {
            Some(value) => {
                // A login credential: no message or log line may show it.
                crate::redact::register(value.trim());
                Ok(Some((
                    Zeroizing::new(value.trim().to_string()),
                    name.to_string(),
                )))
            }
            None => Err(VaultError::Setting {
                origin: format!("{}: {field}_env", env_file.display()),
                message: format!("the variable {name} is not set"),
            }),
        };
    }
    match file {
        Some(file) => {
            let field = format!("{field}_file");
            Ok(Some((
                read_secret_file(env_file, &field, file)?,
                file.to_string(),
            )))
        }
        None => Ok(None),
    }
}

/// A credential kept in a file (an AppRole id, a service-account JWT); relative paths
/// are relative to the working folder, as the vault CLI takes them.
pub(super) fn read_secret_file(
    env_file: &Path,
    field: &str,
    file: &str,
) -> Result<Zeroizing<String>, VaultError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(file).map_err(|err| VaultError::Setting {
                origin: format!("{}: {field}", env_file.display()),
                message: format!("cannot read {file}: {err}"),
            })?,
        );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(VaultError::Setting {
            origin: format!("{}: {field}", env_file.display()),
            message: format!("{file} is empty"),
        });
    }
    // An AppRole id or a service-account JWT: no message or log line may show it.
    crate::redact::register(trimmed);
    Ok(Zeroizing::new(trimmed.to_string()))
}
