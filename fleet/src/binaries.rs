//! Finding the server binaries: the `FLOTILLA_*` variable, then PATH, then the paths that
//! `scripts/install-deps.sh` wrote to `$FLOTILLA_CACHE/binaries.env`
//! (default `~/.cache/flotilla`).

use crate::{FleetError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub rvault: PathBuf,
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
        let find = |what: &'static str, var: &'static str| -> Result<PathBuf> {
            if let Some(value) = std::env::var_os(var) {
                let path = PathBuf::from(value);
                return if is_executable(&path) {
                    Ok(path)
                } else {
                    Err(FleetError::Usage(format!(
                        "{var}={} is not an executable file",
                        path.display()
                    )))
                };
            }
            if let Some(path) = on_path(what) {
                return Ok(path);
            }
            match cached.get(var).map(PathBuf::from) {
                Some(path) if is_executable(&path) => Ok(path),
                _ => Err(FleetError::MissingBinary {
                    what,
                    var,
                    cache: env_file.clone(),
                }),
            }
        };
        Ok(Binaries {
            etcd: find("etcd", "FLOTILLA_ETCD")?,
            kube_apiserver: find("kube-apiserver", "FLOTILLA_KUBE_APISERVER")?,
            kube_controller_manager: find(
                "kube-controller-manager",
                "FLOTILLA_KUBE_CONTROLLER_MANAGER",
            )?,
            rvault: find("rvault", "FLOTILLA_RVAULT")?,
        })
    }
}

fn read_env_file(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
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
