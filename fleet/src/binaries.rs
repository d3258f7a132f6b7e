//! Finding the server binaries: the `FLOTILLA_*` variable, then the paths that
//! `scripts/install-deps.sh` wrote to `$FLOTILLA_CACHE/binaries.env`
//! (default `~/.cache/flotilla`), then PATH. The cache comes before PATH because a
//! machine may have an older `etcd` or `kubectl` on PATH (Debian's) than the ones built.
//!
//! Vault: HashiCorp Vault (`FLOTILLA_VAULT`, built from fleet/go/vault) when there is one,
//! else RustyVault (`FLOTILLA_RVAULT`, the fallback of a machine without Go).

use crate::{FleetError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub vault: VaultBinary,
    /// kubectl of the same Kubernetes version, when it was built (not needed by `up`).
    pub kubectl: Option<PathBuf>,
    /// The Helm 4 CLI, when it was built (a peer to compare with; not needed by `up`).
    pub helm: Option<PathBuf>,
    /// The CNCF distribution registry, when it was built: the fleet then serves an OCI
    /// registry for charts by reference.
    pub registry: Option<PathBuf>,
}

/// Which Vault server the fleet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultBinary {
    /// HashiCorp Vault, run in dev mode (in memory, unsealed, root token chosen).
    HashiCorp(PathBuf),
    /// RustyVault behind the envelope-normalising proxy (the fallback).
    Rusty(PathBuf),
}

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLOTILLA_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/flotilla")
}

impl Binaries {
    pub fn find() -> Result<Self> {
        let env_file = cache_dir().join("binaries.env");
        let cached = read_env_file(&env_file);
        let find_opt = |what: &'static str, var: &'static str| -> Result<Option<PathBuf>> {
            if let Some(value) = std::env::var_os(var) {
                let path = PathBuf::from(value);
                return if is_executable(&path) {
                    Ok(Some(path))
                } else {
                    Err(FleetError::Usage(format!(
                        "{var}={} is not an executable file",
                        path.display()
                    )))
                };
            }
            if let Some(path) = cached.get(var).map(PathBuf::from) {
                if is_executable(&path) {
                    return Ok(Some(path));
                }
            }
            Ok(on_path(what))
        };
        let missing = |what: &'static str, var: &'static str| FleetError::MissingBinary {
            what,
            var,
            cache: env_file.clone(),
        };
        let find = |what: &'static str, var: &'static str| -> Result<PathBuf> {
            find_opt(what, var)?.ok_or_else(|| missing(what, var))
        };
        let vault = match find_opt("vault", "FLOTILLA_VAULT")? {
            Some(path) => VaultBinary::HashiCorp(path),
            None => match find_opt("rvault", "FLOTILLA_RVAULT")? {
                Some(path) => VaultBinary::Rusty(path),
                None => return Err(missing("vault", "FLOTILLA_VAULT")),
            },
        };
        Ok(Binaries {
            etcd: find("etcd", "FLOTILLA_ETCD")?,
            kube_apiserver: find("kube-apiserver", "FLOTILLA_KUBE_APISERVER")?,
            kube_controller_manager: find(
                "kube-controller-manager",
                "FLOTILLA_KUBE_CONTROLLER_MANAGER",
            )?,
            vault,
            kubectl: find_opt("kubectl", "FLOTILLA_KUBECTL")?,
            helm: find_opt("helm", "FLOTILLA_HELM")?,
            registry: find_opt("registry", "FLOTILLA_REGISTRY")?,
        })
    }
}

/// The first line of `PROGRAM --version` (`Kubernetes v1.37.2`, `Vault v1.21.4 (...)`),
/// or `None` when it does not run.
pub fn version_of(program: &Path) -> Option<String> {
    let output = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // `Vault v1.21.1, built 2025-...`: the name and version are enough.
    let line = text.lines().next()?.split(',').next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// `(1, 37)` of `Kubernetes v1.37.2`.
pub fn kubernetes_minor(version: &str) -> Option<(u32, u32)> {
    let v = version.rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn read_env_file(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("export ");
            let (key, value) = line.split_once('=')?;
            Some((
                key.trim().to_string(),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::kubernetes_minor;

    #[test]
    fn the_minor_version_comes_from_the_version_line() {
        assert_eq!(kubernetes_minor("Kubernetes v1.37.2"), Some((1, 37)));
        assert_eq!(kubernetes_minor("Kubernetes v1.20.2"), Some((1, 20)));
        assert_eq!(kubernetes_minor("nonsense"), None);
    }
}
